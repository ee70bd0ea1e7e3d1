# Two entry points (see README): `make demo` runs the bundled example end to end, `make test` runs every test.
# Both create the environments they need: .venv (Python 3.11, torch 2.13.0 CPU, snntorch, nir, PyNN+Brian2) and
# .venv-lava (Python 3.10, lava-nc 0.10.0, which does not run on 3.11).
SHELL := /bin/bash
PY311 := $(shell scripts/find_python.sh 3.11)
PY310 := $(shell scripts/find_python.sh 3.10)

.PHONY: demo test lint bench envs clean browser fuzz

envs: .venv/.installed .venv-lava/.installed .venv-spynnaker/.installed

.venv/.installed: pyproject.toml
	test -x .venv/bin/python || $(PY311) -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[torch,nir,pynn,dev,onnx,sweep,zoo]' && .venv/bin/pip install -q --no-deps 'sinabs==3.1.3'
	touch $@

.venv-lava/.installed: pyproject.toml
	test -x .venv-lava/bin/python || $(PY310) -m venv .venv-lava
	.venv-lava/bin/pip install -q -e '.[lava]' pytest
	touch $@

# sPyNNaker 1!7.4.1 (SpiNNaker's PyNN backend, Python 3.11; it pins its own PyNN): tests/spynnaker runs the emitted
# pynn/model.py scripts with it on a virtual SpiNN-5 board (HOME with a .spynnaker.cfg made by the tests).
.venv-spynnaker/.installed:
	test -x .venv-spynnaker/bin/python || $(PY311) -m venv .venv-spynnaker
	.venv-spynnaker/bin/pip install -q 'spynnaker==1!7.4.1'
	touch $@

# Debian's chromium for tests/test_report_browser.py (apt-get install -y chromium when /usr/bin/chromium is missing).
browser:
	scripts/ensure_chromium.sh

demo: .venv/.installed
	.venv/bin/python examples/digits/demo.py

test: envs browser
	.venv/bin/ruff check .
	NEURODEPLOY_REQUIRE_LAVA=1 NEURODEPLOY_REQUIRE_BROWSER=1 .venv/bin/python -m pytest -q -n 2 --dist loadfile tests \
		--ignore=tests/lava --ignore=tests/spynnaker --ignore=tests/gpu
	NEURODEPLOY_REQUIRE_SPYNNAKER=1 .venv/bin/python -m pytest -q tests/spynnaker
	NEURODEPLOY_REQUIRE_LAVA=1 .venv-lava/bin/python -m pytest -q tests/lava

# thousands of fresh mutants of every input kind through the CLI (figures in benchmarks/RESULTS.md); CASES=N per kind
fuzz: envs
	.venv/bin/python scripts/fuzz.py --cases $${CASES:-2000}

bench: envs
	.venv-lava/bin/python benchmarks/bench_emulator_vs_lava.py

clean:
	rm -rf .venv .venv-lava .venv-spynnaker out
