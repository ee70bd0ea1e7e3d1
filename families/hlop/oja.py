"""HLOP's subspace rule on chip with local Loihi 2 rules (issue 20, item 1): a residual network whose feedback
synapses stay the exact negated transpose of the feed-forward ones.

Oja's subspace rule ``dH = eta y (x - H^T y)^T`` is not local to synapse ``(i, j)``: its anti-Hebbian part needs
``sum_k y_k H_kj``. It becomes local when the residual ``e = x - H^T y`` is a population of its own (the
construction of issue 20): subspace neurons ``y`` are driven by the residual through ``H``, the residual neurons
are inhibited by ``y`` through the feedback ``F = -H^T``, and both matrices learn the same two-factor product::

    e = x_res - F' y          (F' = H^T: the inhibitory feedback synapses, stored as F = -H^T)
    y = f(H e)
    dH_ij = eta y_i e_j       (PlasticDense e -> y: pre e_j, post y_i)
    dF_ji = -eta y_i e_j      (PlasticDense y -> e: pre y_i, post e_j)

``dH = eta y e^T`` with ``e = x - H^T y`` is Oja's subspace rule once ``y`` is read as the code of ``x``; it is the
gradient of the reconstruction error ``||x - H^T y||^2`` in ``H``, whose minima span the principal subspace
(Baldi & Hornik 1989). Here ``x_res`` is the presynaptic activity with the old tasks' subspaces projected out, as in
HLOP's incremental extension (new neurons learn the residual of the frozen rows): a static synapse ``R = s (I -
M_old^T M_old)`` from the presynaptic population.

Spikes are non-negative, the residual is not, so it is carried by two populations ``e+ = [x_res - Hp^T y]+`` and
``e- = [-x_res - Hn^T y]+`` (integrate-and-fire rates; ``R`` and ``-R`` from the presynaptic spikes), each with its
own learned matrix (``Hp``, ``Hn``, excitatory onto ``y``) and tied feedback (``Fp = -Hp^T``, ``Fn = -Hn^T``). This
is the rule above on the extended non-negative input ``[e+; e-]``: the code ``y >= 0`` reconstructs
``x_res = e+ - e-`` as ``(Hp - Hn)^T y``, so the learned directions are the rows of ``D = Hp - Hn``, whose span is
the on-chip subspace (orthonormalised on the host for the projection, which Oja's rule does at its fixed point).

Exactness of the tie. Lava's ``LearningDense`` rounds each updated weight stochastically with one uniform ``r`` per
epoch (its fixed seed 2, the same stream for every learning synapse), ``w = floor(a / 128) + (r < frac(a / 128))``:
a negated accumulator does *not* round to the negated weight when ``a / 128`` has a fraction. So the rule is chosen
to make every update an integer number of weight units: traces with ``tau = 0`` (an impulse ``b`` at the epoch's last
step if the neuron spiked then, else 0), one term ``m * 2^0 * u0 * x1 * y1`` with ``b_e * b_y * m`` a multiple of 8
(Lava shifts a product of two 7-bit factors right by 3 before scaling by ``2^(0 + 7)``). Each epoch then adds
exactly ``b_e b_y m / 8`` units (default 1) to ``H_ij`` where ``y_i`` and ``e_j`` both spiked on the epoch's last step,
and subtracts the same from ``F_ji``; sign clipping is symmetric (excitatory ``[0, 255]``, inhibitory
``[-255, 0]``). Hence ``F = -H^T`` holds integer for integer at every step, on the emulator and on Lava (proved by
tests/lava/test_lava_oja.py), with no rounding draw involved. ``t_epoch`` sets the learning rate: the product is
sampled on every ``t_epoch``-th step, ``eta = b_e b_y m / 8`` units per sampled coincidence.

What the rule cannot do: a weight update below one unit per event (a fractional update would break the tie), and
the code ``y`` is non-negative, so a direction and its opposite take two neurons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurodeploy.ir import CubaLIF, Dense, Graph, PlasticDense, QuantInfo

Q = QuantInfo(scale=1.0)


@dataclass(frozen=True)
class OjaChipConfig:
    """One layer's on-chip subspace network (integers, Loihi units)."""

    k: int                      # subspace neurons y
    t_epoch: int = 2            # learning epoch: the product is sampled on every t_epoch-th step
    impulse_e: int = 2          # trace impulse of a residual spike (x1 of H, y1 of F)
    impulse_y: int = 2          # trace impulse of a subspace spike (y1 of H, x1 of F)
    mantissa: int = 2           # b_e * b_y * m / 8 = weight units per sampled coincidence (must be an integer)
    res_scale: float = 0.0      # s of R = s (I - P_old); 0: the largest that fits 8-bit mixed weights
    vth_e: int = 0              # residual threshold; 0: s (a residual of rate r fires at rate r)
    dv_e: int = 256
    vth_y: int = 600
    dv_y: int = 256
    weight_exp_h: int = 0
    weight_exp_f: int = 0
    init_high: int = 6          # initial H (and -F) uniform in [0, init_high]

    def rule(self, sign: int) -> str:
        """``sign * m * 2^0 * u0 * x1 * y1`` (H: +1, F: -1)."""
        if (self.impulse_e * self.impulse_y * self.mantissa) % 8:
            raise ValueError("impulse_e * impulse_y * mantissa must be a multiple of 8 (integer weight updates)")
        return f"{'-' if sign < 0 else ''}{self.mantissa}*2^0*u0*x1*y1"


