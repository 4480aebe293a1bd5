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

The grid spans lambda (and, for gLocal, alpha and tau; for the mini-batch
solver, the learning rate) **and** k: every configuration is cross-validated
with every k of ``folds`` and the (configuration, k) with the lowest mean
cross-validated cross-entropy wins.

Discarding (the published rules, counted in ``CVResult.discarded``):

* ``paper``: a (configuration, k) whose mean test cross-entropy is NaN or
  infinite, equals ln 3 exactly (in float32), or whose mean accuracy is exactly
  1.0 is discarded.
* ``nested``: a run whose validation cross-entropy is not finite or lies within
  ``LN3_TOLERANCE`` of ln 3 is discarded, and so is every (configuration, k)
  with a discarded run. (A perfect score is not discarded here: on noise-free
  data it is the right answer; the published rule targets noisy human data.)

Under ``paper`` the early-stopping state is by default shared by the folds of
one (configuration, k) and never reset, as in the published code
(``early_stopping="shared"``), and the mini-batch solver averages 4 batches per
step (``data_parallel=4``: the published code's 4 data-parallel processes).

The grid search is over probes: every configuration is a clone of one base
:class:`~alignkit.probe.estimator.LinearProbe` with its grid values set
(``clone(base).set_params(lam=..., lr=..., alpha=..., tau=...)``), and every
fit is a fresh clone of it with the fold's seed. The folds' fits keep their
solver result even when it diverged (it is then counted and discarded, where
``LinearProbe.fit`` would refuse it).

Every result carries the zero-shot accuracy of the (standardised) features on
exactly the same held-out folds, with the same dot-product similarity and
accuracy rule, and the sha256 of the training triplets.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch

from alignkit._options import options_from
from alignkit.errors import InputError, MismatchError
from alignkit.probe._common import ACCURACY_RULES, EarlyStopper, FitResult, evaluate
from alignkit.probe.estimator import (
    LinearProbe,
    SolverOptions,
    _as_features,
    as_triplets,
    clone,
    resolve_device,
    standardization,
    triplets_checksum,
)
from alignkit.probe.objectives import LN3
from alignkit.probe.transform import Transform
from alignkit.score._folds import kfold_objects, split_triplets

__all__ = [
    "PAPER_LAMBDAS",
    "PAPER_FOLDS",
    "kfold_objects",
    "split_triplets",
    "fold_splits",
    "GridPoint",
    "RunRecord",
    "ConfigSummary",
    "CVOptions",
    "CVResult",
    "cross_validate",
]

Protocol = Literal["nested", "paper"]
PAPER_LAMBDAS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
#: The k of the published grid.
PAPER_FOLDS = (3, 4)
#: A run whose selection NLL is this close to ln 3 has learned nothing.
LN3_TOLERANCE = 1e-4


def fold_splits(
    triplets: np.ndarray, n_objects: int, k: int, random_state: int = 42
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_rows, test_rows)`` of every object fold (see :func:`kfold_objects`)."""
    return [split_triplets(triplets, f, n_objects)
            for f in kfold_objects(n_objects, k, random_state)]


@dataclass(frozen=True)
class GridPoint:
    """One configuration of the grid (k included)."""

    lam: float
    lr: float
    alpha: float
    tau: float
    k: int = 3

    def label(self, objective: str, solver: str, with_k: bool = False) -> str:
        """Short text for tables."""
        s = f"lambda={self.lam:g}"
        if solver == "minibatch":
            s += f" lr={self.lr:g}"
        if objective == "glocal":
            s += f" alpha={self.alpha:g} tau={self.tau:g}"
        if with_k:
            s += f" k={self.k}"
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
    zero_shot_acc: float = math.nan
    k: int = 0


@dataclass
class ConfigSummary:
    """Cross-validated figures of one (configuration, k) (over the outer folds)."""

    config: GridPoint
    label: str
    selection_nll: float
    test_nll: float
    acc_mean: float
    acc_sd: float
    eligible: bool
    chosen: bool = False
    zero_shot_acc: float = math.nan
    discarded: str | None = None


@dataclass
class CVResult:
    """Everything a cross-validated probe fit produced.

    Attributes:
        protocol: ``nested`` or ``paper``.
        objective, solver: what was fitted and how.
        folds: the chosen k.
        summaries: one per (configuration, k), in grid order.
        runs: every fit.
        chosen: index of the chosen (configuration, k).
        transform: the saved transform (nested: refit on all objects; paper:
            the chosen configuration's last fold).
        probing_accuracy: mean outer-fold accuracy of the chosen configuration.
        probing_nll: its mean outer-fold cross-entropy.
        zero_shot_accuracy: the standardised features' own accuracy (dot
            products, the same accuracy rule) on exactly the chosen k's outer
            test folds, mean over folds.
        accuracy_rule: ``argmax`` or ``paper``.
        discarded: how many (configuration, k) were discarded, by reason
            (``nan``, ``ln3``, ``accuracy=1``).
        train_triplets_checksum: sha256 of the triplets the probe was trained on.
        folds_grid: the k searched.
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
    zero_shot_accuracy: float = math.nan
    accuracy_rule: str = "argmax"
    discarded: dict[str, int] = field(default_factory=dict)
    train_triplets_checksum: str = ""
    folds_grid: tuple[int, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self, **extra: Any) -> dict[str, Any]:
        """The chosen configuration's figures as a flat dict (for results tables).

        Keys: ``accuracy`` (probing accuracy, mean over outer folds),
        ``accuracy_sd``, ``zero_shot_accuracy`` (the features' own accuracy on
        the same outer folds), ``accuracy_rule``, ``nll``, ``lambda``, ``lr``,
        ``k``, ``folds_grid``, ``objective``, ``protocol``, ``solver``,
        ``n_discarded`` and ``discarded`` (by reason), ``train_triplets_checksum``,
        the solver settings that change numbers (``settings``), plus ``extra``
        (e.g. ``model``, ``layer``) and the provenance.
        """
        best = self.summaries[self.chosen]
        out: dict[str, Any] = {
            "accuracy": self.probing_accuracy, "accuracy_sd": best.acc_sd,
            "zero_shot_accuracy": self.zero_shot_accuracy, "accuracy_rule": self.accuracy_rule,
            "nll": self.probing_nll, "lambda": best.config.lam, "lr": best.config.lr,
            "k": self.folds, "folds_grid": list(self.folds_grid), "objective": self.objective,
            "protocol": self.protocol, "solver": self.solver, "config": best.label,
            "n_discarded": int(sum(self.discarded.values())), "discarded": dict(self.discarded),
            "train_triplets_checksum": self.train_triplets_checksum,
            "settings": dict(self.settings),
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
            "folds": self.folds, "folds_grid": list(self.folds_grid), "chosen": self.chosen,
            "probing_accuracy": self.probing_accuracy, "probing_nll": self.probing_nll,
            "zero_shot_accuracy": self.zero_shot_accuracy, "accuracy_rule": self.accuracy_rule,
            "discarded": dict(self.discarded),
            "train_triplets_checksum": self.train_triplets_checksum,
            "settings": dict(self.settings),
            "configs": [{**asdict(s), "config": asdict(s.config)} for s in self.summaries],
            "runs": [asdict(r) for r in self.runs],
            "provenance": self.provenance,
        }


def _run_discard_reason(res: FitResult, nll: float) -> str | None:
    """The nested protocol's per-run rule (on the validation split)."""
    if res.diverged or not math.isfinite(nll):
        return "nan"
    if abs(nll - LN3) < LN3_TOLERANCE:
        return "ln3"
    return None


def _paper_discard_reason(mean_nll: float, mean_acc: float) -> str | None:
    """The published rule on a (configuration, k)'s cross-validated means."""
    if not math.isfinite(mean_nll):
        return "nan"
    if np.float32(mean_nll) == np.float32(LN3):
        return "ln3"
    if mean_acc == 1.0:
        return "accuracy=1"
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


def _as_folds(folds: int | Sequence[int] | None, protocol: str) -> tuple[int, ...]:
    if folds is None:
        return PAPER_FOLDS if protocol == "paper" else (3,)
    ks = (int(folds),) if isinstance(folds, (int, np.integer)) else tuple(int(k) for k in folds)
    if not ks or len(set(ks)) != len(ks):
        raise InputError(f"--folds: give distinct values of k, got {folds!r}")
    return ks


@dataclass(frozen=True)
class CVOptions:
    """How :func:`cross_validate` searches, fits and selects (everything but the data).

    The options are checked once, when the dataclass is made; the defaults that
    depend on the protocol or objective are resolved by the properties
    (``fold_grid``, ``stopping``, ``solver_fields``), so that
    ``dataclasses.replace`` of a field re-derives them.

    Attributes:
        folds: k of the object folds, one or several (searched in the same grid
            as lambda); default ``(3, 4)`` under ``paper`` (the published grid),
            ``3`` under ``nested``.
        lambdas, lrs, alphas, taus: the grid (``lrs`` only matters for the
            mini-batch solver, ``alphas``/``taus`` only for gLocal).
        objective: ``paper`` or ``glocal``.
        protocol: ``nested`` (default) or ``paper`` (see the module doc).
        solver: ``fast`` or ``minibatch``.
        bias: learn a bias.
        sigma, ref_batch, regulariser: gLocal initialisation scale, reference
            batch size, penalty (``identity`` or ``l2``).
        standardize_reference: standardise the reference features with the
            features' scalar mean and std (this package's earlier behaviour).
        inner: nested validation split: ``triplets`` (a ``val_fraction`` of the
            training triplets) or ``objects`` (one of k folds of the training
            objects).
        val_fraction: see ``inner``; also the refit's early-stopping split.
        accuracy_rule: ``argmax`` (default; the human pair's similarity must be
            strictly largest) or ``paper`` (the published float32 softmax rule).
        early_stopping: ``shared`` (one state for all folds of a configuration,
            never reset: the published code) or ``per-fold``; default
            ``shared`` under ``paper``, ``per-fold`` under ``nested``.
        seed: seeds initialisation, shuffling and validation splits (the object
            folds always use ``random_state=42``).
        device: ``auto``, ``cpu`` or ``cuda``.
        dtype: ``float32`` or ``float64``.
        warm_start: ``none`` (default: every fit starts from the objective's
            initialisation, the paper's ``N(0, 1e-3^2)``) or ``lambda``. Not the
            default because, with early stopping, a warm fit can stop near its
            starting point: on the benchmark's small grid it used 2.3x fewer
            L-BFGS iterations but reached a worse validation NLL for lambda =
            1e-2 (0.8257 against 0.8181) and changed the chosen k. With
            ``lambda``, the configurations are fitted from the largest lambda
            down, and every fit but the largest lambda's starts L-BFGS from the
            solution of the next larger lambda **on the same outer fold and the
            same fit/validation split** (same k, learning rate, alpha and tau):
            the same training triplets, so no held-out object of the fold is
            seen. Fits are never warm-started across folds (every other fold's
            training objects include this fold's held-out ones), nor is the
            nested refit on all objects; a fit that diverged, was discarded
            or shrank W below the initialisation's size (W = 0 is a saddle
            point of the NLL) is not used, and the next lambda starts from the
            objective's initialisation. Only the starting point changes: the
            objective, early stopping and selection are the same; the result
            records the setting (``settings["warm_start"]``).
        solver_options: extra :class:`SolverOptions` fields. Defaults that
            differ by protocol/objective unless given here: ``data_parallel``
            4 under ``paper`` with the mini-batch solver; ``patience`` 15,
            ``min_epochs``/``min_iter`` 20 and ``lr_schedule`` ``linear`` for gLocal.

    Raises:
        InputError: an unknown protocol, split, accuracy rule or early-stopping
            mode, a bad validation fraction, no lambda, repeated k, or an
            unknown solver option.
    """

    folds: int | Sequence[int] | None = None
    lambdas: Sequence[float] = PAPER_LAMBDAS
    lrs: Sequence[float] = (1e-3,)
    alphas: Sequence[float] = (0.25,)
    taus: Sequence[float] = (1.0,)
    objective: str = "paper"
    protocol: str = "nested"
    solver: str = "fast"
    bias: bool = False
    sigma: float = 1e-3
    ref_batch: int = 1024
    standardize_reference: bool = False
    regulariser: str = "identity"
    inner: str = "triplets"
    val_fraction: float = 0.1
    accuracy_rule: str = "argmax"
    early_stopping: str | None = None
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    solver_options: dict[str, Any] | None = None
    warm_start: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("nested", "paper"):
            raise InputError(f"--protocol: unknown protocol {self.protocol!r} (nested|paper)")
        if self.inner not in ("triplets", "objects"):
            raise InputError(f"--inner: unknown split {self.inner!r} (triplets|objects)")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"--val-fraction must lie in (0, 1), got {self.val_fraction}")
        if not self.lambdas:
            raise InputError("--lambdas: give at least one value")
        if self.accuracy_rule not in ACCURACY_RULES:
            raise InputError(f"--accuracy-rule: unknown rule {self.accuracy_rule!r} (argmax|paper)")
        if self.stopping not in ("shared", "per-fold"):
            raise InputError(f"--early-stopping: unknown mode {self.early_stopping!r} "
                             "(shared|per-fold)")
        _ = self.fold_grid
        if self.warm_start not in (None, "none", "lambda"):
            raise InputError(f"--warm-start: unknown mode {self.warm_start!r} (none|lambda)")
        if self.warm_start == "lambda" and self.solver != "fast":
            raise InputError("--warm-start lambda needs --solver fast")
        unknown = sorted(set(self.solver_options or {}) - {f.name for f in fields(SolverOptions)})
        if unknown:
            raise InputError(f"solver_options: unknown option(s) {', '.join(unknown)} "
                             f"(the fields of SolverOptions)")

    @property
    def fold_grid(self) -> tuple[int, ...]:
        """The k searched (``folds`` with its protocol default)."""
        return _as_folds(self.folds, self.protocol)

    @property
    def stopping(self) -> str:
        """``early_stopping`` with its protocol default."""
        if self.early_stopping is None:
            return "shared" if self.protocol == "paper" else "per-fold"
        return self.early_stopping

    @property
    def warm(self) -> str:
        """``warm_start`` with its default (``none``)."""
        return "none" if self.warm_start is None else self.warm_start

    @property
    def solver_fields(self) -> dict[str, Any]:
        """``solver_options`` with the protocol's and objective's defaults filled in."""
        out = dict(self.solver_options or {})
        if self.protocol == "paper" and self.solver == "minibatch":
            out.setdefault("data_parallel", 4)
        if self.objective == "glocal":
            out.setdefault("patience", 15)
            out.setdefault("min_epochs", 20)
            out.setdefault("min_iter", 20)
            if self.solver == "minibatch":
                out.setdefault("lr_schedule", "linear")
        return out

    def grid(self) -> list[GridPoint]:
        """Every (configuration, k), k outermost."""
        sf = self.solver_fields
        lr_grid = tuple(self.lrs) if self.solver == "minibatch" else (float(sf.get("lr", self.lrs[0])),)
        a_grid = tuple(self.alphas) if self.objective == "glocal" else (0.25,)
        tau_grid = tuple(self.taus) if self.objective == "glocal" else (1.0,)
        return [GridPoint(float(la), float(lr), float(a), float(tau), k)
                for k in self.fold_grid
                for la, lr, a, tau in itertools.product(self.lambdas, lr_grid, a_grid, tau_grid)]

    def base_probe(self) -> LinearProbe:
        """The unfitted probe every configuration is cloned from."""
        base = LinearProbe(self.objective, bias=self.bias, sigma=self.sigma,
                           ref_batch=self.ref_batch, regulariser=self.regulariser,
                           standardize_reference=self.standardize_reference,
                           val_fraction=self.val_fraction, seed=self.seed, device=self.device,
                           dtype=self.dtype)
        return base.set_params(**self.solver_fields).set_params(solver=self.solver)


