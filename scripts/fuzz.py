"""`make fuzz`: thousands of fresh mutants of every input kind through the CLI; prints the outcome table.

    .venv/bin/python scripts/fuzz.py [--cases 2000] [--kinds nir,onnx,...] [--seed S] [--timeout 60]

Every case runs one CLI command in-process on one mutant (see tests/fuzz/harness.py for the kinds and outcomes);
the exit status is 1 when any case crashed, hung, left a partial output or changed a user's file. The seed is
printed so that a failure can be replayed; by default it is fresh each run.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fuzz.harness import Fuzzer, Tally  # noqa: E402
from fuzz.protocol import fuzz_protocol  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000, help="mutants per input kind")
    parser.add_argument("--kinds", default="nir,onnx,ndg,stimulus,calibration,artifact,protocol")
    parser.add_argument("--seed", type=int, default=None, help="default: fresh (time-based)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--memory-gb", type=float, default=12.0, help="address-space limit of this process")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    limit = int(args.memory_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    kinds = [k for k in args.kinds.split(",") if k]
    print(f"fuzz: {args.cases} cases per kind, seed {seed}, kinds {kinds}", flush=True)
    tally = Tally()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nd-fuzz-") as tmp:
        fuzzer = Fuzzer(Path(tmp) / "seeds", timeout=args.timeout)
        for kind in kinds:
            t0 = time.perf_counter()
            if kind == "protocol":
                fuzz_protocol(args.cases, seed, tally, timeout=args.timeout)
            else:
                fuzzer.run([kind], args.cases, seed, Path(tmp) / "work", tally, progress=True)
            print(f"{kind}: {args.cases} cases in {time.perf_counter() - t0:.0f} s", flush=True)
    print(tally.table())
    print(f"total {sum(sum(c.values()) for c in tally.counts.values())} cases in {time.perf_counter() - start:.0f} s,"
          f" {tally.failures()} failures")
    for line in tally.examples:
        print(line)
    return 1 if tally.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
