"""LSM on digits end to end: the same as ``python -m neurodeploy.families.lsm.run_all`` (see its docstring).

    .venv/bin/python examples/lsm_digits/run.py [--quick] [--lava-samples N] [--pynn-samples N] [--out DIR]
"""

from neurodeploy.families.lsm.run_all import main

if __name__ == "__main__":
    raise SystemExit(main())
