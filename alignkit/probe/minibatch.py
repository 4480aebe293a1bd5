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

``data_parallel = R`` reproduces the published code's R data-parallel
processes (it trains with 4 on CPU): each epoch's permutation is padded to a
multiple of R by repeating its start and dealt out as ``perm[r::R]`` (the
rule of PyTorch's ``DistributedSampler``); every optimiser step averages the
losses (hence the gradients) of the R processes' batches of ``batch_size``
triplets, then clips the averaged gradient: an effective batch of
``R * batch_size``.
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
    data_parallel: int = 1,
    stopper: EarlyStopper | None = None,
    lr_schedule: str = "constant",
    optimizer: str = "adam",
    momentum: float = 0.9,
    val_reference: torch.Tensor | None = None,
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
        data_parallel: processes whose batches each step averages (see the
            module doc); 1: plain mini-batches.
        stopper: an early-stopping state shared with other fits (the paper
            protocol's never-reset state across folds); default: a fresh one.
        lr_schedule: ``constant`` or ``linear`` (gLocal's
            ``LinearLR(total_iters=max_epochs)``: the rate rises linearly
            from ``lr / 3`` to ``lr`` over ``max_epochs`` epochs, stepped per epoch).
        optimizer: ``adam`` or ``sgd`` (with ``momentum``, as gLocal's option).
        momentum: SGD momentum.
        val_reference: gLocal only: reference features for the validation
            check, which then watches the validation NLL plus the local loss
            on these rows (gLocal's early-stopping criterion); None: NLL only.

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
    if data_parallel < 1:
        raise InputError(f"--data-parallel must be >= 1, got {data_parallel}")
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    else:
        raise InputError(f"--optimizer: unknown optimizer {optimizer!r} (adam|sgd)")
    if lr_schedule == "linear":
        sched: torch.optim.lr_scheduler.LRScheduler | None = torch.optim.lr_scheduler.LinearLR(
            opt, total_iters=max_epochs)
    elif lr_schedule == "constant":
        sched = None
    else:
        raise InputError(f"--lr-schedule: unknown schedule {lr_schedule!r} (constant|linear)")
    t_all = torch.as_tensor(np.asarray(train, dtype=np.int64), device=x.device)
    n = len(t_all)
    ref_parts: list[torch.Tensor] = []
    ref_pos = 0
    if stopper is None:
        stopper = EarlyStopper(patience, min_delta, min_epochs)
    stopper.start_fit()
    val_batches: list[torch.Tensor] = []
    if val_reference is not None and spec.objective == "glocal":
        val_batches = reference_batches(len(val_reference), spec.ref_batch,
                                        torch.Generator().manual_seed(1))

    def next_ref() -> torch.Tensor:
        nonlocal ref_parts, ref_pos
        assert reference is not None
        if ref_pos >= len(ref_parts):
            ref_parts = reference_batches(len(reference), spec.ref_batch, generator)
            ref_pos = 0
        ref_pos += 1
        return reference[ref_parts[ref_pos - 1].to(x.device)]

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        if spec.objective == "paper":
            return paper_loss(x, w, b, batch, spec.lam)
        return glocal_loss(x, w, b, batch, next_ref(), lam=spec.lam, alpha=spec.alpha,
                           tau=spec.tau, l2=spec.regulariser == "l2")

    R = int(data_parallel)
    history: list[dict[str, float]] = []
    stopped = diverged = False
    steps = 0
    epoch = 0
    last_loss = math.nan
    has_val = val is not None and len(val) > 0
    for epoch in range(1, max_epochs + 1):
        epoch_lr = float(opt.param_groups[0]["lr"])
        perm = torch.randperm(n, generator=generator).to(x.device)
        if R > 1:
            pad = (-n) % R
            if pad:
                perm = torch.cat((perm, perm[:pad]))
            shards = [perm[r::R] for r in range(R)]
        else:
            shards = [perm]
        per_rank = len(shards[0])
        total = 0.0
        seen = 0
        for start in range(0, per_rank, batch_size):
            batches = [t_all[sh[start : start + batch_size]] for sh in shards]
            opt.zero_grad(set_to_none=True)
            loss = sum(batch_loss(bt) for bt in batches) / R
            loss.backward()  # type: ignore[union-attr]
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            n_b = sum(len(bt) for bt in batches)
            total += float(loss.detach()) * n_b  # type: ignore[union-attr]
            seen += n_b
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        if sched is not None:
            sched.step()
        last_loss = total / seen  # mean mini-batch objective over the epoch
        v_nll = evaluate(x, w.detach(), None if b is None else b.detach(), val)[0] if has_val else math.nan
        if has_val and val_batches:
            with torch.no_grad():
                v_nll += float(local_term(val_reference, val_batches, w, b, spec.tau))
        history.append({"step": epoch, "train_loss": last_loss, "val_nll": v_nll, "lr": epoch_lr})
        if progress is not None:
            progress({"step": epoch, "train_loss": last_loss, "val_nll": v_nll, "lr": epoch_lr})
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