@dataclass
class _CVData:
    """The standardised features and triplets, and the grid's probes, shared by every fit."""

    opts: CVOptions
    feats: np.ndarray
    t: np.ndarray
    x: torch.Tensor
    mean: float
    std: float
    grid: list[GridPoint]
    probes: list[LinearProbe]
    solver_opts: list[SolverOptions]
    reference: np.ndarray | None
    reference_val: np.ndarray | None

    @property
    def n(self) -> int:
        return int(self.feats.shape[0])

    def fit(self, c: int, rows: np.ndarray, val_rows: np.ndarray, fit_seed: int,
            stopper: EarlyStopper | None = None, init: FitResult | None = None) -> FitResult:
        """Configuration ``c`` fitted (a fresh clone) on ``t[rows]``, stopping on ``t[val_rows]``.

        ``init``: a fit whose parameters are the starting point (a warm start).
        """
        probe = clone(self.probes[c]).set_params(seed=fit_seed)
        start = None
        if init is not None:
            start = [init.weights] if init.bias is None else [init.weights, init.bias]
        return probe._learn(self.feats, self.t[rows], val_triplets=self.t[val_rows],
                            reference=self.reference, reference_val=self.reference_val,
                            early_stopper=stopper, init=start)[0]

    def evaluate(self, res: FitResult, rows: np.ndarray) -> tuple[float, float]:
        """``(nll, accuracy)`` of a fit on ``t[rows]``."""
        w = torch.as_tensor(res.weights, dtype=self.x.dtype, device=self.x.device)
        b = None if res.bias is None else torch.as_tensor(res.bias, dtype=self.x.dtype,
                                                           device=self.x.device)
        return evaluate(self.x, w, b, self.t[rows], self.opts.accuracy_rule)


