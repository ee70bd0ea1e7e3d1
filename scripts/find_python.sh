#!/usr/bin/env bash
# Print the path of a Python interpreter of version $1 (e.g. 3.10): $PYTHON<ver without dot> if set, then pyenv,
# then python$1 on PATH. Exits 1 with a message naming what to install when none is found.
set -euo pipefail
ver="$1"
var="PYTHON${ver//./}"
if [ -n "${!var:-}" ]; then echo "${!var}"; exit 0; fi
if command -v pyenv >/dev/null 2>&1; then
  prefix=$(pyenv prefix "$ver" 2>/dev/null | head -1 || true)
  if [ -n "$prefix" ] && [ -x "$prefix/bin/python" ]; then echo "$prefix/bin/python"; exit 0; fi
  latest=$(pyenv versions --bare 2>/dev/null | grep -E "^${ver//./\\.}(\.[0-9]+)?$" | tail -1 || true)
  if [ -n "$latest" ] && [ -x "$(pyenv root)/versions/$latest/bin/python" ]; then
    echo "$(pyenv root)/versions/$latest/bin/python"; exit 0
  fi
fi
if command -v "python$ver" >/dev/null 2>&1 && "python$ver" --version >/dev/null 2>&1; then
  command -v "python$ver"; exit 0
fi
echo "error: no Python $ver interpreter found. Install one (e.g. 'pyenv install $ver') or set $var=/path/to/python$ver." >&2
exit 1
