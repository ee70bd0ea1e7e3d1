"""The grid: every (model, axis values) point of a sweep, in a fixed order that names each point.

Order: models as listed, then the axes in :data:`~neurodeploy.sweep.spec.AXES` order, each axis's values as
listed (the last axis varies fastest). An axis that applies to some targets only (``population_size``:
spinnaker; ``chips``: loihi2, null) gives other targets its default once, so no point is a duplicate.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .spec import AXES, TARGET_AXES, SweepSpec


@dataclass(frozen=True)
class GridPoint:
    """One compile: a model and one value per axis."""

    index: int
    model: str
    target: str
    weight_bits: int | None
    method: str
    calibration_size: int
    population_size: int | None
    chips: int | None

    @property
    def label(self) -> str:
        """A readable id, e.g. ``nir/loihi2/w6/calibrated/c32``."""
        parts = [self.model, self.target, f"w{self.weight_bits or 'default'}", self.method,
                 f"c{self.calibration_size}"]
        if self.population_size is not None:
            parts.append(f"p{self.population_size}")
        if self.chips is not None:
            parts.append(f"chips{self.chips}")
        return "/".join(parts)

    def params(self) -> dict:
        """The axis values (JSON-able), the part of the cache key that is not the model or the data."""
        return {"target": self.target, "weight_bits": self.weight_bits, "quantize.method": self.method,
                "calibration_size": self.calibration_size, "population_size": self.population_size,
                "chips": self.chips}


def expand(spec: SweepSpec) -> list[GridPoint]:
    """All grid points of ``spec`` (see the module docstring)."""
    values = [spec.axes.get(axis, [default]) for axis, default in AXES.items()]
    names = list(AXES)
    points: list[GridPoint] = []
    seen: set[tuple] = set()
    for model in spec.models:
        for combo in itertools.product(*values):
            setting = dict(zip(names, combo))
            for axis, targets in TARGET_AXES.items():
                if setting["target"] not in targets:
                    setting[axis] = AXES[axis]
            key = (model.name, *setting.values())
            if key in seen:
                continue
            seen.add(key)
            points.append(GridPoint(len(points), model.name, setting["target"], setting["weight_bits"],
                                    setting["quantize.method"], setting["calibration_size"],
                                    setting["population_size"], setting["chips"]))
    return points
