"""Continual learning on the chip model (issue 7, item 4): lateral subspace neurons learning with an on-chip rule.

After the five split-digits tasks the float learner has consolidated the subspaces of tasks 1-4 only (the last
task's Hebbian phase never ran). Here the *deployed* integer network (the loihi2 artifact) gets lateral subspace
neurons next to it, on the same chip: for each layer ``l`` a :class:`~neurodeploy.ir.ops.PlasticDense` ``M_l``
from that layer's presynaptic population (the input spikes, the hidden spikes) to ``k_l`` lateral LIF neurons,
which inhibit each other through a static Dense (weight ``-inhibition``, no self-connection). While the last task's
training digits stream through (one digit per learning epoch of ``T + gap`` steps), ``M_l`` learns in the
emulator with the integer rule::

    dw = 2^(e-2) * u0 * x1 * y1  -  2^e * u0 * y1 * w          (widths: x1*y1 >> 3, y1*w >> 5)
       = 2^(e-5) * y1 * (x1 - w)                                  (in real terms, before rounding)

an instar rule: every epoch each lateral neuron moves its weights toward the presynaptic trace vector ``x1`` in
proportion to its own activity ``y1``; lateral inhibition makes the neurons take turns, so they settle on
different prototypes of the task's presynaptic activity. This is the local, Loihi-expressible form of the lateral
learning. The HLOP rule itself, ``dM = eta (y x^T - y y^T M)``, is *not* expressible per synapse: its anti-Hebbian
term ``y_i sum_k y_k M_kj`` needs every lateral neuron's activity at synapse ``(i, j)`` (the paper obtains it from
the feedback ``x - M^T y`` at the presynaptic neurons, a second phase with weight-tied feedback synapses that Loihi
2 learning engines do not provide). The prototypes' span is used as the task's subspace: it is orthonormalised on
the host (QR, after removing the old subspaces), which the float rule does implicitly at its fixed point.

The further task (permuted-pixel digits, all ten classes on the same head) is then learned on the host with the
projected gradient ``g - (g B^T) B`` (B: the old subspaces plus the one learned on chip) -- the gradient of a
surrogate-gradient network is not computed on chip -- and the updated network is re-quantized and run on the
emulator, where forgetting of the five earlier tasks is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurodeploy.ir import CubaLIF, Dense, Graph, PlasticDense, QuantInfo

Q = QuantInfo(scale=1.0)


@dataclass(frozen=True)
class LateralConfig:
    """The lateral layer of one presynaptic population and its rule (integers, Loihi units)."""

    k: int
    exponent: int = -4          # e of the rule above: 2^(e-5) of the gap (x1 - w), scaled by y1, per epoch
    impulse: int = 12           # x1 and y1 impulses
    tau: int = 16               # x1 and y1 decay constants (steps)
    vth: int = 2000
    dv: int = 1024
    inhibition: int = 200       # lateral inhibition weight (magnitude), times 2**inhibition_exp
    inhibition_exp: int = 6
    weight_exp: int = 0         # of the plastic synapse: input a = (M s) << weight_exp
    init_low: int = 10
    init_high: int = 40


def lateral_rule(cfg: LateralConfig) -> str:
    """The instar rule in Lava syntax: ``2^(e-2)*u0*x1*y1 - 2^e*u0*y1*w``."""
    return f"2^{cfg.exponent - 2}*u0*x1*y1 - 2^{cfg.exponent}*u0*y1*w"


def with_lateral_neurons(graph: Graph, layers: dict[str, LateralConfig], t_epoch: int, seed: int) -> Graph:
    """``graph`` plus, for every presynaptic node in ``layers``, a PlasticDense ``lat_<node>`` into ``k`` lateral
    neurons ``y_<node>`` with all-to-all lateral inhibition ``inh_<node>`` (quantized: integers as given)."""
    shapes = graph.shapes()
    nodes, edges = dict(graph.nodes), list(graph.edges)
    rng = np.random.default_rng(seed)
    for i, (pre, cfg) in enumerate(layers.items()):
        n = int(np.prod(shapes[pre]))
        tag = pre.replace(".", "_")
        syn, post, inh = f"lat_{tag}", f"y_{tag}", f"inh_{tag}"
        nodes[syn] = PlasticDense(weight=rng.integers(cfg.init_low, cfg.init_high + 1, (cfg.k, n)),
                                  dw=lateral_rule(cfg), x1_impulse=cfg.impulse, x1_tau=cfg.tau,
                                  y1_impulse=cfg.impulse, y1_tau=cfg.tau, t_epoch=t_epoch, rng_seed=seed + i,
                                  sign_mode="excitatory", num_weight_bits=8, weight_exp=cfg.weight_exp, quant=Q)
        nodes[post] = CubaLIF(shape=(cfg.k,), du=4095, dv=cfg.dv, vth=cfg.vth, quant=Q)
        w_inh = -cfg.inhibition * (1 - np.eye(cfg.k, dtype=np.int64))
        nodes[inh] = Dense(weight=w_inh, sign_mode="inhibitory", num_weight_bits=8, weight_exp=cfg.inhibition_exp,
                            quant=Q)
        edges += [(pre, syn), (syn, post), (post, inh), (inh, post)]
    return Graph(nodes, edges, dict(graph.meta))


def stream(spikes: np.ndarray, gap: int, passes: int, seed: int) -> np.ndarray:
    """One long stimulus ``[1, passes * N * (T + gap), n]``: the digits in a shuffled order per pass, each followed
    by ``gap`` empty steps (so one digit is one learning epoch of ``T + gap`` steps)."""
    n, t, width = spikes.shape
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(passes):
        block = np.zeros((n, t + gap, width), np.uint8)
        block[:, :t] = spikes[rng.permutation(n)]
        parts.append(block.reshape(-1, width))
    return np.concatenate(parts)[None]


def learn_on_chip(graph: Graph, x: np.ndarray) -> tuple[dict[str, np.ndarray], Any]:
    """Run ``x`` (``[1, steps, 64]``) through ``graph`` on the integer emulator; return the learned weights of every
    PlasticDense (``[k, n]``) and the SimResult."""
    from neurodeploy.emulator import simulate

    res = simulate(graph, x, record=("spikes",), nodes=[n for n in graph.nodes if n.startswith("y_")])
    return {name: w[0] for name, w in res.weights.items()}, res


def orthonormal_complement_basis(w: np.ndarray, old: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Rows spanning ``span(w rows)`` minus the span of ``old`` (orthonormal rows, which ``old`` has up to the
    learner's fixed-point error): ``orth((I - old^T old) w^T)^T``."""
    w = np.asarray(w, np.float64)
    resid = w - (w @ old.T) @ old if len(old) else w
    u, s, _ = np.linalg.svd(resid.T, full_matrices=False)
    keep = s > tol * max(1.0, s.max(initial=0.0))
    return u[:, keep].T


