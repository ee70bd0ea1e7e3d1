"""Spike-driven transformer on digits end to end: the same as ``python -m neurodeploy.families.sdt.run_all``.

    .venv/bin/python examples/sdt_digits/run.py [--attention v1|v2|both] [--train] [--lava-samples N] [--out FILE]

Loads the shipped weights ``sdt_v1.pt`` / ``sdt_v2.pt`` (+ ``.json`` configs) next to this file (``--train``
retrains them on the CPU), lowers the model to the IR, compiles it for the emulator, Loihi 2 and SpiNNaker, runs a
few digits on Lava and prints the JSON summary (see ``neurodeploy/families/sdt/run_all.py``).
"""

from neurodeploy.families.sdt.run_all import main

if __name__ == "__main__":
    raise SystemExit(main())
