"""The fuzz harness: run CLI entry points in-process on mutants of every input kind and classify each outcome.

Outcomes: ``ok`` (exit 0 and readable outputs), ``error`` (a clean one-paragraph error, exit 2), and the failures
the suite must never see: ``crash`` (an exception escaping the CLI, a traceback, an internal "failed unexpectedly"
error, any other exit status), ``hang`` (the case ran past its time limit), ``partial`` (a failed command left an
output or a temporary file behind) and ``destroyed`` (a user's file next to the output changed).

Input kinds: ``nir`` (HDF5 edits and byte mutants of the bundled digits NIR), ``onnx`` (protobuf edits of a small
ONNX MLP), ``ndg`` (graph.json and .npy member edits of a neurodeploy graph), ``stimulus`` (``run``/``profile``/
``report energy`` inputs), ``calibration`` (``compile --calibration``), ``artifact`` (tampered artifact files, half
of them re-sealed with fresh digests so that the loaders behind the integrity check are reached).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import signal
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import mutate

ROOT = Path(__file__).resolve().parents[2]
NIR_SEED = ROOT / "examples" / "digits" / "digits_snn.nir"
TARGETS = ("emulator", "loihi2", "spinnaker", "null")
FAILURES = ("crash", "hang", "partial", "destroyed")


class _Timeout(BaseException):
    pass


@dataclass
class Tally:
    """Outcome counts per input kind, and the first example of each failure."""

    counts: dict[str, Counter] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, kind: str, outcome: str, detail: str) -> None:
        self.counts.setdefault(kind, Counter())[outcome] += 1
        if outcome in FAILURES and len(self.examples) < 40:
            self.examples.append(f"[{kind}] {outcome}: {detail}")

    def failures(self) -> int:
        return sum(c[f] for c in self.counts.values() for f in FAILURES)

    def table(self) -> str:
        cols = ("cases", "ok", "error") + FAILURES
        lines = ["| kind | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
        for kind, c in self.counts.items():
            row = [sum(c.values())] + [c[k] for k in cols[1:]]
            lines.append(f"| {kind} | " + " | ".join(map(str, row)) + " |")
        return "\n".join(lines)


def _snapshot(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def run_cli(args: list[str], timeout: float) -> tuple[str, str]:
    """Run ``neurodeploy ARGS`` in-process; return (outcome among ok/error/crash/hang, detail)."""
    from neurodeploy.cli import main

    out, err = io.StringIO(), io.StringIO()

    def alarm(*_):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    code: object = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code or 0
    except _Timeout:
        return "hang", " ".join(map(str, args))
    except BaseException as exc:  # noqa: BLE001 - the point of the harness
        tb = traceback.format_exception(exc)
        return "crash", f"{' '.join(map(str, args))}: {type(exc).__name__}: {exc}\n{''.join(tb[-4:])}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    text = err.getvalue()
    if "Traceback" in text or "failed unexpectedly" in text:
        return "crash", text[-600:]
    if code == 0:
        return "ok", ""
    if code == 2 and ("error: " in text or "Error: " in text):
        return "error", text.strip()[:300]
    return "crash", f"exit {code}: {text[-600:]}"


class Case:
    """One command on one mutant inside a fresh work directory holding a user's file next to the output."""

    def __init__(self, work: Path):
        self.work = work
        shutil.rmtree(work, ignore_errors=True)
        (work / "user").mkdir(parents=True)
        (work / "user" / "notes.txt").write_text("a user's file")
        self.before = _snapshot(work / "user")

    def check(self, outcome: str, detail: str, outputs: list[Path]) -> tuple[str, str]:
        if _snapshot(self.work / "user") != self.before:
            return "destroyed", detail
        stray = [p.name for p in self.work.iterdir() if p.name.startswith(".") and (p.name.endswith(".tmp") or
                                                                                    p.name.endswith(".old"))]
        if stray:
            return "partial", f"left {stray}: {detail}"
        if outcome == "error":
            left = [str(p) for p in outputs if p.exists()]
            if left:
                return "partial", f"left {left}: {detail}"
        return outcome, detail


def _good_stimulus(shape: list[int], rng: np.random.Generator, batch: int = 2, steps: int = 12) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, spikes=(rng.random([batch, steps] + list(shape)) < 0.3).astype(np.uint8))
    return buf.getvalue()


def _small_onnx(path: Path) -> None:
    """A 20 -> 16 -> 4 ReLU MLP written with onnx.helper (the seed of the onnx kind)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (16, 20)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(16, np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (4, 16)).astype(np.float32), "w2")
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 20])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w1, b1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def _seed_graph(path: Path) -> None:
    from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, save_graph

    rng = np.random.default_rng(0)
    g = Graph({"in": Input(shape=(20,)), "fc1": Dense(weight=rng.normal(0.3, 0.5, (16, 20))),
               "h": CubaLIF(shape=(16,), du=1.0, dv=0.1, vth=1.0),
               "fc2": Dense(weight=rng.normal(0.2, 0.6, (4, 16))), "o": CubaLIF(shape=(4,), du=0.5, dv=0.1, vth=1.0),
               "out": Output()}, [("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")])
    save_graph(g, path)


def _reseal(directory: Path) -> None:
    """Recompute the manifest's digests (when the manifest is still a JSON object with a files field)."""
    from neurodeploy.artifact import file_digests

    path = directory / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        if isinstance(manifest, dict) and "files" in manifest:
            manifest["files"] = file_digests(directory)
            path.write_text(json.dumps(manifest))
    except (ValueError, OSError):
        pass


