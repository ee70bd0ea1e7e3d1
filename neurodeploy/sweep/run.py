"""Run a sweep: load, expand the grid, list the tasks with their cache keys, execute, reduce, return the results.

Tasks (each cached, see :mod:`neurodeploy.sweep.cache`):

* ``float`` -- one per (model, split, shard): the model's float graph on the shard (shared by all its points);
* ``compile`` -- one per grid point;
* ``quant`` -- one per (point, split, shard): the compiled graph on the shard, with energy on test shards.

The shards are fixed by ``data.shard_size``, and the reduction runs in grid and shard order on the driver, so the
rows do not depend on the executor, the number of workers or the order in which tasks finish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy import __version__
from neurodeploy.errors import InputError

from . import tasks
from .cache import Cache, code_version, task_key
from .executor import Job, run_ray, run_serial, start_ray
from .grid import expand
from .inputs import array_hash, load_data, load_models
from .reduce import decisions, point_row
from .spec import SweepSpec, load_spec

RESULTS_FORMAT = "neurodeploy-sweep-results"
RESULTS_VERSION = 1


def _check_shapes(spec: SweepSpec, models, x: np.ndarray) -> None:
    for m in models:
        shapes = m.graph.shapes()
        want = list(shapes[m.graph.inputs[0]])
        if len(m.graph.inputs) != 1 or list(x.shape[2:]) != want:
            raise InputError(f"sweep file '{spec.path}': model '{m.spec.name}' takes inputs {m.graph.inputs} "
                             f"shaped [B, T, {', '.join(map(str, want))}], the data's stimulus is {list(x.shape)}",
                             fix="use data whose stimulus matches the model's single input")


def build_jobs(spec: SweepSpec, code: str) -> dict[str, Any]:
    """Load everything and list the jobs (dependencies first); return them with what reduction needs."""
    models = load_models(spec)
    test, train, pool = load_data(spec)
    _check_shapes(spec, models, test.x)
    splits = [s for s in (test, train) if s is not None]
    decode = spec.data.decode
    xs = {s.name: [s.x[a:b] for a, b in s.shards] for s in splits}  # one object per shard: put into Ray once
    jobs: list[Job] = []
    float_jobs: dict[str, dict[str, list[Job]]] = {}
    for m in models:
        float_jobs[m.spec.name] = {}
        for split in splits:
            float_jobs[m.spec.name][split.name] = [
                Job("float", task_key("float", code, model=m.key, shard=key, decode=decode),
                    f"{m.spec.name}/float/{split.name}[{a}:{b}]", tasks.evaluate_shard,
                    (m.data, x, decode, None, spec.data.engine))
                for (a, b), key, x in zip(split.shards, split.keys, xs[split.name])]
            jobs += float_jobs[m.spec.name][split.name]
    by_name = {m.spec.name: m for m in models}
    points = expand(spec)
    compile_jobs: list[Job] = []
    quant_jobs: list[dict[str, list[Job]]] = []
    for p in points:
        m = by_name[p.model]
        profile = spec.energy[p.target]
        calib = None if pool is None else pool[: p.calibration_size]
        calib_key = "generated" if calib is None else array_hash(calib)
        ckey = task_key("compile", code, model=m.key, point=p.params(), calibration=calib_key,
                        energy_profile=profile)
        cjob = Job("compile", ckey, p.label, tasks.compile_point, (m.data, p.params(), pool, profile))
        compile_jobs.append(cjob)
        per_split = {}
        for split in splits:
            energy = split.name == "test"
            per_split[split.name] = [
                Job("quant", task_key("quant", code, compile=ckey, shard=key, decode=decode, energy=energy),
                    f"{p.label}/{split.name}[{a}:{b}]", tasks.quantized_shard,
                    (cjob, x, decode, energy, spec.data.engine))
                for (a, b), key, x in zip(split.shards, split.keys, xs[split.name])]
        quant_jobs.append(per_split)
    jobs += compile_jobs
    jobs += [j for per_split in quant_jobs for shard_jobs in per_split.values() for j in shard_jobs]
    return {"jobs": jobs, "points": points, "float": float_jobs, "compile": compile_jobs, "quant": quant_jobs,
            "test": test, "train": train}


def reduce_rows(spec: SweepSpec, plan: dict[str, Any], results: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per grid point, in grid order (:mod:`neurodeploy.sweep.reduce`)."""
    labels = plan["test"].y
    labels_train = plan["train"].y if plan["train"] is not None else None
    float_dec: dict[str, np.ndarray] = {}
    for model, per_split in plan["float"].items():
        feats = {split: np.concatenate([results[j.key]["features"] for j in shard_jobs])
                 for split, shard_jobs in per_split.items()}
        float_dec[model] = decisions(feats, labels_train, spec.data.readout, spec.data.readout_alpha)
    rows = []
    for p, cjob, per_split in zip(plan["points"], plan["compile"], plan["quant"]):
        quant = {split: [results[j.key] for j in shard_jobs] for split, shard_jobs in per_split.items()}
        rows.append(point_row(p, results[cjob.key], float_dec[p.model], quant, labels, labels_train,
                              spec.data.readout, spec.data.readout_alpha))
    return rows


def run_sweep(spec_or_path: SweepSpec | str | Path, out_dir: str | Path, *, serial: bool = False,
              address: str | None = None, workers: int | None = None, progress: bool = False,
              code: str | None = None) -> dict[str, Any]:
    """Run the sweep (serially, or on Ray: a local cluster of ``workers`` CPUs, or the cluster at ``address``),
    caching tasks under ``out_dir/cache``; return the results document (rows and task counts). ``code``
    overrides the code version of the cache keys (default :func:`~neurodeploy.sweep.cache.code_version`)."""
    spec = spec_or_path if isinstance(spec_or_path, SweepSpec) else load_spec(spec_or_path)
    code = code or code_version()
    plan = build_jobs(spec, code)
    cache = Cache(Path(out_dir) / "cache")
    if serial or all(cache.path(j.kind, j.key).is_file() for j in plan["jobs"]):
        results, stats = run_serial(plan["jobs"], cache, progress)
        executor = {"kind": "serial" if serial else "none (every task cached: Ray not started)"}
    else:
        ray, started = start_ray(address, workers)
        try:
            results, stats = run_ray(plan["jobs"], cache, spec.memory_mb, spec.max_retries, progress)
            executor = {"kind": "ray", "address": address or "local",
                        "cpus": int(ray.cluster_resources().get("CPU", 0))}
        finally:
            if started:
                ray.shutdown()
    rows = reduce_rows(spec, plan, results)
    return {"format": RESULTS_FORMAT, "version": RESULTS_VERSION, "neurodeploy": __version__,
            "code_version": code, "sweep": str(spec.path), "name": spec.name, "points": len(rows),
            "samples": int(plan["test"].y.size), "shard_size": spec.data.shard_size, "readout": spec.data.readout,
            "decode": spec.data.decode, "executor": executor, "tasks": stats.to_json(), "rows": rows}
