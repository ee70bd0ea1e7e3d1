"""The CUBA LIF family: :class:`~neurodeploy.ir.ops.CubaLIF` (Lava ``LIF``, ``PyLifModelBitAcc``) and the float
forms the quantizer lowers to it, :class:`~neurodeploy.ir.ops.IF` (``du = 1``, ``dv = 0``; quantized ``du = 4095``)
and :class:`~neurodeploy.ir.ops.LI` (no threshold: ``vth = inf``; quantized ``vth = 2**17 - 1``, ``readout``).

Integer compartment: ``du``, ``dv``, ``vth`` as stored, ``bias = bias_mant << bias_exp``
(:func:`neurodeploy.ir.arithmetic.effective_bias`). Float compartment: the op's fields as they are.
"""

from __future__ import annotations

import math

import numpy as np

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir import arithmetic as ar
from neurodeploy.ir.neurons import Compartment, NeuronModel, register
from neurodeploy.ir.ops import IF, LI, CubaLIF, Op


def _per_neuron(value, size: int, dtype) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=dtype).ravel(), (size,))


def _float_only(op: Op, integer: bool, node: str | None) -> None:
    if integer:
        raise UnsupportedOpError(f"{op.op_type} is not quantized; integer emulation needs Loihi integers",
                                 node=node or op.origin or None,
                                 fix="run the quantize pass (neurodeploy compile) first")


class CubaLIFModel(NeuronModel):
    op = CubaLIF

    def compartment(self, op: CubaLIF, integer: bool, node: str | None = None) -> Compartment:
        extra = {"reset": op.reset, "readout": bool(op.readout), **self.schedule(op)}
        if not integer:
            return Compartment(False, float(op.du), float(op.dv), float(op.vth),
                               _per_neuron(op.bias, op.size, np.float64), **extra)
        if op.quant is None:
            _float_only(op, integer, node)
        mant, exp = _per_neuron(op.bias, op.size, np.int64), _per_neuron(op.bias_exp, op.size, np.int64)
        bias = ar.effective_bias(mant, exp)
        return Compartment(True, int(op.du), int(op.dv), int(op.vth), bias.astype(np.int64), **extra)

    def schedule(self, op: CubaLIF) -> dict[str, int]:
        """The periodic state reset (none for the plain LIF)."""
        return {}


class IFModel(NeuronModel):
    op = IF

    def compartment(self, op: IF, integer: bool, node: str | None = None) -> Compartment:
        _float_only(op, integer, node)
        return Compartment(False, 1.0, 0.0, float(op.vth), _per_neuron(op.bias, op.size, np.float64), op.reset)


class LIModel(NeuronModel):
    op = LI

    def compartment(self, op: LI, integer: bool, node: str | None = None) -> Compartment:
        _float_only(op, integer, node)
        return Compartment(False, float(op.du), float(op.dv), math.inf, _per_neuron(op.bias, op.size, np.float64),
                           readout=True)


register(CubaLIFModel())
register(IFModel())
register(LIModel())