class Fuzzer:
    """Seeds (built once in ``seed_dir``) and one runner per input kind."""

    def __init__(self, seed_dir: Path, timeout: float = 60.0):
        self.dir = seed_dir
        self.timeout = timeout
        seed_dir.mkdir(parents=True, exist_ok=True)
        self.ndg = seed_dir / "seed.ndg"
        _seed_graph(self.ndg)
        self.onnx = seed_dir / "seed.onnx"
        _small_onnx(self.onnx)
        self.artifacts = {}
        for target in ("emulator", "loihi2", "spinnaker"):
            out = seed_dir / f"art_{target}"
            outcome, detail = run_cli(["compile", self.ndg, "--target", target, "--out", out, "--force"], 300)
            if outcome != "ok":
                raise RuntimeError(f"seed artifact for {target} did not compile: {detail}")
            self.artifacts[target] = out
        self.stimulus = _good_stimulus([20], np.random.default_rng(0))
        self.runners: dict[str, Callable[[Path, np.random.Generator], tuple[str, str]]] = {
            "nir": self.nir, "onnx": self.onnx_case, "ndg": self.ndg_case, "stimulus": self.stimulus_case,
            "calibration": self.calibration_case, "artifact": self.artifact_case}

    def _compile(self, case: Case, model: Path, rng, extra=()) -> tuple[str, str]:
        out = case.work / "out"
        args = ["compile", model, "--target", TARGETS[int(rng.integers(len(TARGETS)))], "--out", out, *extra]
        if rng.random() < 0.2:  # an existing user directory as --out: must be refused, untouched
            args[args.index(out)] = case.work / "user"
        outcome, detail = run_cli(args, self.timeout)
        if outcome == "ok" and out.exists():
            outcome, detail = self._loads(out, detail)
        return case.check(outcome, detail, [out])

    @staticmethod
    def _loads(out: Path, detail: str) -> tuple[str, str]:
        from neurodeploy.artifact import load_artifact
        from neurodeploy.errors import NeurodeployError

        try:
            load_artifact(out)
        except NeurodeployError as err:
            return "crash", f"compiled artifact does not load: {err}"
        return "ok", detail

    def nir(self, work: Path, rng) -> tuple[str, str]:
        case = Case(work)
        model = work / "m.nir"
        mutate.mutate_hdf5(NIR_SEED, model, rng)
        return self._compile(case, model, rng, ("--dt", "1e-3"))

    def onnx_case(self, work: Path, rng) -> tuple[str, str]:
        case = Case(work)
        model = work / "m.onnx"
        model.write_bytes(mutate.mutate_onnx(self.onnx.read_bytes(), rng))
        return self._compile(case, model, rng)

    def ndg_case(self, work: Path, rng) -> tuple[str, str]:
        case = Case(work)
        model = work / "m.ndg"
        model.write_bytes(mutate.mutate_zip(self.ndg.read_bytes(), rng))
        return self._compile(case, model, rng)

    def calibration_case(self, work: Path, rng) -> tuple[str, str]:
        case = Case(work)
        calib = work / "c.npz"
        calib.write_bytes(mutate.mutate_zip(self.stimulus, rng))
        return self._compile(case, self.ndg, rng, ("--calibration", calib))

    def stimulus_case(self, work: Path, rng) -> tuple[str, str]:
        case = Case(work)
        stim = work / "s.npz"
        stim.write_bytes(mutate.mutate_zip(self.stimulus, rng))
        return self._use_artifact(case, self.artifacts["emulator"], stim, rng)

    def _use_artifact(self, case: Case, art: Path, stim: Path, rng) -> tuple[str, str]:
        out = case.work / "o.npz"
        commands = [["run", art, "--input", stim, "--output", out, "--record", "spikes,u,v"],
                    ["profile", art, "--input", stim, "--backend", "emulator"],
                    ["report", "energy", art, "--input", stim, "--out", case.work / "rep"],
                    ["inspect", art, "--json"]]
        args = commands[int(rng.integers(len(commands)))]
        outcome, detail = run_cli(args, self.timeout)
        return case.check(outcome, detail, [out, case.work / "rep"])

    def artifact_case(self, work: Path, rng) -> tuple[str, str]:
        case = Case(work)
        src = self.artifacts[list(self.artifacts)[int(rng.integers(len(self.artifacts)))]]
        art = work / "art"
        shutil.copytree(src, art)
        files = sorted(p for p in art.rglob("*") if p.is_file())
        target = files[int(rng.integers(len(files)))]
        data = target.read_bytes()
        if target.suffix == ".json":
            target.write_bytes(mutate.mutate_json_bytes(data, rng))
        elif target.suffix in (".npz", ".ndg"):
            target.write_bytes(mutate.mutate_zip(data, rng))
        else:
            target.write_bytes(mutate.mutate_bytes(data, rng))
        if rng.random() < 0.5:
            _reseal(art)
        stim = work / "s.npz"
        stim.write_bytes(self.stimulus)
        return self._use_artifact(case, art, stim, rng)

    def run(self, kinds: list[str], cases: int, seed: int, work: Path, tally: Tally | None = None,
            progress: bool = False) -> Tally:
        tally = tally or Tally()
        for kind in kinds:
            start = time.perf_counter()
            for i in range(cases):
                rng = np.random.default_rng([seed, i, sum(map(ord, kind))])
                outcome, detail = self.runners[kind](work / f"{kind}", rng)
                tally.add(kind, outcome, f"case {i} (seed {seed}): {detail}")
                if progress and (i + 1) % 100 == 0:
                    print(f"  {kind}: {i + 1}/{cases} ({time.perf_counter() - start:.0f} s)", flush=True)
        return tally
