"""The families' shared target helpers (neurodeploy.families.targets): compile per target with errors raised or
captured, the emulator with chosen nodes' spikes in batches, and Lava against the emulator with chosen nodes."""

import numpy as np
import pytest
from graphs import random_net
from lava_env import lava_python_or_skip

from neurodeploy.emulator import Program
from neurodeploy.errors import CapacityError, InputError
from neurodeploy.families import targets


def stimuli(batch: int, steps: int, n_in: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((batch, steps, n_in)) < 0.3).astype(np.uint8)


def test_compile_targets_raises_or_captures_the_error_that_names_the_node():
    # 5000 hidden neurons feed 'o': 5000 fan-in axons, over Loihi 2's 4096 per core (hw_profiles/loihi2.toml) but
    # within SpiNNaker's 65536, so loihi2 cannot map the graph and spinnaker can
    graph, x = random_net(10, 5000, 3), stimuli(2, 5, 10)
    with pytest.raises(CapacityError, match="node 'o'"):
        targets.compile_targets(graph, x)
    artifacts, info = targets.compile_targets(graph, x, errors="capture")
    assert set(artifacts) == {"spinnaker"}
    assert info["loihi2"]["compiled"] is False and "node 'o'" in info["loihi2"]["error"]
    assert info["loihi2"]["error"].startswith("CapacityError: ")
    assert info["spinnaker"]["compiled"] is True and info["spinnaker"]["seconds"] >= 0
    assert targets.compile_seconds(info) == {"spinnaker": info["spinnaker"]["seconds"]}
    with pytest.raises(InputError, match="errors='ignore'"):
        targets.compile_targets(graph, x, errors="ignore")


def test_run_emulator_in_batches_returns_outputs_and_chosen_spikes():
    graph, x = random_net(10, 20, 3), stimuli(5, 12, 10)
    whole = Program(graph).run(x, record=("spikes",), nodes=["h"])
    got = targets.run_emulator(graph, x, batch=2, nodes=("h",))  # batches of 2, 2, 1
    assert set(got) == {"out", "h/spikes"}
    assert np.array_equal(got["out"], whole.outputs["out"])
    assert np.array_equal(got["h/spikes"], whole.recorded["h/spikes"]) and got["h/spikes"].sum() > 0
    assert set(targets.run_emulator(graph, x)) == {"out"}


def test_lava_check_compares_outputs_and_chosen_spikes():
    lava_python_or_skip()
    x = stimuli(2, 12, 10)
    artifacts, _ = targets.compile_targets(random_net(10, 20, 3), x, ("loihi2",))
    res = targets.lava_check(artifacts["loihi2"], x, nodes=("h",))
    assert set(res["equal"]) == {"out", "h/spikes"}
    assert res["identical"], res["equal"]
    assert res["emulator_spikes"]["h/spikes"] == int(res["emulator"]["h/spikes"].sum()) > 0
    assert (res["samples"], res["steps"]) == (2, 12)
