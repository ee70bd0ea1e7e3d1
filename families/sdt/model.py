"""A small Meta-SpikeFormer-style (spike-driven transformer V2) model for ``load_digits`` as 1 x 8 x 8 images.

Input encoding (what runs on the chip): a *thermometer* code. Pixel ``p`` in ``{0, ..., 16}`` becomes ``levels``
binary channels, channel ``k`` spiking when ``p > k * 16 / levels`` (``levels = 16``: ``p > k``, so the channels
sum to ``p`` and no information is lost), repeated unchanged at each of the ``T`` steps. The first layer thus
receives binary spikes, like every other layer: graded (multi-bit) input spikes would carry the pixels directly,
and the emulator and the Lava backend accept ``num_message_bits``, but the quantizer does not
(``neurodeploy.passes.quantize`` rejects graded synapses), so graded input could not reach Loihi 2 through
neurodeploy. Torch layout ``[T, B, levels, 8, 8]``; emulator layout ``[B, T, levels, 8, 8]`` (:func:`encode`).

Network (residual stream ``x`` real-valued, membrane shortcuts; every LIF is :class:`MultiStepLIF`, tau 2)::

    x = ConvBN(levels -> C, 3x3, stride 2, pad 1)(input)          # stem: 4 x 4 = 16 tokens
    per block:  x = x + Attn(LIF(x))                              # SDSAv1 or LinearAttentionV2 (attention.py)
                x = x + ConvBN(hC -> C, 1x1)(LIF(ConvBN(C -> hC, 1x1)(LIF(x))))     # MLP, h = mlp_ratio
    logits = mean_t Linear(mean_tokens(LIF(x)))                     # head

Attention modules take the block LIF's spikes and return their (real-valued) output projection.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurodeploy.errors import InputError, SerializationError
from neurodeploy.families.sdt.layers import ConvBN, MultiStepLIF

ATTENTION_FORMS = ("v1", "v2")
IMAGE_SIDE = 8
PIXEL_MAX = 16


@dataclass(frozen=True)
class SDTConfig:
    """Hyper-parameters (saved next to the weights)."""

    attention: str = "v2"
    channels: int = 48
    blocks: int = 2
    heads: int = 8
    mlp_ratio: int = 4
    steps: int = 4
    levels: int = 16
    classes: int = 10
    tau: float = 2.0

    def check(self) -> SDTConfig:
        if self.attention not in ATTENTION_FORMS:
            raise InputError(f"unknown attention form '{self.attention}'", fix=f"use one of {ATTENTION_FORMS}")
        if self.channels % self.heads:
            raise InputError(f"channels = {self.channels} is not divisible by heads = {self.heads}",
                             fix="choose heads dividing channels")
        if not 1 <= self.levels <= PIXEL_MAX:
            raise InputError(f"levels = {self.levels} is outside 1..{PIXEL_MAX}", fix="use 1 <= levels <= 16")
        return self


def encode(images: np.ndarray, steps: int, levels: int = 16) -> np.ndarray:
    """Pixels ``[B, 64]`` (integers 0..16) -> thermometer spikes ``[B, steps, levels, 8, 8]`` uint8."""
    x = np.asarray(images, np.float64)
    if x.ndim != 2 or x.shape[1] != IMAGE_SIDE * IMAGE_SIDE:
        raise InputError(f"images must be [B, 64] (load_digits rows), got {list(x.shape)}")
    thresholds = np.arange(levels, dtype=np.float64) * PIXEL_MAX / levels
    planes = (x[:, None, :] > thresholds[None, :, None]).astype(np.uint8)  # [B, levels, 64]
    planes = planes.reshape(x.shape[0], levels, IMAGE_SIDE, IMAGE_SIDE)
    return np.ascontiguousarray(np.broadcast_to(planes[:, None], (x.shape[0], steps, levels, IMAGE_SIDE,
                                                                  IMAGE_SIDE)))


def to_torch(spikes: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    """Emulator layout ``[B, T, ...]`` -> torch multi-step layout ``[T, B, ...]``."""
    return torch.as_tensor(np.asarray(spikes)).to(dtype).transpose(0, 1).contiguous()


def attention_class(form: str):
    from neurodeploy.families.sdt import attention

    return {"v1": attention.SDSAv1, "v2": attention.LinearAttentionV2}[form]


class MLP(nn.Module):
    """``ConvBN 1x1 (C -> hC) -> LIF -> ConvBN 1x1 (hC -> C)``; input spikes, real-valued output."""

    def __init__(self, channels: int, hidden: int, tau: float):
        super().__init__()
        self.fc1 = ConvBN(channels, hidden, 1)
        self.lif = MultiStepLIF(tau, 1.0)
        self.fc2 = ConvBN(hidden, channels, 1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.lif(self.fc1(s)))


class Block(nn.Module):
    """``x = x + attn(attn_lif(x)); x = x + mlp(mlp_lif(x))`` (membrane shortcuts)."""

    def __init__(self, cfg: SDTConfig):
        super().__init__()
        self.attn_lif = MultiStepLIF(cfg.tau, 1.0)
        self.attn = attention_class(cfg.attention)(cfg.channels, cfg.heads)
        self.mlp_lif = MultiStepLIF(cfg.tau, 1.0)
        self.mlp = MLP(cfg.channels, cfg.channels * cfg.mlp_ratio, cfg.tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_lif(x))
        return x + self.mlp(self.mlp_lif(x))


class SDTDigits(nn.Module):
    """The digits model (see the module docstring). ``forward(spikes[T, B, levels, 8, 8]) -> logits[B, classes]``."""

    def __init__(self, cfg: SDTConfig | None = None):
        super().__init__()
        self.cfg = (cfg or SDTConfig()).check()
        c = self.cfg.channels
        self.stem = ConvBN(self.cfg.levels, c, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(Block(self.cfg) for _ in range(self.cfg.blocks))
        self.head_lif = MultiStepLIF(self.cfg.tau, 1.0)
        self.head = nn.Linear(c, self.cfg.classes)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        x = self.stem(spikes)
        for block in self.blocks:
            x = block(x)
        s = self.head_lif(x)  # [T, B, C, H, W]
        return self.head(s.flatten(3).mean(3)).mean(0)

    def lifs(self) -> dict[str, MultiStepLIF]:
        """Every LIF module by its module path (attention internals included)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, MultiStepLIF)}

    def record(self, on: bool = True) -> None:
        for m in self.lifs().values():
            m.record = on
            m.last_spikes = None


