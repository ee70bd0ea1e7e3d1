"""The CLI end to end on a small float model: compile -> run -> inspect -> profile, and every bad-input path."""

import json

import numpy as np
import pytest
from cli_runner import run_cli as cli

from neurodeploy.ir import LI, CubaLIF, Dense, Graph, Input, Output, save_graph


@pytest.fixture
def model_file(tmp_path):
    rng = np.random.default_rng(0)
    g = Graph({"in": Input(shape=(20,)), "fc1": Dense(weight=rng.normal(0.3, 0.5, (16, 20))),
               "h": CubaLIF(shape=(16,), du=1.0, dv=0.1, vth=1.0),
               "fc2": Dense(weight=rng.normal(0.2, 0.6, (4, 16))), "o": CubaLIF(shape=(4,), du=0.5, dv=0.1, vth=1.0),
               "out": Output()}, [("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")])
    path = tmp_path / "model.ndg"
    save_graph(g, path)
    return path


@pytest.fixture
def stimulus(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "in.npz"
    np.savez(path, spikes=(rng.random((3, 30, 20)) < 0.3).astype(np.uint8))
    return path


def test_compile_run_inspect_profile(capsys, tmp_path, model_file, stimulus):
    out_dir = tmp_path / "art"
    code, out, err = cli(capsys, "compile", str(model_file), "--out", str(out_dir))
    assert code == 0, err
    assert {"model.ndg", "manifest.json", "quantization.json"} <= {p.name for p in out_dir.iterdir()}
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["latency_steps"] == {"out": 2}
    code, out, err = cli(capsys, "run", str(out_dir), "--input", str(stimulus), "--output", str(tmp_path / "o.npz"),
                         "--record", "u,v,spikes")
    assert code == 0, err
    result = np.load(tmp_path / "o.npz")
    assert result["spikes"].shape == (3, 30, 4)
    assert result["h/v"].shape == (3, 30, 16) and result["h/v"].dtype == np.int32
    assert result["spikes"].sum() > 0, "the test model should be active"
    code, out, _ = cli(capsys, "inspect", str(out_dir), "--json")
    info = json.loads(out)
    ops = {n["name"]: n for n in info["nodes"]}
    assert ops["fc1"]["quant"]["bits"] and isinstance(ops["h"]["params"]["vth"], int)
    code, out, _ = cli(capsys, "inspect", str(out_dir))
    assert "fc1" in out and code == 0
    code, out, _ = cli(capsys, "profile", str(out_dir), "--input", str(stimulus), "--json")
    report = json.loads(out)
    assert code == 0 and report["equal"] is True and report["total_synaptic_ops"] > 0


def test_compile_is_deterministic(capsys, tmp_path, model_file):
    for name in ("a", "b"):
        assert cli(capsys, "compile", str(model_file), "--out", str(tmp_path / name))[0] == 0
    assert (tmp_path / "a" / "model.ndg").read_bytes() == (tmp_path / "b" / "model.ndg").read_bytes()


def test_compile_precise_uses_the_precision_options(capsys, tmp_path, model_file):
    from neurodeploy.passes.quantize import PRECISE

    assert cli(capsys, "compile", str(model_file), "--out", str(tmp_path / "p"), "--precise")[0] == 0
    report = json.loads((tmp_path / "p" / "quantization.json").read_text())
    assert {k: report[k] for k in PRECISE} == PRECISE
    assert "bias_correction" in report["nodes"]["h"] and "bias_correction" in report["nodes"]["o"]
    assert cli(capsys, "compile", str(model_file), "--out", str(tmp_path / "d"))[0] == 0
    default = json.loads((tmp_path / "d" / "quantization.json").read_text())
    assert (default["residual"], default["exact_threshold"], default["bias_correction"]) == (None, False, False)


def _assert_clean_error(code, err, *fragments):
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("error: ")
    for fragment in fragments:
        assert fragment in err, err


def test_missing_and_corrupt_model_files(capsys, tmp_path, model_file):
    code, _, err = cli(capsys, "compile", str(tmp_path / "nope.ndg"), "--out", str(tmp_path / "x"))
    _assert_clean_error(code, err, "nope.ndg", "does not exist")
    truncated = tmp_path / "trunc.ndg"
    truncated.write_bytes(model_file.read_bytes()[:300])
    code, _, err = cli(capsys, "compile", str(truncated), "--out", str(tmp_path / "x"))
    _assert_clean_error(code, err, "trunc.ndg", "corrupt or truncated")
    assert not (tmp_path / "x").exists()
    code, _, err = cli(capsys, "compile", str(tmp_path / "model.xyz"), "--out", str(tmp_path / "x"))
    _assert_clean_error(code, err, "model.xyz")


def test_unrepresentable_parameter_leaves_no_output(capsys, tmp_path):
    g = Graph({"in": Input(shape=(2,)), "fc": Dense(weight=np.array([[np.nan, 1.0]])),
               "n": LI(shape=(1,)), "out": Output()}, [("in", "fc"), ("fc", "n"), ("n", "out")])
    save_graph(g, tmp_path / "nan.ndg")
    code, _, err = cli(capsys, "compile", str(tmp_path / "nan.ndg"), "--out", str(tmp_path / "x"))
    _assert_clean_error(code, err, "fc")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x*"))


def test_wrongly_shaped_and_missing_inputs(capsys, tmp_path, model_file):
    out_dir = tmp_path / "art"
    assert cli(capsys, "compile", str(model_file), "--out", str(out_dir))[0] == 0
    bad = tmp_path / "bad.npz"
    np.savez(bad, spikes=np.zeros((2, 10, 19), np.uint8))
    code, _, err = cli(capsys, "run", str(out_dir), "--input", str(bad), "--output", str(tmp_path / "o.npz"))
    _assert_clean_error(code, err, "[B, T, 20]", "[2, 10, 19]")
    assert not (tmp_path / "o.npz").exists()
    np.savez(bad, wrong=np.zeros((2, 10, 20), np.uint8))
    code, _, err = cli(capsys, "run", str(out_dir), "--input", str(bad), "--output", str(tmp_path / "o.npz"))
    _assert_clean_error(code, err, "no array named 'spikes'")
    code, _, err = cli(capsys, "run", str(tmp_path / "nothing"), "--input", str(bad), "--output", "o.npz")
    _assert_clean_error(code, err, "not a compiled model directory")
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    code, _, err = cli(capsys, "run", str(out_dir), "--input", str(tmp_path / "junk.npz"), "--output", "o.npz")
    _assert_clean_error(code, err, "junk.npz", "not a readable .npz")