def _prepare(features: Any, triplets: Any, opts: CVOptions, reference: Any,
             reference_val: Any) -> _CVData:
    """Check the data, build every configuration's probe (all checked before any fit)."""
    feats = _as_features(features)
    n, p = feats.shape
    t = as_triplets(triplets, n)
    grid = opts.grid()
    base = opts.base_probe()
    probes = [clone(base).set_params(lam=g.lam, lr=g.lr, alpha=g.alpha, tau=g.tau) for g in grid]
    solver_opts = [pr._settings()[1] for pr in probes]  # checks every configuration before any fit
    mean, std = standardization(feats)
    dev = resolve_device(opts.device)
    tdt = torch.float64 if opts.dtype == "float64" else torch.float32
    x = torch.as_tensor((feats - mean) / std, dtype=tdt, device=dev)
    if opts.objective == "glocal":
        if reference is None:
            raise InputError("--objective glocal needs reference features (--reference)")
        for a, what in ((reference, "reference features"),
                        (reference_val, "validation reference features")):
            width = p if a is None else _as_features(a, what).shape[1]
            if width != p:
                raise MismatchError(f"{what} have {width} columns, features {p}")
    else:
        reference = reference_val = None
    return _CVData(opts=opts, feats=feats, t=t, x=x, mean=mean, std=std, grid=grid,
                   probes=probes, solver_opts=solver_opts, reference=reference,
                   reference_val=reference_val)


