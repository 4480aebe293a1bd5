"""Tie rules of the odd-one-out choice: the registry and one scalar definition.

A triplet's pair similarities are taken in the fixed order ``[a, b, c] = [s_ij, s_ik, s_jk]``;
the model's odd one out is the item outside the most similar pair, reported as a position in
the row (``(i, j)`` most similar -> ``2``, ``(i, k)`` -> ``1``, ``(j, k)`` -> ``0``). A *tie* is
a maximum attained by two pairs (a two-way tie) or by all three (a three-way tie), in exact
float64 equality. The rules differ only on ties:

* ``paper``: the published analysis code of Muttenthaler et al. (2023). It takes ``argmin`` over
  the three distances, so a two-way tie at the top goes to the first pair in the order
  ``[s_ij, s_ik, s_jk]``; only a three-way tie is marked wrong (choice ``-1``).
* ``first``: Brain-Score's odd-one-out benchmark: ``argmax`` over ``[s_ij, s_ik, s_jk]``, the
  first maximum wins, never wrong by rule.
* ``any-tie-wrong``: every tie at the top is marked wrong (choice ``-1``), a strict rule some
  analyses use. ``wrong`` is a deprecated alias of it (an earlier alignkit called this rule
  the paper's, which it is not).

The scalar functions below are plain Python: :mod:`alignkit._kernels.ooo` compiles them with
``numba.njit`` and :mod:`alignkit._kernels._cuda_ooo` with ``numba.cuda.jit(device=True)``,
so the CPU and the GPU apply one definition.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

__all__ = [
    "TieRule",
    "TIE_RULES",
    "DEPRECATED_TIE_RULES",
    "DEFAULT_TIE_RULE",
    "resolve_tie_rule",
    "tie_mode",
    "choice",
    "hit",
    "top_count",
]


@dataclass(frozen=True)
class TieRule:
    """One tie rule: its name, kernel mode and what it does (one line) and where it comes from."""

    name: str
    mode: int
    summary: str
    reference: str


#: Every tie rule a user can name, by name.
TIE_RULES: dict[str, TieRule] = {
    r.name: r
    for r in (
        TieRule(
            "paper",
            2,
            "a two-way tie goes to the first pair in [s_ij, s_ik, s_jk]; a three-way tie is wrong",
            "the published analysis code of Muttenthaler et al. (ICLR 2023)",
        ),
        TieRule(
            "first",
            1,
            "the first maximum in [s_ij, s_ik, s_jk] wins; never wrong by rule",
            "Brain-Score's odd-one-out benchmark",
        ),
        TieRule(
            "any-tie-wrong",
            0,
            "every tie at the top counts as wrong",
            "a strict rule some analyses use",
        ),
    )
}
#: Old names that still work, with a deprecation warning.
DEPRECATED_TIE_RULES = {"wrong": "any-tie-wrong"}
DEFAULT_TIE_RULE = "paper"


def resolve_tie_rule(name: str, *, option: str = "ties") -> str:
    """The canonical name of a tie rule; a deprecated alias warns and maps to its new name.

    Raises:
        ValueError: an unknown name (the message names ``option`` and the valid rules).
    """
    if name in DEPRECATED_TIE_RULES:
        new = DEPRECATED_TIE_RULES[name]
        warnings.warn(
            f"tie rule {name!r} is deprecated: it is {new!r} (every tie counts as wrong), which "
            f"is not the paper's rule; say {new!r}, or 'paper' for the paper's",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    if name not in TIE_RULES:
        raise ValueError(f"{option} must be one of {', '.join(TIE_RULES)}; got {name!r}")
    return name


def tie_mode(name: str) -> int:
    """The kernel mode of a tie rule; deprecated aliases map silently (the user-facing layers
    warn through :func:`resolve_tie_rule`)."""
    name = DEPRECATED_TIE_RULES.get(name, name)
    if name not in TIE_RULES:
        raise ValueError(f"unknown tie rule {name!r}; choose one of {', '.join(TIE_RULES)}")
    return TIE_RULES[name].mode


def top_count(a: float, b: float, c: float) -> int:
    """How many of ``a, b, c`` equal their maximum: 1 (no tie), 2 or 3."""
    m = a
    if b > m:
        m = b
    if c > m:
        m = c
    return (1 if a == m else 0) + (1 if b == m else 0) + (1 if c == m else 0)


def choice(a: float, b: float, c: float, mode: int) -> int:
    """Position of the odd one out for ``a=s_ij, b=s_ik, c=s_jk`` under a tie rule's mode."""
    if a >= b and a >= c:
        pos = 2
    elif b >= c:
        pos = 1
    else:
        pos = 0
    if mode == 1:
        return pos
    # (written out rather than calling top_count: the function must compile as it stands
    # for both targets, where a call would need the callee compiled for that target first)
    m = a
    if b > m:
        m = b
    if c > m:
        m = c
    n_top = (1 if a == m else 0) + (1 if b == m else 0) + (1 if c == m else 0)
    if n_top == 3 or (mode == 0 and n_top == 2):
        return -1
    return pos


def hit(a: float, b: float, c: float, mode: int) -> bool:
    """``choice(a, b, c, mode) == 2`` without data-dependent branches.

    Mispredicted branches stall the random gathers of the counting pass, so this is written
    with bitwise operators only; the tests check it against :func:`choice` on every pattern
    of ties.
    """
    strict = (a > b) & (a > c)
    weak = (a >= b) & (a >= c)
    not_all_equal = (a != b) | (a != c)
    return (strict & (mode == 0)) | (weak & (mode == 1)) | (weak & not_all_equal & (mode == 2))
