"""The spike-driven transformer's SpiNNaker artifact runs on pyNN.brian2 (issue 20, item 3) with the emulator's
decisions.

CI-sized: the shipped 48-channel models take 1.5-4 minutes to quantize and 4-5 s per digit on pyNN.brian2 (a
fresh ~2M-synapse Brian2 network per digit; 30-40 s on this shared machine under heavy load), so this runs a reduced
v1 transformer of the same structure (conv stem, one block of spike-driven self-attention with its Q/K/V LIFs,
sign-split products and talking heads, MLP with membrane shortcuts, LIF head, readout; 16 channels, 2 heads), trained
for 3 epochs so that every stage is active (an untrained one leaves the head nearly silent: a check on silence is no
check), on the first DIGITS test digits. The README figures come from the shipped models by ``run_all --pynn-digits
N`` (families/sdt/run_all.py).

The artifact is compiled for spinnaker and written; the family's stage (:func:`deploy.pynn_decisions`, what run_all
reports) runs it through the PyNN backend's API (the emitted ``pynn/model.py`` in a child process on pyNN.brian2,
one fresh network per digit) against the emulator; ``neurodeploy run DIR --backend pynn`` on two of the digits
gives the same decisions.
"""

import json
import warnings

import numpy as np
import pytest
import torch

from neurodeploy.artifact import load_artifact
from neurodeploy.cli import main
from neurodeploy.compiler import write_artifact
from neurodeploy.errors import QuantizationWarning
from neurodeploy.families import targets
from neurodeploy.families.sdt import deploy
from neurodeploy.families.sdt.lower import OUTPUT, READOUT, lower
from neurodeploy.families.sdt.model import SDTConfig, encode
from neurodeploy.families.sdt.train import load_digits_split, train

DIGITS = 6

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    data = load_digits_split()
    cfg = SDTConfig(attention="v1", channels=16, blocks=1, heads=2, mlp_ratio=2)
    model, _ = train(cfg, epochs=3, seed=0, log=lambda _: None)
    lowered = lower(model.to(torch.float64).eval())
    calibration = lowered.stimulus(encode(data.x_train[:8], cfg.steps, cfg.levels))
    with warnings.catch_warnings():  # a short training can leave a LIF silent on 8 digits; the quantizer says so
        warnings.simplefilter("ignore", QuantizationWarning)
        artifacts, _ = targets.compile_targets(lowered.graph, calibration, ("spinnaker",))
    out = write_artifact(artifacts["spinnaker"], tmp_path_factory.mktemp("sdt_pynn") / "art")
    x = encode(data.x_test[:DIGITS], cfg.steps, cfg.levels)
    art = load_artifact(out)
    stage = deploy.pynn_decisions(art, lowered, x, data.y_test[:DIGITS], chunk=DIGITS)
    return {"dir": out, "artifact": art, "lowered": lowered, "x": x, "stage": stage}


def test_same_decision_as_the_emulator(reduced):
    res, lowered = reduced["stage"], reduced["lowered"]
    assert res["digits"] == DIGITS and res["steps_per_digit"] == lowered.run_steps
    # the check is informative: the emulator's decisions are not all one class
    assert len(set(res["decisions"]["emulator"])) >= 2, res["decisions"]
    # Same decision on every digit, no tolerance: the level claimed for v1 (the shipped v1: 60 of 60 digits, run_all
    # --pynn-digits). Brian2 integrates the script's linear dynamics exactly at dt = 1 ms (docs/spinnaker.md); what
    # differs from the emulator is its integer rounding (truncated decays, 24-bit state), which moves a few spikes
    # per layer (the head's count correlation below) and each logit by a fraction of the margin between the best
    # two classes (here at most 0.015 logit units). A flip here would mean the script no longer runs the emulator's
    # network. (The V2 form's exact coincidence gates turn single spike flips into different products: there the
    # shipped model keeps 58 of 60 decisions, README; it is not what this test claims.)
    assert res["same_decision"] == 1.0 and res["different_decisions"] == [], res["decisions"]
    assert res["accuracy_pynn_brian2"] == res["accuracy_emulator"]  # same decisions, same labels
    # the head LIF: per-neuron spike counts over the digits correlate >= 0.95 with the emulator's (measured 0.9995
    # on this model, 0.998 on the shipped v1 over 60 digits; a wrong weight, delay or step order drops it far below)
    head = res["head"]
    assert head["spikes_emulator"] > 100 and head["spikes_backend"] > 100, head
    assert head["count_correlation"] >= 0.95, head
    assert set(res["populations"]) >= set(lowered.lif_nodes.values()) - {READOUT}
    assert res["seconds_per_digit"] > 0 and {"build", "run", "read"} <= set(res["phase_seconds_per_digit"])
    json.dumps(res)  # run_all's JSON summary takes it as it is


def test_neurodeploy_run_backend_pynn_gives_those_decisions(reduced, tmp_path):
    lowered, art = reduced["lowered"], reduced["artifact"]
    np.savez(tmp_path / "in.npz", spikes=lowered.stimulus(reduced["x"][:2]).astype(np.uint8))
    main(["run", str(reduced["dir"]), "--backend", "pynn", "--input", str(tmp_path / "in.npz"), "--output",
          str(tmp_path / "out.npz"), "--no-progress"])
    with np.load(tmp_path / "out.npz") as npz:
        logits = lowered.logits(npz[OUTPUT], 64.0 * art.graph.nodes[READOUT].quant.scale)
    assert logits.argmax(1).tolist() == reduced["stage"]["decisions"]["pynn_brian2"][:2]
    assert logits.argmax(1).tolist() == reduced["stage"]["decisions"]["emulator"][:2]