def _outer_splits(t: np.ndarray, n: int,
                  ks: tuple[int, ...]) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """The object folds of every k; each must hold training and test triplets."""
    splits = {k: fold_splits(t, n, k) for k in ks}
    for k, sp in splits.items():
        for f, (train_rows, test_rows) in enumerate(sp):
            if len(train_rows) == 0 or len(test_rows) == 0:
                raise InputError(
                    f"--folds {k}: fold {f + 1} has {len(train_rows)} training and "
                    f"{len(test_rows)} test triplets; too few triplets for this many folds"
                )
    return splits


def _fold_run(d: _CVData, c: int, f: int, k: int, rows: tuple[np.ndarray, np.ndarray],
              stopper: EarlyStopper | None, zero_acc: float,
              init: FitResult | None = None) -> tuple[RunRecord, FitResult]:
    """Configuration ``c`` fitted on outer fold ``f`` of ``k`` and scored on its held-out part."""
    o = d.opts
    train_rows, test_rows = rows
    if o.protocol == "nested":
        fit_rows, val_rows = _inner_split(train_rows, d.t, d.n, o.inner, o.val_fraction, k,
                                          o.seed + 1000 * (f + 1))
    else:
        fit_rows, val_rows = train_rows, test_rows
    res = d.fit(c, fit_rows, val_rows, o.seed + f, stopper, init)
    test_nll, test_acc = d.evaluate(res, test_rows)
    if o.protocol == "nested":
        val_nll = d.evaluate(res, val_rows)[0]
        reason = _run_discard_reason(res, val_nll)
    else:
        val_nll, reason = test_nll, None
    run = RunRecord(
        config=c, fold=f, n_train=len(fit_rows), n_val=len(val_rows),
        n_test=len(test_rows), train_loss=res.train_loss, val_nll=val_nll,
        test_nll=test_nll, test_acc=test_acc, steps=res.steps,
        step_unit=res.step_unit, stopped_early=res.stopped_early,
        diverged=res.diverged, discarded=reason, zero_shot_acc=zero_acc, k=k,
    )
    return run, res


