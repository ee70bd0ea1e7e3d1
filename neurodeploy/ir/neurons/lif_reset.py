"""``LIFReset``: the CUBA LIF with a periodic state reset (Lava 0.10 ``lava.proc.lif.process.LIFReset``,
bit-accurate model ``PyLifResetModelBitAcc``).

At Lava step ``t`` (the first step is ``t = 1``), before the step's update::

    if t mod reset_interval == reset_offset mod reset_interval:  u = 0;  v = 0

then the CubaLIF update of :class:`~neurodeploy.ir.ops.CubaLIF` (float or Loihi integers). Loihi 2 uses it to run
one sample per ``reset_interval`` steps on a stream without a host round-trip. The float form resets at the same
steps. ``reset_interval`` >= 1; ``reset_offset`` any integer in [0, 2**16). PyNN / SpiNNaker has no periodic reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neurodeploy.errors import IRError
from neurodeploy.ir.neurons import register
from neurodeploy.ir.neurons.cuba import CubaLIFModel
from neurodeploy.ir.ops import CubaLIF, Shape

#: Largest reset interval / offset accepted (Lava stores them as Python ints; 16 bits is a generous hardware bound).
MAX_INTERVAL = 2**16 - 1


@dataclass(frozen=True, eq=False)
class LIFReset(CubaLIF):
    """:class:`CubaLIF` whose ``u`` and ``v`` are set to 0 at steps ``t`` with ``t % reset_interval ==
    reset_offset % reset_interval``, before the update (Lava ``PyLifResetModelBitAcc``)."""

    reset_interval: int = 1
    reset_offset: int = 0

    def output_shape(self, input_shape: Shape | None) -> Shape:
        for fld, lo in (("reset_interval", 1), ("reset_offset", 0)):
            value = getattr(self, fld)
            if not lo <= value <= MAX_INTERVAL:  # integrality is checked with every int field (ir.fields)
                raise IRError(f"LIFReset {fld} = {value!r} must be an integer in [{lo}, {MAX_INTERVAL}]",
                              node=self.origin or None, fix=f"set {fld} to an integer in [{lo}, {MAX_INTERVAL}]")
        return super().output_shape(input_shape)


class LIFResetModel(CubaLIFModel):
    op = LIFReset
    int_fields = {"reset_interval": (1, MAX_INTERVAL), "reset_offset": (0, MAX_INTERVAL)}
    lava_class = "lava.proc.lif.process.LIFReset"
    pynn_refusal = ("LIFReset's periodic state reset has no PyNN / SpiNNaker cell (IF_curr_exp keeps its state); "
                    "use CubaLIF and reset between samples on the host, or target loihi2 / emulator")

    def schedule(self, op: LIFReset) -> dict[str, int]:
        return {"reset_interval": int(op.reset_interval), "reset_offset": int(op.reset_offset)}

    def lava_kwargs(self, op: LIFReset) -> dict[str, Any]:
        return self.schedule(op)


register(LIFResetModel())
