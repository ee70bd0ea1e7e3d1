"""``neurodeploy sweep`` (issue 19): the sweep file, the grid, a small sweep serial and on a local two-worker Ray
cluster (equal cell for cell), failing points as rows, the task cache (resume, repeat), worker retries, outputs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli

from neurodeploy.errors import BackendError, InputError, SerializationError
from neurodeploy.sweep import load_spec, run_sweep
from neurodeploy.sweep.cache import Cache, code_version
from neurodeploy.sweep.executor import Job, run_ray
from neurodeploy.sweep.grid import expand
from neurodeploy.sweep.html import pareto_front
from neurodeploy.sweep.reduce import COLUMNS, TIME_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
CODE = "test-code-version"  # fixed cache code version for the API tests (the CLI test uses the real one)

SMALL = f"""
name = "small"
[[model]]
name = "digits"
path = "{DIGITS / 'digits_snn.nir'}"
dt = 1e-3
[data]
file = "{DIGITS / 'digits_test.npz'}"
samples = 120
shard_size = 60
[calibration]
file = "{ROOT / 'examples' / 'sweep' / 'digits_calibration.npz'}"
[axes]
target = ["loihi2", "spinnaker"]
weight_bits = [4, 16]
calibration_size = [16]
[ray]
memory_mb = 512
max_retries = 2
"""


def _write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _deterministic(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"NEURODEPLOY_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    path = _write(tmp, SMALL)
    doc = run_sweep(path, tmp / "serial", serial=True, code=CODE)
    return path, tmp, doc


# ------------------------------------------------------------------------------------------------ sweep file
@pytest.mark.parametrize("text, named", [
    ("[[model]]\nname='m'\npath='x.nir'\n", "x.nir"),
    (SMALL.replace("[axes]", "[axes]\nbits = [1]"), "axes.bits"),
    (SMALL.replace('name = "small"', 'name = "small"\ncolour = 1'), "colour"),
    (SMALL.replace("shard_size = 60", "shard_size = 0"), "data.shard_size"),
    (SMALL.replace('target = ["loihi2", "spinnaker"]', 'target = ["loihi3"]'), "axes.target"),
    (SMALL.replace("dt = 1e-3", "dt = 1e-3\nbeta = 2"), "model[0].beta"),
])
def test_bad_sweep_files_name_the_key_and_the_file(tmp_path, text, named):
    path = _write(tmp_path, text)
    with pytest.raises((InputError, SerializationError)) as info:
        load_spec(path)
    assert named in str(info.value) and str(path) in str(info.value) and "Fix:" in str(info.value)


def test_grid_order_and_target_specific_axes(tmp_path):
    text = SMALL.replace("calibration_size = [16]", "calibration_size = [16]\npopulation_size = [32, 64]")
    points = expand(load_spec(_write(tmp_path, text)))
    labels = [p.label for p in points]
    assert labels == ["digits/loihi2/w4/calibrated/c16", "digits/loihi2/w16/calibrated/c16",
                      "digits/spinnaker/w4/calibrated/c16/p32", "digits/spinnaker/w4/calibrated/c16/p64",
                      "digits/spinnaker/w16/calibrated/c16/p32", "digits/spinnaker/w16/calibrated/c16/p64"]
    assert [p.index for p in points] == list(range(6))


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 0.5, "a"), (2.0, 0.9, "b"), (2.0, 0.7, "c"), (3.0, 0.8, "d"), (4.0, 0.95, "e"), (0.5, 0.5, "f")]
    assert [p[2] for p in pareto_front(pts)] == ["f", "b", "e"]


# ------------------------------------------------------------------------------------------------ results
def test_small_sweep_rows(small):
    _, _, doc = small
    rows = doc["rows"]
    assert [r["point"] for r in rows] == ["digits/loihi2/w4/calibrated/c16", "digits/loihi2/w16/calibrated/c16",
                                         "digits/spinnaker/w4/calibrated/c16", "digits/spinnaker/w16/calibrated/c16"]
    for failed, profile in ((rows[1], "loihi2"), (rows[3], "spinnaker1")):  # 8-bit weights: named error rows
        assert failed["status"] == "error" and failed["error_type"] == "QuantizationError"
        assert f"num_weight_bits = 16 is outside 1..8 ({profile})" in failed["error"] and "Fix:" in failed["error"]
        assert failed["quantized_accuracy"] is None and failed["float_accuracy"] == rows[0]["float_accuracy"]
    for r in (rows[0], rows[2]):
        assert r["status"] == "ok" and r["samples"] == 120
        assert 0.9 < r["float_accuracy"] <= 1 and 0.85 < r["quantized_accuracy"] <= 1 and 0.85 < r["agreement"] <= 1
        assert r["energy_per_inference_J"] > 0 and r["cores"] >= 2 and r["chips"] == 1
    assert rows[0]["energy_profile"] == "loihi2" and rows[2]["energy_profile"] == "spinnaker1"
    assert rows[0]["weight_bits"] == 4 and rows[2]["weight_bits"] == 4
    # the float columns are the model's, the same for every point
    assert len({r["float_accuracy"] for r in rows}) == 1
    assert doc["tasks"] == {"total": 14, "cached": 0, "run": 14, "run_by_kind": {"float": 2, "compile": 4, "quant": 8}}


def test_ray_two_workers_equals_serial_cell_for_cell(small, ray_cluster, tmp_path):
    path, _, serial = small
    doc = run_sweep(path, tmp_path / "ray", code=CODE)
    assert doc["executor"] == {"kind": "ray", "address": "local", "cpus": 2}
    assert doc["tasks"]["run"] == 14
    assert _deterministic(doc["rows"]) == _deterministic(serial["rows"])
    assert all(set(r) == set(COLUMNS) for r in doc["rows"])


def test_worker_death_is_retried(ray_cluster, tmp_path):
    marker = tmp_path / "died-once"
    jobs = [Job("probe", "k1", "probe", _die_once, (str(marker),))]
    results, stats = run_ray(jobs, Cache(tmp_path / "cache"), memory_mb=256, max_retries=1)
    assert marker.exists() and results["k1"] == {"attempt": 2} and stats.run == {"probe": 1}


def _die_once(marker: str) -> dict:
    if not os.path.exists(marker):
        Path(marker).write_text("x")
        os._exit(1)  # the worker process dies: Ray retries the task on a new one
    return {"attempt": 2}


def test_repeat_is_free_and_an_interrupted_sweep_resumes(small, tmp_path):
    path, tmp, serial = small
    out = tmp / "serial"
    again = run_sweep(path, out, serial=True, code=CODE)
    assert again["tasks"] == {"total": 14, "cached": 14, "run": 0, "run_by_kind": {}}
    assert again["rows"] == serial["rows"]  # cached wall times too
    # "interrupt": drop one compile and two evaluation results; only those run again
    cache = out / "cache"
    (sorted((cache / "compile").glob("*.npz"))[0]).unlink()
    for p in sorted((cache / "quant").glob("*.npz"))[:2]:
        p.unlink()
    resumed = run_sweep(path, out, serial=True, code=CODE)
    assert resumed["tasks"]["run_by_kind"] == {"compile": 1, "quant": 2}
    assert _deterministic(resumed["rows"]) == _deterministic(serial["rows"])
    # a different code version is a different cache: everything runs
    assert run_sweep(path, out, serial=True, code="other")["tasks"]["cached"] == 0


def test_damaged_cache_entry_is_a_named_error(small, tmp_path):
    path, _, _ = small
    out = tmp_path / "out"
    run_sweep(path, out, serial=True, code=CODE)
    victim = sorted((out / "cache" / "float").glob("*.npz"))[0]
    victim.write_bytes(b"not a zip")
    with pytest.raises(SerializationError, match=victim.name):
        run_sweep(path, out, serial=True, code=CODE)


def test_code_version_hashes_the_sources(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    first = code_version([pkg])
    assert code_version([pkg]) == first
    (pkg / "a.py").write_text("x = 2\n")
    assert code_version([pkg]) != first
    assert len(code_version()) == 64


def test_missing_ray_is_a_named_error(small, tmp_path, monkeypatch):
    path, _, _ = small
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(BackendError, match="--serial"):
        run_sweep(path, tmp_path / "out", code="no-ray")


def test_cli_import_does_not_import_ray():
    code = "import sys, neurodeploy.cli; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------------ the command
def test_cli_writes_json_csv_html_and_the_table(small, capsys, tmp_path):
    path, _, serial = small
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "sweep", path, "--out", out, "--serial")
    assert code == 0, err
    assert "digits/loihi2/w16/calibrated/c16" in stdout and "QuantizationError" in stdout
    assert "4 points (2 failed), 120 test samples; tasks: 14 (0 cached, 14 run)" in stdout
    doc = json.loads((out / "results.json").read_text())
    assert _deterministic(doc["rows"]) == _deterministic(serial["rows"])
    with (out / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["point"] for r in table] == [r["point"] for r in doc["rows"]]
    assert float(table[0]["quantized_accuracy"]) == doc["rows"][0]["quantized_accuracy"]
    html = (out / "results.html").read_text()
    assert html.count('<svg class="plot"') == 2 and 'class="series"' in html and html.count('class="point"') == 4
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    code, stdout, _ = run_cli(capsys, "sweep", path, "--out", out, "--serial")
    assert code == 0 and "tasks: 14 (14 cached, 0 run)" in stdout


def test_cli_errors_are_one_paragraph(capsys, tmp_path):
    code, _, err = run_cli(capsys, "sweep", tmp_path / "missing.toml", "--out", tmp_path / "o")
    assert code == 2 and "missing.toml" in err and err.startswith("error:")
    code, _, err = run_cli(capsys, "sweep", tmp_path / "x.toml", "--out", tmp_path / "o", "--serial",
                           "--workers", "2")
    assert code == 2 and "--serial" in err


def test_logistic_readout_on_a_training_file(tmp_path):
    """readout = "logistic": a host readout per graph, trained on the training data's decoded outputs."""
    data = np.load(DIGITS / "digits_test.npz")
    np.savez(tmp_path / "train.npz", spikes=data["spikes"][120:300], labels=data["labels"][120:300])
    text = SMALL.replace("samples = 120", f'samples = 120\ntrain_file = "{tmp_path / "train.npz"}"\n'
                         'readout = "logistic"\nshard_size = 90').replace("shard_size = 60\n", "")
    text = text.replace('target = ["loihi2", "spinnaker"]', 'target = ["emulator"]').replace("[4, 16]", "[6]")
    doc = run_sweep(_write(tmp_path, text), tmp_path / "out", serial=True, code=CODE)
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["quantized_accuracy"] > 0.85 and row["float_accuracy"] > 0.85
    assert doc["tasks"]["run_by_kind"] == {"float": 4, "compile": 1, "quant": 4}  # 2 test + 2 train shards each


