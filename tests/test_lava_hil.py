"""Which description ``--backend lava`` executes (main environment, no Lava needed): an artifact on disk runs its
own lava/ files, only with a rebuild.py byte-identical to the package's; damaged or foreign files, and artifacts
of other targets, are refused with named errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from cli_runner import run_cli as cli

from neurodeploy.artifact import Artifact
from neurodeploy.backends.lava import describe
from neurodeploy.backends.lava.backend import REBUILD_SOURCE, artifact_description, rebuild_sha256
from neurodeploy.compiler import compile_graph, write_artifact
from neurodeploy.errors import BackendError, SerializationError
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo

Q = QuantInfo(scale=1.0)


def _graph() -> Graph:
    nodes = {"in": Input(shape=(3,)), "fc": Dense(weight=2 * np.arange(-4, 5).reshape(3, 3), sign_mode="mixed",
                                                   quant=Q),
             "lif": CubaLIF(shape=(3,), du=500, dv=300, vth=80, quant=Q), "out": Output()}
    return Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")])


@pytest.fixture
def art(tmp_path):
    """A copy of a loihi2 artifact's files, as an Artifact whose path points at them (free to damage)."""
    path = write_artifact(compile_graph(_graph(), "loihi2"), tmp_path / "art")
    return Artifact(_graph(), json.loads((path / "manifest.json").read_text()), {}, path)


def _same(a, b) -> bool:
    return json.dumps(a, default=lambda x: x.tolist(), sort_keys=True) == json.dumps(b, default=lambda x: x.tolist(),
                                                                                      sort_keys=True)


def test_artifact_on_disk_runs_its_files(art):
    description, sha = artifact_description(art)
    assert sha == rebuild_sha256(art.path / "lava" / "rebuild.py") == rebuild_sha256(REBUILD_SOURCE)
    assert _same(description, describe(_graph()))
    doc = json.loads((art.path / "lava" / "description.json").read_text())
    doc["processes"][2]["kwargs"]["vth"] = 81  # the files, not the graph, are what runs
    (art.path / "lava" / "description.json").write_text(json.dumps(doc))
    assert artifact_description(art)[0]["processes"][2]["kwargs"]["vth"] == 81


def test_foreign_rebuild_is_refused(art):
    path = art.path / "lava" / "rebuild.py"
    path.write_text(path.read_text() + "\n# edited\n")
    with pytest.raises(SerializationError, match="rebuild.py' differs from the rebuild.py of this neurodeploy"):
        artifact_description(art)
    path.unlink()
    with pytest.raises(SerializationError, match="cannot read .*rebuild.py"):
        artifact_description(art)


@pytest.mark.parametrize("damage,match", [
    (lambda f: (f / "description.json").write_text("{not json"), "cannot read .*description.json"),
    (lambda f: (f / "description.json").write_text("[]"), "is not a JSON object"),
    (lambda f: (f / "description.json").write_text(json.dumps({**json.loads((f / "description.json").read_text()),
                                                                "version": 1})), "version 1; this rebuild.py"),
    (lambda f: (f / "arrays.npz").write_bytes(b"PK\x03\x04" + bytes(64)), "Lava description arrays"),
    (lambda f: (f / "arrays.npz").unlink(), "refers to array 'd/processes/1/kwargs/weights'"),
])
def test_damaged_description_is_a_serialization_error(art, damage, match):
    damage(art.path / "lava")
    with pytest.raises(SerializationError, match=match):
        artifact_description(art)


def test_artifact_of_another_target_is_refused(capsys, tmp_path):
    path = write_artifact(compile_graph(_graph(), "emulator"), tmp_path / "emu")
    np.savez(tmp_path / "in.npz", spikes=np.ones((1, 4, 3), np.uint8))
    code, _, err = cli(capsys, "run", str(path), "--input", str(tmp_path / "in.npz"), "--output",
                       str(tmp_path / "out.npz"), "--backend", "lava")
    assert code == 2 and "Traceback" not in err
    assert "has no lava/description.json (compiled for target 'emulator')" in err and "--target loihi2" in err
    assert not (tmp_path / "out.npz").exists()
    shutil.rmtree(path)
    with pytest.raises(BackendError, match="has no lava/description.json"):
        artifact_description(Artifact(_graph(), {"target": "emulator"}, {}, path))
