"""Reference HLOP learner: a spiking MLP whose weight updates are confined to the orthogonal complement of the
principal subspaces of earlier tasks' presynaptic activity, the subspaces being learned by lateral Hebbian neurons.

Network (snnTorch, surrogate gradients). Input ``x`` (64 pixels of ``load_digits`` scaled to [0, 1]) is rate-coded
as Bernoulli spikes ``s_in[t] ~ B(x)`` for ``t = 1..T``. Layer 1 is ``W1`` (128 x 64, no bias) into ``snn.Leaky``
(``mem[t] = beta mem[t-1] + W1 s_in[t]``, reset to zero, threshold 1, fast-sigmoid surrogate); layer 2 is a
linear readout ``W2`` (10 x 128, no bias) of the hidden spikes, ``z = (1/T) sum_t W2 s_h[t] = W2 r_h``. The logits
are ``z``; the presynaptic activity of layer ``l`` is its input rate ``r_0 = (1/T) sum_t s_in[t]``,
``r_1 = r_h = (1/T) sum_t s_h[t]``. Since ``dL/dW_l = sum_t delta_l[t] s_{l-1}[t]^T`` (rows of ``W_l`` receive
gradients only along presynaptic spike vectors), the rates span what the weights see.

Lateral subspace neurons (per layer ``l``, the paper's ``H`` with ``k`` neurons): ``y = M x`` with
``M`` (k x n_l), ``x`` the presynaptic rate vector. Hebbian / anti-Hebbian (Oja subspace) rule, batch-averaged::

    Delta M = eta (y x^T - y y^T M),   y = M x

whose fixed points have orthonormal rows spanning the top-k principal subspace of ``E[x x^T]``. For task ``tau``
``k_l`` new neurons are appended; the rows consolidated after tasks ``1..tau-1`` stay frozen and enter only the
anti-Hebbian term, so the new rows learn the principal subspace of the *residual* ``x - M_old^T M_old x`` (the
paper's incremental extension). Here the Hebbian phase runs after task ``tau``'s gradient training, on the
presynaptic rates of that task's training set under the trained network (the paper runs it alongside training;
the learned subspace is the same up to the drift of the representation during training). Total subspace size stays
below the layer width (64 and 128).

Orthogonal projection (paper Eq. 3, ``Delta W = -eta_W (g - g M^T M)`` with ``g = dL/dW``): while learning task
``tau`` every weight gradient is projected before the optimiser step::

    g_l  <-  g_l - (g_l M_l^T) M_l,    M_l = consolidated rows of tasks 1..tau-1

so that ``Delta W_l x = 0`` for every ``x`` in the old subspaces: old inputs keep their layer outputs (exactly, up
to the subspace approximation, ``M M^T != I`` and spike noise). SGD with momentum is used because momentum is a
linear combination of projected gradients (still orthogonal); Adam's per-element scaling would break that.

Baseline: plain fine-tuning (the same loop with no projection).

Settings. ``"class"`` (class-incremental, single head): one 10-way softmax, trained on each task's two classes,
evaluated by argmax over all 10 outputs. ``"task"`` (task-incremental, multi-head, the paper's setting for split
datasets): the head of task ``tau`` is rows ``{2 tau, 2 tau + 1}`` of ``W2``, the loss and the argmax use those
two logits only (the task identity is given at test time).

Metrics (Lopez-Paz & Ranzato 2017, GEM): with ``R[i, j]`` the test accuracy on task ``j`` after training on task
``i`` (``N`` tasks)::

    ACC = (1/N) sum_{j=1..N} R[N, j]
    BWT = (1/(N-1)) sum_{j=1..N-1} (R[N, j] - R[j, j])

(negative BWT is forgetting; the paper reports near-zero BWT for HLOP).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

TASKS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


@dataclass
class HLOPConfig:
    """Hyper-parameters. Defaults (tuned on seed 0, class-incremental): ACC 0.862, BWT -0.083."""

    method: str = "hlop"              # "hlop" or "finetune"
    setting: str = "class"            # "class" (single head) or "task" (multi-head)
    seed: int = 0
    steps: int = 10                   # T, rate-coding window
    hidden: int = 128
    beta: float = 0.9
    epochs: int = 30                  # gradient epochs per task
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    subspace_per_task: tuple[int, int] = (6, 16)   # new lateral neurons per task: input layer, hidden layer
    hebb_lr: tuple[float, float] = (0.05, 0.1)      # eta per layer (input layer ~0.05 for digits' low energy)
    hebb_epochs: int = 3000
    hebb_batch: int = 0                             # mini-batch of the Hebbian phase (0: the whole task)
    test_fraction: float = 0.25
    extra: dict[str, Any] = field(default_factory=dict)


def split_digits(seed: int = 0, test_fraction: float = 0.25) -> dict[str, np.ndarray]:
    """``load_digits`` scaled to [0, 1], stratified train/test split (fixed ``seed``)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction, random_state=seed, stratify=d.target)
    return {"x_train": xtr, "y_train": ytr.astype(np.int64), "x_test": xte, "y_test": yte.astype(np.int64)}


