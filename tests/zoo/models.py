"""A zoo of SNNs written by other frameworks' own NIR exporters, generated at test time.

Every entry builds a small network in its framework, "trains" it briefly on scikit-learn's digits (random
hidden weights, a ridge-regression readout fitted on the hidden spike counts: milliseconds), exports it with the
framework's exporter and returns a :class:`ZooModel`: the NIR graph, how to read it (``dt``, ``reset``) and the
framework's own float simulation, against which the IR is compared spike for spike (shifted by the IR's latency,
docs/conversion.md "Timing").

Frameworks and their conventions (see docs/conversion.md "Zoo"):

* snnTorch 1.0 ``export_to_nir``: ``dt = 1e-4``; neurons with ``reset_mechanism="zero", reset_delay=False``
  (the semantics the IR computes exactly); per-neuron beta/threshold tensors (NIR 1.0's type check).
* Norse 1.1 ``to_nir``: writes ``tau = dt / tau_inv`` (that is ``dt * tau``), so its files read with
  ``dt = dt_norse ** 2``; ``LIFBoxCell`` / ``LIBoxCell`` (no synaptic current).
* sinabs 3.1 ``to_nir``: IF (``IAFSqueeze``) with ``r = 1``: ``dt = 1``, reset by subtraction, ``SingleSpike``
  (sinabs' default ``MultiSpike`` emits several spikes per step, which no IR neuron does).
* Rockpool 3.1 ``as_nir``/``to_nir``: ``LIFTorch`` as CubaLIF; its own step is exponential Euler (``dt = 1e-3``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

STEPS = 16
SEED = 0


@dataclass
class ZooModel:
    name: str
    framework: str
    nir_graph: object
    dt: float
    reset: str
    simulate: Callable[[np.ndarray], np.ndarray]  # [B, T, *in] 0/1 -> framework output spikes [B, T, n_out]
    image: bool  # input is [1, 8, 8] instead of [64]
    exact: bool = True  # spike for spike with the IR (else: the documented gap, measured)
    readout: bool = False  # the output is a leaky integrator's voltage (float), not spikes
    notes: list[str] = field(default_factory=list)


def digits(image: bool, steps: int = STEPS, seed: int = SEED):
    """Rate-coded digits (Bernoulli, p = pixel / 16): train/test spikes [B, T, 64 or 1x8x8] and labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = data.data / 16.0, data.target
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    spikes = (rng.random((len(y), steps, 64)) < x[:, None, :]).astype(np.float32)
    if image:
        spikes = spikes.reshape(len(y), steps, 1, 8, 8)
    n_train = 1400
    return spikes[:n_train], y[:n_train], spikes[n_train:], y[n_train:]


def random_stimuli(image: bool, batch: int = 40, steps: int = STEPS, rate: float = 0.3, seed: int = 1):
    rng = np.random.default_rng(seed)
    shape = (batch, steps, 1, 8, 8) if image else (batch, steps, 64)
    return (rng.random(shape) < rate).astype(np.float32)


def _ridge(features: np.ndarray, labels: np.ndarray, gain: float, lam: float = 1.0) -> np.ndarray:
    """Readout weights [10, F] from hidden spike counts: ridge regression onto one-hot targets, scaled by gain."""
    f = features - features.mean(0)
    target = np.eye(10)[labels] - 0.1
    w = np.linalg.solve(f.T @ f + lam * np.eye(f.shape[1]), f.T @ target).T
    return gain * w / np.abs(w).max()


# ------------------------------------------------------------------------------------------------ snnTorch
def _snn_leaky(shape, beta=0.9):
    import snntorch as snn
    import torch

    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape), init_hidden=True,
                     reset_mechanism="zero", reset_delay=False)


def _snntorch_run(net, x: np.ndarray) -> np.ndarray:
    import snntorch.utils as su
    import torch

    su.reset(net)
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            out.append(net(torch.as_tensor(x[:, t], dtype=torch.float32)).numpy())
    return np.stack(out, 1)


def _hidden_counts(run, net_hidden, x):
    return run(net_hidden, x).reshape(len(x), x.shape[1], -1).sum(1)


