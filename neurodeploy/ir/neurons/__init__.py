"""Neuron models: one module per model declares what every layer needs from it, and layers dispatch through here.

A *neuron model* is an IR neuron op (a frozen dataclass in :mod:`neurodeploy.ir.ops` or in the model's own module)
plus a :class:`NeuronModel` record registered with :func:`register`. The record is the one place that says

* what the engines run (:meth:`NeuronModel.compartment`): every model is executed as a Loihi 2 CUBA compartment,
  ``u' = u (1 - du) + a``, ``v' = v (1 - dv) + u' + bias``, ``s = v' > vth``, reset, in Lava's integers
  (:mod:`neurodeploy.ir.arithmetic`) or in float, optionally with a periodic state reset (``u = v = 0`` at Lava
  steps ``t`` with ``t mod reset_interval == reset_offset``, before the update) -- see :class:`Compartment`;
* which integer fields the quantizer and the limits pass must see in range (:attr:`NeuronModel.int_fields`, on
  top of the CUBA fields every model shares, ``du``, ``dv``, ``vth``, ``bias``, ``bias_exp``);
* its Lava 0.10 process (:attr:`NeuronModel.lava_class`, :meth:`NeuronModel.lava_kwargs`) or why it has none;
* whether the PyNN backend can map it (:attr:`NeuronModel.pynn_refusal`: ``None`` when the CUBA -> IF_curr_exp
  conversion applies, else the named reason).

Consumers call :func:`model_of` (the record of an op, found along the op's class hierarchy, so a subclass without
its own record inherits its parent's) instead of ``isinstance`` ladders. Adding a model is one module in this
package plus its import below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir.ops import Op

#: op class -> its model record, filled by :func:`register`.
MODELS: dict[type, NeuronModel] = {}


@dataclass(frozen=True)
class Compartment:
    """What an engine runs for one neuron population (per-neuron arrays have ``size`` entries).

    Integer form: ``du``, ``dv`` are Loihi's 12-bit decay fields, ``vth`` the 17-bit threshold mantissa, ``bias``
    the effective bias ``bias_mant << bias_exp`` (int64). Float form: ``du``, ``dv`` are fractions, ``vth`` is
    ``inf`` for a readout, ``bias`` is float64. ``reset`` is ``"zero"`` or ``"subtract"``; ``readout`` marks an
    integrator whose output is v. ``reset_interval`` (0: never) and ``reset_offset`` give the periodic state reset.
    """

    integer: bool
    du: float
    dv: float
    vth: float
    bias: np.ndarray
    reset: str = "zero"
    readout: bool = False
    reset_interval: int = 0
    reset_offset: int = 0


class NeuronModel:
    """A neuron model's declarations. Subclass it in the model's module and :func:`register` an instance."""

    #: the IR op class this record describes
    op: type[Op]
    #: extra integer fields of the quantized op (beyond the CUBA fields): name -> (lowest, highest) allowed value
    int_fields: dict[str, tuple[int, int]] = {}
    #: dotted path of the Lava 0.10 process running this model, or None (then :attr:`lava_refusal` says why)
    lava_class: str | None = "lava.proc.lif.process.LIF"
    lava_refusal: str = ""
    #: None when the PyNN backend's CUBA LIF conversion applies, else why this model has no PyNN cell
    pynn_refusal: str | None = None

    def compartment(self, op: Op, integer: bool, node: str | None = None) -> Compartment:
        """The engine parameters of ``op`` (see :class:`Compartment`); ``node`` names it in errors."""
        raise NotImplementedError

    def lava_kwargs(self, op: Op) -> dict[str, Any]:
        """Constructor arguments of :attr:`lava_class` beyond the CUBA ones (shape, du, dv, vth, bias_mant,
        bias_exp), which the Lava backend builds for every model."""
        return {}


def register(model: NeuronModel) -> NeuronModel:
    """Record ``model`` for its op class (one record per class)."""
    if model.op in MODELS:
        raise ValueError(f"neuron model {model.op.__name__} is registered twice")
    MODELS[model.op] = model
    return model


def model_of(op: Op, node: str | None = None) -> NeuronModel:
    """The model record of neuron ``op`` (the nearest registered class in its MRO); a named error if none."""
    for cls in type(op).__mro__:
        if cls in MODELS:
            return MODELS[cls]
    raise UnsupportedOpError(f"{op.op_type} is not a registered neuron model", node=node or op.origin or None,
                             fix="register a NeuronModel for it in neurodeploy.ir.neurons")


def compartment(op: Op, integer: bool, node: str | None = None) -> Compartment:
    """Shorthand for ``model_of(op, node).compartment(op, integer, node)``."""
    return model_of(op, node).compartment(op, integer, node)


# The models. Each module registers its record on import; add a new model's module here.
from neurodeploy.ir.neurons import cuba, lif_reset  # noqa: E402, F401
