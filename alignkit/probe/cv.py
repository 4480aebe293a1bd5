"""Cross-validation of probes over objects, grids, selection and protocols.

Folds are made over **objects**, exactly as the paper: ``KFold(k,
shuffle=True, random_state=42)`` on object ids ``0..n-1`` (reproduced here
without scikit-learn: a ``numpy.random.RandomState(42)`` shuffle, then
contiguous folds, the first ``n % k`` one object larger). A triplet is a
training triplet of a fold when all three objects are training objects and a
test triplet when all three are held out; mixed triplets are dropped.

Two protocols:

* ``paper``: the held-out fold is used for early stopping, for choosing the
  configuration (lowest mean test NLL) *and* for the reported score; the saved
  transform is the chosen configuration's fit on the last fold.
* ``nested`` (default): inside every outer fold, a validation split of the
  training data (a seeded fraction of the training triplets, or a fold of the
  training objects) drives early stopping and selection; the outer fold is only
  scored. The transform is then refitted on all objects with the chosen
  configuration (early stopping on a seeded validation fraction of all triplets).

Runs that diverge (NaN) or sit at the chance cross-entropy ln 3 are discarded;
a configuration with a discarded run is not eligible.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from alignkit.errors import InputError, MismatchError
from alignkit.probe._common import FitResult, ObjectiveSpec, evaluate
from alignkit.probe.estimator import (
    SolverOptions,
    _as_features,
    as_triplets,
    fit_one,
    resolve_device,
    standardization,
)
from alignkit.probe.objectives import LN3
from alignkit.probe.transform import Transform

__all__ = [
    "PAPER_LAMBDAS",
    "kfold_objects",
    "split_triplets",
    "fold_splits",
    "GridPoint",
    "RunRecord",
    "ConfigSummary",
    "CVResult",
    "cross_validate",
]

Protocol = Literal["nested", "paper"]
PAPER_LAMBDAS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
#: A run whose selection NLL is this close to ln 3 has learned nothing.
LN3_TOLERANCE = 1e-4


def kfold_objects(n_objects: int, k: int, random_state: int = 42) -> list[np.ndarray]:
    """Held-out objects of each fold, as ``KFold(k, shuffle=True, random_state)``.

    Returns:
        ``k`` int64 arrays (in the shuffled order), partitioning ``0..n-1``.
    """
    if k < 2 or k > n_objects:
        raise InputError(f"--folds must lie in 2..{n_objects} (the number of objects), got {k}")
    idx = np.arange(n_objects)
    np.random.RandomState(random_state).shuffle(idx)
    sizes = np.full(k, n_objects // k, dtype=np.int64)
    sizes[: n_objects % k] += 1
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    return [idx[bounds[f] : bounds[f + 1]] for f in range(k)]


def split_triplets(
    triplets: np.ndarray, held_out: np.ndarray, n_objects: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the pure training and pure held-out triplets.

    Args:
        triplets: (N, 3) object indices.
        held_out: the held-out objects.
        n_objects: number of objects.

    Returns:
        ``(train_rows, test_rows)``; rows mixing both sets are in neither.
    """
    out = np.zeros(n_objects, dtype=bool)
    out[held_out] = True
    k = out[triplets].sum(axis=1)
    return np.flatnonzero(k == 0), np.flatnonzero(k == 3)