def _export_snntorch(net, sample):
    import torch
    from snntorch.export_nir import export_to_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_to_nir(net, torch.as_tensor(sample), ignore_dims=[0])


def snntorch_ff() -> ZooModel:
    import torch

    torch.manual_seed(SEED)
    xtr, ytr, _, _ = digits(False)
    hidden = torch.nn.Sequential(torch.nn.Linear(64, 48, bias=False), _snn_leaky((48,)))
    with torch.no_grad():
        hidden[0].weight.mul_(4.0)
    counts = _hidden_counts(_snntorch_run, hidden, xtr)
    net = torch.nn.Sequential(*hidden, torch.nn.Linear(48, 10, bias=False), _snn_leaky((10,), 0.95))
    with torch.no_grad():
        net[2].weight.copy_(torch.as_tensor(_ridge(counts, ytr, 1.5)))
    graph = _export_snntorch(net, torch.zeros(1, 64))
    return ZooModel("snntorch_ff", "snntorch", graph, 1e-4, "zero", lambda x: _snntorch_run(net, x), False)


def snntorch_conv() -> ZooModel:
    """Conv2d - Leaky - AvgPool2d - Flatten - Linear - Leaky."""
    import torch

    torch.manual_seed(SEED)
    xtr, ytr, _, _ = digits(True)
    hidden = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1, bias=False), _snn_leaky((6, 8, 8)),
                                 torch.nn.AvgPool2d(2), torch.nn.Flatten())
    with torch.no_grad():
        hidden[0].weight.mul_(3.0)
    counts = _hidden_counts(_snntorch_run, hidden, xtr)
    net = torch.nn.Sequential(*hidden, torch.nn.Linear(96, 10, bias=False), _snn_leaky((10,), 0.95))
    with torch.no_grad():
        net[4].weight.copy_(torch.as_tensor(_ridge(counts, ytr, 2.0)))
    graph = _export_snntorch(net, torch.zeros(1, 1, 8, 8))
    return ZooModel("snntorch_conv", "snntorch", graph, 1e-4, "zero", lambda x: _snntorch_run(net, x), True)


def snntorch_recurrent() -> ZooModel:
    """Linear - RLeaky (recurrent Affine, all_to_all) - Linear - Leaky. (RSynaptic's export fails inside snnTorch
    1.0 itself with nirtorch 2.6: docs/conversion.md.)"""
    import snntorch as snn
    import torch

    torch.manual_seed(SEED)
    xtr, ytr, _, _ = digits(False)
    rec = snn.RLeaky(beta=torch.full((40,), 0.9), threshold=torch.ones(40), linear_features=40, init_hidden=True,
                     reset_mechanism="zero", reset_delay=False)
    hidden = torch.nn.Sequential(torch.nn.Linear(64, 40, bias=False), rec)
    with torch.no_grad():
        hidden[0].weight.mul_(4.0)
        rec.recurrent.weight.mul_(0.5)
        rec.recurrent.bias.zero_()
    counts = _hidden_counts(_snntorch_run, hidden, xtr)
    net = torch.nn.Sequential(*hidden, torch.nn.Linear(40, 10, bias=False), _snn_leaky((10,), 0.95))
    with torch.no_grad():
        net[2].weight.copy_(torch.as_tensor(_ridge(counts, ytr, 1.5)))
    graph = _export_snntorch(net, torch.zeros(1, 64))
    return ZooModel("snntorch_recurrent", "snntorch", graph, 1e-4, "zero", lambda x: _snntorch_run(net, x), False)


# --------------------------------------------------------------------------------------------------- Norse
NORSE_DT = 1e-3


def _norse_run(cells, x: np.ndarray) -> np.ndarray:
    import torch

    states = [None] * len(cells)
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            h = torch.as_tensor(x[:, t], dtype=torch.float32)
            for i, m in enumerate(cells):
                if isinstance(m, torch.nn.Linear | torch.nn.Conv2d | torch.nn.Flatten):
                    h = m(h)
                else:
                    h, states[i] = m(h, states[i])
            out.append(h.numpy())
    return np.stack(out, 1)