def _init_scale(o: CVOptions, res: FitResult) -> bool:
    """Whether ``res.weights`` are at least as large (Frobenius) as the initialisation's."""
    p = res.weights.shape[0]
    # paper: N(0, 1e-3^2) entries, norm about 1e-3 p; gLocal: sigma I, norm sigma sqrt(p)
    size = 1e-3 * p if o.objective == "paper" else o.sigma * math.sqrt(p)
    return bool(np.linalg.norm(res.weights) >= size)


def _grid_order(d: _CVData) -> list[int]:
    """The order the configurations are fitted in: as given, or down each lambda path."""
    if d.opts.warm != "lambda":
        return list(range(len(d.grid)))
    return sorted(range(len(d.grid)), key=lambda c: (
        d.grid[c].k, d.grid[c].lr, d.grid[c].alpha, d.grid[c].tau, -d.grid[c].lam, c))


def _run_grid(d: _CVData, splits: dict[int, list[tuple[np.ndarray, np.ndarray]]],
              zero: dict[int, list[float]], total: int,
              progress: Callable[[dict[str, Any]], None] | None,
              ) -> tuple[list[RunRecord], dict[int, FitResult]]:
    """Every configuration on every outer fold of its k; the runs and each one's last-fold fit.

    With ``warm_start="lambda"``, a fit starts from the previous (next larger)
    lambda's fit on the same fold (see :class:`CVOptions`); the runs are
    returned in grid order either way.
    """
    o = d.opts
    done = 0
    runs: list[RunRecord] = []
    last_fold_fit: dict[int, FitResult] = {}
    path: dict[tuple[Any, ...], FitResult] = {}  # (k, lr, alpha, tau, fold) -> last fit
    for c in _grid_order(d):
        g, opt = d.grid[c], d.solver_opts[c]
        shared = (EarlyStopper(opt.patience, opt.min_delta,
                               opt.min_epochs if o.solver == "minibatch" else opt.min_iter)
                  if o.stopping == "shared" else None)
        for f, rows in enumerate(splits[g.k]):
            key = (g.k, g.lr, g.alpha, g.tau, f)
            init = path.get(key) if o.warm == "lambda" else None
            run, res = _fold_run(d, c, f, g.k, rows, shared, zero[g.k][f], init)
            if o.warm == "lambda":
                # a fit that diverged, was discarded, or shrank W below the size of
                # the initialisation (W = 0 is a saddle point of the NLL) is no
                # starting point: the next lambda then starts from the initialisation
                if run.discarded is None and not res.diverged and _init_scale(o, res):
                    path[key] = res
                else:
                    path.pop(key, None)
            runs.append(run)
            if f == g.k - 1:
                last_fold_fit[c] = res
            done += 1
            if progress is not None:
                progress({"done": done, "total": total, "config": c, "fold": f})
    runs.sort(key=lambda r: (r.config, r.fold))
    return runs, last_fold_fit


