"""Wall time of ``neurodeploy sweep`` on a local Ray cluster with 1 and with 2 workers, and their ratio, in one run.

Each worker count gets a fresh local cluster (``ray.init(num_cpus=N, include_dashboard=False)``, timed apart as
"cluster start") and an empty cache, so every task runs; the sweep's wall time is that of
:func:`neurodeploy.sweep.run_sweep` on the started cluster (loading, task submission, execution, reduction). The
rows of both runs are checked equal (every column but the wall times). A serial run (no Ray) is timed too.

Usage: .venv/bin/python benchmarks/bench_sweep.py [--sweep examples/sweep/lsm.toml] [--skip-serial]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from neurodeploy.sweep import run_sweep
from neurodeploy.sweep.reduce import TIME_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def _rows(doc: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in doc["rows"]]


def timed_ray(sweep: Path, workers: int) -> dict:
    """Start a local cluster of ``workers`` CPUs, run the sweep with an empty cache, shut down; the times."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"NEURODEPLOY_THREADS": "1"}})
    init = time.perf_counter() - start
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            doc = run_sweep(sweep, tmp)
            wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    return {"workers": workers, "cluster_start_s": round(init, 2), "sweep_s": round(wall, 2),
            "tasks": doc["tasks"]["run"], "doc": doc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default=str(ROOT / "examples" / "sweep" / "lsm.toml"))
    parser.add_argument("--skip-serial", action="store_true")
    args = parser.parse_args()
    sweep = Path(args.sweep)
    runs = [timed_ray(sweep, 1), timed_ray(sweep, 2)]
    assert _rows(runs[0]["doc"]) == _rows(runs[1]["doc"]), "1 and 2 workers gave different rows"
    summary = {"sweep": str(sweep), "points": runs[0]["doc"]["points"], "tasks": runs[0]["tasks"],
               "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (os.cpu_count), {platform.python_version()}",
               "ray": [{k: v for k, v in r.items() if k != "doc"} for r in runs],
               "ratio_1_over_2_workers": round(runs[0]["sweep_s"] / runs[1]["sweep_s"], 2)}
    if not args.skip_serial:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            doc = run_sweep(sweep, tmp, serial=True)
            summary["serial_s"] = round(time.perf_counter() - start, 2)
        assert _rows(doc) == _rows(runs[0]["doc"]), "serial and Ray rows differ"
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
