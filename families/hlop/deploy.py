"""Inference deployment of a trained HLOP network (issue 7, item 2, emulator only).

The inference network is ``Linear(64, H) -> snn.Leaky(reset zero) -> Linear(H, 10)``; ``from_snntorch`` maps the
Leaky layer to ``CubaLIF(du = 1, dv = 1 - beta, vth = 1)`` (spikes identical for reset "zero" with the default
``reset_delay``) and the trailing Linear to a pass-through readout whose ``v`` is ``W2 s_h[t]``. Every IR synapse
adds one step of latency (``graph.meta["latency_steps"]``, here 2), so the input spike trains are padded with that
many zero steps and the readout is summed over all ``T + latency`` steps: ``sum_t v[t] = T W2 r_h`` as in torch.
The graph is compiled for the quantized emulator (``compile_graph(graph, "emulator")``) and simulated with
``neurodeploy.emulator.simulate`` on the same Bernoulli test spikes as the torch evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .learner import TASKS, HLOPConfig, encode, forward


def deploy_emulator(net, data: dict[str, np.ndarray], cfg: HLOPConfig) -> dict[str, Any]:
    """Per-task test accuracy of the torch network, the float IR and the compiled (quantized) emulator artifact,
    plus argmax agreement of the emulator with torch."""
    import torch

    from neurodeploy.compiler import compile_graph
    from neurodeploy.converters.snntorch import from_snntorch
    from neurodeploy.emulator import simulate

    graph = from_snntorch(net, (64,), dt=1e-3, name="hlop_digits")
    lat = int(graph.meta["latency_steps"])
    artifact = compile_graph(graph, "emulator")
    acc: dict[str, list[float]] = {"torch": [], "ir_float": [], "emulator": []}
    agree, total = 0, 0
    for k, classes in enumerate(TASKS):
        sel = np.isin(data["y_test"], classes)
        y = data["y_test"][sel]
        s = encode(data["x_test"][sel], cfg.steps, cfg.seed + 1000 + k)
        with torch.no_grad():
            z_t = forward(net, s)[0].numpy()
        padded = np.concatenate([s.numpy(), np.zeros((len(y), lat, 64))], axis=1).astype(np.float64)
        z_f = simulate(graph, padded).outputs["output"].sum(axis=1)
        z_q = simulate(artifact.graph, padded).outputs["output"].sum(axis=1)
        preds = []
        for name, z in (("torch", z_t), ("ir_float", z_f), ("emulator", z_q)):
            z = np.asarray(z)[:, list(classes)] if cfg.setting == "task" else np.asarray(z)
            p = z.argmax(1)
            p = np.asarray(classes)[p] if cfg.setting == "task" else p
            preds.append(p)
            acc[name].append(float((p == y).mean()))
        agree += int((preds[0] == preds[2]).sum())
        total += len(y)
    return {"latency_steps": lat, "steps_simulated": cfg.steps + lat, "per_task": acc,
            "ACC": {k: float(np.mean(v)) for k, v in acc.items()}, "emulator_torch_agreement": agree / total}
