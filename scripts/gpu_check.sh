#!/usr/bin/env bash
# The torch engine's checks that need a CUDA GPU (issue 18 item 3), as one script for a CUDA machine:
#   1. tests/gpu/test_torch_cuda.py: torch on CUDA equals the numba engine on every test network (not run by CI);
#   2. benchmarks/bench_gpu.py: events/s of numba and torch (cpu, cuda) on the 10k / 100k / 1M LSMs, batch 1 and 32.
# It refuses to run (exit 1) when torch sees no CUDA device, so the GPU tests cannot pass by being skipped.
#
# Usage (repo root):  scripts/gpu_check.sh [OUTDIR]        (default OUTDIR: $OUT if set, else out/gpu_check)
# Environment: PYTHON (default .venv/bin/python if it exists, else python3) with a CUDA build of torch, numba,
# scipy, click, tqdm, pytest and nir (the digits example is a .nir file); neurodeploy itself is installed
# (pip install --no-deps --no-build-isolation -e .) when it is not importable. SIZES (default "10000 100000
# 1000000"), CPU_SIZES (sizes that also time torch on the CPU; default "10000 100000": at 1M it takes minutes),
# STEPS (default 50), SKIP_TESTS=1, SKIP_BENCH=1.
# On this workplace's H200 image (python3 holds torch+CUDA, numba, scipy, pytest; no nir, no internet), carry a nir
# wheel (pip download --no-deps nir==1.0.8) and install it first; split the two parts over two calls of at most
# 10 minutes: SKIP_BENCH=1 (tests, ~2-3 min) then SKIP_TESTS=1 (benchmark; the 1M reservoir alone takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import neurodeploy.backends" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e .
fi
OUTDIR="${1:-${OUT:-out/gpu_check}}"
SIZES="${SIZES:-10000 100000 1000000}"
CPU_SIZES="${CPU_SIZES:-10000 100000}"
STEPS="${STEPS:-50}"
mkdir -p "$OUTDIR"

"$PYTHON" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA device")
p = torch.cuda.get_device_properties(0)
print(f"gpu_check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")
import importlib.util
missing = [m for m in ("numba", "scipy", "click", "tqdm", "pytest", "nir") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing Python packages {missing} (see the header of scripts/gpu_check.sh)")
PY
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>/dev/null \
  | tee "$OUTDIR/nvidia_smi.csv" || true

status=0
if [ "${SKIP_TESTS:-0}" != 1 ]; then  # a failure is reported at the end: the benchmark still runs
  "$PYTHON" -m pytest -q -rs tests/gpu/test_torch_cuda.py --junitxml="$OUTDIR/test_torch_cuda.xml" \
    2>&1 | tee "$OUTDIR/test_torch_cuda.txt" || status=1
  if grep -q "skipped" "$OUTDIR/test_torch_cuda.txt"; then
    echo "gpu_check: GPU tests were skipped" >&2; status=1
  fi
fi

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  for n in $SIZES; do
    devices="cuda"
    case " $CPU_SIZES " in *" $n "*) devices="cpu cuda";; esac
    # shellcheck disable=SC2086
    "$PYTHON" benchmarks/bench_gpu.py --sizes "$n" --batches 1 32 --steps "$STEPS" --devices $devices \
      --json "$OUTDIR/bench_gpu_$n.json" 2>&1 | tee "$OUTDIR/bench_gpu_$n.txt" || status=1
  done
fi
echo "gpu_check: done (status $status), results in $OUTDIR"
exit $status
