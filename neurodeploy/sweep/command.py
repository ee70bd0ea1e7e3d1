"""``neurodeploy sweep SWEEP.toml --out DIR``: the click command (Ray is imported only when the command runs)."""

from __future__ import annotations

import sys

import click


@click.command("sweep")
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="results folder: results.json, results.csv, results.html and the task cache (cache/)")
@click.option("--address", help="an existing Ray cluster: ray://HOST:PORT or auto (default: start a local one)")
@click.option("--workers", type=int, help="CPUs of the local Ray cluster (default: this machine's)")
@click.option("--serial", is_flag=True, help="run every task in this process, without Ray (same results)")
@click.option("--progress/--no-progress", default=True, help="show a progress bar over tasks")
def sweep_cmd(sweep_file, out_dir, address, workers, serial, progress) -> None:
    """Compile every grid point of SWEEP_FILE (models x weight bits x targets x quantizer x calibration ...), evaluate
    each on the data in shards, and write one row per point: float and quantized accuracy, their decision agreement,
    energy per inference, cores and chips, compile and run time. Finished tasks are cached in DIR/cache: an
    interrupted sweep resumes, a repeated one reruns nothing. See docs/sweep.md."""
    from pathlib import Path

    from neurodeploy.errors import InputError, OutputError

    from .results import render_table, write_results
    from .run import run_sweep

    if serial and (address or workers):
        raise InputError("--serial runs without Ray: --address and --workers do not apply",
                         fix="leave out --serial, or --address/--workers")
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers} is not a positive number of CPUs", fix="pass --workers 1 or more")
    if address and workers:
        raise InputError("--workers sizes a local cluster; with --address the cluster's own CPUs are used",
                         fix="leave out --workers")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out '{out}' is a file", fix="give a folder for the results")
    out.mkdir(parents=True, exist_ok=True)
    doc = run_sweep(sweep_file, out, serial=serial, address=address, workers=workers,
                    progress=progress and sys.stderr.isatty())
    paths = write_results(doc, out)
    click.echo(render_table(doc))
    click.echo(f"wrote {paths['json']}, {paths['csv']}, {paths['html']}")
