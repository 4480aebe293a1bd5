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
    initial_params,
    local_term,
    reference_batches,
    regulariser,
)
from alignkit.probe._gram import TripletIndex, gram_nll

if TYPE_CHECKING:
    from alignkit.probe.estimator import SolverOptions


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
        backend: gather/scatter backend (``auto``, ``numba``, ``numba-slabs``, ``torch``).
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
        # Grouping by the first object makes the gather walk rows of S in
        # order; sums over triplets do not depend on order. On the CPU the
        # two-pass kernel's grouping is built once here, for every evaluation.
        numba_path = backend == "numba" or (backend == "auto" and x.device.type == "cpu")
        self.index: TripletIndex | None = None
        if numba_path:
            self.index = TripletIndex(train, x.shape[0])
            self.train = self.index.triplets
        else:
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
                S, self.index if self.index is not None else self.train,
                want_grad=want_grad, scale=1.0 / n_tri, backend=self.backend,
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
    options: SolverOptions | None = None,
    history_size: int = 20,
    tolerance: float = 1e-10,
    progress: ProgressFn | None = None,
    stopper: EarlyStopper | None = None,
    init: list[np.ndarray] | None = None,
    **kwargs: Any,
) -> FitResult:
    """Fit a probe with full-batch L-BFGS over objects (exact objective).

    Args:
        x: standardised features (n x p); its dtype and device are used.
        train: training triplets (N, 3), odd one out last.
        spec: the objective.
        val: validation triplets for early stopping, or None (run to convergence).
        reference: standardised gLocal reference features, or None.
        generator: seeded CPU generator (initial W, reference batches).
        options: the :class:`~alignkit.probe.estimator.SolverOptions`; this solver
            reads ``max_iter`` (most L-BFGS iterations), ``patience``
            (iterations without a validation improvement of ``min_delta``
            before stopping), ``min_delta``, ``min_iter`` (iterations always
            run) and ``backend`` (gather/scatter backend).
        history_size: L-BFGS memory.
        tolerance: stop when the objective changes by less than this
            (relative) between iterations.
        progress: called after every iteration with a dict of figures.
        stopper: an early-stopping state shared with other fits (the paper
            protocol's never-reset state); default: a fresh one. The returned
            parameters are this fit's best either way.
        init: starting ``[W]`` or ``[W, b]`` (a warm start, e.g. another
            lambda's solution) instead of the objective's initialisation; the
            generator is drawn from as without it, so that everything else
            (the gLocal reference batches) stays the same.
        **kwargs: fields of ``options`` (``max_iter=``, ``patience=``, ...),
            replacing its own.

    Returns:
        The fit; with validation triplets, the parameters of the iteration with
        the lowest validation NLL (improving by ``min_delta``).
    """
    from alignkit.probe.estimator import SolverOptions

    o = options_from(SolverOptions, options, kwargs, "fit_fast")
    if len(train) == 0:
        raise InputError("no training triplets: every triplet was dropped by the split")
    if spec.objective == "glocal" and reference is None:
        raise InputError("--objective glocal needs reference features")
    params = initial_params(x.shape[1], spec, generator=generator, dtype=x.dtype, device=x.device)
    if init is not None:
        params = _warm_params(params, init)
    obj = FastObjective(
        x, train, spec, val=val, reference=reference, generator=generator, backend=o.backend
    )
    flat = _Flat(obj, params)
    v = torch.cat([t.detach().reshape(-1) for t in params])
    if stopper is None:
        stopper = EarlyStopper(o.patience, o.min_delta, o.min_iter)
    run = _Iterations(flat, stopper, o.min_delta, val is not None and len(val) > 0)
    run.run(v, o.max_iter, history_size, tolerance, progress)
    best = flat.split(run.best_v)
    return FitResult(
        weights=best[0].to(torch.float64).cpu().numpy(),
        bias=best[1].to(torch.float64).cpu().numpy() if spec.bias else None,
        train_loss=run.best_loss, val_nll=run.best_val, steps=run.it,
        step_unit="iteration", stopped_early=run.stopped and not run.diverged,
        diverged=run.diverged, history=run.history,
    )


def _warm_params(params: list[torch.Tensor], init: list[np.ndarray]) -> list[torch.Tensor]:
    """``params`` replaced by the values of ``init`` (same shapes, dtype and device)."""
    if len(init) != len(params):
        raise InputError(f"init: expected {len(params)} arrays (W{', b' * (len(params) > 1)}), "
                         f"got {len(init)}")
    out = []
    for t, a in zip(params, init, strict=True):
        a = np.asarray(a)
        if tuple(a.shape) != tuple(t.shape):
            raise InputError(f"init: expected an array of shape {tuple(t.shape)}, got {a.shape}")
        out.append(torch.as_tensor(a, dtype=t.dtype, device=t.device).clone().requires_grad_(True))
    return out


