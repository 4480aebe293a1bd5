"""The fast exact solver: the probe objective over objects, full batch, L-BFGS.

The paper minimises ``mean_t NLL_t(X W + b) + lam ||W||_F`` with Adam on
mini-batches of 256 triplets, transforming the batch's objects at every step.
The same objective can be computed over *objects*:

1. ``Z = X W + b`` (n x p) and ``S = Z Z^T`` (n x n), once per evaluation;
2. gather ``S[i, j], S[i, k], S[j, k]`` per triplet: loss and accuracy;
3. scatter ``softmax(s) - e_0`` back into an n x n matrix ``G``;
4. ``dZ = (G + G^T) Z`` and ``dW = X^T dZ``: two matmuls.

The cost per evaluation is ``O(n^2 p + n p^2 + N)`` instead of ``O(N p^2)``
per epoch, the validation loss comes for free from the same ``S`` and the
deterministic full-batch gradient allows L-BFGS with a strong Wolfe line
search. Early stopping watches the validation NLL after each iteration and the
parameters with the best validation NLL are returned.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from alignkit.errors import InputError
from alignkit.probe._common import (
    EarlyStopper,
    FitResult,
    ObjectiveSpec,
    ProgressFn,
    initial_params,
    local_term,
    reference_batches,
    regulariser,
)
from alignkit.probe._gram import gram_nll


def _backtracking(
    obj: Any, x: torch.Tensor, t: float, d: torch.Tensor, f: float, g: torch.Tensor,
    gtd: float, c1: float = 1e-4, max_ls: int = 30,
) -> tuple[float, torch.Tensor, float, int]:
    """Armijo backtracking line search (used if torch's strong Wolfe is absent)."""
    for k in range(1, max_ls + 1):
        f_new, g_new = obj(x, t, d)
        if f_new <= f + c1 * t * gtd:
            return f_new, g_new, t, k
        t *= 0.5
    return f, g, 0.0, max_ls


try:  # torch's strong Wolfe line search (the one torch.optim.LBFGS uses)
    from torch.optim.lbfgs import _strong_wolfe
except ImportError:  # pragma: no cover - depends on the torch version
    _strong_wolfe = _backtracking  # type: ignore[assignment]

__all__ = ["FastObjective", "fit_fast"]


def _two_loop(
    g: torch.Tensor, old_s: list[torch.Tensor], old_y: list[torch.Tensor]
) -> torch.Tensor:
    """L-BFGS direction ``-H g`` by the two-loop recursion."""
    q = -g
    if not old_s:
        return q
    rho = [1.0 / float(y.dot(s)) for s, y in zip(old_s, old_y, strict=True)]
    alpha = [0.0] * len(old_s)
    for i in range(len(old_s) - 1, -1, -1):
        alpha[i] = rho[i] * float(old_s[i].dot(q))
        q = q - alpha[i] * old_y[i]
    q = q * (float(old_s[-1].dot(old_y[-1])) / float(old_y[-1].dot(old_y[-1])))
    for i in range(len(old_s)):
        beta = rho[i] * float(old_y[i].dot(q))
        q = q + (alpha[i] - beta) * old_s[i]
    return q


class FastObjective:
    """Value and exact gradient of a probe objective, computed over objects.

    Args:
        x: standardised features (n x p).
        train: training triplets (N, 3).
        spec: the objective.
        val: validation triplets, evaluated on the same Gram matrix (or None).
        reference: standardised gLocal reference features (m x p) or None.
        generator: seeds the fixed partition of the reference rows.
        backend: gather/scatter backend (``auto``, ``numba``, ``torch``).
    """

    def __init__(
        self,
        x: torch.Tensor,
        train: np.ndarray,
        spec: ObjectiveSpec,
        *,
        val: np.ndarray | None = None,
        reference: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> None:
        self.x = x
        # Sorting by the first two objects makes the gather and scatter walk
        # rows of S in order; sums over triplets do not depend on order.
        order = np.lexsort((train[:, 1], train[:, 0]))
        self.train = np.ascontiguousarray(train[order], dtype=np.int64)
        self.val = None if val is None or len(val) == 0 else np.ascontiguousarray(val, np.int64)
        self.spec = spec
        self.backend = backend
        self.reference = reference if spec.objective == "glocal" else None
        self.ref_batches: list[torch.Tensor] = []
        if self.reference is not None:
            gen = generator if generator is not None else torch.Generator().manual_seed(0)
            self.ref_batches = reference_batches(len(self.reference), spec.ref_batch, gen)
        self.n_evals = 0

    def value_and_grad(
        self, params: list[torch.Tensor], *, want_grad: bool = True
    ) -> tuple[torch.Tensor, float, float]:
        """Objective at ``params``; fills ``.grad`` when ``want_grad``.

        Returns:
            ``(loss, val_nll, val_acc)``: the total objective (a 0-d tensor) and
            the validation NLL and accuracy at the same point (NaN without
            validation triplets).
        """
        self.n_evals += 1
        w = params[0]
        b = params[1] if len(params) > 1 else None
        with torch.enable_grad():
            z = self.x @ w
            if b is not None:
                z = z + b
            zd = z.detach()
            S = zd @ zd.T
            n_tri = len(self.train)
            nll_sum, _, G = gram_nll(
                S, self.train, want_grad=want_grad, scale=1.0 / n_tri, backend=self.backend
            )
            nll = nll_sum / n_tri
            val_nll = val_acc = math.nan
            if self.val is not None:
                v_sum, v_good, _ = gram_nll(S, self.val, backend=self.backend)
                val_nll, val_acc = v_sum / len(self.val), v_good / len(self.val)
            rest = regulariser(w, self.spec)
            glob = 1.0
            if self.spec.objective == "glocal":
                glob = 1.0 - self.spec.alpha
                rest = rest + self.spec.alpha * local_term(
                    self.reference, self.ref_batches, w, b, self.spec.tau
                )
            loss = rest.detach() + glob * nll
            if want_grad:
                for t in params:
                    t.grad = None
                assert G is not None
                dz = (G + G.T) @ zd
                if glob != 1.0:
                    dz = dz * glob
                torch.autograd.backward([z, rest], [dz, torch.ones_like(rest)])
        return loss, val_nll, val_acc


def fit_fast(
    x: torch.Tensor,
    train: np.ndarray,
    spec: ObjectiveSpec,
    *,
    val: np.ndarray | None = None,
    reference: torch.Tensor | None = None,
    generator: torch.Generator,
    max_iter: int = 500,
    patience: int = 10,
    min_delta: float = 1e-4,
    min_iter: int = 10,
    history_size: int = 20,
    tolerance: float = 1e-10,
    backend: str = "auto",
    progress: ProgressFn | None = None,
    stopper: EarlyStopper | None = None,
) -> FitResult:
    """Fit a probe with full-batch L-BFGS over objects (exact objective).

    Args:
        x: standardised features (n x p); its dtype and device are used.
        train: training triplets (N, 3), odd one out last.
        spec: the objective.
        val: validation triplets for early stopping, or None (run to convergence).
        reference: standardised gLocal reference features, or None.
        generator: seeded CPU generator (initial W, reference batches).
        max_iter: most L-BFGS iterations.
        patience: iterations without a validation improvement of ``min_delta``
            before stopping.
        min_delta: smallest validation NLL decrease that counts.
        min_iter: iterations always run.
        history_size: L-BFGS memory.
        tolerance: stop when the objective changes by less than this
            (relative) between iterations.
        backend: gather/scatter backend.
        progress: called after every iteration with a dict of figures.
        stopper: an early-stopping state shared with other fits (the paper
            protocol's never-reset state); default: a fresh one. The returned
            parameters are this fit's best either way.

    Returns:
        The fit; with validation triplets, the parameters of the iteration with
        the lowest validation NLL (improving by ``min_delta``).
    """
    if len(train) == 0:
        raise InputError("no training triplets: every triplet was dropped by the split")
    if spec.objective == "glocal" and reference is None:
        raise InputError("--objective glocal needs reference features")
    params = initial_params(x.shape[1], spec, generator=generator, dtype=x.dtype, device=x.device)
    obj = FastObjective(
        x, train, spec, val=val, reference=reference, generator=generator, backend=backend
    )
    shapes = [t.shape for t in params]
    sizes = [t.numel() for t in params]

    def unflat(v: torch.Tensor) -> list[torch.Tensor]:
        return [c.view(sh).clone().requires_grad_(True)
                for c, sh in zip(torch.split(v, sizes), shapes, strict=True)]

    seen: dict[float, tuple[float, float]] = {}

    def f_and_g(v: torch.Tensor) -> tuple[float, torch.Tensor, float, float]:
        ps = unflat(v)
        loss, vn, va = obj.value_and_grad(ps)
        g = torch.cat([t.grad.reshape(-1) for t in ps])  # type: ignore[union-attr]
        return float(loss.detach()), g, vn, va

    def line_obj(v: torch.Tensor, t: float, d: torch.Tensor) -> tuple[float, torch.Tensor]:
        f_, g_, vn, va = f_and_g(v + t * d)
        seen[float(t)] = (vn, va)
        return f_, g_

    has_val = val is not None and len(val) > 0
    v = torch.cat([t.detach().reshape(-1) for t in params])
    f, g, v_nll, v_acc = f_and_g(v)
    if stopper is None:
        stopper = EarlyStopper(patience, min_delta, min_iter)
    stopper.start_fit()
    best_v, best_val, best_loss = v.clone(), v_nll, f
    if has_val:
        stopper.update(v_nll)
    history: list[dict[str, float]] = []
    old_s: list[torch.Tensor] = []
    old_y: list[torch.Tensor] = []
    stopped = diverged = False
    it = 0
    for it in range(1, max_iter + 1):
        d = _two_loop(g, old_s, old_y)
        gtd = float(g.dot(d))
        if not gtd < 0:  # not a descent direction: restart from steepest descent
            old_s.clear()
            old_y.clear()
            d = -g
            gtd = float(g.dot(d))
            if gtd == 0.0:
                break
        t0 = min(1.0, 1.0 / float(g.abs().sum())) if not old_s else 1.0
        seen.clear()
        f_new, g_new, t, _ = _strong_wolfe(line_obj, v, t0, d, f, g, gtd)
        t = float(t)
        if t == 0.0 or t not in seen:
            break  # the line search found no decrease
        v_nll, v_acc = seen[t]
        s_k = d * t
        y_k = g_new - g
        if float(y_k.dot(s_k)) > 1e-10:
            if len(old_s) == history_size:
                old_s.pop(0)
                old_y.pop(0)
            old_s.append(s_k)
            old_y.append(y_k)
        v = v + s_k
        prev, f, g = f, float(f_new), g_new
        history.append({"step": it, "train_loss": f, "val_nll": v_nll})
        if progress is not None:
            progress({"step": it, "train_loss": f, "val_nll": v_nll, "val_acc": v_acc})
        if not math.isfinite(f):
            diverged = True
            break
        if has_val:
            _, stop = stopper.update(v_nll)
            if math.isfinite(v_nll) and not v_nll >= best_val - min_delta:
                best_v, best_val, best_loss = v.clone(), v_nll, f
            if stop:
                diverged = not math.isfinite(v_nll)
                stopped = not diverged
                break
        else:
            best_v, best_val, best_loss = v.clone(), v_nll, f
        if abs(prev - f) <= tolerance * max(1.0, abs(f)):
            break
    best = [c.view(sh) for c, sh in zip(torch.split(best_v, sizes), shapes, strict=True)]
    w = best[0].to(torch.float64).cpu().numpy()
    b = best[1].to(torch.float64).cpu().numpy() if spec.bias else None
    return FitResult(
        weights=w, bias=b, train_loss=best_loss, val_nll=best_val, steps=it,
        step_unit="iteration", stopped_early=stopped and not diverged, diverged=diverged,
        history=history,
    )
