"""Shared helper: run the neurodeploy CLI in-process like a user would, capturing its exit code and output."""

from neurodeploy.cli import main


def run_cli(capsys, *args):
    """Run ``neurodeploy ARGS``; return (exit code, stdout, stderr)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err