def residual_projector(old: np.ndarray | None, n: int) -> np.ndarray:
    """``I - M^T M`` for the old subspace rows ``M`` (orthonormalised first), ``I`` without any."""
    if old is None or len(old) == 0:
        return np.eye(n)
    q, _ = np.linalg.qr(np.asarray(old, np.float64).T)
    return np.eye(n) - q @ q.T


def with_oja_subspace(graph: Graph, layers: dict[str, tuple[OjaChipConfig, np.ndarray | None]], seed: int
                      ) -> Graph:
    """``graph`` plus, per presynaptic node ``pre`` in ``layers`` (``(config, old rows)``), the residual network of
    the module docstring: nodes ``oja_<tag>_{ep,en,y}`` (LIF), static ``oja_<tag>_{Rp,Rn}`` and PlasticDense
    ``oja_<tag>_{Hp,Hn,Fp,Fn}`` with ``F = -H^T`` at the start."""
    shapes = graph.shapes()
    nodes, edges = dict(graph.nodes), list(graph.edges)
    rng = np.random.default_rng(seed)
    for i, (pre, (cfg, old)) in enumerate(layers.items()):
        n = int(np.prod(shapes[pre]))
        t = f"oja_{pre.replace('.', '_')}"
        proj = residual_projector(old, n)
        s = cfg.res_scale or 254.0 / np.abs(proj).max()
        r = 2 * np.rint(s * proj / 2).astype(np.int64)             # even: mixed 8-bit weights keep them exactly
        vth_e = cfg.vth_e or int(round(s))
        for sign, pop in ((1, "ep"), (-1, "en")):
            nodes[f"{t}_{pop}"] = CubaLIF(shape=(n,), du=4095, dv=cfg.dv_e, vth=vth_e, quant=Q)
            nodes[f"{t}_R{pop[1]}"] = Dense(weight=sign * r, sign_mode="mixed", num_weight_bits=8, quant=Q)
            edges += [(pre, f"{t}_R{pop[1]}"), (f"{t}_R{pop[1]}", f"{t}_{pop}")]
        nodes[f"{t}_y"] = CubaLIF(shape=(cfg.k,), du=4095, dv=cfg.dv_y, vth=cfg.vth_y, quant=Q)
        common = dict(t_epoch=cfg.t_epoch, x1_tau=0, y1_tau=0, num_weight_bits=8, quant=Q)
        for half in ("p", "n"):
            h0 = rng.integers(0, cfg.init_high + 1, (cfg.k, n))
            nodes[f"{t}_H{half}"] = PlasticDense(weight=h0, dw=cfg.rule(+1), x1_impulse=cfg.impulse_e,
                                                 y1_impulse=cfg.impulse_y, rng_seed=seed + 10 * i,
                                                 sign_mode="excitatory", weight_exp=cfg.weight_exp_h, **common)
            nodes[f"{t}_F{half}"] = PlasticDense(weight=-h0.T, dw=cfg.rule(-1), x1_impulse=cfg.impulse_y,
                                                 y1_impulse=cfg.impulse_e, rng_seed=seed + 10 * i + 5,
                                                 sign_mode="inhibitory", weight_exp=cfg.weight_exp_f, **common)
            edges += [(f"{t}_e{half}", f"{t}_H{half}"), (f"{t}_H{half}", f"{t}_y"),
                      (f"{t}_y", f"{t}_F{half}"), (f"{t}_F{half}", f"{t}_e{half}")]
    return Graph(nodes, edges, dict(graph.meta))


def prefix(pre: str) -> str:
    """The node-name prefix of ``pre``'s subspace network."""
    return f"oja_{pre.replace('.', '_')}"


def learned_directions(weights: dict[str, np.ndarray], pre: str) -> np.ndarray:
    """``D = Hp - Hn`` (``[k, n]``) from the learned weights (``simulate(...).weights``, sample 0)."""
    t = prefix(pre)
    return np.asarray(weights[f"{t}_Hp"][0], np.int64) - np.asarray(weights[f"{t}_Hn"][0], np.int64)


def tie_holds(weights: dict[str, np.ndarray], pre: str) -> bool:
    """``F = -H^T`` for both halves, integer for integer, in every sample."""
    t = prefix(pre)
    return all(np.array_equal(np.asarray(weights[f"{t}_F{h}"]), -np.swapaxes(np.asarray(weights[f"{t}_H{h}"]), 1, 2))
               for h in ("p", "n"))


def learn(graph: Graph, x: np.ndarray, pres: list[str]) -> tuple[dict[str, np.ndarray], Any]:
    """Run ``x`` (``[1, steps, n_input]``) on the integer emulator; the learned weights and the SimResult (spikes of
    every ``y`` population recorded)."""
    from neurodeploy.emulator import simulate

    res = simulate(graph, x, record=("spikes",), nodes=[f"{prefix(p)}_{s}" for p in pres for s in ("y", "ep", "en")])
    return res.weights, res
