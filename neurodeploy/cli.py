"""The ``neurodeploy`` command line: compile | run | inspect | profile | report energy.

Every user error is a :class:`~neurodeploy.errors.NeurodeployError`: it is printed as one paragraph without a
traceback and the command exits with status 2. Outputs are written atomically.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click
import numpy as np

from neurodeploy.errors import InputError, NeurodeployError, OutputError
from neurodeploy.fileio import read_npz, write_atomic


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise InputError(f"--input-shape '{text}' is not a list of integers",
                         fix="write it like 64 or 1,28,28") from None
    if not shape or min(shape) <= 0:
        raise InputError(f"--input-shape '{text}' must hold positive sizes", fix="write it like 64 or 1,28,28")
    return shape


def load_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Read an ``.npz`` without unpickling and within size bounds (:func:`neurodeploy.fileio.read_npz`)."""
    return read_npz(path, what)


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    if Path(path).is_dir():
        raise OutputError(f"output '{path}' is a directory", fix="give a file name ending in .npz")
    write_atomic(path, lambda fh: np.savez_compressed(fh, **arrays))


def _check_stimulus(name: str, x: np.ndarray, shape: list[int] | None, source: str) -> None:
    """A stimulus array is numeric (bool, integer or float), shaped ``[B, T, *shape]`` with ``B, T >= 1``."""
    if x.dtype.kind not in "biuf":
        raise InputError(f"'{source}': array '{name}' has dtype {x.dtype}, not a number type",
                         fix="save spikes as uint8 or bool arrays")
    want = "[B, T, " + ", ".join(map(str, shape)) + "]" if shape is not None else "[B, T, ...]"
    if x.ndim < 2 or (shape is not None and list(x.shape[2:]) != list(shape)):
        raise InputError(f"'{source}': array '{name}' is shaped {list(x.shape)}, the model takes {want}",
                         fix="reshape the stimulus to [batch, time, *input_shape]")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError(f"'{source}': array '{name}' is empty (shape {list(x.shape)})",
                         fix="give at least one sample and one time step")


def _stimulus(arrays: dict[str, np.ndarray], inputs: dict[str, list[int] | None], source: str) -> object:
    if len(inputs) == 1:
        name = next(iter(inputs))
        for key in ("spikes", name):
            if key in arrays:
                _check_stimulus(key, arrays[key], inputs[name], source)
                return arrays[key]
        raise InputError(f"'{source}' has no array named 'spikes' (it holds {sorted(arrays)[:20]})",
                         fix="save the stimulus as spikes=[B, T, *input_shape]")
    missing = [n for n in inputs if n not in arrays]
    if missing:
        raise InputError(f"'{source}' lacks arrays for inputs {missing}", fix="save one array per input name")
    for n in inputs:
        _check_stimulus(n, arrays[n], inputs[n], source)
    return {n: arrays[n] for n in inputs}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neurodeploy")
def cli() -> None:
    """Deploy trained spiking neural networks onto neuromorphic hardware."""


@cli.command("compile")
@click.argument("model")
@click.option("--target", default="emulator", show_default=True, help="emulator | loihi2 | spinnaker | null")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="artifact directory")
@click.option("--input-shape", help="input shape of a torch module, e.g. 64 or 2,34,34")
@click.option("--dt", type=float, help="time step in seconds (required for NIR models)")
@click.option("--reset", type=click.Choice(["zero", "subtract"]), help="reset mode for NIR neurons")
@click.option("--calibration", type=click.Path(dir_okay=False), help=".npz with spikes=[B,T,...] for scales")
@click.option("--dump-ir", type=click.Path(file_okay=False), help="write the IR after every pass here")
@click.option("--ann-calibration", type=click.Path(dir_okay=False),
              help="ONNX models: .npz with x=[B, *input_shape] ANN inputs for threshold balancing")
@click.option("--chips", type=int, help="system size in chips (default: the target profile's, for loihi2 the "
              "largest built system); a network needing more chips is refused")
@click.option("--population-size", type=int, help="spinnaker: neurons per PyNN population; larger nodes are "
              "built as several populations (default: one per node)")
@click.option("--precise", is_flag=True, help="quantize with residual synapses, exact thresholds and bias "
              "correction (more synapses; what the model zoo compiles with)")
@click.option("--force", is_flag=True, help="replace --out even when it is a directory neurodeploy did not make "
              "(everything in it is deleted)")