def average_accuracy(r: np.ndarray) -> float:
    """``ACC = mean_j R[N, j]``."""
    return float(np.mean(r[-1]))


def backward_transfer(r: np.ndarray) -> float:
    """``BWT = mean_{j < N} (R[N, j] - R[j, j])``."""
    n = r.shape[0]
    return float(np.mean([r[-1, j] - r[j, j] for j in range(n - 1)]))


def encode(x: np.ndarray, steps: int, seed: int):
    """Bernoulli rate code: (N, 64) in [0, 1] -> (N, T, 64) float spikes, deterministic in ``seed``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    p = torch.as_tensor(x, dtype=torch.float32).unsqueeze(1).expand(-1, steps, -1)
    return torch.bernoulli(p, generator=g)


class Subspace:
    """Lateral subspace neurons of one layer: ``M`` (k x n); rows ``[:consolidated]`` are frozen."""

    def __init__(self, n: int, seed: int):
        import torch

        self.n = n
        self.m = torch.zeros(0, n)
        self.consolidated = 0
        self._gen = torch.Generator().manual_seed(seed)

    def add(self, k: int) -> None:
        import torch

        new = torch.randn(k, self.n, generator=self._gen) / np.sqrt(self.n)
        self.m = torch.cat([self.m, new])

    def hebbian(self, x, eta: float, epochs: int, batch: int, seed: int) -> None:
        """``Delta M_new = eta/B sum_b (y_new x^T - y_new y^T M)``, ``y = M x`` (old rows frozen)."""
        import torch

        g = torch.Generator().manual_seed(seed)
        c = self.consolidated
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=g).split(batch):
                xb = x[idx]
                y = xb @ self.m.T                                   # (B, k)
                yn = y[:, c:]
                dm = (yn.T @ xb - yn.T @ y @ self.m) / len(xb)      # (k_new, n)
                self.m[c:] += eta * dm

    def consolidate(self) -> None:
        self.consolidated = self.m.shape[0]

    def project(self, grad):
        """``g - (g M^T) M`` over the consolidated rows (identity when there are none)."""
        if self.consolidated == 0:
            return grad
        m = self.m[: self.consolidated]
        return grad - (grad @ m.T) @ m

    def orthonormality_error(self) -> float:
        """``max |M M^T - I|`` of the consolidated rows (0 at the Oja fixed point)."""
        import torch

        m = self.m[: self.consolidated]
        if len(m) == 0:
            return 0.0
        return float((m @ m.T - torch.eye(len(m))).abs().max())


def build_net(cfg: HLOPConfig):
    """The inference network as an ``nn.Sequential`` (exportable with ``from_snntorch``)."""
    import snntorch as snn
    import torch
    from snntorch import surrogate

    torch.manual_seed(cfg.seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, cfg.hidden, bias=False),
        snn.Leaky(beta=cfg.beta, threshold=1.0, reset_mechanism="zero", init_hidden=True,
                  spike_grad=surrogate.fast_sigmoid(slope=25)),
        torch.nn.Linear(cfg.hidden, 10, bias=False),
    )


def forward(net, spikes):
    """(N, T, 64) spikes -> (logits (N, 10), input rate (N, 64), hidden rate (N, H)); ``logits = W2 r_h``."""
    from snntorch import utils

    utils.reset(net)
    fc1, lif, fc2 = net[0], net[1], net[2]
    hid = []
    for t in range(spikes.shape[1]):
        hid.append(lif(fc1(spikes[:, t])))
    r_h = sum(hid) / len(hid)
    return fc2(r_h), spikes.mean(1), r_h


def _logits_for(z, task: int, setting: str):
    return z[:, list(TASKS[task])] if setting == "task" else z


def evaluate(net, data: dict[str, np.ndarray], cfg: HLOPConfig) -> list[float]:
    """Test accuracy per task (argmax over 10 outputs, or over the task's head for ``setting="task"``)."""
    import torch

    accs = []
    with torch.no_grad():
        for k, classes in enumerate(TASKS):
            sel = np.isin(data["y_test"], classes)
            s = encode(data["x_test"][sel], cfg.steps, cfg.seed + 1000 + k)
            z = _logits_for(forward(net, s)[0], k, cfg.setting)
            y = data["y_test"][sel]
            pred = z.argmax(1).numpy()
            pred = np.asarray(classes)[pred] if cfg.setting == "task" else pred
            accs.append(float((pred == y).mean()))
    return accs


def run_sequence(cfg: HLOPConfig, data: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Train the 5 tasks in order; returns ``R``, ACC, BWT, subspace diagnostics and the trained ``net``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # deterministic reduction order, and no oversubscription of small shared machines
    try:
        return _run(cfg, data)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: HLOPConfig, data: dict[str, np.ndarray] | None) -> dict[str, Any]:
    import torch

    torch.manual_seed(cfg.seed)
    data = data if data is not None else split_digits(cfg.seed, cfg.test_fraction)
    net = build_net(cfg)
    subs = [Subspace(64, cfg.seed + 1), Subspace(cfg.hidden, cfg.seed + 2)]
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    g = torch.Generator().manual_seed(cfg.seed + 3)
    r = np.zeros((len(TASKS), len(TASKS)))
    for k, classes in enumerate(TASKS):
        sel = np.isin(data["y_train"], classes)
        x, y = data["x_train"][sel], torch.as_tensor(data["y_train"][sel])
        target = y - classes[0] if cfg.setting == "task" else y
        for e in range(cfg.epochs):
            spikes = encode(x, cfg.steps, cfg.seed + 10_000 * (k + 1) + e)
            for idx in torch.randperm(len(x), generator=g).split(cfg.batch):
                z = _logits_for(forward(net, spikes[idx])[0], k, cfg.setting)
                loss = torch.nn.functional.cross_entropy(z, target[idx])
                opt.zero_grad()
                loss.backward()
                if cfg.method == "hlop":
                    with torch.no_grad():
                        for lin, sub in ((net[0], subs[0]), (net[2], subs[1])):
                            lin.weight.grad.copy_(sub.project(lin.weight.grad))
                opt.step()
        # momentum carries the last task's (unprojected w.r.t. the new subspace) direction: reset it per task
        opt.state.clear()
        r[k] = evaluate(net, data, cfg)
        if cfg.method == "hlop" and k < len(TASKS) - 1:
            with torch.no_grad():
                _, r_in, r_h = forward(net, encode(x, cfg.steps, cfg.seed + 20_000 + k))
                for l_, (sub, act) in enumerate(zip(subs, (r_in, r_h))):
                    sub.add(cfg.subspace_per_task[l_])
                    sub.hebbian(act, cfg.hebb_lr[l_], cfg.hebb_epochs, cfg.hebb_batch or len(act),
                                cfg.seed + 30_000 + k)
                    sub.consolidate()
    return {
        "config": {k_: v for k_, v in asdict(cfg).items() if k_ != "extra"},
        "R": r.round(4).tolist(),
        "ACC": average_accuracy(r),
        "BWT": backward_transfer(r),
        "subspace_sizes": [s.consolidated for s in subs],
        "layer_widths": [64, cfg.hidden],
        "orthonormality_error": [s.orthonormality_error() for s in subs],
        "subspaces": [s.m[: s.consolidated].numpy().copy() for s in subs],   # consolidated rows per layer
        "net": net,
        "data": data,
    }