def n_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# ------------------------------------------------------------------------------------------------ files
def save(model: SDTDigits, path: str | Path, extra: dict | None = None) -> None:
    """Write ``path`` (.pt state dict, float32) and ``path.with_suffix('.json')`` (config + ``extra``) atomically."""
    import io

    from neurodeploy.fileio import write_bytes_atomic

    path = Path(path)
    buf = io.BytesIO()
    torch.save({k: v.detach().to(torch.float32) if v.is_floating_point() else v
                for k, v in model.state_dict().items()}, buf)
    write_bytes_atomic(path, buf.getvalue())
    meta = {"config": asdict(model.cfg), **(extra or {})}
    write_bytes_atomic(path.with_suffix(".json"), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())


def load(path: str | Path, dtype=torch.float64) -> SDTDigits:
    """Load a model saved by :func:`save` (``torch.load(weights_only=True)``), in eval mode, as ``dtype``."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise SerializationError(f"weights '{path}' or its config '{meta_path.name}' is missing",
                                 fix="train with `python -m neurodeploy.families.sdt.run_all --train`")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = SDTConfig(**meta["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SerializationError(f"config '{meta_path}' is unreadable: {exc}",
                                 fix="retrain or restore the file") from exc
    model = SDTDigits(cfg)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, EOFError) as exc:
        raise SerializationError(f"weights '{path}' do not fit the config: {exc}",
                                 fix="retrain or restore the file") from exc
    return model.to(dtype).eval()