def _norse_two_layer(hidden_cell, readout_cell, gain: float, alpha: float) -> tuple[list, object]:
    """Linear(64, 40) * gain - hidden_cell - Linear(40, 10) - readout_cell, the readout fitted by ridge regression
    (``alpha``) on the hidden spike counts of the training digits; returns the cells and Norse's NIR export."""
    import norse.torch as norse
    import torch

    torch.manual_seed(SEED)
    xtr, ytr, _, _ = digits(False)
    hidden = [torch.nn.Linear(64, 40, bias=False), hidden_cell]
    with torch.no_grad():
        hidden[0].weight.mul_(gain)
    counts = _hidden_counts(_norse_run, hidden, xtr)
    cells = [*hidden, torch.nn.Linear(40, 10, bias=False), readout_cell]
    with torch.no_grad():
        cells[2].weight.copy_(torch.as_tensor(_ridge(counts, ytr, alpha)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = norse.to_nir(norse.SequentialState(*cells), torch.zeros(1, 64), dt=NORSE_DT)
    return cells, graph


def norse_ff() -> ZooModel:
    """Linear - LIFBoxCell - Linear - LIFBoxCell (Norse's LIF without synaptic current)."""
    import norse.torch as norse
    import torch

    p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(100.0), v_th=torch.tensor(0.1))
    cells, graph = _norse_two_layer(norse.LIFBoxCell(p), norse.LIFBoxCell(p), 3.0, 1.5)
    return ZooModel("norse_ff", "norse", graph, NORSE_DT ** 2, "zero", lambda x: _norse_run(cells, x), False)


def norse_cuba() -> ZooModel:
    """Linear - LIFCell - Linear - LIFCell (Norse's LIF with a synaptic current: NIR CubaLIF)."""
    import norse.torch as norse
    import torch

    p = norse.LIFParameters(tau_mem_inv=torch.tensor(100.0), tau_syn_inv=torch.tensor(200.0),
                            v_th=torch.tensor(0.1))
    cells, graph = _norse_two_layer(norse.LIFCell(p), norse.LIFCell(p), 1.0, 0.5)
    # Norse adds the input to its current at full weight; NIR's CubaLIF scales it by dt w_in / tau_syn and Norse
    # writes no w_in (1): the documented user fix is w_in = tau_syn / dt, in the dt the file is read with.
    for node in graph.nodes.values():
        if type(node).__name__ == "CubaLIF":
            node.w_in = np.asarray(node.tau_syn, dtype=np.float64) / NORSE_DT ** 2
    return ZooModel("norse_cuba", "norse", graph, NORSE_DT ** 2, "zero", lambda x: _norse_run(cells, x), False)


def norse_li() -> ZooModel:
    """Linear - LIFBoxCell - Linear - LIBoxCell: a leaky-integrator readout (its output is the voltage)."""
    import norse.torch as norse
    import torch

    p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(100.0), v_th=torch.tensor(0.1))
    readout = norse.LIBoxCell(norse.LIBoxParameters(tau_mem_inv=torch.tensor(50.0)))
    cells, graph = _norse_two_layer(norse.LIFBoxCell(p), readout, 3.0, 1.0)
    return ZooModel("norse_li", "norse", graph, NORSE_DT ** 2, "zero", lambda x: _norse_run(cells, x), False,
                    readout=True)


# -------------------------------------------------------------------------------------------------- sinabs
def _sinabs_run(net, x: np.ndarray) -> np.ndarray:
    import sinabs
    import torch

    sinabs.reset_states(net)
    b, t = x.shape[:2]
    with torch.no_grad():
        out = net(torch.as_tensor(x.reshape(b * t, *x.shape[2:]), dtype=torch.float32))
    return out.reshape(b, t, -1).numpy()