class _Iterations:
    """The L-BFGS iterations, with early stopping on the validation NLL and the best point kept."""

    def __init__(self, flat: _Flat, stopper: EarlyStopper, min_delta: float, has_val: bool) -> None:
        self.flat, self.stopper, self.min_delta, self.has_val = flat, stopper, min_delta, has_val
        self.history: list[dict[str, float]] = []
        self.stopped = self.diverged = False
        self.it = 0

    def _keep(self, v: torch.Tensor, v_nll: float, f: float) -> None:
        self.best_v, self.best_val, self.best_loss = v.clone(), v_nll, f

    def run(self, v: torch.Tensor, max_iter: int, history_size: int, tolerance: float,
            progress: ProgressFn | None) -> None:
        f, g, v_nll, v_acc = self.flat.f_and_g(v)
        self.stopper.start_fit()
        self._keep(v, v_nll, f)
        if self.has_val:
            self.stopper.update(v_nll)
        memory = _Memory(history_size)
        for self.it in range(1, max_iter + 1):
            step = _lbfgs_step(self.flat, memory, v, f, g)
            if step is None:
                return
            v, prev, (f, g, v_nll, v_acc) = step[0], f, step[1]
            self.history.append({"step": self.it, "train_loss": f, "val_nll": v_nll})
            if progress is not None:
                progress({"step": self.it, "train_loss": f, "val_nll": v_nll, "val_acc": v_acc})
            if not math.isfinite(f):
                self.diverged = True
                return
            if self.has_val:
                _, stop = self.stopper.update(v_nll)
                if math.isfinite(v_nll) and not v_nll >= self.best_val - self.min_delta:
                    self._keep(v, v_nll, f)
                if stop:
                    self.diverged = not math.isfinite(v_nll)
                    self.stopped = not self.diverged
                    return
            else:
                self._keep(v, v_nll, f)
            if abs(prev - f) <= tolerance * max(1.0, abs(f)):
                return


class _Flat:
    """The objective over the parameters flattened into one vector."""

    def __init__(self, obj: FastObjective, params: list[torch.Tensor]) -> None:
        self.obj = obj
        self.shapes = [t.shape for t in params]
        self.sizes = [t.numel() for t in params]
        self.seen: dict[float, tuple[float, float]] = {}  # step -> validation NLL and accuracy

    def split(self, v: torch.Tensor) -> list[torch.Tensor]:
        return [c.view(sh) for c, sh in zip(torch.split(v, self.sizes), self.shapes, strict=True)]

    def f_and_g(self, v: torch.Tensor) -> tuple[float, torch.Tensor, float, float]:
        ps = [c.clone().requires_grad_(True) for c in self.split(v)]
        loss, vn, va = self.obj.value_and_grad(ps)
        g = torch.cat([t.grad.reshape(-1) for t in ps])  # type: ignore[union-attr]
        return float(loss.detach()), g, vn, va

    def line_obj(self, v: torch.Tensor, t: float, d: torch.Tensor) -> tuple[float, torch.Tensor]:
        f_, g_, vn, va = self.f_and_g(v + t * d)
        self.seen[float(t)] = (vn, va)
        return f_, g_


class _Memory:
    """The last ``size`` L-BFGS pairs ``(s, y)``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.s: list[torch.Tensor] = []
        self.y: list[torch.Tensor] = []

    def clear(self) -> None:
        self.s.clear()
        self.y.clear()

    def add(self, s_k: torch.Tensor, y_k: torch.Tensor) -> None:
        if float(y_k.dot(s_k)) > 1e-10:
            if len(self.s) == self.size:
                self.s.pop(0)
                self.y.pop(0)
            self.s.append(s_k)
            self.y.append(y_k)


def _lbfgs_step(
    flat: _Flat, memory: _Memory, v: torch.Tensor, f: float, g: torch.Tensor
) -> tuple[torch.Tensor, tuple[float, torch.Tensor, float, float]] | None:
    """One L-BFGS iteration with a strong Wolfe line search from ``v``.

    Returns:
        ``(new v, (f, g, val_nll, val_acc) there)``, or None when there is no
        descent direction or the line search found no decrease.
    """
    d = _two_loop(g, memory.s, memory.y)
    gtd = float(g.dot(d))
    if not gtd < 0:  # not a descent direction: restart from steepest descent
        memory.clear()
        d = -g
        gtd = float(g.dot(d))
        if gtd == 0.0:
            return None
    t0 = min(1.0, 1.0 / float(g.abs().sum())) if not memory.s else 1.0
    flat.seen.clear()
    f_new, g_new, t, _ = _strong_wolfe(flat.line_obj, v, t0, d, f, g, gtd)
    t = float(t)
    if t == 0.0 or t not in flat.seen:
        return None  # the line search found no decrease
    v_nll, v_acc = flat.seen[t]
    s_k = d * t
    memory.add(s_k, g_new - g)
    return v + s_k, (float(f_new), g_new, v_nll, v_acc)