def test_html_page_renders_in_chromium(small, tmp_path):
    """The page in headless Chromium (as the energy report's, tests/test_report_browser.py): both Pareto plots
    rendered with their fronts, every table there, no script error."""
    from test_report_browser import body_attrs, console_errors, headless

    from neurodeploy.sweep.results import write_results

    _, _, doc = small
    page = write_results(doc, tmp_path / "page")["html"]
    done = headless(tmp_path, page, "--dump-dom")
    attrs = body_attrs(done.stdout)
    assert attrs["data-plots"] == "2" and attrs["data-plots-rendered"] == "2", attrs
    assert attrs["data-errors"] == "0" and attrs["data-tables"] == "4", attrs
    assert not console_errors(done.stderr)
    for name in ("accuracy-energy", "accuracy-cores"):
        assert f'data-plot="{name}"' in done.stdout


def test_energy_and_cores_equal_neurodeploy_report_energy(small):
    """A row's energy per inference and cores are those of `neurodeploy report energy` on the same artifact and
    samples (summed over shards instead of one run: equal to rounding)."""
    import warnings

    from neurodeploy.compiler import compile_graph
    from neurodeploy.model_loading import load_model
    from neurodeploy.reports import energy_report

    _, _, doc = small
    row = doc["rows"][2]
    assert row["point"] == "digits/spinnaker/w4/calibrated/c16"
    calib = np.load(ROOT / "examples" / "sweep" / "digits_calibration.npz")["spikes"][:16]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        art = compile_graph(load_model(str(DIGITS / "digits_snn.nir"), dt=1e-3), "spinnaker", calibration=calib,
                            quantize_options={"num_weight_bits": 4, "method": "calibrated"})
    x = np.load(DIGITS / "digits_test.npz")["spikes"][:120]
    (prof,) = energy_report(art, x, ["spinnaker1"])["profiles"]
    assert row["energy_per_inference_J"] == pytest.approx(prof["per_inference_J"], rel=1e-12)
    assert row["cores"] == prof["mapping"]["cores"] and row["chips"] == prof["mapping"]["chips"]


def test_engine_choice_gives_the_same_rows(small, tmp_path):
    """[data] engine = "numpy": every evaluation task on the numpy engine; the rows equal the numba ones."""
    path, _, doc = small
    text = path.read_text().replace("shard_size = 60", 'shard_size = 60\nengine = "numpy"')
    other = run_sweep(_write(tmp_path, text), tmp_path / "out", serial=True, code=CODE)
    assert _deterministic(other["rows"]) == _deterministic(doc["rows"])


def test_a_memory_request_no_node_can_hold_is_refused(small, ray_cluster, tmp_path):
    """[ray] memory_mb above every node's memory would leave the tasks waiting forever: a named error instead."""
    path, _, _ = small
    text = path.read_text().replace("memory_mb = 512", "memory_mb = 100000000")
    with pytest.raises(BackendError, match="memory_mb = 100000000"):
        run_sweep(_write(tmp_path, text), tmp_path / "out", code=CODE)
