"""Building blocks of the spike-driven transformer family: the multi-step LIF neuron and conv + BatchNorm.

Neuron (SpikingJelly ``MultiStepLIFNode(decay_input=True, v_reset=0.0)``, hard reset), per step ``t = 1..T``::

    H[t] = V[t-1] + (X[t] - V[t-1]) / tau        # charge (V[0] = 0)
    S[t] = (H[t] >= vth)                          # fire, NOTE: ">=" (SpikingJelly's heaviside(H - vth))
    V[t] = H[t] * (1 - S[t])                      # hard reset to 0

Lowering to the IR's :class:`~neurodeploy.ir.ops.CubaLIF` (float form ``u = u(1-du) + a; v = v(1-dv) + u + bias;
spike if v > vth``, reset to 0): with ``du = 1`` u is this step's input, and ``dv = 1/tau`` gives
``v = V(1 - 1/tau) + a + bias``, which equals ``H`` when every incoming weight and the bias are multiplied by the
*input gain* ``1/tau`` (:func:`input_gain`): ``a + bias = (W s + b) / tau = X / tau``.

Threshold equality (">=" in torch, ">" in the IR and on Loihi) -- :func:`ir_threshold`
-------------------------------------------------------------------------------------------
* ``grid=None`` (real-valued membranes, e.g. BN-folded conv inputs): the IR threshold is the largest float64 below
  ``vth``, ``theta = nextafter(vth, -inf)``. For float64 ``H``: ``H > theta  <=>  H >= vth`` exactly (no float64
  lies strictly between ``theta`` and ``vth``), so the float IR reproduces SpikingJelly bit for bit. After
  quantization the threshold is ``vth_int = rint(lam * theta) = rint(lam * vth)`` (lam >= 1 so the one-ulp
  difference never changes the rounding) and Loihi fires for ``v_int > 64 vth_int``: an exact tie
  ``v_int == 64 vth_int`` does not fire. That tie is a deviation of one integer unit of v, ``1 / (64 lam)`` in
  float units, 32 times smaller than the half-unit weight rounding ``1 / (2 lam)`` that quantizing a real-valued
  weight already introduces; such a population is approximate after quantization for that reason, not the tie.
* ``grid=g`` (membranes on a known value grid: every reachable ``H`` and ``vth`` are integer multiples of ``g``,
  e.g. spike counts times a dyadic weight, decayed by ``tau = 2`` over at most ``T`` steps: ``g = step / 2**T``):
  ``theta = vth - g / 2``. Float: ``H >= vth  <=>  H > vth - g/2`` for every grid value (exact in float64 while the
  grid values are exactly representable). Quantized, when the integer state is exactly ``64 lam H`` (the weights
  map to integers at scale ``lam`` and the halvings of ``dv = 2048`` stay exact) and ``lam g >= 1``:
  ``vth_int = rint(lam (vth - g/2))`` lies in ``[lam vth - lam g, lam vth)``, hence in ``(lam (vth - g), lam vth)``
  up to the rounding half-unit, so ``v_int > 64 vth_int  <=>  H >= vth`` on the grid: ties fire on Loihi too.
  :func:`ir_threshold` checks that ``vth`` lies on the grid; whether ``lam g >= 1`` holds is a property of the
  quantized graph and is checked by the caller (tests/test_sdt_model.py proves both cases at the exact threshold).

Surrogate gradient (training only): ``dS/dH = (alpha/2) / (1 + (pi/2 alpha (H - vth))**2)`` (SpikingJelly's
``ATan``, alpha = 2). torch is imported by this module: import it only where torch is installed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from neurodeploy.errors import ConversionError
from neurodeploy.ir.ops import CubaLIF

SURROGATE_ALPHA = 2.0


class _ATanSpike(torch.autograd.Function):
    """Heaviside ``x >= 0`` forward, arctan surrogate backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:  # noqa: D401
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        alpha = ctx.alpha
        return grad * (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2), None


def _check_lif(tau: float, vth: float, where: str) -> None:
    if not (math.isfinite(tau) and tau >= 1.0):
        raise ConversionError(f"MultiStepLIF tau = {tau} is outside [1, inf)", node=where or None,
                              fix="use tau >= 1 (dv = 1/tau must be a decay in (0, 1])")
    if not (math.isfinite(vth) and vth >= 0):
        raise ConversionError(f"MultiStepLIF vth = {vth} is negative or not finite", node=where or None,
                              fix="use a non-negative threshold (Loihi thresholds are unsigned)")


