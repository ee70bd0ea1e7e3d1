"""Run the sweep's tasks serially or on Ray, skipping those the cache holds, with a progress bar over tasks.

A :class:`Job` is one task: its cache kind and key, the function (:mod:`neurodeploy.sweep.tasks`) and its
arguments, where an argument may be another job (its result: a quantized shard takes its point's compile result).
Jobs are listed with their dependencies first.

* :func:`run_serial` calls the functions in list order in this process.
* :func:`run_ray` submits every job as a Ray task (``num_cpus=1``, ``memory=`` the sweep's ``ray.memory_mb``,
  ``max_retries`` for a worker that died; exceptions are not retried), a dependent job with its dependency's
  ``ObjectRef`` so Ray orders them, and stores each result in the cache as soon as it arrives (an interrupted
  sweep keeps everything finished). Large arguments (model bytes, shards) are put into the object store once.

Both return every job's result by key; what a task computes does not depend on where or when it ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from neurodeploy.errors import BackendError, NeurodeployError

from .cache import Cache


@dataclass
class Job:
    """One task: ``fn(*args)`` where a :class:`Job` argument stands for that job's result."""

    kind: str
    key: str
    label: str
    fn: Callable[..., dict[str, Any]]
    args: tuple


@dataclass
class RunStats:
    """How many tasks the sweep had, found in the cache, and ran (per kind)."""

    total: int = 0
    cached: int = 0
    run: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "cached": self.cached, "run": sum(self.run.values()), "run_by_kind": self.run}


def _progress(total: int, cached: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=cached, desc="sweep tasks", unit="task", disable=not enabled)


def _from_cache(jobs: list[Job], cache: Cache, stats: RunStats) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    stats.total = len(jobs)
    for job in jobs:
        hit = cache.get(job.kind, job.key)
        if hit is not None:
            results[job.key] = hit
    stats.cached = len(results)
    return results


def _finish(job: Job, result: dict[str, Any], cache: Cache, stats: RunStats, results: dict) -> None:
    cache.put(job.kind, job.key, result)
    results[job.key] = result
    stats.run[job.kind] = stats.run.get(job.kind, 0) + 1


def run_serial(jobs: list[Job], cache: Cache, progress: bool = False) -> tuple[dict[str, dict], RunStats]:
    """Run the jobs the cache lacks in this process, in list order."""
    stats = RunStats()
    results = _from_cache(jobs, cache, stats)
    with _progress(len(jobs), stats.cached, progress) as bar:
        for job in jobs:
            if job.key in results:
                continue
            args = [results[a.key] if isinstance(a, Job) else a for a in job.args]
            _finish(job, job.fn(*args), cache, stats, results)
            bar.update(1)
    return results, stats


def import_ray():
    """``ray``, or a :class:`BackendError` saying how to install it (never a silent serial run)."""
    try:
        import ray
    except ModuleNotFoundError:
        raise BackendError("Ray is not installed in this environment, and a sweep runs on Ray unless --serial",
                           fix="pip install 'neurodeploy[sweep]' (the README's set-up installs it), or pass "
                               "--serial to run every task in this process") from None
    return ray


def start_ray(address: str | None, workers: int | None):
    """Connect to ``address`` (``auto`` or ``ray://host:port``), or start a local cluster of ``workers`` CPUs;
    return ``(ray, started)``. An already initialised Ray is used as it is (``started`` False: not shut down)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    env = {"env_vars": {"NEURODEPLOY_THREADS": "1"}}  # one task per CPU: no nested emulator threads
    try:
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, runtime_env=env, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise BackendError(f"cannot start or reach the Ray cluster at {address or 'a new local cluster'} ({err})",
                           fix="check --address (ray://HOST:10001 or auto with a running `ray start --head`)"
                           ) from None
    return ray, True


def run_ray(jobs: list[Job], cache: Cache, memory_mb: int, max_retries: int, progress: bool = False
            ) -> tuple[dict[str, dict], RunStats]:
    """Run the jobs the cache lacks as Ray tasks (Ray must be initialised: :func:`start_ray`)."""
    ray = import_ray()
    _check_memory(ray, memory_mb)
    stats = RunStats()
    results = _from_cache(jobs, cache, stats)
    options = {"num_cpus": 1, "memory": int(memory_mb) << 20, "max_retries": int(max_retries),
               "retry_exceptions": False}
    remote: dict[Callable, Any] = {}
    refs: dict[str, Any] = {}
    shared: dict[int, Any] = {}  # id(large argument) -> ObjectRef, so each is put once
    pending: dict[Any, Job] = {}
    for job in jobs:
        if job.key in results:
            continue
        if job.fn not in remote:
            remote[job.fn] = ray.remote(job.fn).options(**options)
        args = []
        for a in job.args:
            if isinstance(a, Job):
                args.append(refs[a.key] if a.key in refs else _put(ray, shared, results[a.key]))
            elif isinstance(a, bytes) or getattr(a, "nbytes", 0) > 4096:
                args.append(_put(ray, shared, a))
            else:
                args.append(a)
        ref = remote[job.fn].remote(*args)
        refs[job.key] = ref
        pending[ref] = job
    with _progress(len(jobs), stats.cached, progress) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                _finish(job, _get(ray, ref, job), cache, stats, results)
                bar.update(1)
    return results, stats


def _check_memory(ray, memory_mb: int) -> None:
    """A task asking more memory than any node has would wait forever: refuse it now, naming the setting."""
    nodes = [n.get("Resources", {}).get("memory", 0) for n in ray.nodes() if n.get("Alive")]
    largest = max(nodes, default=0)
    if largest < int(memory_mb) << 20:
        raise BackendError(f"each sweep task asks for [ray] memory_mb = {memory_mb} MiB, but the largest node of the "
                           f"Ray cluster offers {largest / 2**20:.0f} MiB to tasks, so no task could ever start",
                           fix="lower memory_mb in the sweep file's [ray] table (or add memory to the cluster)")


def _put(ray, shared: dict[int, Any], value: Any):
    if id(value) not in shared:
        shared[id(value)] = (ray.put(value), value)  # keep value alive: its id stays unique
    return shared[id(value)][0]


def _get(ray, ref, job: Job) -> dict[str, Any]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, NeurodeployError):
            raise cause from None
        raise
    except ray.exceptions.RayError as err:
        raise BackendError(f"sweep task {job.label} failed on Ray after {job.kind} retries ({type(err).__name__}: "
                           f"{str(err)[:300]})", fix="rerun the sweep: finished tasks are cached and not rerun; "
                           "raise [ray] memory_mb if workers ran out of memory") from None