def _summarise(d: _CVData, runs: list[RunRecord],
               zero: dict[int, list[float]]) -> tuple[list[ConfigSummary], dict[str, int]]:
    """Cross-validated figures of every (configuration, k), and the discards by reason."""
    o = d.opts
    summaries: list[ConfigSummary] = []
    discarded: dict[str, int] = {}
    many_k = len(o.fold_grid) > 1
    for c, g in enumerate(d.grid):
        rs = [r for r in runs if r.config == c]
        sel = [r.test_nll if o.protocol == "paper" else r.val_nll for r in rs]
        accs = np.array([r.test_acc for r in rs])
        test_nll = float(np.mean([r.test_nll for r in rs]))
        if o.protocol == "paper":
            reason = _paper_discard_reason(test_nll, float(accs.mean()))
        else:
            reason = next((r.discarded for r in rs if r.discarded is not None), None)
        if reason is not None:
            discarded[reason] = discarded.get(reason, 0) + 1
        summaries.append(ConfigSummary(
            config=g, label=g.label(o.objective, o.solver, with_k=many_k),
            selection_nll=float(np.mean(sel)), test_nll=test_nll,
            acc_mean=float(accs.mean()), acc_sd=float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            eligible=reason is None, zero_shot_acc=float(np.mean(zero[g.k])), discarded=reason,
        ))
    return summaries, discarded