def fold_splits(
    triplets: np.ndarray, n_objects: int, k: int, random_state: int = 42
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_rows, test_rows)`` of every object fold (see :func:`kfold_objects`)."""
    return [split_triplets(triplets, f, n_objects)
            for f in kfold_objects(n_objects, k, random_state)]


@dataclass(frozen=True)
class GridPoint:
    """One configuration of the grid."""

    lam: float
    lr: float
    alpha: float
    tau: float

    def label(self, objective: str, solver: str) -> str:
        """Short text for tables."""
        s = f"lambda={self.lam:g}"
        if solver == "minibatch":
            s += f" lr={self.lr:g}"
        if objective == "glocal":
            s += f" alpha={self.alpha:g} tau={self.tau:g}"
        return s


@dataclass
class RunRecord:
    """One fit of one configuration on one fold (fold -1: the refit on all objects)."""

    config: int
    fold: int
    n_train: int
    n_val: int
    n_test: int
    train_loss: float
    val_nll: float
    test_nll: float
    test_acc: float
    steps: int
    step_unit: str
    stopped_early: bool
    diverged: bool
    discarded: str | None = None


@dataclass
class ConfigSummary:
    """Cross-validated figures of one configuration (over the outer folds)."""

    config: GridPoint
    label: str
    selection_nll: float
    test_nll: float
    acc_mean: float
    acc_sd: float
    eligible: bool
    chosen: bool = False


@dataclass
class CVResult:
    """Everything a cross-validated probe fit produced.

    Attributes:
        protocol: ``nested`` or ``paper``.
        objective, solver: what was fitted and how.
        folds: k.
        summaries: one per configuration, in grid order.
        runs: every fit.
        chosen: index of the chosen configuration.
        transform: the saved transform (nested: refit on all objects; paper:
            the chosen configuration's last fold).
        probing_accuracy: mean outer-fold accuracy of the chosen configuration.
        provenance: inputs and settings.
    """

    protocol: str
    objective: str
    solver: str
    folds: int
    summaries: list[ConfigSummary]
    runs: list[RunRecord]
    chosen: int
    transform: Transform
    probing_accuracy: float
    probing_nll: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def summary(self, **extra: Any) -> dict[str, Any]:
        """The chosen configuration's figures as a flat dict (for results tables).

        Keys: ``accuracy`` (probing accuracy, mean over outer folds),
        ``accuracy_sd``, ``nll``, ``lambda``, ``lr``, ``k``, ``objective``,
        ``protocol``, ``solver``, plus ``extra`` (e.g. ``model``, ``layer``,
        ``zero_shot_accuracy``) and the provenance.
        """
        best = self.summaries[self.chosen]
        out: dict[str, Any] = {
            "accuracy": self.probing_accuracy, "accuracy_sd": best.acc_sd,
            "nll": self.probing_nll, "lambda": best.config.lam, "lr": best.config.lr,
            "k": self.folds, "objective": self.objective, "protocol": self.protocol,
            "solver": self.solver, "config": best.label,
        }
        if self.objective == "glocal":
            out.update(alpha=best.config.alpha, tau=best.config.tau)
        out.update(extra)
        out["provenance"] = self.provenance
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (no weights)."""
        return {
            "protocol": self.protocol, "objective": self.objective, "solver": self.solver,
            "folds": self.folds, "chosen": self.chosen,
            "probing_accuracy": self.probing_accuracy, "probing_nll": self.probing_nll,
            "configs": [{**asdict(s), "config": asdict(s.config)} for s in self.summaries],
            "runs": [asdict(r) for r in self.runs],
            "provenance": self.provenance,
        }


def _discard_reason(res: FitResult, nll: float) -> str | None:
    if res.diverged or not math.isfinite(nll):
        return "diverged"
    if abs(nll - LN3) < LN3_TOLERANCE:
        return "ln3"
    return None


def _inner_split(
    train_rows: np.ndarray,
    triplets: np.ndarray,
    n_objects: int,
    inner: str,
    val_fraction: float,
    k: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into (fit rows, validation rows) for the nested protocol."""
    if inner == "triplets":
        rng = np.random.default_rng(seed)
        perm = rng.permutation(train_rows)
        n_val = max(1, int(round(val_fraction * len(perm))))
        return perm[n_val:], perm[:n_val]
    # objects: hold out one fold (KFold(k, shuffle=True, 42)) of the training objects
    objs = np.unique(triplets[train_rows])
    inner_folds = kfold_objects(len(objs), k)
    held = objs[inner_folds[0]]
    fit_r, val_r = split_triplets(triplets[train_rows], held, n_objects)
    return train_rows[fit_r], train_rows[val_r]


def cross_validate(
    features: np.ndarray,
    triplets: Any,
    *,
    folds: int = 3,
    lambdas: Sequence[float] = PAPER_LAMBDAS,
    lrs: Sequence[float] = (1e-3,),
    alphas: Sequence[float] = (0.25,),
    taus: Sequence[float] = (1.0,),
    objective: str = "paper",
    protocol: str = "nested",
    solver: str = "fast",
    bias: bool = False,
    sigma: float = 1e-3,
    ref_batch: int = 1024,
    reference: np.ndarray | None = None,
    inner: str = "triplets",
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    solver_options: dict[str, Any] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    provenance: dict[str, Any] | None = None,
) -> CVResult:
    """Cross-validate a probe over objects, choose a configuration, fit the transform.

    Args:
        features: ``(n, p)`` features; row ``i`` is object ``i`` of the triplets.
        triplets: ``(N, 3)`` int array (odd one out last) or ``Triplets``.
        folds: k of the object folds.
        lambdas, lrs, alphas, taus: the grid (``lrs`` only matters for the
            mini-batch solver, ``alphas``/``taus`` only for gLocal).
        objective: ``paper`` or ``glocal``.
        protocol: ``nested`` (default) or ``paper`` (see the module doc).
        solver: ``fast`` or ``minibatch``.
        bias: learn a bias.
        sigma, ref_batch: gLocal initialisation scale and reference batch size.
        reference: gLocal reference features ``(m, p)``.
        inner: nested validation split: ``triplets`` (a ``val_fraction`` of the
            training triplets) or ``objects`` (one of ``folds`` folds of the
            training objects).
        val_fraction: see ``inner``; also the refit's early-stopping split.
        seed: seeds initialisation, shuffling and validation splits (the object
            folds always use ``random_state=42``).
        device: ``auto``, ``cpu`` or ``cuda``.
        dtype: ``float32`` or ``float64``.
        solver_options: extra :class:`SolverOptions` fields.
        progress: called with ``{"done", "total", "config", "fold"}`` after every fit.
        provenance: extra fields recorded in the result.

    Returns:
        A :class:`CVResult`.

    Raises:
        InputError: bad options, or no eligible configuration.
    """
    if protocol not in ("nested", "paper"):
        raise InputError(f"--protocol: unknown protocol {protocol!r} (nested|paper)")
    if inner not in ("triplets", "objects"):
        raise InputError(f"--inner: unknown split {inner!r} (triplets|objects)")
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"--val-fraction must lie in (0, 1), got {val_fraction}")
    if not lambdas:
        raise InputError("--lambdas: give at least one value")
    feats = _as_features(features)
    n, p = feats.shape
    t = as_triplets(triplets, n)
    opts_base = dict(solver_options or {})
    lr_grid = tuple(lrs) if solver == "minibatch" else (float(opts_base.get("lr", lrs[0])),)
    a_grid = tuple(alphas) if objective == "glocal" else (0.25,)
    tau_grid = tuple(taus) if objective == "glocal" else (1.0,)
    grid = [GridPoint(float(la), float(lr), float(a), float(tau))
            for la, lr, a, tau in itertools.product(lambdas, lr_grid, a_grid, tau_grid)]
    specs = [ObjectiveSpec(objective=objective, lam=g.lam, bias=bias, alpha=g.alpha,  # type: ignore[arg-type]
                           tau=g.tau, sigma=sigma, ref_batch=ref_batch) for g in grid]
    opts = [SolverOptions(**{**opts_base, "solver": solver, "lr": g.lr}) for g in grid]  # type: ignore[arg-type]

    mean, std = standardization(feats)
    dev = resolve_device(device)
    tdt = torch.float64 if dtype == "float64" else torch.float32
    x = torch.as_tensor((feats - mean) / std, dtype=tdt, device=dev)
    ref = None
    if objective == "glocal":
        if reference is None:
            raise InputError("--objective glocal needs reference features (--reference)")
        r = _as_features(reference, "reference features")
        if r.shape[1] != p:
            raise MismatchError(f"reference features have {r.shape[1]} columns, features {p}")
        ref = torch.as_tensor((r - mean) / std, dtype=tdt, device=dev)

    splits = fold_splits(t, n, folds)
    total = len(grid) * folds + (1 if protocol == "nested" else 0)
    done = 0
    runs: list[RunRecord] = []
    last_fold_fit: dict[int, FitResult] = {}
    for f, (train_rows, test_rows) in enumerate(splits):
        if len(train_rows) == 0 or len(test_rows) == 0:
            raise InputError(
                f"--folds {folds}: fold {f + 1} has {len(train_rows)} training and "
                f"{len(test_rows)} test triplets; too few triplets for this many folds"
            )
        if protocol == "nested":
            fit_rows, val_rows = _inner_split(train_rows, t, n, inner, val_fraction, folds,
                                              seed + 1000 * (f + 1))
        else:
            fit_rows, val_rows = train_rows, test_rows
        for c, (spec, opt) in enumerate(zip(specs, opts, strict=True)):
            res = fit_one(x, t[fit_rows], spec, opt, val=t[val_rows], reference=ref,
                          seed=seed + f)
            w = torch.as_tensor(res.weights, dtype=tdt, device=dev)
            b = None if res.bias is None else torch.as_tensor(res.bias, dtype=tdt, device=dev)
            test_nll, test_acc = evaluate(x, w, b, t[test_rows])
            val_nll = evaluate(x, w, b, t[val_rows])[0] if len(val_rows) else math.nan
            select = test_nll if protocol == "paper" else val_nll
            runs.append(RunRecord(
                config=c, fold=f, n_train=len(fit_rows), n_val=len(val_rows),
                n_test=len(test_rows), train_loss=res.train_loss, val_nll=val_nll,
                test_nll=test_nll, test_acc=test_acc, steps=res.steps,
                step_unit=res.step_unit, stopped_early=res.stopped_early,
                diverged=res.diverged, discarded=_discard_reason(res, select),
            ))
            if f == folds - 1:
                last_fold_fit[c] = res
            done += 1
            if progress is not None:
                progress({"done": done, "total": total, "config": c, "fold": f})

    summaries: list[ConfigSummary] = []
    for c, g in enumerate(grid):
        rs = [r for r in runs if r.config == c]
        sel = [r.test_nll if protocol == "paper" else r.val_nll for r in rs]
        accs = np.array([r.test_acc for r in rs])
        summaries.append(ConfigSummary(
            config=g, label=g.label(objective, solver),
            selection_nll=float(np.mean(sel)), test_nll=float(np.mean([r.test_nll for r in rs])),
            acc_mean=float(accs.mean()), acc_sd=float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            eligible=all(r.discarded is None for r in rs),
        ))
    eligible = [c for c, s in enumerate(summaries) if s.eligible]
    if not eligible:
        raise InputError(
            "every configuration diverged or stayed at chance (cross-entropy ln 3); "
            "try smaller --lambdas"
        )
    chosen = min(eligible, key=lambda c: summaries[c].selection_nll)
    summaries[chosen].chosen = True

    g = grid[chosen]
    if protocol == "nested":
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(t))
        n_val = max(1, int(round(val_fraction * len(t))))
        val_rows, fit_rows = perm[:n_val], perm[n_val:]
        final = fit_one(x, t[fit_rows], specs[chosen], opts[chosen], val=t[val_rows],
                        reference=ref, seed=seed + folds)
        runs.append(RunRecord(
            config=chosen, fold=-1, n_train=len(fit_rows), n_val=len(val_rows), n_test=0,
            train_loss=final.train_loss, val_nll=final.val_nll, test_nll=math.nan,
            test_acc=math.nan, steps=final.steps, step_unit=final.step_unit,
            stopped_early=final.stopped_early, diverged=final.diverged,
        ))
        if progress is not None:
            progress({"done": total, "total": total, "config": chosen, "fold": -1})
    else:
        final = last_fold_fit[chosen]
    s = summaries[chosen]
    attrs = {
        "protocol": protocol, "objective": objective, "solver": solver, "folds": folds,
        "inner": inner if protocol == "nested" else None,
        "val_fraction": val_fraction if protocol == "nested" else None,
        "config": asdict(g), "bias": bias, "sigma": sigma if objective == "glocal" else None,
        "seed": seed, "dtype": dtype,
        "fitted_on": "all objects (refit)" if protocol == "nested" else f"fold {folds} training objects",
        "cv_accuracy_mean": s.acc_mean, "cv_accuracy_sd": s.acc_sd, "cv_test_nll": s.test_nll,
        "cv_selection_nll": s.selection_nll, "n_triplets": int(len(t)), "n_objects": int(n),
    }
    if provenance:
        attrs["provenance"] = provenance
    transform = Transform(weights=final.weights, bias=final.bias, mean=mean, std=std, attrs=attrs)
    return CVResult(
        protocol=protocol, objective=objective, solver=solver, folds=folds,
        summaries=summaries, runs=runs, chosen=chosen, transform=transform,
        probing_accuracy=s.acc_mean, probing_nll=s.test_nll, provenance=dict(provenance or {}),
    )
