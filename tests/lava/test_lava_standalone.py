"""A loihi2 artifact rebuilds and runs in plain Lava from its description alone (issue 15, item 3).

The artifact's ``lava/`` folder (description.json, arrays.npz, rebuild.py) is copied to an empty directory and run
there by a child Python of this Lava environment started with ``-I -S`` (no PYTHONPATH, no user site, no ``.pth``
files: the editable neurodeploy install is not on the path) -- the child first proves ``import neurodeploy`` fails
-- through ``python rebuild.py --input in.npz --output out.npz --record u,v,spikes``. Every recorded integer (u, v
and spikes of every neuron, every output) must equal the emulator's on the same stimulus: the digits test spikes
through a 64-32-10 network with all three sign modes and delays, and a group of seeded random networks (Dense,
Sparse, delays up to 62, 1-8 weight bits, sign modes None/mixed/excitatory/inhibitory, batch 2).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
from random_nets import make_group

from neurodeploy.artifact import Artifact
from neurodeploy.backends.lava import emit
from neurodeploy.compiler import compile_graph, write_artifact
from neurodeploy.emulator import simulate
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, QuantInfo

ROOT = Path(__file__).resolve().parents[2]
Q = QuantInfo(scale=1.0)
RECORD = ("u", "v", "spikes")
SHIPPED = ("description.json", "arrays.npz", "rebuild.py")

#: Runs in the copied folder: the venv's site-packages (argv[1]; -S leaves them off) on the path without their
#: .pth files, neurodeploy provably absent, then
#: the artifact's rebuild.py as a script with the given arguments.
DRIVER = """
import runpy, sys
sys.path += [p for p in sys.argv[1].split(";") if p not in sys.path]  # the Lava venv's site-packages
try:
    import neurodeploy
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("neurodeploy is importable in the child: " + str(neurodeploy.__file__))
sys.argv = ["rebuild.py"] + sys.argv[2:]
try:
    runpy.run_path("rebuild.py", run_name="__main__")
finally:
    assert not any(m.split(".")[0] == "neurodeploy" for m in sys.modules), "rebuild.py imported neurodeploy"
"""


def _digits_graph() -> Graph:
    rng = np.random.default_rng(11)
    nodes = {"in": Input(shape=(64,)),
             "fc1": Dense(weight=2 * rng.integers(-12, 30, (32, 64)), sign_mode="mixed", quant=Q),
             "h": CubaLIF(shape=(32,), du=1024, dv=256, vth=60, bias=np.arange(-8, 24), quant=Q),
             "exc": Dense(weight=4 * rng.integers(0, 30, (10, 32)), sign_mode="excitatory", num_weight_bits=6,
                          delays=rng.integers(0, 4, (10, 32)), weight_exp=1, quant=Q),
             "inh": Dense(weight=-rng.integers(0, 60, (10, 32)), sign_mode="inhibitory", quant=Q),
             "ro": CubaLIF(shape=(10,), du=4095, dv=200, vth=2**17 - 1, readout=True, quant=Q),
             "scores": Output(), "hidden": Output()}
    edges = [("in", "fc1"), ("fc1", "h"), ("h", "exc"), ("h", "inh"), ("exc", "ro"), ("inh", "ro"),
             ("ro", "scores"), ("h", "hidden")]
    return Graph(nodes, edges)


def _run_standalone(graph: Graph, stimuli: dict[str, np.ndarray], tmp_path: Path, compile: bool = True
                    ) -> dict[str, np.ndarray]:
    """Compile ``graph`` for loihi2 (or, with ``compile=False``, only emit its lava/ folder: the random networks
    hold weights outside their sign mode's range on purpose, which compile's limit check refuses), copy the lava/
    files to an empty folder and run them there in the isolated child."""
    if compile:
        art = write_artifact(compile_graph(graph, "loihi2"), tmp_path / "art")
    else:
        art = tmp_path / "art"
        emit(Artifact(graph, {}), art)
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in SHIPPED:
        shutil.copyfile(art / "lava" / name, alone / name)
    np.savez(alone / "in.npz", **stimuli)
    site = ";".join(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", DRIVER, site, "--input", "in.npz", "--output", "out.npz",
                           "--record", ",".join(RECORD)], cwd=alone, capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote" in proc.stdout
    with np.load(alone / "out.npz", allow_pickle=False) as out:
        return {k: out[k] for k in out.files}


def _assert_equal_to_emulator(graph: Graph, stimuli: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> None:
    emu = simulate(graph, stimuli if len(stimuli) > 1 else next(iter(stimuli.values())), record=RECORD)
    expected = {**emu.outputs, **emu.recorded}
    assert set(got) == set(expected)
    for key, ref in expected.items():
        assert got[key].shape == ref.shape, key
        np.testing.assert_array_equal(got[key], ref, err_msg=key)


def test_digits_artifact_runs_in_plain_lava_without_neurodeploy(lava, tmp_path):
    spikes = np.load(ROOT / "examples" / "digits" / "digits_test.npz")["spikes"][:3]
    graph = _digits_graph()
    got = _run_standalone(graph, {"spikes": spikes}, tmp_path)
    _assert_equal_to_emulator(graph, {"in": spikes}, got)
    assert got["h/spikes"].any() and got["scores"].min() < 0 < got["scores"].max()


def test_random_networks_artifact_runs_in_plain_lava_without_neurodeploy(lava, tmp_path):
    group = make_group([101, 102, 103, 104], steps=25, batch=2, n_inputs=2)
    assert {"sign_mode=None", "sign_mode=mixed", "sign_mode=excitatory", "sign_mode=inhibitory", "sparse+delays",
            "dense+delays", "delay=62", "weights outside the sign range"} <= group.features, group.features
    got = _run_standalone(group.graph, group.spikes, tmp_path, compile=False)
    _assert_equal_to_emulator(group.graph, group.spikes, got)
    assert any(got[k].any() for k in got if k.endswith("/spikes"))