def captured_energy(basis: np.ndarray, x: np.ndarray) -> float:
    """``sum ||B x||^2 / sum ||x||^2`` for orthonormal rows ``B`` and samples ``x [N, n]``."""
    x = np.asarray(x, np.float64)
    return float(((x @ basis.T) ** 2).sum() / max((x**2).sum(), 1e-12))


# ------------------------------------------------------------------------------------------ the further task
def permuted_task(data: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Every digit with its 64 pixels in one fixed random order (``seed``); same labels, same split."""
    perm = np.random.default_rng(seed).permutation(64)
    return {"x_train": data["x_train"][:, perm], "y_train": data["y_train"],
            "x_test": data["x_test"][:, perm], "y_test": data["y_test"], "permutation": perm}


def train_projected(net, x: np.ndarray, y: np.ndarray, bases: list[np.ndarray | None], cfg, seed: int) -> None:
    """``cfg.epochs`` of SGD (momentum ``cfg.momentum``) on ``(x, y)``, single 10-way head, each layer's gradient
    projected ``g - (g B^T) B`` on the orthonormal rows ``B`` of ``bases[l]`` (``None``: no projection)."""
    import torch

    from .learner import encode, forward

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        g = torch.Generator().manual_seed(seed)
        target = torch.as_tensor(y)
        bs = [None if b is None else torch.as_tensor(b, dtype=torch.float32) for b in bases]
        for e in range(cfg.epochs):
            spikes = encode(x, cfg.steps, seed + 1 + e)
            for idx in torch.randperm(len(x), generator=g).split(cfg.batch):
                loss = torch.nn.functional.cross_entropy(forward(net, spikes[idx])[0], target[idx])
                opt.zero_grad()
                loss.backward()
                with torch.no_grad():
                    for lin, b in zip((net[0], net[2]), bs):
                        if b is not None:
                            lin.weight.grad -= (lin.weight.grad @ b.T) @ b
                opt.step()
    finally:
        torch.set_num_threads(threads)


def stacked_basis(old: np.ndarray, new: np.ndarray | None) -> np.ndarray:
    """Orthonormal rows spanning ``old`` and ``new`` (QR of the stack; ``old`` rows are near-orthonormal)."""
    rows = old if new is None or len(new) == 0 else np.concatenate([old, new])
    q, _ = np.linalg.qr(np.asarray(rows, np.float64).T)
    return q.T


# ----------------------------------------------------------------------------------------------- the experiment
DEFAULT_LATERAL = {"input": LateralConfig(k=6, vth=1500, inhibition=100, inhibition_exp=4),
                   "hidden": LateralConfig(k=16, vth=1000, inhibition=100, inhibition_exp=4)}


def task_accuracies(graph: Graph, data: dict[str, np.ndarray], cfg) -> list[float]:
    """Integer-emulator test accuracy of ``graph`` on each split-digits task (the torch evaluation's spikes)."""
    from neurodeploy.families import targets

    from . import deploy
    from .learner import TASKS

    out, lat = deploy._output_node(graph), int(graph.meta.get("latency_steps", 2))
    accs = []
    for k in range(len(TASKS)):
        s, y = deploy.test_spikes(data, cfg, k)
        z = targets.run_emulator(graph, deploy.padded(s, lat))[out].sum(axis=1)
        accs.append(float((deploy.predict(z, k, cfg.setting) == y).mean()))
    return accs


def all_class_accuracy(graph: Graph, x: np.ndarray, y: np.ndarray, cfg, seed: int) -> float:
    """Integer-emulator accuracy over all ten classes on digits ``x``."""
    from neurodeploy.families import targets

    from . import deploy
    from .learner import encode

    out, lat = deploy._output_node(graph), int(graph.meta.get("latency_steps", 2))
    s = encode(x, cfg.steps, seed).numpy().astype(np.uint8)
    z = targets.run_emulator(graph, deploy.padded(s, lat))[out].sum(axis=1)
    return float((z.argmax(1) == y).mean())


def lava_agreement(graph: Graph, x: np.ndarray) -> dict[str, Any]:
    """Run ``x`` through ``graph`` (lateral learning included) on Lava and on the emulator: equal fraction of the
    learned weights of every PlasticDense and of the lateral spikes."""
    from types import SimpleNamespace

    from neurodeploy.backends import lava
    from neurodeploy.emulator import simulate

    lat_nodes = [n for n in graph.nodes if n.startswith("y_")]
    arrays, _ = lava.run(SimpleNamespace(graph=graph), x, record=("spikes",), nodes=lat_nodes)
    emu = simulate(graph, x, record=("spikes",), nodes=lat_nodes)
    report: dict[str, Any] = {"steps": int(x.shape[1])}
    for name, w in emu.weights.items():
        other = np.asarray(arrays[f"{name}/weights"])
        report[name] = {"weights_equal": float((other == w).mean()),
                        "weights_max_abs_diff": int(np.abs(other - w).max()),
                        "weights_changed": float((w != np.asarray(graph.nodes[name].weight)).mean())}
    for n in lat_nodes:
        report[n] = {"spikes_equal": float((np.asarray(arrays[f"{n}/spikes"]) == emu.recorded[f"{n}/spikes"]).mean()),
                     "spikes": int(emu.recorded[f"{n}/spikes"].sum())}
    return report


def run_continual(net, data: dict[str, np.ndarray], cfg, subspaces: list[np.ndarray], *, passes: int = 3,
                  gap: int = 6, further_epochs: int | None = None, lava_digits: int = 0,
                  lateral: dict[str, LateralConfig] | None = None, seed: int = 0) -> dict[str, Any]:
    """The on-chip continual-learning experiment of the module docstring; returns a JSON-ready report.

    ``subspaces``: the float learner's consolidated rows per layer (tasks 1-4). ``lava_digits`` > 0 also runs the
    first that many digits of the on-chip learning stream on Lava and reports weight and spike agreement.
    """
    import dataclasses

    import torch

    from neurodeploy.families import targets

    from . import deploy
    from .learner import TASKS, Subspace, build_net, encode, forward

    lateral = dict(DEFAULT_LATERAL if lateral is None else lateral)
    graph = deploy.export_graph(net)
    lat = int(graph.meta["latency_steps"])
    calib = deploy.padded(deploy.calibration_spikes(data, cfg), lat)
    art = targets.compile_targets(graph, calib, ("loihi2",))[0]["loihi2"]
    hidden = deploy.hidden_node(art.graph)
    before = task_accuracies(art.graph, data, cfg)

    # 1. lateral neurons learn the last task's subspaces on chip (integer rule in the emulator)
    sel = np.isin(data["y_train"], TASKS[-1])
    spikes = encode(data["x_train"][sel], cfg.steps, seed + 4242).numpy().astype(np.uint8)
    layers = {"input": lateral["input"], hidden: lateral["hidden"]}
    chip_graph = with_lateral_neurons(art.graph, layers, cfg.steps + gap, seed)
    stim = stream(spikes, gap, passes, seed + 1)
    learned, res = learn_on_chip(chip_graph, stim)
    with torch.no_grad():
        _, r_in, r_h = forward(net, torch.as_tensor(spikes, dtype=torch.float32))
    layer_report, chip_bases, float_bases = [], [], []
    for l_, (pre, rates) in enumerate((("input", r_in.numpy()), (hidden, r_h.numpy()))):
        old = stacked_basis(np.asarray(subspaces[l_], np.float64), None)  # orthonormal rows of the old span
        k = layers[pre].k
        chip = orthonormal_complement_basis(learned[f"lat_{pre.replace('.', '_')}"], old)
        sub = Subspace(rates.shape[1], seed + 5 + l_)
        sub.m = torch.as_tensor(old, dtype=torch.float32)
        sub.consolidated = len(old)
        sub.add(k)
        sub.hebbian(torch.as_tensor(rates), cfg.hebb_lr[l_], cfg.hebb_epochs, len(rates), seed + 7 + l_)
        ref = orthonormal_complement_basis(sub.m[len(old):].numpy(), old)
        chip_bases.append(chip)
        float_bases.append(ref)
        resid = rates - (rates @ old.T) @ old
        layer_report.append({
            "presynaptic": pre, "lateral_neurons": k, "old_subspace": len(old), "chip_rank": int(len(chip)),
            "energy_captured_by_old": round(captured_energy(old, rates), 4),
            "residual_captured_chip": round(captured_energy(chip, resid), 4),
            "residual_captured_float_oja": round(captured_energy(ref, resid), 4),
            "total_captured_chip": round(captured_energy(stacked_basis(old, chip), rates), 4),
            "total_captured_float_oja": round(captured_energy(stacked_basis(old, ref), rates), 4),
            "lateral_spikes": int(res.recorded[f"y_{pre.replace('.', '_')}/spikes"].sum()),
        })
    report: dict[str, Any] = {
        "rule": {pre: lateral_rule(c) for pre, c in layers.items()}, "t_epoch": cfg.steps + gap,
        "stream_steps": int(stim.shape[1]), "layers": layer_report, "R_before": [round(a, 4) for a in before]}
    if lava_digits:
        report["lava_agreement"] = lava_agreement(chip_graph, stim[:, : lava_digits * (cfg.steps + gap)])

    # 2. the further task (permuted digits), projected on the host, re-deployed, forgetting on the integer chip
    perm = permuted_task(data, seed + 99)
    ecfg = dataclasses.replace(cfg, epochs=further_epochs or cfg.epochs)
    variants = {"finetune": [None, None],
                "hlop_old_subspaces": [stacked_basis(np.asarray(s, np.float64), None) for s in subspaces],
                "hlop_on_chip_subspace": [stacked_basis(np.asarray(s, np.float64), b)
                                          for s, b in zip(subspaces, chip_bases)],
                "hlop_float_oja_subspace": [stacked_basis(np.asarray(s, np.float64), b)
                                            for s, b in zip(subspaces, float_bases)]}
    results = {}
    for name, bases in variants.items():
        model = build_net(cfg)          # not deepcopy: snnTorch resets only Leaky instances built by __init__
        model.load_state_dict(net.state_dict())
        train_projected(model, perm["x_train"], perm["y_train"], bases, ecfg, seed + 500)
        g2 = deploy.export_graph(model)
        art2 = targets.compile_targets(g2, calib, ("loihi2",))[0]["loihi2"]
        after = task_accuracies(art2.graph, data, cfg)
        results[name] = {"R_after": [round(a, 4) for a in after],
                         "forgetting_mean": round(float(np.mean(np.subtract(after, before))), 4),
                         "forgetting_last_task": round(after[-1] - before[-1], 4),
                         "permuted_task_accuracy": round(all_class_accuracy(art2.graph, perm["x_test"],
                                                                            perm["y_test"], cfg, seed + 777), 4)}
    report["further_task"] = {"task": "permuted-pixel digits, 10 classes, same head", "epochs": ecfg.epochs,
                              "variants": results}
    return report