def compile_cmd(model, target, out_dir, input_shape, dt, reset, calibration, dump_ir, ann_calibration, chips,
                population_size, precise, force) -> None:
    """Convert MODEL (NIR file, .ndg, or file.py:object) and compile it for TARGET into --out.

    --chips N sets the size of the target system in chips: the chips the network needs are reported in the
    manifest's mapping, and compiling fails with a capacity error naming the largest node when they exceed N.
    --out DIR must be new or an artifact (a directory holding a neurodeploy manifest), which is replaced
    atomically; any other existing directory is refused unless --force, and a symbolic link or a file is never
    replaced.
    --population-size N (spinnaker) splits nodes larger than N neurons into PyNN populations of N contiguous
    neurons, which sPyNNaker needs for large populations (e.g. 10240 for a 1M-neuron reservoir).
    --precise quantizes with neurodeploy.passes.quantize.PRECISE: a residual synapse wherever the 8-bit weights are
    further than 0.05 % from the float ones, scales at which thresholds are exact integers, and the calibration
    run's mean input error taken out of the biases.
    """
    from neurodeploy.compiler import check_artifact_dir, compile_graph, write_artifact
    from neurodeploy.model_loading import load_model

    check_artifact_dir(out_dir, force)
    ann_x = None
    if ann_calibration:
        arrays = load_npz(ann_calibration, "ANN calibration")
        if "x" not in arrays:
            raise InputError(f"'{ann_calibration}' has no array named 'x' (it holds {sorted(arrays)})",
                             fix="save the ANN's inputs as x=[B, *input_shape]")
        ann_x = arrays["x"]
    backend_options = {}
    if population_size is not None:
        if target != "spinnaker":
            raise InputError(f"--population-size applies to --target spinnaker, not {target}",
                             fix="leave it out, or compile with --target spinnaker")
        if population_size < 1:
            raise InputError(f"--population-size {population_size} is not a positive number of neurons",
                             fix="give the neurons per PyNN population, e.g. --population-size 10240")
        backend_options["population_size"] = population_size
    graph = load_model(model, _parse_shape(input_shape), dt, reset, ann_calibration=ann_x)
    calib = None
    if calibration:
        shapes = graph.shapes()
        calib = _stimulus(load_npz(calibration, "calibration"), {n: list(shapes[n]) for n in graph.inputs},
                          calibration)
    options = None
    if precise:
        from neurodeploy.passes.quantize import PRECISE

        options = dict(PRECISE)
    artifact = compile_graph(graph, target, calibration=calib, dump_dir=dump_ir, chips=chips,
                             quantize_options=options)
    path = write_artifact(artifact, out_dir, backend_options=backend_options, force=force)
    shapes = artifact.graph.shapes()
    n_neurons = sum(int(np.prod(shapes[n])) for n in artifact.graph.by_role("neuron"))
    mapping = artifact.manifest.get("mapping") or {}
    chips_used = (f", {mapping['chips']} of {mapping['system_chips']} chips" if mapping.get("system_chips")
                  else "")
    click.echo(f"compiled {model} for {target}: {len(artifact.graph.nodes)} nodes, {n_neurons} neurons, "
               f"latency {artifact.manifest['latency_steps']} steps{chips_used} -> {path}")


@cli.command("run")
@click.argument("artifact_dir", type=click.Path())
@click.option("--input", "input_path", required=True, type=click.Path(), help=".npz with spikes=[B,T,*shape]")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), help="result .npz")
@click.option("--record", default="", help="comma list among spikes,u,v (every neuron node)")
@click.option("--backend", default="emulator", show_default=True, help="emulator | lava | pynn")
@click.option("--progress/--no-progress", default=True, help="show a progress bar")
@click.option("--lava-python", type=click.Path(dir_okay=False), help="Python with lava-nc for --backend lava "
              "(default $NEURODEPLOY_LAVA_PYTHON, else .venv-lava/bin/python)")
@click.option("--engine", type=click.Choice(["auto", "numba", "numpy", "torch"]), default="auto", show_default=True,
              help="emulator engine (--backend emulator); all give the same integers")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="device of the torch engine (--backend emulator; implies --engine torch with auto)")
def run_cmd(artifact_dir, input_path, output_path, record, backend, progress, lava_python, engine, device) -> None:
    """Run a compiled model on a stimulus and write the output spikes (and recordings)."""
    from neurodeploy.artifact import load_artifact
    from neurodeploy.registry import get_backend

    artifact = load_artifact(artifact_dir)
    fields = tuple(f.strip() for f in record.split(",") if f.strip())
    spikes = _stimulus(load_npz(input_path, "input"), artifact.manifest["inputs"], input_path)
    options = {"lava_python": lava_python} if lava_python else {}
    if backend == "emulator":
        options.update(engine=engine, device=device)
    elif engine != "auto" or device is not None:
        raise InputError(f"--engine and --device choose the emulator's engine, not backend '{backend}'",
                         fix="drop them, or run with --backend emulator")
    arrays, _ = get_backend(backend).run(artifact, spikes, record=fields, progress=progress and sys.stderr.isatty(),
                                         **options)
    save_npz(output_path, arrays)
    click.echo(f"wrote {len(arrays)} arrays to {output_path}")