def _choose(summaries: list[ConfigSummary], discarded: dict[str, int]) -> int:
    """The eligible (configuration, k) of lowest selection NLL, marked chosen."""
    eligible = [c for c, s in enumerate(summaries) if s.eligible]
    if not eligible:
        raise InputError(
            "every configuration was discarded (" + ", ".join(
                f"{v} {k}" for k, v in sorted(discarded.items()))
            + "; nan: diverged, ln3: stayed at chance cross-entropy ln 3, accuracy=1: "
            "a perfect score); try smaller --lambdas"
        )
    chosen = min(eligible, key=lambda c: summaries[c].selection_nll)
    summaries[chosen].chosen = True
    return chosen


def _refit(d: _CVData, chosen: int) -> tuple[FitResult, RunRecord]:
    """Nested: the chosen configuration refitted on all objects (stopping on a seeded fraction)."""
    o, t, g = d.opts, d.t, d.grid[chosen]
    rng = np.random.default_rng(o.seed)
    perm = rng.permutation(len(t))
    n_val = max(1, int(round(o.val_fraction * len(t))))
    val_rows, fit_rows = perm[:n_val], perm[n_val:]
    final = d.fit(chosen, fit_rows, val_rows, o.seed + g.k)
    run = RunRecord(
        config=chosen, fold=-1, n_train=len(fit_rows), n_val=len(val_rows), n_test=0,
        train_loss=final.train_loss, val_nll=final.val_nll, test_nll=math.nan,
        test_acc=math.nan, steps=final.steps, step_unit=final.step_unit,
        stopped_early=final.stopped_early, diverged=final.diverged, k=g.k,
    )
    return final, run


def _solver_settings(opts: CVOptions, o: SolverOptions) -> dict[str, Any]:
    """The solver settings that change numbers, as recorded."""
    settings: dict[str, Any] = {
        "early_stopping": opts.stopping, "patience": o.patience, "min_delta": o.min_delta,
        "accuracy_rule": opts.accuracy_rule, "warm_start": opts.warm,
    }
    if opts.solver == "minibatch":
        settings.update(batch_size=o.batch_size, data_parallel=o.data_parallel,
                        effective_batch=o.batch_size * o.data_parallel,
                        min_epochs=o.min_epochs, max_epochs=o.max_epochs,
                        lr_schedule=o.lr_schedule, optimizer=o.optimizer)
    else:
        settings.update(min_iter=o.min_iter, max_iter=o.max_iter)
    if opts.objective == "glocal":
        settings.update(regulariser=opts.regulariser,
                        standardize_reference=opts.standardize_reference)
    return settings