def sinabs_conv() -> ZooModel:
    """Conv2d - IAF - SumPool2d - Conv2d - IAF - Flatten - Linear - IAF (sinabs' *Squeeze layers)."""
    import sinabs
    import sinabs.layers as sl
    import torch
    from sinabs.activation import MembraneSubtract, SingleSpike

    def iaf(b):
        return sl.IAFSqueeze(batch_size=b, spike_fn=SingleSpike, reset_fn=MembraneSubtract())

    torch.manual_seed(SEED)
    xtr, ytr, _, _ = digits(True)

    def build(b, readout=None):
        layers = [torch.nn.Conv2d(1, 8, 3, padding=1, bias=False), iaf(b), sl.SumPool2d(2),
                  torch.nn.Conv2d(8, 8, 3, padding=1, bias=False), iaf(b), torch.nn.Flatten()]
        if readout is not None:
            layers += [torch.nn.Linear(128, 10, bias=False), iaf(b)]
        return torch.nn.Sequential(*layers)

    ref = build(1)
    with torch.no_grad():
        ref[0].weight.mul_(2.0)
        ref[3].weight.mul_(1.0)
    state = {k: v for k, v in ref.state_dict().items() if "weight" in k}

    def make(b, readout):
        net = build(b, readout)
        net.load_state_dict(state, strict=False)
        if readout is not None:
            with torch.no_grad():
                net[6].weight.copy_(torch.as_tensor(readout))
        return net

    counts = _sinabs_run(make(len(xtr), None), xtr).reshape(len(xtr), xtr.shape[1], -1).sum(1)
    readout = _ridge(counts, ytr, 1.5)
    export = make(1, readout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = sinabs.to_nir(export, torch.zeros(1, 1, 8, 8))

    def run(x):
        return _sinabs_run(make(len(x), readout), x)

    return ZooModel("sinabs_conv", "sinabs", graph, 1.0, "subtract", run, True)


# ------------------------------------------------------------------------------------------------ Rockpool
ROCKPOOL_DT = 1e-3


def rockpool_ff() -> ZooModel:
    """LinearTorch - LIFTorch - LinearTorch - LIFTorch (CubaLIF in NIR). Not spike-exact: Rockpool's step is
    exponential (``alpha = exp(-dt/tau)``), decays the current *after* adding the input and scales the exported
    ``r`` by ``exp(-dt/tau_mem)``; the IR reads NIR with forward Euler (docs/conversion.md "Zoo", gap R)."""
    import torch
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    torch.manual_seed(SEED)
    xtr, ytr, _, _ = digits(False)

    def lif(n):
        return LIFTorch(n, tau_mem=0.02, tau_syn=0.005, dt=ROCKPOOL_DT, max_spikes_per_dt=1)

    first = LinearTorch((64, 40), has_bias=False)
    with torch.no_grad():
        first.weight.mul_(0.8)
    hidden = Sequential(first, lif(40))

    def run(net, x):
        net.reset_state()
        with torch.no_grad():
            out, _, _ = net(torch.as_tensor(x, dtype=torch.float32))
        return out.numpy()

    counts = run(hidden, xtr).sum(1)
    readout = LinearTorch((40, 10), has_bias=False)
    with torch.no_grad():
        readout.weight.copy_(torch.as_tensor(_ridge(counts, ytr, 0.5).T, dtype=torch.float32))
    net = Sequential(first, hidden[1], readout, lif(10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = to_nir(net)
    # Rockpool adds a spike to its current at full weight; NIR's CubaLIF (and so from_nir) scales it by
    # dt w_in / tau_syn. Rockpool 3.1 writes w_in = 1, so its currents read tau_syn / dt times too small: the user
    # fix documented in docs/conversion.md (gap R) is w_in = tau_syn / dt.
    for node in graph.nodes.values():
        if type(node).__name__ == "CubaLIF":
            node.w_in = np.asarray(node.tau_syn, dtype=np.float64) / ROCKPOOL_DT
    return ZooModel("rockpool_ff", "rockpool", graph, ROCKPOOL_DT, "subtract", lambda x: run(net, x), False,
                    exact=False)


ZOO = {f.__name__: f for f in (snntorch_ff, snntorch_conv, snntorch_recurrent, norse_ff, norse_cuba, norse_li,
                               sinabs_conv, rockpool_ff)}
