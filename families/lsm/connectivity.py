"""Reservoir connectivity: a 3-D grid of neurons, excitatory/inhibitory types, Maass-style distance dependence.

Geometry and types
------------------
Neuron ``i`` sits at grid position ``p_i = unravel_index(i, grid)`` (C order, unit spacing). Exactly
``round(frac_exc * N)`` neurons, chosen by a seeded permutation, are excitatory (E), the rest inhibitory (I).

Connection probability (Maass, Natschlaeger & Markram 2002)
-----------------------------------------------------------
For an ordered pair ``a != b`` (pre ``a``, post ``b``) with Euclidean distance ``D(a, b) = |p_a - p_b|``::

    P(a -> b) = C[type(a), type(b)] * exp(-(D(a, b) / lam)**2)

independently for every pair, no self-connections, no wrap-around at the grid's faces. Maass's values
``C_EE = 0.3, C_EI = 0.2, C_IE = 0.4, C_II = 0.1`` (``C_xy``: pre type x, post type y) are the defaults.

Two generators draw from exactly this distribution:

* :func:`pairwise` (small reservoirs, ``N <= PAIRWISE_MAX``): one uniform number per ordered pair, vectorised over
  the ``N x N`` distance matrix.
* :func:`sampled` (large reservoirs; memory and time ``O(N * degree)``, no loop per synapse): the kernel factorises,
  ``exp(-D**2 / lam**2) = prod_axis exp(-k_axis**2 / lam**2)`` for an integer offset ``k``, so offsets are drawn
  axis by axis from the discrete Gaussian ``q(k) ~ exp(-k**2 / lam**2)``, ``|k| <= R = ceil(4 lam)`` (the dropped
  tail holds ``< exp(-16)`` of the mass). Per presynaptic neuron, ``Poisson(kappa * Z)`` offsets are drawn,
  ``Z = (sum_k q(k))**3`` and ``kappa = -ln(1 - C_max e1) / e1`` with ``e1 = exp(-1 / lam**2)`` (the largest
  non-self kernel value), so every offset ``o`` receives ``Poisson(kappa e(o))`` proposals independently. A proposal
  is kept with probability ``-ln(1 - C_pt e(o)) / (kappa e(o)) <= 1`` (``C_pt``: the pair's type constant), which
  leaves ``Poisson(-ln(1 - C_pt e(o)))`` copies per pair, i.e. *at least one* copy with probability exactly
  ``C_pt e(o)``; duplicates are then merged and the self offset and targets outside the grid dropped. Hence every
  pair is connected independently with probability ``P(a -> b)``, as in :func:`pairwise`.

Weights and delays
------------------
Weight magnitudes are Gamma distributed with shape ``gamma_shape`` (coefficient of variation
``1 / sqrt(gamma_shape)``) and mean ``W[type(a), type(b)]``, clipped at ``weight_clip`` times the mean (keeps the
8-bit quantization grid from being set by a rare outlier). The sign is the presynaptic type's: ``+`` for E, ``-``
for I (Dale's law). A synapse's integer delay (IR convention: a spike at step ``t`` arrives at ``t + 1 + d``) grows
with distance: ``d = clip(round(delay_per_unit * D) - 1 + delay_offset[type(a)], 0, max_delay)``, so the total
transmission time ``1 + d`` is about ``delay_per_unit`` steps per grid unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from neurodeploy.errors import IRError

#: Largest reservoir the pairwise generator handles (an N x N float64 matrix: 128 MiB at 4096).
PAIRWISE_MAX = 4096
TYPES = ("E", "I")
#: Maass et al. 2002 connection constants C[pre][post].
MAASS_C = {"EE": 0.3, "EI": 0.2, "IE": 0.4, "II": 0.1}


@dataclass(frozen=True)
class ReservoirSpec:
    """Everything that defines a reservoir's connectivity (see the module docstring for the maths).

    ``weights`` are mean magnitudes in float units of the neuron model (the threshold is 1 in
    :mod:`neurodeploy.families.lsm.model`); ``delay_offset`` is added per presynaptic type ``(E, I)``.
    """

    grid: tuple[int, int, int] = (6, 6, 6)
    frac_exc: float = 0.8
    lam: float = 2.0
    c: dict[str, float] = field(default_factory=lambda: dict(MAASS_C))
    weights: dict[str, float] = field(default_factory=lambda: {"EE": 0.5, "EI": 1.0, "IE": 1.0, "II": 1.0})
    gamma_shape: float = 2.0
    weight_clip: float = 3.0
    delay_per_unit: float = 1.0
    delay_offset: tuple[int, int] = (0, 0)
    max_delay: int = 62
    seed: int = 0

    @property
    def n(self) -> int:
        return int(math.prod(self.grid))

    def validate(self) -> ReservoirSpec:
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise IRError(f"reservoir grid {self.grid} is not three positive sizes", fix="use e.g. grid=(6, 6, 6)")
        if not 0.0 <= self.frac_exc <= 1.0:
            raise IRError(f"frac_exc = {self.frac_exc} is not a fraction", fix="use a value in [0, 1], e.g. 0.8")
        if self.lam <= 0:
            raise IRError(f"lambda = {self.lam} must be positive", fix="use a length in grid units, e.g. 2")
        for key in ("EE", "EI", "IE", "II"):
            if key not in self.c or key not in self.weights:
                raise IRError(f"connection constant or weight for '{key}' is missing",
                              fix="give c and weights for EE, EI, IE and II")
            if not 0.0 <= self.c[key] <= 1.0:
                raise IRError(f"C_{key} = {self.c[key]} is not a probability", fix="use a value in [0, 1]")
            if self.weights[key] < 0:
                raise IRError(f"weight magnitude W_{key} = {self.weights[key]} is negative",
                              fix="give magnitudes; the sign comes from the presynaptic type")
        if not 0 <= self.max_delay <= 62:
            raise IRError(f"max_delay = {self.max_delay} is outside Loihi 2's [0, 62]", fix="use at most 62")
        return self


@dataclass
class Connectivity:
    """A reservoir's synapses in COO form (``pre`` -> ``post``), with per-synapse ``weight`` and ``delay``.

    ``excitatory[i]`` is True for E neurons; ``positions`` is ``[N, 3]``. Arrays use compact dtypes (int32 indices,
    float32 weights, int8 delays) so that 100M synapses fit in ~1.3 GB.
    """

    spec: ReservoirSpec
    excitatory: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    delay: np.ndarray

    @property
    def n(self) -> int:
        return self.spec.n

    @property
    def synapses(self) -> int:
        return int(self.pre.size)

    @property
    def positions(self) -> np.ndarray:
        return grid_positions(self.spec.grid)

    def distances(self) -> np.ndarray:
        pos = self.positions
        return np.sqrt(((pos[self.pre] - pos[self.post]) ** 2).sum(axis=1))

    def split_by_sign(self) -> dict[str, np.ndarray]:
        """Boolean masks over the synapses: ``E`` (presynaptic excitatory) and ``I`` (presynaptic inhibitory)."""
        exc = self.excitatory[self.pre]
        return {"E": exc, "I": ~exc}

    def with_weights(self, weight: np.ndarray) -> Connectivity:
        return Connectivity(self.spec, self.excitatory, self.pre, self.post, np.asarray(weight, np.float32),
                            self.delay)


def grid_positions(grid: tuple[int, int, int]) -> np.ndarray:
    """``[N, 3]`` integer coordinates of every neuron (C order)."""
    return np.stack(np.unravel_index(np.arange(int(math.prod(grid))), grid), axis=1).astype(np.int32)


def neuron_types(spec: ReservoirSpec) -> np.ndarray:
    """Boolean ``[N]``: True for the ``round(frac_exc * N)`` excitatory neurons (a seeded permutation)."""
    rng = np.random.default_rng([spec.seed, 1])
    n_exc = int(round(spec.frac_exc * spec.n))
    exc = np.zeros(spec.n, bool)
    exc[rng.permutation(spec.n)[:n_exc]] = True
    return exc


def _type_matrix(spec: ReservoirSpec, key: str) -> np.ndarray:
    """``[[X_EE, X_EI], [X_IE, X_II]]`` of ``spec.c`` or ``spec.weights`` (index 0 = E, 1 = I)."""
    table = getattr(spec, key)
    return np.array([[table["EE"], table["EI"]], [table["IE"], table["II"]]], dtype=np.float64)


def _weights_and_delays(spec: ReservoirSpec, rng: np.random.Generator, exc: np.ndarray, pre: np.ndarray,
                        post: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t_pre, t_post = (~exc[pre]).astype(np.int64), (~exc[post]).astype(np.int64)
    mean = _type_matrix(spec, "weights")[t_pre, t_post]
    mag = rng.gamma(spec.gamma_shape, 1.0 / spec.gamma_shape, size=pre.size)
    mag = np.minimum(mag, spec.weight_clip) * mean
    weight = np.where(exc[pre], mag, -mag).astype(np.float32)
    offset = np.asarray(spec.delay_offset, np.int64)[t_pre]
    delay = np.clip(np.rint(spec.delay_per_unit * dist).astype(np.int64) - 1 + offset, 0, spec.max_delay)
    return weight, delay.astype(np.int8)


def pairwise(spec: ReservoirSpec) -> Connectivity:
    """Draw every ordered pair independently (exact; for ``N <= PAIRWISE_MAX``)."""
    spec.validate()
    if spec.n > PAIRWISE_MAX:
        raise IRError(f"pairwise generation of {spec.n} neurons needs an N x N matrix",
                      fix=f"use connectivity.sampled (or generate) for more than {PAIRWISE_MAX} neurons")
    rng = np.random.default_rng([spec.seed, 2])
    exc = neuron_types(spec)
    pos = grid_positions(spec.grid).astype(np.float64)
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
    types = (~exc).astype(np.int64)
    prob = _type_matrix(spec, "c")[types[:, None], types[None, :]] * np.exp(-d2 / spec.lam ** 2)
    np.fill_diagonal(prob, 0.0)
    pre, post = np.nonzero(rng.random(prob.shape) < prob)
    weight, delay = _weights_and_delays(spec, rng, exc, pre, post, np.sqrt(d2[pre, post]))
    return Connectivity(spec, exc, pre.astype(np.int32), post.astype(np.int32), weight, delay)


def _axis_kernel(lam: float) -> tuple[np.ndarray, np.ndarray]:
    radius = int(math.ceil(4 * lam))
    k = np.arange(-radius, radius + 1)
    q = np.exp(-(k.astype(np.float64) ** 2) / lam ** 2)
    return k, q


def expected_out_degree(spec: ReservoirSpec, interior: bool = False) -> float:
    """Expected synapses per neuron, ``Cbar * (mean_i sum_{o != 0, p_i + o in grid} e(o))`` with
    ``Cbar = f^T C f`` (``f`` the type fractions). The kernel and the grid are products over the axes, so the mean
    over neurons is ``prod_axis mean_x sum_{k: 0 <= x + k < L} q(k) - 1``; ``interior=True`` ignores the faces."""
    k, q = _axis_kernel(spec.lam)
    if interior:
        z = float(q.sum()) ** 3 - 1.0
    else:
        z = 1.0
        for length in spec.grid:
            x = np.arange(length)[:, None] + k[None, :]
            z *= float((((x >= 0) & (x < length)) @ q).mean())
        z -= 1.0
    c = _type_matrix(spec, "c")
    f = np.array([spec.frac_exc, 1.0 - spec.frac_exc])
    return float(f @ c @ f) * z


def lam_for_degree(degree: float, spec: ReservoirSpec | None = None, interior: bool = False) -> float:
    """The ``lam`` at which neurons have ``degree`` outgoing synapses on average (bisection; see
    :func:`expected_out_degree`)."""
    spec = spec or ReservoirSpec()
    lo, hi = 0.3, 50.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if expected_out_degree(ReservoirSpec(**{**spec.__dict__, "lam": mid}), interior) < degree:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def cubic_grid(n: int) -> tuple[int, int, int]:
    """A near-cubic grid of exactly ``n`` neurons when ``n`` allows it, else the smallest near-cube above."""
    a = round(n ** (1 / 3))
    for x in range(a, 0, -1):
        if n % x == 0:
            m = n // x
            y = int(round(m ** 0.5))
            for yy in range(y, 0, -1):
                if m % yy == 0 and max(x, yy, m // yy) <= 4 * min(x, yy, m // yy):
                    return tuple(sorted((x, yy, m // yy), reverse=True))
    a = math.ceil(n ** (1 / 3))
    return (a, a, a)


def sampled(spec: ReservoirSpec, chunk: int = 1 << 15) -> Connectivity:
    """Draw the same distribution as :func:`pairwise` in ``O(N * degree)`` (see the module docstring).

    Presynaptic neurons are processed ``chunk`` at a time; within a chunk everything is vectorised. Every quantity
    that depends on an offset only through its squared length ``D**2`` (an integer ``<= 3 R**2``) is a table lookup.
    """
    spec.validate()
    rng = np.random.default_rng([spec.seed, 3])
    exc = neuron_types(spec)
    n = spec.n
    lx, ly, lz = (int(v) for v in spec.grid)
    k, q = _axis_kernel(spec.lam)
    cdf = np.cumsum(q / q.sum())
    cdf[-1] = 1.0
    z = float(q.sum()) ** 3
    c_tab = _type_matrix(spec, "c")
    e1 = math.exp(-1.0 / spec.lam ** 2)
    c_max = float(c_tab.max())
    if c_max <= 0:
        empty = np.zeros(0, np.int32)
        return Connectivity(spec, exc, empty, empty, np.zeros(0, np.float32), np.zeros(0, np.int8))
    kappa = -math.log1p(-min(c_max * e1, 1 - 1e-12)) / e1
    d2_all = np.arange(3 * int(k.max()) ** 2 + 1, dtype=np.float64)
    e_tab = np.exp(-d2_all / spec.lam ** 2)
    # acceptance probability per (pre type, post type, D**2): -ln(1 - C e) / (kappa e); 0 for the self offset
    accept = -np.log1p(-np.minimum(c_tab[:, :, None] * e_tab[None, None, :], 1 - 1e-12)) / (kappa * e_tab)
    accept[:, :, 0] = 0.0
    accept = accept.reshape(4, -1).astype(np.float32)
    dist_tab = np.sqrt(d2_all)
    inh = (~exc).astype(np.int32)
    parts = []
    for begin in range(0, n, chunk):
        stop = min(n, begin + chunk)
        local = np.repeat(np.arange(stop - begin, dtype=np.int32), rng.poisson(kappa * z, size=stop - begin))
        pre = local + np.int32(begin)
        coords = np.unravel_index(pre, spec.grid)
        d2 = np.zeros(pre.size, np.int32)
        post = np.zeros(pre.size, np.int32)
        ok = np.ones(pre.size, bool)
        for axis, length in enumerate((lx, ly, lz)):
            off = k[np.searchsorted(cdf, rng.random(pre.size, dtype=np.float32), side="right")].astype(np.int32)
            dst = coords[axis].astype(np.int32) + off
            ok &= (dst >= 0) & (dst < length)
            post = post * np.int32(length) + dst
            d2 += off * off
        pre, local, post, d2 = pre[ok], local[ok], post[ok], d2[ok]
        pair = inh[pre] * 2 + inh[post]
        keep = rng.random(pre.size, dtype=np.float32) < accept[pair, d2]
        key = np.sort(local[keep].astype(np.int64) * n + post[keep])  # sorted by (pre, post)
        first = np.ones(key.size, bool)
        first[1:] = key[1:] != key[:-1]  # merge duplicate proposals
        key = key[first]
        pre = (key // n).astype(np.int32) + np.int32(begin)
        post = (key % n).astype(np.int32)
        d2 = sum((a.astype(np.int32) - b.astype(np.int32)) ** 2
                 for a, b in zip(np.unravel_index(pre, spec.grid), np.unravel_index(post, spec.grid)))
        weight, delay = _weights_and_delays(spec, rng, exc, pre, post, dist_tab[d2])
        parts.append((pre, post, weight, delay))
    return Connectivity(spec, exc, *(np.concatenate([p[i] for p in parts]) for i in range(4)))


def generate(spec: ReservoirSpec) -> Connectivity:
    """:func:`pairwise` up to ``PAIRWISE_MAX`` neurons, :func:`sampled` beyond."""
    return pairwise(spec) if spec.n <= PAIRWISE_MAX else sampled(spec)
