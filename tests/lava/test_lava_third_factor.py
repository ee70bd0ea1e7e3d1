"""The third factor y2 on Lava vs the emulator: a Loihi 2 rule using y2, fed a fixed y2 sequence, learns the same
integer weights in Lava 0.10's ``LearningDense`` (fixed_pt, ``Loihi3FLearningRule``) and in the emulator's
:class:`~neurodeploy.emulator.plasticity.PlasticRunner`.

Lava's path: a ``RingBuffer`` sends the y2 sequence (column ``t - 1`` at step ``t``, the same value for every post
neuron: a global modulation) into ``LearningDense.s_in_y2``; the post LIF's ``s_out`` drives ``s_in_bap`` (y0).
``LearningLIF``'s third-factor port is no use here: Lava 0.10's ``PyLearningLIFModelFixed.run_spk`` never reads
``a_third_factor_in`` nor sends ``s_out_y2`` (it only calls the LIF's ``run_spk``), so the learning synapse's own
``s_in_y2`` is where a third factor enters. A Loihi3F rule also takes y1 from ``s_in_y1`` (left unconnected: 0), so
the rules here use x1 and y2 only; this is why the IR lowers no third-factor PlasticDense to Lava (its y1 comes
from the post spikes) -- see backends/lava/describe.py.

Bound: exact (integers equal), for the reason given in test_lava_plastic.py: both sides draw the same seeded
uniforms in the same order and compute the same float64 decay. The post neurons fire exactly when a strong static
kick arrives (plastic currents stay below threshold), so the emulator's PlasticRunner can be driven with the post
spikes of the emulated graph; Lava's post spikes are checked equal to them.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.emulator import simulate
from neurodeploy.emulator.plasticity import PlasticRunner
from neurodeploy.ir import CubaLIF, Dense, Graph, Input, Output, PlasticDense, QuantInfo

Q = QuantInfo(scale=1.0)
N_IN, N_OUT, T = 10, 5, 40
RULES = {
    "all_dependencies": dict(dw="2^-4*y0*x1*y2 - 2^-2*x0*y2 - 2^-7*u0*y2*w", x1_impulse=20, x1_tau=6, t_epoch=2),
    "epoch_1": dict(dw="3*2^-5*y0*x1*y2 - 2^-3*x0*y2", x1_impulse=40, x1_tau=4, t_epoch=1),
    "epoch_5": dict(dw="2^-6*u0*x1*y2 - 2^-5*y0*y2", x1_impulse=30, x1_tau=10, t_epoch=5),
}


def _data(seed: int):
    rng = np.random.default_rng(seed)
    w = rng.integers(20, 100, (N_OUT, N_IN))
    pre = (rng.random((T, N_IN)) < 0.3).astype(np.int64)
    drive = (rng.random((T, N_OUT)) < 0.3).astype(np.int64)
    y2 = rng.integers(0, 128, T)
    return w, pre, drive, y2


def _lava(w, pre, drive, y2, rule: dict, seed: int):
    from lava.magma.core.learning.learning_rule import Loihi3FLearningRule
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense as LavaDense
    from lava.proc.dense.process import LearningDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    lrule = Loihi3FLearningRule(dw=rule["dw"], x1_impulse=rule["x1_impulse"], x1_tau=rule["x1_tau"],
                                t_epoch=rule["t_epoch"], rng_seed=seed)
    syn = LearningDense(weights=w, learning_rule=lrule, sign_mode=SignMode.EXCITATORY, num_weight_bits=8)
    kick = LavaDense(weights=np.eye(N_OUT, dtype=np.int64) * 255, weight_exp=7, sign_mode=SignMode.EXCITATORY)
    lif = LIF(shape=(N_OUT,), du=4095, dv=4095, vth=30000)
    src_pre, src_drive = RingBuffer(data=pre.T), RingBuffer(data=drive.T)
    src_y2 = RingBuffer(data=np.broadcast_to(y2, (N_OUT, T)).copy())
    src_pre.s_out.connect(syn.s_in)
    syn.a_out.connect(lif.a_in)
    src_drive.s_out.connect(kick.s_in)
    kick.a_out.connect(lif.a_in)
    lif.s_out.connect(syn.s_in_bap)
    src_y2.s_out.connect(syn.s_in_y2)
    mon = Monitor()
    mon.probe(lif.s_out, T)
    try:
        lif.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        weights = np.rint(np.asarray(syn.weights.get())).astype(np.int64)
        spikes = np.asarray(mon.get_data()[lif.name]["s_out"]).reshape(T, N_OUT).astype(np.uint8)
    finally:
        lif.stop()
    return weights, spikes


def _emulator(w, pre, drive, y2, rule: dict, seed: int):
    op = PlasticDense(weight=w, sign_mode="excitatory", rng_seed=seed, third_factor="y2_source", quant=Q, **rule)
    # the post spikes: the same network with frozen plastic weights (they cannot reach the threshold)
    frozen = Graph({"pre": Input(shape=(N_IN,)), "drive": Input(shape=(N_OUT,)),
                    "syn": Dense(weight=w, sign_mode="excitatory", quant=Q),
                    "kick": Dense(weight=np.eye(N_OUT, dtype=np.int64) * 255, weight_exp=7, sign_mode="excitatory",
                                  quant=Q),
                    "post": CubaLIF(shape=(N_OUT,), du=4095, dv=4095, vth=30000, quant=Q), "out": Output()},
                   [("pre", "syn"), ("syn", "post"), ("drive", "kick"), ("kick", "post"), ("post", "out")])
    post = simulate(frozen, {"pre": pre[None], "drive": drive[None]}).outputs["out"][0]
    runner = PlasticRunner("syn", op)
    runner.reset(1, T)
    for t in range(1, T + 1):   # step t: input column t - 1 (RingBuffer), this step's post spikes, y2 column t - 1
        runner.observe(t, pre[None, t - 1], post[None, t - 1], np.array([y2[t - 1]]))
    return runner.w[0], post


@pytest.mark.parametrize("name", sorted(RULES))
def test_third_factor_rule_on_lava_equals_the_emulator(lava, name):
    seed = sorted(RULES).index(name) + 3
    w, pre, drive, y2 = _data(seed)
    w_lava, s_lava = _lava(w, pre, drive, y2, RULES[name], seed)
    w_emu, s_emu = _emulator(w, pre, drive, y2, RULES[name], seed)
    assert s_emu.sum() > 20 and np.array_equal(s_lava, s_emu)           # same post spikes on both
    assert (w_emu != w).mean() > 0.3                                     # the rule did learn
    assert np.array_equal(w_lava, w_emu), np.abs(w_lava - w_emu).max()   # exact bound: see the module docstring
