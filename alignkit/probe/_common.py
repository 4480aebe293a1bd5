"""Shared pieces of the two solvers: settings, results, early stopping, evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from alignkit.errors import InputError
from alignkit.probe._gram import gram_nll
from alignkit.probe.objectives import (
    frobenius_penalty,
    identity_penalty,
    init_glocal,
    init_paper,
    local_contrastive_loss,
)

__all__ = [
    "Objective",
    "ObjectiveSpec",
    "FitResult",
    "EarlyStopper",
    "evaluate",
    "ACCURACY_RULES",
    "paper_rule_correct",
    "triplet_sims_from_gram",
    "initial_params",
    "regulariser",
    "reference_batches",
]

Objective = Literal["paper", "glocal"]
#: How a probe's odd-one-out accuracy counts a triplet correct.
#: ``argmax``: the human pair's similarity is strictly the largest (ties wrong).
#: ``paper``: the published code's rule on float32 softmax probabilities: wrong
#: when any two probabilities are equal or all three round to the same
#: two-decimal value, otherwise correct when the human pair's is the largest.
ACCURACY_RULES = ("argmax", "paper")
ProgressFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class ObjectiveSpec:
    """What is minimised (shared by both solvers).

    Attributes:
        objective: ``paper`` (NLL + ``lam * ||W||_F``) or ``glocal``
            (``(1 - alpha) NLL + alpha * local + lam * ||W - mean(diag W) I||^2``).
        lam: regularisation strength.
        bias: whether the probe has a bias.
        alpha: gLocal weight of the local term.
        tau: gLocal temperature of the local term.
        sigma: gLocal initialisation scale (``W = sigma * I``).
        ref_batch: gLocal reference batch size.
        regulariser: gLocal's penalty: ``identity`` (``||W - mean(diag W) I||^2``)
            or ``l2`` (the unsquared ``||W||_F``, the published code's option).
    """

    objective: Objective = "paper"
    lam: float = 1e-3
    bias: bool = False
    alpha: float = 0.25
    tau: float = 1.0
    sigma: float = 1e-3
    ref_batch: int = 1024
    regulariser: str = "identity"

    def __post_init__(self) -> None:
        if self.objective not in ("paper", "glocal"):
            raise InputError(f"--objective: unknown objective {self.objective!r} (paper|glocal)")
        if not (self.lam >= 0 and math.isfinite(self.lam)):
            raise InputError(f"--lambdas: lambda must be finite and >= 0, got {self.lam}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"--alphas: alpha must lie in [0, 1], got {self.alpha}")
        if not self.tau > 0:
            raise InputError(f"--taus: tau must be > 0, got {self.tau}")
        if self.regulariser not in ("identity", "l2"):
            raise InputError(f"--regulariser: unknown penalty {self.regulariser!r} (identity|l2)")
        if self.ref_batch < 2:
            raise InputError(f"reference batch must hold at least 2 rows, got {self.ref_batch}")


@dataclass
class FitResult:
    """The outcome of one probe fit.

    Attributes:
        weights: W (p x p), float64.
        bias: b (p,) float64, or None.
        train_loss: full objective on the training triplets at the returned W.
        val_nll: mean NLL on the validation triplets at the returned W (NaN if none).
        steps: iterations (fast solver) or epochs (mini-batch solver) run.
        step_unit: ``"iteration"`` or ``"epoch"``.
        stopped_early: whether early stopping ended the fit.
        diverged: whether the loss became NaN or infinite.
        history: per step ``{"step", "train_loss", "val_nll"}``.
    """

    weights: np.ndarray
    bias: np.ndarray | None
    train_loss: float
    val_nll: float
    steps: int
    step_unit: str
    stopped_early: bool
    diverged: bool
    history: list[dict[str, float]] = field(default_factory=list)


class EarlyStopper:
    """Early stopping as in the paper (PyTorch Lightning's rule).

    A check improves when ``value < best - min_delta``; after ``patience``
    checks without improvement the fit stops, but never before ``min_steps``
    checks of the current fit have been made. A non-finite value stops at once.

    One stopper can be shared by several fits (the paper's code keeps one
    early-stopping object for all folds and never resets it): :meth:`start_fit`
    restarts the count of checks for ``min_steps`` and keeps ``best`` and
    ``wait``, so a later fold stops as soon as ``min_steps`` allows unless it
    beats an earlier fold's best.
    """

    def __init__(self, patience: int, min_delta: float, min_steps: int = 0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.min_steps = min_steps
        self.best = math.inf
        self.wait = 0
        self.n = 0

    def start_fit(self) -> None:
        """A new fit begins: count its checks from 0, keep best and wait."""
        self.n = 0

    def update(self, value: float) -> tuple[bool, bool]:
        """Record one check; return ``(improved, stop)``."""
        self.n += 1
        if not math.isfinite(value):
            return False, True
        improved = value < self.best - self.min_delta
        if improved:
            self.best = value
            self.wait = 0
        else:
            self.wait += 1
        return improved, self.wait >= self.patience and self.n >= self.min_steps


def initial_params(
    p: int,
    spec: ObjectiveSpec,
    *,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
) -> list[torch.Tensor]:
    """Initial ``[W]`` or ``[W, b]`` as leaf tensors that require grad."""
    if spec.objective == "paper":
        w, b = init_paper(p, bias=spec.bias, generator=generator, dtype=dtype, device=device)
    else:
        w, b = init_glocal(p, sigma=spec.sigma, bias=spec.bias, dtype=dtype, device=device)
    params = [w] if b is None else [w, b]
    return [t.requires_grad_(True) for t in params]


def regulariser(w: torch.Tensor, spec: ObjectiveSpec) -> torch.Tensor:
    """``lam * ||W||_F`` (paper, gLocal ``l2``) or ``lam * R(W)`` (gLocal ``identity``)."""
    if spec.objective == "paper" or spec.regulariser == "l2":
        return spec.lam * frobenius_penalty(w)
    return spec.lam * identity_penalty(w)


def reference_batches(
    n_ref: int, batch: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """A seeded partition of the reference rows into batches of ``batch`` rows.

    The last batch is merged into the previous one when it would hold fewer
    than two rows (the local term needs pairs).
    """
    perm = torch.randperm(n_ref, generator=generator)
    parts = list(torch.split(perm, batch))
    if len(parts) > 1 and len(parts[-1]) < 2:
        tail = parts.pop()
        parts[-1] = torch.cat((parts[-1], tail))
    return parts


def local_term(
    ref: torch.Tensor | None,
    batches: list[torch.Tensor],
    w: torch.Tensor,
    b: torch.Tensor | None,
    tau: float,
) -> torch.Tensor:
    """Mean of gLocal's local loss over fixed reference batches."""
    if ref is None or not batches:
        return torch.zeros((), dtype=w.dtype, device=w.device)
    total = sum(local_contrastive_loss(ref[idx], w, b, tau) for idx in batches)
    return total / len(batches)  # type: ignore[return-value]


def triplet_sims_from_gram(S: torch.Tensor, triplets: np.ndarray) -> torch.Tensor:
    """``[s_ij, s_ik, s_jk]`` (N x 3) read from a Gram matrix."""
    t = torch.as_tensor(np.asarray(triplets, dtype=np.int64), device=S.device)
    i, j, k = t[:, 0], t[:, 1], t[:, 2]
    return torch.stack((S[i, j], S[i, k], S[j, k]), dim=1)


def paper_rule_correct(sims: torch.Tensor) -> torch.Tensor:
    """The published code's probing-accuracy rule, per triplet (bool, N).

    ``probs = softmax(float32 sims)``; a triplet is wrong when two of the three
    float32 probabilities are equal or when all three round (to two decimals)
    to the same value; otherwise it is correct when the human pair (position
    0) has the largest probability.
    """
    p = torch.softmax(sims.to(torch.float32), dim=1)
    dup = (p[:, 0] == p[:, 1]) | (p[:, 0] == p[:, 2]) | (p[:, 1] == p[:, 2])
    r = torch.round(p, decimals=2)
    same = (r[:, 0] == r[:, 1]) & (r[:, 1] == r[:, 2])
    return ~dup & ~same & (torch.argmax(p, dim=1) == 0)


@torch.no_grad()
def evaluate(
    x: torch.Tensor,
    w: torch.Tensor | None,
    b: torch.Tensor | None,
    triplets: np.ndarray,
    accuracy_rule: str = "argmax",
) -> tuple[float, float]:
    """Mean NLL and accuracy of a probe on triplets; NaN when empty.

    ``w`` None evaluates the features themselves (zero-shot, dot products).
    ``accuracy_rule``: ``argmax`` (ties wrong) or ``paper`` (see ``ACCURACY_RULES``).
    """
    if accuracy_rule not in ACCURACY_RULES:
        raise InputError(f"--accuracy-rule: unknown rule {accuracy_rule!r} (argmax|paper)")
    if len(triplets) == 0:
        return math.nan, math.nan
    z = x if w is None else x @ w
    if b is not None:
        z = z + b
    S = z @ z.T
    loss, good, _ = gram_nll(S, triplets)
    if accuracy_rule == "paper":
        good = int(paper_rule_correct(triplet_sims_from_gram(S, triplets)).sum())
    return loss / len(triplets), good / len(triplets)
