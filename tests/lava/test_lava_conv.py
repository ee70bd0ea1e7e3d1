"""Conv2d through the real Lava backend (lowered to a Lava Sparse process) equals the emulator's Conv2d."""

from __future__ import annotations

import numpy as np

from neurodeploy.backends.lava import describe, run_description
from neurodeploy.emulator import simulate
from neurodeploy.ir import Conv2d, CubaLIF, Dense, Graph, Input, Output, QuantInfo

Q = QuantInfo(scale=1.0)


def test_conv_then_dense_equals_emulator():
    rng = np.random.default_rng(7)
    g = Graph({"in": Input(shape=(2, 6, 6)),
               "conv": Conv2d(weight=rng.integers(-120, 120, (3, 2, 3, 3)), stride=(1, 1), padding=(1, 1),
                              weight_exp=1, num_weight_bits=8, sign_mode="mixed", quant=Q),
               "c": CubaLIF(shape=(3, 6, 6), du=1500, dv=300, vth=600, bias=4, bias_exp=3, quant=Q),
               "fc": Dense(weight=rng.integers(-200, 200, (5, 108)), weight_exp=-1, quant=Q),
               "o": CubaLIF(shape=(5,), du=4095, dv=100, vth=300, quant=Q), "out": Output()},
              [("in", "conv"), ("conv", "c"), ("c", "fc"), ("fc", "o"), ("o", "out")])
    x = (rng.random((2, 25, 2, 6, 6)) < 0.3).astype(np.uint8)
    record = ("spikes", "u", "v")
    emu = simulate(g, x, record=record)
    lava = run_description(describe(g), x, record=record)
    assert emu.recorded["c/spikes"].sum() > 0 and emu.recorded["o/spikes"].sum() > 0
    for key, value in emu.recorded.items():
        np.testing.assert_array_equal(np.asarray(lava[key]).reshape(value.shape), value, err_msg=key)