def _transform_attrs(d: _CVData, s: ConfigSummary, settings: dict[str, Any],
                     discarded: dict[str, int], checksum: str) -> dict[str, Any]:
    """The saved transform's attributes: protocol, chosen configuration, CV figures, inputs."""
    o, g = d.opts, s.config
    nested = o.protocol == "nested"
    return {
        "protocol": o.protocol, "objective": o.objective, "solver": o.solver, "folds": g.k,
        "folds_grid": list(o.fold_grid),
        "inner": o.inner if nested else None,
        "val_fraction": o.val_fraction if nested else None,
        "config": asdict(g), "bias": o.bias, "sigma": o.sigma if o.objective == "glocal" else None,
        "seed": o.seed, "dtype": o.dtype, "settings": settings,
        "fitted_on": "all objects (refit)" if nested else f"fold {g.k} training objects",
        "cv_accuracy_mean": s.acc_mean, "cv_accuracy_sd": s.acc_sd, "cv_test_nll": s.test_nll,
        "cv_selection_nll": s.selection_nll, "cv_zero_shot_accuracy": s.zero_shot_acc,
        "accuracy_rule": o.accuracy_rule, "discarded": dict(discarded),
        "n_triplets": int(len(d.t)), "n_objects": d.n,
        "train_triplets_checksum": checksum,
    }


def cross_validate(
    features: np.ndarray,
    triplets: Any,
    *,
    options: CVOptions | None = None,
    reference: np.ndarray | None = None,
    reference_val: np.ndarray | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    provenance: dict[str, Any] | None = None,
    **kwargs: Any,
) -> CVResult:
    """Cross-validate a probe over objects, choose a configuration and k, fit the transform.

    Args:
        features: ``(n, p)`` features; row ``i`` is object ``i`` of the triplets.
        triplets: ``(N, 3)`` int array (odd one out last) or ``Triplets``.
        options: a :class:`CVOptions` (grid, protocol, solver, seed, ...).
        reference: gLocal reference features ``(m, p)``; used as given (as in
            the published code) unless ``standardize_reference``.
        reference_val: gLocal, mini-batch: reference rows for the validation
            check (early stopping on validation NLL + local loss); default
            ``reference``.
        progress: called with ``{"done", "total", "config", "fold"}`` after every fit.
        provenance: extra fields recorded in the result.
        **kwargs: fields of :class:`CVOptions` (``folds=``, ``lambdas=``,
            ``protocol=``, ...), replacing those of ``options``.

    Returns:
        A :class:`CVResult`.

    Raises:
        InputError: bad options, or no eligible configuration.
    """
    opts = options_from(CVOptions, options, kwargs, "cross_validate")
    d = _prepare(features, triplets, opts, reference, reference_val)
    checksum = triplets_checksum(triplets)
    splits = _outer_splits(d.t, d.n, opts.fold_grid)
    # zero-shot accuracy of the standardised features on every outer test fold
    zero = {k: [evaluate(d.x, None, None, d.t[te], opts.accuracy_rule)[1] for _, te in sp]
            for k, sp in splits.items()}
    nested = opts.protocol == "nested"
    total = sum(len(sp) for sp in splits.values()) * len(d.grid) // len(splits) + int(nested)
    runs, last_fold_fit = _run_grid(d, splits, zero, total, progress)
    summaries, discarded = _summarise(d, runs, zero)
    chosen = _choose(summaries, discarded)
    if nested:
        final, run = _refit(d, chosen)
        runs.append(run)
        if progress is not None:
            progress({"done": total, "total": total, "config": chosen, "fold": -1})
    else:
        final = last_fold_fit[chosen]
    s = summaries[chosen]
    settings = _solver_settings(opts, d.solver_opts[chosen])
    attrs = _transform_attrs(d, s, settings, discarded, checksum)
    if provenance:
        attrs["provenance"] = provenance
    transform = Transform(weights=final.weights, bias=final.bias, mean=d.mean, std=d.std,
                          attrs=attrs)
    return CVResult(
        protocol=opts.protocol, objective=opts.objective, solver=opts.solver, folds=s.config.k,
        summaries=summaries, runs=runs, chosen=chosen, transform=transform,
        probing_accuracy=s.acc_mean, probing_nll=s.test_nll, provenance=dict(provenance or {}),
        zero_shot_accuracy=s.zero_shot_acc, accuracy_rule=opts.accuracy_rule,
        discarded=discarded, train_triplets_checksum=checksum, folds_grid=opts.fold_grid,
        settings=settings,
    )
