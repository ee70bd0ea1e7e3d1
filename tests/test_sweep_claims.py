"""The README's digits sweep table is what `neurodeploy sweep examples/sweep/digits.toml --serial` computes: every
cell of the table (read from README.md) is compared with the sweep's rows at the precision the table prints."""

import json
import re
from pathlib import Path

from cli_runner import run_cli as cli

ROOT = Path(__file__).resolve().parents[1]
UNITS = {"nJ": 1e-9, "µJ": 1e-6, "mJ": 1e-3}


def readme_table() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    start = text.index("| weight bits | float | quantized | agreement | Loihi 2 energy / cores |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _pct(cell: str) -> float:
    return float(cell.rstrip(" %"))


def _energy_cores(cell: str) -> tuple[float, str, int]:
    m = re.fullmatch(r"([\d.]+) (\S+) / (\d+)", cell)
    assert m, cell
    return float(m.group(1)), m.group(2), int(m.group(3))


def test_readme_sweep_table_is_computed(capsys, tmp_path):
    out = tmp_path / "sweep"
    code, _, err = cli(capsys, "sweep", ROOT / "examples/sweep/digits.toml", "--out", out, "--serial",
                       "--no-progress")
    assert code == 0, err
    result = {(r["target"], r["weight_bits"]): r for r in json.loads((out / "results.json").read_text())["rows"]}
    table = readme_table()
    assert [int(r[0]) for r in table] == [4, 5, 6, 7, 8]
    for bits, f, q, agree, loihi, spinn in table:
        bits = int(bits)
        for target in ("loihi2", "spinnaker"):
            r = result[(target, bits)]
            assert r["status"] == "ok", r
            # the table prints one decimal: the computed value rounds to the printed one
            assert round(100 * r["float_accuracy"], 1) == _pct(f), (target, bits)
            assert round(100 * r["quantized_accuracy"], 1) == _pct(q), (target, bits)
            assert round(100 * r["agreement"], 1) == _pct(agree), (target, bits)
        for target, cell in (("loihi2", loihi), ("spinnaker", spinn)):
            value, unit, cores = _energy_cores(cell)
            r = result[(target, bits)]
            energy = r["energy_per_inference_J"]
            assert round(energy / UNITS[unit]) == value, (target, bits, energy)
            assert r["cores"] == cores, (target, bits)
