"""Inference deployment of a trained HLOP network (issue 7, item 2): the quantized emulator, Lava and PyNN.

The inference network is ``Linear(64, H) -> snn.Leaky(reset zero) -> Linear(H, 10)``; ``from_snntorch`` maps the
Leaky layer to ``CubaLIF(du = 1, dv = 1 - beta, vth = 1)`` (spikes identical for reset "zero" with the default
``reset_delay``) and the trailing Linear to a pass-through readout whose ``v`` is ``W2 s_h[t]``. Every IR synapse
adds one step of latency (``graph.meta["latency_steps"]``, here 2), so the input spike trains are padded with that
many zero steps and the readout is summed over all ``T + latency`` steps: ``sum_t v[t] = T W2 r_h`` as in torch.
Every target sees the same Bernoulli test spikes as the torch evaluation (:func:`test_spikes`).

* :func:`deploy_emulator` -- ``compile_graph(graph, "emulator")`` on the integer emulator, plus the float IR.
* :func:`deploy_targets` -- ``compile_graph`` for "loihi2" and "spinnaker" with calibration stimuli from the
  training digits (:func:`neurodeploy.families.targets.compile_targets`); the loihi2 integer graph runs on the
  emulator (every test digit) and on Lava (fixed_pt bit-accurate models, through the ``.venv-lava`` worker; the
  first ``lava_per_task`` digits of each task), where its readout must equal the emulator's integer for integer
  (:func:`~neurodeploy.families.targets.lava_check`); the spinnaker artifact runs on the emulator (every digit) and
  as the emitted PyNN script on pyNN.brian2 (the first ``pynn_per_task`` digits of each task), with argmax
  agreement against the emulator and the hidden layer's spike agreement figures
  (:func:`~neurodeploy.families.targets.pynn_check`). Per-task accuracies are reported for every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .learner import TASKS, HLOPConfig, encode, forward


def export_graph(net):
    """The float IR of the inference network (``from_snntorch``, input shape (64,), dt = 1 ms)."""
    from neurodeploy.converters.snntorch import from_snntorch

    return from_snntorch(net, (64,), dt=1e-3, name="hlop_digits")


def padded(spikes: np.ndarray, latency: int) -> np.ndarray:
    """``[N, T, 64]`` spikes followed by ``latency`` empty steps (uint8)."""
    s = np.asarray(spikes, dtype=np.uint8)
    return np.concatenate([s, np.zeros((s.shape[0], latency, s.shape[2]), np.uint8)], axis=1)


def test_spikes(data: dict[str, np.ndarray], cfg: HLOPConfig, task: int) -> tuple[np.ndarray, np.ndarray]:
    """(``[N, T, 64]`` Bernoulli test spikes of ``task``, labels): the spikes :func:`learner.evaluate` uses."""
    sel = np.isin(data["y_test"], TASKS[task])
    return encode(data["x_test"][sel], cfg.steps, cfg.seed + 1000 + task).numpy().astype(np.uint8), \
        data["y_test"][sel]


def predict(scores: np.ndarray, task: int, setting: str) -> np.ndarray:
    """Class predictions from summed readout scores ``[N, 10]`` (the task's head only for ``setting="task"``)."""
    if setting == "task":
        classes = np.asarray(TASKS[task])
        return classes[np.asarray(scores)[:, list(classes)].argmax(1)]
    return np.asarray(scores).argmax(1)


def _output_node(graph) -> str:
    (name,) = graph.outputs
    return name


def hidden_node(graph) -> str:
    """The spiking hidden layer's node (the CubaLIF that is not the readout)."""
    from neurodeploy.ir.ops import CubaLIF

    (name,) = [n for n, op in graph.nodes.items() if isinstance(op, CubaLIF) and not op.readout]
    return name


def deploy_emulator(net, data: dict[str, np.ndarray], cfg: HLOPConfig) -> dict[str, Any]:
    """Per-task test accuracy of the torch network, the float IR and the compiled (quantized) emulator artifact,
    plus argmax agreement of the emulator with torch."""
    import torch

    from neurodeploy.compiler import compile_graph
    from neurodeploy.emulator import simulate
    from neurodeploy.passes.fold import fold_linear

    graph = export_graph(net)
    lat = int(graph.meta["latency_steps"])
    artifact = compile_graph(graph, "emulator")
    folded, _ = fold_linear(graph)  # the float IR, as the emulator runs it
    out = _output_node(graph)
    acc: dict[str, list[float]] = {"torch": [], "ir_float": [], "emulator": []}
    agree, total = 0, 0
    for k in range(len(TASKS)):
        s, y = test_spikes(data, cfg, k)
        with torch.no_grad():
            z_t = forward(net, torch.as_tensor(s, dtype=torch.float32))[0].numpy()
        x = padded(s, lat)
        z_f = simulate(folded, x.astype(np.float64)).outputs[out].sum(axis=1)
        z_q = simulate(artifact.graph, x).outputs[out].sum(axis=1)
        preds = []
        for name, z in (("torch", z_t), ("ir_float", z_f), ("emulator", z_q)):
            p = predict(z, k, cfg.setting)
            preds.append(p)
            acc[name].append(float((p == y).mean()))
        agree += int((preds[0] == preds[2]).sum())
        total += len(y)
    return {"latency_steps": lat, "steps_simulated": cfg.steps + lat, "per_task": acc,
            "ACC": {k: float(np.mean(v)) for k, v in acc.items()}, "emulator_torch_agreement": agree / total}


def calibration_spikes(data: dict[str, np.ndarray], cfg: HLOPConfig, count: int = 256) -> np.ndarray:
    """Padded training spikes (every task, ``count`` digits) for the quantizer's calibration."""
    rng = np.random.default_rng(cfg.seed + 77)
    idx = rng.choice(len(data["x_train"]), size=min(count, len(data["x_train"])), replace=False)
    s = encode(data["x_train"][idx], cfg.steps, cfg.seed + 500).numpy()
    return s


def deploy_targets(net, data: dict[str, np.ndarray], cfg: HLOPConfig, lava_per_task: int = 10,
                   pynn_per_task: int = 20) -> dict[str, Any]:
    """Compile for loihi2 and spinnaker and run the test digits on the emulator, Lava and PyNN (module docstring).

    ``lava_per_task`` / ``pynn_per_task``: digits per task run on Lava / PyNN (``0`` skips that backend, ``-1``
    runs every test digit). Returns per-task accuracies per run, Lava identity, PyNN agreement and timings.
    """
    from neurodeploy.families import targets

    graph = export_graph(net)
    lat = int(graph.meta["latency_steps"])
    out, hidden = _output_node(graph), hidden_node(graph)
    calib = padded(calibration_spikes(data, cfg), lat)
    artifacts, compile_info = targets.compile_targets(graph, calib)
    runs: dict[str, list[float]] = {"loihi2_emulator": [], "spinnaker_emulator": []}
    samples: dict[str, list[int]] = {"loihi2_emulator": [], "spinnaker_emulator": []}
    lava_identical, lava_seconds, pynn_same, pynn_total, pynn_seconds = [], 0.0, 0, 0, 0.0
    hidden_agreement: list[dict[str, Any]] = []
    for k in range(len(TASKS)):
        s, y = test_spikes(data, cfg, k)
        x = padded(s, lat)
        emu = {}
        for target in ("loihi2", "spinnaker"):
            emu[target] = targets.run_emulator(artifacts[target].graph, x)[out].sum(axis=1)
            runs[f"{target}_emulator"].append(float((predict(emu[target], k, cfg.setting) == y).mean()))
            samples[f"{target}_emulator"].append(len(y))
        n_lava = len(y) if lava_per_task < 0 else min(lava_per_task, len(y))
        if n_lava:
            res = targets.lava_check(artifacts["loihi2"], x[:n_lava])
            lava_identical.append(bool(res["identical"]))
            lava_seconds += res["seconds"]
            z = np.asarray(res["arrays"][out]).sum(axis=1)
            runs.setdefault("lava", []).append(float((predict(z, k, cfg.setting) == y[:n_lava]).mean()))
            samples.setdefault("lava", []).append(n_lava)
        n_pynn = len(y) if pynn_per_task < 0 else min(pynn_per_task, len(y))
        if n_pynn:
            res = targets.pynn_check(artifacts["spinnaker"], x[:n_pynn], (hidden,))
            pynn_seconds += res["seconds"]
            z = np.asarray(res["arrays"][out]).sum(axis=1)
            p_pynn = predict(z, k, cfg.setting)
            p_emu = predict(np.asarray(res["emulator"][out]).sum(axis=1), k, cfg.setting)
            pynn_same += int((p_pynn == p_emu).sum())
            pynn_total += n_pynn
            runs.setdefault("pynn_brian2", []).append(float((p_pynn == y[:n_pynn]).mean()))
            samples.setdefault("pynn_brian2", []).append(n_pynn)
            hidden_agreement.append(res["agreement"][hidden])
    report: dict[str, Any] = {
        "latency_steps": lat, "steps_simulated": cfg.steps + lat,
        "compile_seconds": targets.compile_seconds(compile_info),
        "per_task": runs, "samples_per_task": samples,
        "ACC": {name: float(np.mean(v)) for name, v in runs.items()},
    }
    if lava_identical:
        report["lava"] = {"identical_to_emulator": all(lava_identical), "seconds": round(lava_seconds, 1),
                          "samples": int(sum(samples["lava"]))}
    if pynn_total:
        corr = [a.get("sample_count_correlation") for a in hidden_agreement]
        report["pynn"] = {"argmax_agreement_with_emulator": pynn_same / pynn_total, "samples": pynn_total,
                          "seconds": round(pynn_seconds, 1),
                          "hidden_sample_count_correlation": [None if c is None else round(float(c), 4)
                                                              for c in corr]}
    return report
