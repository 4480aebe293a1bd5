"""The paper's solver: Adam on mini-batches of triplets, with early stopping.

Exactly the published protocol: Adam (learning rate 1e-3), batches of 256
triplets reshuffled every epoch, gradient-norm clipping at 1.0, between
``min_epochs`` (10) and ``max_epochs`` (100) epochs, early stopping on the
validation NLL with patience 10 and min delta 1e-4 (PyTorch Lightning's rule),
and, as in the paper's code, the parameters of the *last* epoch are returned.
Each step transforms only the batch's objects, which gives the same gradient as
transforming all objects.

For gLocal, every triplet batch is paired with the next batch of reference
features (a seeded permutation, cycled).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from alignkit.errors import InputError
from alignkit.probe._common import (
    EarlyStopper,
    FitResult,
    ObjectiveSpec,
    ProgressFn,
    evaluate,
    initial_params,
    local_term,
    reference_batches,
    regulariser,
)
from alignkit.probe.objectives import _batch_nll, glocal_loss, paper_loss

__all__ = ["fit_minibatch"]


def fit_minibatch(
    x: torch.Tensor,
    train: np.ndarray,
    spec: ObjectiveSpec,
    *,
    val: np.ndarray | None = None,
    reference: torch.Tensor | None = None,
    generator: torch.Generator,
    lr: float = 1e-3,
    batch_size: int = 256,
    min_epochs: int = 10,
    max_epochs: int = 100,
    patience: int = 10,
    min_delta: float = 1e-4,
    clip: float | None = 1.0,
    max_steps: int | None = None,
    progress: ProgressFn | None = None,
) -> FitResult:
    """Fit a probe with the paper's mini-batch Adam loop.

    Args:
        x: standardised features (n x p); its dtype and device are used.
        train: training triplets (N, 3), odd one out last.
        spec: the objective.
        val: validation triplets for early stopping (checked after every epoch).
        reference: standardised gLocal reference features, or None.
        generator: seeded CPU generator (initial W, shuffling).
        lr: Adam learning rate.
        batch_size: triplets per step.
        min_epochs: epochs always run.
        max_epochs: most epochs.
        patience: epochs without a validation improvement before stopping.
        min_delta: smallest validation NLL decrease that counts.
        clip: gradient-norm clipping threshold (None: no clipping).
        max_steps: stop after this many optimiser steps (for timing a fraction
            of an epoch); the fit is then marked as not finished by early stopping.
        progress: called after every epoch with a dict of figures.

    Returns:
        The fit (last epoch's parameters, as in the paper).
    """
    if len(train) == 0:
        raise InputError("no training triplets: every triplet was dropped by the split")
    if spec.objective == "glocal" and reference is None:
        raise InputError("--objective glocal needs reference features")
    params = initial_params(x.shape[1], spec, generator=generator, dtype=x.dtype, device=x.device)
    w = params[0]
    b = params[1] if spec.bias else None
    opt = torch.optim.Adam(params, lr=lr)
    t_all = torch.as_tensor(np.asarray(train, dtype=np.int64), device=x.device)
    n = len(t_all)
    ref_parts: list[torch.Tensor] = []
    ref_pos = 0
    stopper = EarlyStopper(patience, min_delta, min_epochs)
    history: list[dict[str, float]] = []
    stopped = diverged = False
    steps = 0
    epoch = 0
    last_loss = math.nan
    has_val = val is not None and len(val) > 0
    for epoch in range(1, max_epochs + 1):
        perm = torch.randperm(n, generator=generator).to(x.device)
        total = 0.0
        seen = 0
        for start in range(0, n, batch_size):
            batch = t_all[perm[start : start + batch_size]]
            opt.zero_grad(set_to_none=True)
            if spec.objective == "paper":
                loss = paper_loss(x, w, b, batch, spec.lam)
            else:
                assert reference is not None
                if ref_pos >= len(ref_parts):
                    ref_parts = reference_batches(len(reference), spec.ref_batch, generator)
                    ref_pos = 0
                ref = reference[ref_parts[ref_pos].to(x.device)]
                ref_pos += 1
                loss = glocal_loss(
                    x, w, b, batch, ref, lam=spec.lam, alpha=spec.alpha, tau=spec.tau
                )
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        last_loss = total / seen  # mean mini-batch objective over the epoch
        v_nll = evaluate(x, w.detach(), None if b is None else b.detach(), val)[0] if has_val else math.nan
        history.append({"step": epoch, "train_loss": last_loss, "val_nll": v_nll})
        if progress is not None:
            progress({"step": epoch, "train_loss": last_loss, "val_nll": v_nll})
        if not math.isfinite(last_loss):
            diverged = True
            break
        if max_steps is not None and steps >= max_steps:
            break
        if has_val:
            _, stop = stopper.update(v_nll)
            if stop:
                diverged = not math.isfinite(v_nll)
                stopped = not diverged
                break
    with torch.no_grad():
        full = _full_objective(x, w, b, t_all, reference, spec)
        v_final = evaluate(x, w, b, val)[0] if has_val else math.nan
    return FitResult(
        weights=w.detach().to(torch.float64).cpu().numpy(),
        bias=None if b is None else b.detach().to(torch.float64).cpu().numpy(),
        train_loss=full, val_nll=v_final, steps=epoch, step_unit="epoch",
        stopped_early=stopped, diverged=diverged or not math.isfinite(full), history=history,
    )


def _full_objective(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    t_all: torch.Tensor,
    reference: torch.Tensor | None,
    spec: ObjectiveSpec,
) -> float:
    """The objective over all training triplets (the fast solver's definition)."""
    nll_sum = 0.0
    for start in range(0, len(t_all), 65536):
        chunk = t_all[start : start + 65536]
        nll_sum += float(_batch_nll(x, w, b, chunk)) * len(chunk)
    nll = nll_sum / len(t_all)
    reg = float(regulariser(w, spec))
    if spec.objective == "paper":
        return nll + reg
    gen = torch.Generator().manual_seed(0)
    batches = [] if reference is None else reference_batches(len(reference), spec.ref_batch, gen)
    local = float(local_term(reference, batches, w, b, spec.tau))
    return (1.0 - spec.alpha) * nll + spec.alpha * local + reg
