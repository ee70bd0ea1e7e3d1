"""Hardware-in-the-loop runs what ships (issue 15, item 3): ``run``/``profile --backend lava`` execute the artifact's
own ``lava/description.json`` + ``arrays.npz`` through rebuild.py, not a fresh description of the IR graph; sign
modes are written by name and a bare integer is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.artifact import Artifact, load_artifact
from neurodeploy.backends.lava import describe, rebuild, run, run_description
from neurodeploy.compiler import compile_graph, write_artifact
from neurodeploy.emulator import simulate
from neurodeploy.errors import SerializationError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo

Q = QuantInfo(scale=1.0)
RECORD = ("u", "v", "spikes")


def _graph(sign: int = 1) -> Graph:
    w = sign * 2 * np.array([[50, -10, 30], [25, 30, -40], [-45, 60, 20]])
    nodes = {"in": Input(shape=(3,)), "fc": Dense(weight=w, sign_mode="mixed", quant=Q),
             "lif": CubaLIF(shape=(3,), du=500, dv=300, vth=80, quant=Q), "out": Output()}
    return Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")])


X = (np.random.default_rng(3).random((2, 12, 3)) < 0.6).astype(np.uint8)


@pytest.fixture
def artifact_dir(tmp_path) -> Path:
    return write_artifact(compile_graph(_graph(), "loihi2"), tmp_path / "art")


def _expected(graph: Graph) -> dict[str, np.ndarray]:
    emu = simulate(graph, X, record=RECORD)
    return {**emu.outputs, **emu.recorded}


def test_run_executes_the_artifact_files_not_its_graph(lava, artifact_dir):
    art = load_artifact(artifact_dir)
    art.graph = _graph(sign=-1)  # a different network in memory: the run must follow lava/ on disk
    arrays, _ = run(art, X, record=RECORD)
    shipped, other = _expected(_graph()), _expected(_graph(sign=-1))
    for key, ref in shipped.items():
        np.testing.assert_array_equal(arrays[key], ref, err_msg=key)
    assert not np.array_equal(arrays["lif/v"], other["lif/v"])
    assert arrays["spikes"].any()


def test_sign_mode_is_written_by_name_and_mapped_to_the_lava_member(lava, artifact_dir):
    from lava.utils.weightutils import SignMode

    doc = json.loads((artifact_dir / "lava" / "description.json").read_text())
    fc = next(p for p in doc["processes"] if p["name"] == "fc")
    assert fc["kwargs"]["sign_mode"] == "MIXED" and doc["version"] == rebuild.VERSION == 2
    assert [rebuild.sign_mode(n) for n in rebuild.SIGN_MODES] == [SignMode.MIXED, SignMode.EXCITATORY,
                                                                   SignMode.INHIBITORY]
    for bad in (1, "1", "mixed", "NULL", None, True):
        with pytest.raises(rebuild.DescriptionError, match="written by name"):
            rebuild.sign_mode(bad)


def test_integer_sign_mode_is_refused_with_a_named_error(lava):
    d = describe(_graph())
    next(p for p in d["processes"] if p["name"] == "fc")["kwargs"]["sign_mode"] = 1
    with pytest.raises(SerializationError, match="bare integer is refused.*clips negative weights"):
        run_description(d, X)


def test_other_versions_are_refused(lava, artifact_dir, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(artifact_dir / "lava", folder)
    doc = json.loads((folder / "description.json").read_text())
    for version in (1, 3, "2", None):
        (folder / "description.json").write_text(json.dumps({**doc, "version": version}))
        with pytest.raises(rebuild.DescriptionError, match=f"version {version!r}; this rebuild.py reads version 2"):
            rebuild.load_description(folder)
    with pytest.raises(SerializationError, match="version 1"):
        run_description({**describe(_graph()), "version": 1}, X)


def test_in_memory_artifact_runs_its_description(lava):
    arrays, _ = run(Artifact(_graph(), {}), X, record=("v",))
    np.testing.assert_array_equal(arrays["lif/v"], _expected(_graph())["lif/v"])


@pytest.mark.parametrize("dotted,match", [
    ("os.system", "descriptions name lava classes only"),
    ("lava.utils.weightutils.SignMode", "not a Lava process class"),
    ("lava.utils.weightutils.determine_sign_mode", "not a Lava process class"),
    ("lava.proc.nope.Nothing", "cannot import Lava class"),
])
def test_only_lava_process_classes_are_built(lava, dotted, match):
    d = describe(_graph())
    next(p for p in d["processes"] if p["name"] == "fc")["class"] = dotted
    with pytest.raises(rebuild.DescriptionError, match=match):
        rebuild.build_processes(d, {"in": X[0].T})
    d = describe(_graph())
    d["connections"][0]["dst_port"] = "run"
    with pytest.raises(rebuild.DescriptionError, match="uses a port other than"):
        rebuild.build_processes(d, {"in": X[0].T})


def test_rebuild_script_reports_bad_input_files_in_one_line(lava, artifact_dir, tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04junk")
    np.savez(tmp_path / "shape.npz", spikes=np.zeros((1, 4, 2), np.uint8))
    out = tmp_path / "out.npz"
    for stim, match in ((tmp_path / "bad.npz", "cannot read the stimulus"), (tmp_path / "shape.npz", "must be shaped"),
                        (tmp_path / "missing.npz", "cannot read the stimulus")):
        code = rebuild.main([str(artifact_dir / "lava"), "--input", str(stim), "--output", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and match in err and err.count("\n") == 1, err
    assert not out.exists()
    np.savez(tmp_path / "ok.npz", spikes=X)
    assert rebuild.main([str(artifact_dir / "lava"), "--input", str(tmp_path / "ok.npz"), "--output", str(out),
                         "--record", "v"]) == 0
    with np.load(out) as got:
        np.testing.assert_array_equal(got["lif/v"], _expected(_graph())["lif/v"])


def test_why_ints_are_refused_lava_clips_negative_weights_under_an_int_sign_mode(lava):
    """The hazard the by-name rule prevents, measured on Lava 0.10: sign_mode=1 (SignMode.MIXED's value) passed as
    an int zeroes a negative weight; the member rebuild.py maps "MIXED" to keeps it (u = -100 << 6)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense as LavaDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    def u_trace(mode) -> list[int]:
        src = RingBuffer(data=np.ones((1, 4), np.int64))
        syn = LavaDense(weights=np.array([[-100]]), sign_mode=mode, num_weight_bits=8)
        lif = LIF(shape=(1,), du=4095, dv=0, vth=100000)
        src.s_out.connect(syn.s_in)
        syn.a_out.connect(lif.a_in)
        mon = Monitor()
        mon.probe(lif.u, 4)
        try:
            lif.run(condition=RunSteps(num_steps=4), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            return [int(x) for x in np.asarray(mon.get_data()[lif.name]["u"]).ravel()]
        finally:
            lif.stop()

    assert u_trace(1) == [0, 0, 0, 0]
    assert u_trace(rebuild.sign_mode("MIXED")) == [0, -6400, -6400, -6400]
