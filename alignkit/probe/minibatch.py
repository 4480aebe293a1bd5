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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from alignkit._options import options_from
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

if TYPE_CHECKING:
    from alignkit.probe.estimator import SolverOptions

__all__ = ["fit_minibatch"]


def fit_minibatch(
    x: torch.Tensor,
    train: np.ndarray,
    spec: ObjectiveSpec,
    *,
    val: np.ndarray | None = None,
    reference: torch.Tensor | None = None,
    generator: torch.Generator,
    options: SolverOptions | None = None,
    progress: ProgressFn | None = None,
    stopper: EarlyStopper | None = None,
    val_reference: torch.Tensor | None = None,
    **kwargs: Any,
) -> FitResult:
    """Fit a probe with the paper's mini-batch Adam loop.

    Args:
        x: standardised features (n x p); its dtype and device are used.
        train: training triplets (N, 3), odd one out last.
        spec: the objective.
        val: validation triplets for early stopping (checked after every epoch).
        reference: standardised gLocal reference features, or None.
        generator: seeded CPU generator (initial W, shuffling).
        options: the :class:`~alignkit.probe.estimator.SolverOptions`; this solver
            reads ``lr``, ``batch_size``, ``min_epochs``, ``max_epochs``, ``patience``
            and ``min_delta`` (per epoch), ``clip``, ``max_steps`` (the fit is then
            not marked as stopped early), ``data_parallel`` (see the module doc),
            ``lr_schedule`` (``linear``: gLocal's ``LinearLR(total_iters=max_epochs)``,
            ``lr / 3`` rising to ``lr``, stepped per epoch), ``optimizer``, ``momentum``.
        progress: called after every epoch with a dict of figures.
        stopper: an early-stopping state shared with other fits (the paper
            protocol's never-reset state across folds); default: a fresh one.
        val_reference: gLocal only: reference features for the validation
            check, which then watches the validation NLL plus the local loss
            on these rows (gLocal's early-stopping criterion); None: NLL only.
        **kwargs: fields of ``options`` (``lr=``, ``max_epochs=``, ...), replacing its own.

    Returns:
        The fit (last epoch's parameters, as in the paper).
    """
    from alignkit.probe.estimator import SolverOptions

    o = options_from(SolverOptions, options, kwargs, "fit_minibatch")
    if len(train) == 0:
        raise InputError("no training triplets: every triplet was dropped by the split")
    if spec.objective == "glocal" and reference is None:
        raise InputError("--objective glocal needs reference features")
    params = initial_params(x.shape[1], spec, generator=generator, dtype=x.dtype, device=x.device)
    w = params[0]
    b = params[1] if spec.bias else None
    opt, sched = _optimizer(params, o)
    t_all = torch.as_tensor(np.asarray(train, dtype=np.int64), device=x.device)
    if stopper is None:
        stopper = EarlyStopper(o.patience, o.min_delta, o.min_epochs)
    stopper.start_fit()
    check = _ValCheck(x, val, spec, val_reference)
    refs = _RefCycle(reference, spec.ref_batch, generator, x.device)

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        if spec.objective == "paper":
            return paper_loss(x, w, b, batch, spec.lam)
        return glocal_loss(x, w, b, batch, refs.next(), lam=spec.lam, alpha=spec.alpha,
                           tau=spec.tau, l2=spec.regulariser == "l2")

    loop = _Epochs(o, opt, sched, check, stopper, progress)
    loop.run(lambda steps: _epoch(t_all, generator, o, opt, params, batch_loss, steps), w, b)
    with torch.no_grad():
        full = _full_objective(x, w, b, t_all, reference, spec)
        v_final = evaluate(x, w, b, val)[0] if check.has_val else math.nan
    return FitResult(
        weights=w.detach().to(torch.float64).cpu().numpy(),
        bias=None if b is None else b.detach().to(torch.float64).cpu().numpy(),
        train_loss=full, val_nll=v_final, steps=loop.epoch, step_unit="epoch",
        stopped_early=loop.stopped, diverged=loop.diverged or not math.isfinite(full),
        history=loop.history,
    )