class MultiStepLIF(nn.Module):
    """Multi-step LIF over ``[T, ...]`` (see the module docstring for the maths); returns spikes ``S[T, ...]``.

    ``record=True`` keeps the last forward's spikes in ``self.last_spikes`` (used by the exactness tests).
    """

    def __init__(self, tau: float = 2.0, vth: float = 1.0, alpha: float = SURROGATE_ALPHA):
        super().__init__()
        _check_lif(float(tau), float(vth), "")
        self.tau = float(tau)
        self.vth = float(vth)
        self.alpha = float(alpha)
        self.record = False
        self.last_spikes: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            h = v + (x[t] - v) / self.tau
            s = _ATanSpike.apply(h - self.vth, self.alpha)
            v = h * (1.0 - s)
            out.append(s)
        spikes = torch.stack(out)
        if self.record:
            self.last_spikes = spikes.detach()
        return spikes

    @property
    def input_gain(self) -> float:
        return input_gain(self.tau)

    def to_ir(self, shape: tuple[int, ...], origin: str = "", grid: float | None = None) -> CubaLIF:
        return lif_to_ir(shape, self.tau, self.vth, origin, grid=grid)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, vth={self.vth}"


def input_gain(tau: float) -> float:
    """The factor ``1/tau`` by which the lowering multiplies every weight and bias into a lowered LIF."""
    return 1.0 / float(tau)


def ir_threshold(vth: float, grid: float | None = None, origin: str = "") -> float:
    """The float IR threshold ``theta`` with ``v > theta  <=>  v >= vth`` (see the module docstring)."""
    vth = float(vth)
    if grid is None:
        return float(np.nextafter(vth, -np.inf))
    grid = float(grid)
    if not (math.isfinite(grid) and grid > 0):
        raise ConversionError(f"threshold grid {grid} is not a positive number", node=origin or None,
                              fix="pass the membrane's value step (> 0) or None for real-valued membranes")
    k = vth / grid
    if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
        raise ConversionError(f"threshold {vth} is not a multiple of the value grid {grid}", node=origin or None,
                              fix="pass a grid that divides the threshold (or None for real-valued membranes)")
    return vth - grid / 2.0


def lif_to_ir(shape: tuple[int, ...], tau: float, vth: float, origin: str = "", grid: float | None = None
              ) -> CubaLIF:
    """A :class:`CubaLIF` equal to ``MultiStepLIF(tau, vth)`` once its inputs are scaled by :func:`input_gain`.

    ``du = 1`` (u holds this step's input), ``dv = 1/tau``, ``vth = ir_threshold(vth, grid)``, ``bias = 0`` (the
    lowering sets it to ``b / tau`` when the incoming layer has a bias), reset to zero.
    """
    _check_lif(float(tau), float(vth), origin)
    return CubaLIF(shape=tuple(int(s) for s in shape), du=1.0, dv=1.0 / float(tau),
                   vth=ir_threshold(vth, grid, origin), bias=0.0, reset="zero", origin=origin)


class ConvBN(nn.Module):
    """``BatchNorm2d(Conv2d(x))`` applied per time step to ``[T, B, C, H, W]`` (conv without bias).

    :meth:`folded` returns the BN-folded ``(weight, bias)`` (eval-mode statistics) as float64 numpy::

        g = gamma / sqrt(running_var + eps);  W' = W * g[:, None, None, None];  b' = beta - running_mean * g
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = self.bn(self.conv(x.flatten(0, 1)))
        return y.reshape(t, b, *y.shape[1:])

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        w = self.conv.weight.detach().to(torch.float64).cpu().numpy()
        bn = self.bn
        var = bn.running_var.detach().to(torch.float64).cpu().numpy()
        mean = bn.running_mean.detach().to(torch.float64).cpu().numpy()
        gamma = bn.weight.detach().to(torch.float64).cpu().numpy() if bn.affine else np.ones_like(var)
        beta = bn.bias.detach().to(torch.float64).cpu().numpy() if bn.affine else np.zeros_like(var)
        g = gamma / np.sqrt(var + bn.eps)
        return w * g[:, None, None, None], beta - mean * g

    @property
    def conv_args(self) -> dict:
        """stride / padding / dilation / groups of the conv, as the IR's ``Conv2d`` fields."""
        c = self.conv
        return {"stride": tuple(c.stride), "padding": tuple(c.padding), "dilation": tuple(c.dilation),
                "groups": int(c.groups)}
