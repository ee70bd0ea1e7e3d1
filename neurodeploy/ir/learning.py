"""Loihi 2 learning-rule expressions for :class:`neurodeploy.ir.ops.PlasticDense`: parsing and validation.

A weight-update expression is a sum of products in Lava's ``Loihi2FLearningRule`` syntax (``dw`` string), e.g.
``"2^-4*x1*y0 - 2^-6*y1*y0*w"``. The subset accepted here::

    expression := ['-'] term (('+' | '-') term)*
    term       := item ('*' item)*
    item       := integer | '2^' ['-'] integer | x0 | y0 | u0 | x1 | y1 | y2 | w

Each term holds exactly one *dependency* -- ``x0`` (the term is applied where the pre-synaptic neuron spiked in the
epoch), ``y0`` (where the post-synaptic neuron spiked) or ``u0`` (every epoch) -- and up to three *factors* among
``x1`` (pre-synaptic trace), ``y1`` (post-synaptic trace), ``y2`` (the third factor) and ``w`` (the weight). Its
constant is ``mantissa * 2**exponent``; as in Lava, integer literals multiply into the mantissa and ``2^e`` into the
exponent, then the mantissa is halved while it is even and larger than 7 in magnitude; it must end in [-8, 7] and the
exponent in [-7, 8] (Loihi's 4-bit scaling mantissa and its shift). Learning rates are therefore powers of two
(times a small mantissa): shifts, not multiplications.

``y2`` is Loihi 2's second post-synaptic trace used as a *third factor*: in Lava's ``Loihi3FLearningRule`` the
post-synaptic side writes y2 (7 bits, 0..127; ``LearningConnectionModelBitApproximate.s_in_y2``, precision 7) into
the learning synapse every step, and the rule multiplies it like any trace (``FACTOR_TO_WIDTH_DICT['y2'] = 7``:
clipped to [-128, 127], 7 bits towards the product's shift). In the IR its value comes from the node named by
:attr:`neurodeploy.ir.ops.PlasticDense.third_factor` (e.g. an :class:`~neurodeploy.ir.ops.Astrocyte`: a global
modulation broadcast to every post neuron). A rule using ``y2`` needs that field.

What a term contributes, in integers, is defined in :mod:`neurodeploy.emulator.plasticity` (Lava's
``LearningRuleApplierBitApprox``). Not supported (an :class:`~neurodeploy.errors.IRError` says so): the x2, y3
traces, tags ``d`` / ``t``, ``sgn()``, bracketed ``(var + const)`` factors, constants as extra factors, ``u<k>``
with ``k > 0`` (decimated epochs) and more than three factors per term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from neurodeploy.errors import IRError

DEPENDENCIES = ("x0", "y0", "u0")
FACTORS = ("x1", "y1", "y2", "w")
#: Bit widths Lava clips a factor to before multiplying (``lava.magma.core.learning.constants``).
FACTOR_WIDTH = {"x0": 1, "y0": 1, "x1": 7, "y1": 7, "y2": 7, "w": 9}
MAX_FACTORS = 3
_ITEM = re.compile(r"^(?:(?P<int>\d+)|2\^(?P<exp>-?\d+)|(?P<name>[a-z]\w*))$")


@dataclass(frozen=True)
class Term:
    """One product ``mantissa * 2**exponent * dependency * prod(factors)`` of a weight-update expression."""

    mantissa: int
    exponent: int
    dependency: str
    factors: tuple[str, ...]

    def lava(self) -> str:
        """The term in Lava's syntax, signed (``+ 3*2^-4*y0*x1``)."""
        sign = "-" if self.mantissa < 0 else "+"
        parts = ([str(abs(self.mantissa))] if abs(self.mantissa) != 1 else []) + [f"2^{self.exponent}",
                                                                                  self.dependency, *self.factors]
        return f"{sign} {'*'.join(parts)}"


def _split(expr: str) -> list[tuple[int, str]]:
    """``expr`` -> [(sign, term text)] (a leading sign is allowed)."""
    text = expr.replace(" ", "")
    if not text:
        return []
    pieces, sign, start = [], 1, 0
    if text[0] in "+-":
        sign, start = (-1 if text[0] == "-" else 1), 1
    current = ""
    i = start
    while i < len(text):
        ch = text[i]
        if ch in "+-" and not current.endswith("^"):
            pieces.append((sign, current))
            sign, current = (-1 if ch == "-" else 1), ""
        else:
            current += ch
        i += 1
    pieces.append((sign, current))
    return pieces


def parse_rule(expr: str, node: str | None = None) -> tuple[Term, ...]:
    """Parse a ``dw`` expression into :class:`Term` s; :class:`IRError` naming ``node`` on anything unsupported."""
    fix = "write dw as a sum of products like '2^-4*x1*y0 - 2^-6*y1*y0*w' (see neurodeploy.ir.learning)"
    terms = []
    for sign, text in _split(expr):
        if not text:
            raise IRError(f"learning rule {expr!r} has an empty term", node=node, fix=fix)
        mantissa, exponent, deps, factors = sign, 0, [], []
        for item in text.split("*"):
            m = _ITEM.match(item)
            if m is None:
                raise IRError(f"learning rule {expr!r}: cannot read {item!r} (brackets, sgn() and fractions are not "
                              "supported)", node=node, fix=fix)
            if m.group("int") is not None:
                mantissa *= int(m.group("int"))
            elif m.group("exp") is not None:
                exponent += int(m.group("exp"))
            elif m.group("name") in DEPENDENCIES:
                deps.append(m.group("name"))
            elif m.group("name") in FACTORS:
                factors.append(m.group("name"))
            else:
                raise IRError(f"learning rule {expr!r}: '{m.group('name')}' is not supported (use x0, y0, u0, x1, y1, "
                              "y2, w; x2, y3, d, t are not modelled)", node=node, fix=fix)
        if len(deps) != 1:
            raise IRError(f"learning rule {expr!r}: term {text!r} needs exactly one dependency among {DEPENDENCIES}, "
                          f"got {deps}", node=node, fix="start each product with x0, y0 or u0")
        if len(factors) > MAX_FACTORS:
            raise IRError(f"learning rule {expr!r}: term {text!r} has {len(factors)} factors (at most "
                          f"{MAX_FACTORS})", node=node, fix="split the product or drop a factor")
        while abs(mantissa) > 7 and mantissa % 2 == 0 and exponent < 8:  # Lava's normalisation
            mantissa //= 2
            exponent += 1
        if mantissa == 0:
            continue
        if not -8 <= mantissa <= 7 or not -7 <= exponent <= 8:
            raise IRError(f"learning rule {expr!r}: term {text!r} has the constant {mantissa} * 2^{exponent}; Loihi "
                          "needs a mantissa in [-8, 7] and an exponent in [-7, 8]", node=node,
                          fix="use a learning rate that is a small integer times a power of two")
        terms.append(Term(mantissa, exponent, deps[0], tuple(factors)))
    return tuple(terms)


def lava_expression(terms: tuple[Term, ...]) -> str:
    """The terms as one Lava ``dw`` string (``"0"`` when empty)."""
    if not terms:
        return "0"
    text = " ".join(t.lava() for t in terms)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]