def _optimizer(params: list[torch.Tensor], o: SolverOptions,
               ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimiser and learning-rate schedule of ``o`` (whose names SolverOptions checked)."""
    if o.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum)
    else:
        opt = torch.optim.Adam(params, lr=o.lr)
    if o.lr_schedule == "linear":
        return opt, torch.optim.lr_scheduler.LinearLR(opt, total_iters=o.max_epochs)
    return opt, None


class _Epochs:
    """The epoch loop: steps, schedule, validation check, progress and early stopping."""

    def __init__(self, o: SolverOptions, opt: torch.optim.Optimizer, sched: Any,
                 check: _ValCheck, stopper: EarlyStopper, progress: ProgressFn | None) -> None:
        self.o, self.opt, self.sched = o, opt, sched
        self.check, self.stopper, self.progress = check, stopper, progress
        self.history: list[dict[str, float]] = []
        self.stopped = self.diverged = False
        self.epoch = 0

    def run(self, one_epoch: Callable[[int], tuple[float, int]], w: torch.Tensor,
            b: torch.Tensor | None) -> None:
        """Epochs until ``max_epochs``, divergence, ``max_steps`` or early stopping."""
        o = self.o
        steps = 0
        for self.epoch in range(1, o.max_epochs + 1):
            epoch_lr = float(self.opt.param_groups[0]["lr"])
            last_loss, steps = one_epoch(steps)
            if self.sched is not None:
                self.sched.step()
            v_nll = self.check(w, b)
            row = {"step": self.epoch, "train_loss": last_loss, "val_nll": v_nll, "lr": epoch_lr}
            self.history.append(row)
            if self.progress is not None:
                self.progress(dict(row))
            if not math.isfinite(last_loss):
                self.diverged = True
                return
            if o.max_steps is not None and steps >= o.max_steps:
                return
            if self.check.has_val and self.stopper.update(v_nll)[1]:
                self.diverged = not math.isfinite(v_nll)
                self.stopped = not self.diverged
                return


class _RefCycle:
    """gLocal: the next batch of reference rows (a seeded permutation, cycled)."""

    def __init__(self, reference: torch.Tensor | None, ref_batch: int,
                 generator: torch.Generator, device: torch.device) -> None:
        self.reference = reference
        self.ref_batch = ref_batch
        self.generator = generator
        self.device = device
        self.parts: list[torch.Tensor] = []
        self.pos = 0

    def next(self) -> torch.Tensor:
        assert self.reference is not None
        if self.pos >= len(self.parts):
            self.parts = reference_batches(len(self.reference), self.ref_batch, self.generator)
            self.pos = 0
        self.pos += 1
        return self.reference[self.parts[self.pos - 1].to(self.device)]


class _ValCheck:
    """The validation figure watched after every epoch (NaN without validation triplets)."""

    def __init__(self, x: torch.Tensor, val: np.ndarray | None, spec: ObjectiveSpec,
                 val_reference: torch.Tensor | None) -> None:
        self.x = x
        self.val = val
        self.tau = spec.tau
        self.has_val = val is not None and len(val) > 0
        self.val_reference = val_reference
        self.batches: list[torch.Tensor] = []
        if val_reference is not None and spec.objective == "glocal":
            self.batches = reference_batches(len(val_reference), spec.ref_batch,
                                             torch.Generator().manual_seed(1))

    def __call__(self, w: torch.Tensor, b: torch.Tensor | None) -> float:
        if not self.has_val:
            return math.nan
        v_nll = evaluate(self.x, w.detach(), None if b is None else b.detach(), self.val)[0]
        if self.batches:
            with torch.no_grad():
                v_nll += float(local_term(self.val_reference, self.batches, w, b, self.tau))
        return v_nll


def _epoch(t_all: torch.Tensor, generator: torch.Generator, o: SolverOptions,
           opt: torch.optim.Optimizer, params: list[torch.Tensor],
           batch_loss: Callable[[torch.Tensor], torch.Tensor], steps: int) -> tuple[float, int]:
    """One epoch of optimiser steps; ``(mean mini-batch objective, steps so far)``."""
    n = len(t_all)
    R = int(o.data_parallel)
    perm = torch.randperm(n, generator=generator).to(t_all.device)
    if R > 1:
        pad = (-n) % R
        if pad:
            perm = torch.cat((perm, perm[:pad]))
        shards = [perm[r::R] for r in range(R)]
    else:
        shards = [perm]
    total = 0.0
    seen = 0
    for start in range(0, len(shards[0]), o.batch_size):
        batches = [t_all[sh[start : start + o.batch_size]] for sh in shards]
        opt.zero_grad(set_to_none=True)
        loss = sum(batch_loss(bt) for bt in batches) / R
        loss.backward()  # type: ignore[union-attr]
        if o.clip is not None:
            torch.nn.utils.clip_grad_norm_(params, o.clip)
        opt.step()
        n_b = sum(len(bt) for bt in batches)
        total += float(loss.detach()) * n_b  # type: ignore[union-attr]
        seen += n_b
        steps += 1
        if o.max_steps is not None and steps >= o.max_steps:
            break
    return total / seen, steps


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