@cli.command("inspect")
@click.argument("artifact_dir", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def inspect_cmd(artifact_dir, as_json) -> None:
    """Show nodes, shapes, integer parameters, bit widths and quantization error of a compiled model."""
    from neurodeploy.artifact import dump_json, load_artifact
    from neurodeploy.inspection import describe, render_text

    artifact = load_artifact(artifact_dir)
    info = describe(artifact)
    click.echo(dump_json(info) if as_json else render_text(info))


@cli.command("profile")
@click.argument("artifact_dir", type=click.Path())
@click.option("--input", "input_path", required=True, type=click.Path(), help=".npz with spikes=[B,T,*shape]")
@click.option("--backend", default="emulator", show_default=True,
              help="backend to compare with the emulator: lava | pynn | float (the artifact's own float IR) | "
                   "emulator (its two engines)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--output", "output_path", type=click.Path(dir_okay=False), help="also write the JSON report here")
@click.option("--lava-python", type=click.Path(dir_okay=False), help="Python with lava-nc for --backend lava")
def profile_cmd(artifact_dir, input_path, backend, as_json, output_path, lava_python) -> None:
    """Run the same stimuli on BACKEND and on the emulator: equality, spike counts, synaptic ops, time per step."""
    from neurodeploy.artifact import dump_json, load_artifact
    from neurodeploy.fileio import write_bytes_atomic
    from neurodeploy.profiling import profile, render_profile

    artifact = load_artifact(artifact_dir)
    spikes = _stimulus(load_npz(input_path, "input"), artifact.manifest["inputs"], input_path)
    report = profile(artifact, spikes, backend, **({"lava_python": lava_python} if lava_python else {}))
    if output_path:
        write_bytes_atomic(output_path, dump_json(report).encode())
    click.echo(dump_json(report) if as_json else render_profile(report))
    if report.get("equal") is False:
        sys.exit(1)


@cli.group("report")
def report_group() -> None:
    """Reports on a compiled model (energy and time per hardware profile)."""


@report_group.command("energy")
@click.argument("artifact_dir", type=click.Path())
@click.option("--input", "input_path", required=True, type=click.Path(), help=".npz with spikes=[B,T,*shape]")
@click.option("--profile", "profiles", multiple=True,
              help="hardware profile name or .toml path (repeatable; default: every bundled profile with energy "
                   "figures)")
@click.option("--reference", default="cmos45nm", show_default=True, help="45 nm reference profile (name or path)")
@click.option("--profile-json", type=click.Path(dir_okay=False),
              help="a `neurodeploy profile --output` JSON to include")
@click.option("--out", "out_path", required=True, type=click.Path(),
              help="directory (writes energy.json/.html/.txt) or a file name ending in .json/.html/.txt")
@click.option("--samples", type=int, help="use only the first N samples of the stimulus")
@click.option("--batch-size", default=32, show_default=True, help="samples per emulator run (memory)")
def report_energy_cmd(artifact_dir, input_path, profiles, reference, profile_json, out_path, samples,
                      batch_size) -> None:
    """Count a run of --input on the emulator and estimate energy and time on each hardware profile."""
    from neurodeploy.artifact import load_artifact
    from neurodeploy.reports import energy_report, load_profile_run, write_report
    from neurodeploy.reports.text import render_text

    artifact = load_artifact(artifact_dir)
    spikes = _stimulus(load_npz(input_path, "input"), artifact.manifest["inputs"], input_path)
    if samples is not None:
        if samples < 1:
            raise InputError(f"--samples must be positive, got {samples}", fix="pass --samples 1 or more")
        spikes = {k: v[:samples] for k, v in spikes.items()} if isinstance(spikes, dict) else spikes[:samples]
    run = load_profile_run(profile_json) if profile_json else None
    report = energy_report(artifact, spikes, list(profiles) or None, reference=reference, profile_run=run,
                           batch_size=batch_size, input_path=str(input_path), progress=sys.stderr.isatty())
    paths = write_report(report, out_path)
    click.echo(render_text(report))
    click.echo(f"wrote {paths['json']}, {paths['html']}, {paths['text']}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each on stderr, ``warning: <message>`` (they name the node and the cause)."""
    click.echo(f"warning: {message}", err=True)


from neurodeploy.sweep.command import sweep_cmd  # noqa: E402 (registered last; Ray is imported only by a sweep)

cli.add_command(sweep_cmd)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning user errors into one-paragraph messages and exit code 2, and
    warnings into ``warning: ...`` lines."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            cli.main(args=argv, standalone_mode=False)
    except NeurodeployError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except OSError as err:
        click.echo(f"error: {err.strerror or err} ({err.filename or ''})", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
