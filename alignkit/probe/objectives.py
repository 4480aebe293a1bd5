"""Probe objectives written per triplet, as plain differentiable torch code.

These functions are the *reference* formulation of the losses: they gather the
three transformed objects of every triplet and compute the three pair
similarities directly, exactly as the paper's per-triplet mini-batches do. The
mini-batch solver uses them on each batch; the fast solver
(:mod:`alignkit.probe.fast`) computes the same numbers over objects and is
tested against them.

Conventions: a triplet row ``(i, j, k)`` means the human chose ``k`` as the odd
one out, so ``(i, j)`` is the pair judged most similar. Similarities are dot
products of transformed features ``z = x @ W + b`` (temperature 1).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "LN3",
    "standardize",
    "init_paper",
    "init_glocal",
    "frobenius_penalty",
    "identity_penalty",
    "triplet_similarities",
    "triplet_nll",
    "local_contrastive_loss",
    "paper_loss",
    "glocal_loss",
]

#: Cross-entropy of a uniform guess over the three pairs: a probe that sits
#: here has learned nothing.
LN3 = math.log(3.0)

Tensor = torch.Tensor


def standardize(x: Tensor, mean: float, std: float) -> Tensor:
    """Apply the paper's scalar standardisation ``(x - mean) / std``."""
    return (x - mean) / std


def init_paper(
    p: int,
    *,
    bias: bool,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor | None]:
    """The paper's initialisation: ``W ~ N(0, 1e-3^2)`` (p x p), bias ``1e-3``.

    Args:
        p: feature dimension.
        bias: whether the probe has a bias.
        generator: seeded CPU generator (draws are made on the CPU, then moved,
            so that a seed gives the same start on every device).
        dtype: floating dtype of the parameters.
        device: where the parameters live.

    Returns:
        ``(W, b)`` with ``b`` None when ``bias`` is False.
    """
    w = torch.randn(p, p, generator=generator, dtype=torch.float64) * 1e-3
    w = w.to(device=device, dtype=dtype)
    b = torch.full((p,), 1e-3, dtype=dtype, device=device) if bias else None
    return w, b


def init_glocal(
    p: int,
    *,
    sigma: float,
    bias: bool,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor | None]:
    """The gLocal initialisation: ``W = sigma * I`` and bias ``sigma``."""
    w = torch.eye(p, dtype=dtype, device=device) * sigma
    b = torch.full((p,), sigma, dtype=dtype, device=device) if bias else None
    return w, b


def frobenius_penalty(w: Tensor) -> Tensor:
    """The paper's regulariser: the *unsquared* Frobenius norm ``||W||_F``."""
    return torch.linalg.norm(w)


def identity_penalty(w: Tensor) -> Tensor:
    """gLocal's regulariser ``sum((W - mean(diag W) * I)^2)``: pulls W to a scaled identity."""
    eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
    return ((w - torch.diagonal(w).mean() * eye) ** 2).sum()


def triplet_similarities(z: Tensor, triplets: Tensor) -> Tensor:
    """Per-triplet dot-product similarities ``[s_ij, s_ik, s_jk]`` (N x 3).

    Args:
        z: transformed features of all objects (n x p).
        triplets: int64 (N, 3) object indices, odd one out last.
    """
    a, b, c = z[triplets[:, 0]], z[triplets[:, 1]], z[triplets[:, 2]]
    return torch.stack(((a * b).sum(1), (a * c).sum(1), (b * c).sum(1)), dim=1)


def triplet_nll(z: Tensor, triplets: Tensor) -> Tensor:
    """Mean cross-entropy ``-log softmax([s_ij, s_ik, s_jk])[0]`` over triplets."""
    s = triplet_similarities(z, triplets)
    return (torch.logsumexp(s, dim=1) - s[:, 0]).mean()


def _masked_rows(sim: Tensor) -> Tensor:
    """Drop the diagonal of a square matrix: (m, m) -> (m, m - 1)."""
    m = sim.shape[0]
    keep = ~torch.eye(m, dtype=torch.bool, device=sim.device)
    return sim[keep].reshape(m, m - 1)


def local_contrastive_loss(
    ref: Tensor, w: Tensor, b: Tensor | None, tau: float
) -> Tensor:
    """gLocal's local term on one batch of (standardised) reference features.

    Teacher: row-wise softmax of the off-diagonal cosine similarities of the
    original features divided by ``tau``; student: the same on the transformed
    features ``ref @ W + b``; loss: the cross-entropy of the student against the
    teacher, averaged over rows.

    Args:
        ref: reference features (m x p), as the caller prepared them (the
            published gLocal code passes them unstandardised), m >= 2.
        w: transform (p x p).
        b: bias (p,) or None.
        tau: temperature.
    """
    t = torch.nn.functional.normalize(ref, dim=1)
    zs = ref @ w
    if b is not None:
        zs = zs + b
    s = torch.nn.functional.normalize(zs, dim=1)
    teacher = torch.softmax(_masked_rows(t @ t.T) / tau, dim=1)
    log_student = torch.log_softmax(_masked_rows(s @ s.T) / tau, dim=1)
    return -(teacher * log_student).sum(1).mean()


def _batch_nll(x: Tensor, w: Tensor, b: Tensor | None, triplets: Tensor) -> Tensor:
    """Mean NLL of a batch, transforming only the 3B rows the batch uses."""
    z = x[triplets.reshape(-1)] @ w
    if b is not None:
        z = z + b
    z = z.reshape(triplets.shape[0], 3, -1)
    a, p, o = z[:, 0], z[:, 1], z[:, 2]
    s = torch.stack(((a * p).sum(1), (a * o).sum(1), (p * o).sum(1)), dim=1)
    return (torch.logsumexp(s, dim=1) - s[:, 0]).mean()


def paper_loss(
    x: Tensor, w: Tensor, b: Tensor | None, triplets: Tensor, lam: float
) -> Tensor:
    """The paper's objective on a set of triplets: mean NLL + ``lam * ||W||_F``.

    Only the rows of ``x`` that the triplets use are transformed, which gives
    the same value and gradient as transforming every object.
    """
    return _batch_nll(x, w, b, triplets) + lam * frobenius_penalty(w)


def glocal_loss(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    triplets: Tensor,
    ref: Tensor,
    *,
    lam: float,
    alpha: float,
    tau: float,
    l2: bool = False,
) -> Tensor:
    """gLocal: ``(1 - alpha) * NLL + alpha * local + lam * R(W)`` on one batch.

    ``R`` is the identity-pulling penalty, or with ``l2`` the unsquared
    Frobenius norm ``||W||_F`` (the published gLocal code's ``l2`` option).
    """
    reg = frobenius_penalty(w) if l2 else identity_penalty(w)
    return (
        (1.0 - alpha) * _batch_nll(x, w, b, triplets)
        + alpha * local_contrastive_loss(ref, w, b, tau)
        + lam * reg
    )
