"""``LinearProbe``: a scikit-learn estimator over the two solvers.

``LinearProbe`` follows scikit-learn's estimator conventions without importing
scikit-learn: ``__init__`` only stores its arguments, ``fit`` validates them and
learns, learned state ends in ``_``, ``get_params``/``set_params`` and
``sklearn.base.clone`` work, and a probe used before ``fit`` raises
:class:`NotFittedError`. scikit-learn is imported only when it asks for the
estimator's tags or when that error is raised (so that, where scikit-learn is
installed, the error is also its ``sklearn.exceptions.NotFittedError``).
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import torch

from alignkit import validate as _validate
from alignkit._torchio import resolve_device as _resolve_device
from alignkit.errors import InputError, MismatchError
from alignkit.probe._common import FitResult, ObjectiveSpec, ProgressFn
from alignkit.probe._gram import gram_choices
from alignkit.probe.fast import fit_fast
from alignkit.probe.minibatch import fit_minibatch
from alignkit.probe.transform import Transform

__all__ = ["LinearProbe", "NotFittedError", "SolverOptions", "clone", "resolve_device", "fit_one",
           "as_triplets"]

Solver = Literal["fast", "minibatch"]


@dataclass(frozen=True)
class SolverOptions:
    """How a probe is fitted (everything but the objective).

    Attributes:
        solver: ``fast`` (full-batch L-BFGS over objects) or ``minibatch``
            (the paper's Adam loop).
        lr: Adam learning rate (mini-batch solver).
        batch_size: triplets per Adam step.
        min_epochs: epochs always run (mini-batch).
        max_epochs: most epochs (mini-batch).
        max_iter: most L-BFGS iterations (fast).
        min_iter: iterations always run (fast).
        patience: checks without improvement before early stopping.
        min_delta: smallest validation NLL decrease that counts.
        clip: gradient-norm clipping (mini-batch; None disables).
        max_steps: stop the mini-batch loop after this many steps (timing).
        backend: gather/scatter backend of the fast solver.
        data_parallel: mini-batch: batches averaged per step (the paper's
            code: 4 processes x 256 = an effective batch of 1024).
        lr_schedule: mini-batch: ``constant`` or ``linear`` (gLocal's).
        optimizer: mini-batch: ``adam`` or ``sgd`` (momentum ``momentum``).
        momentum: SGD momentum.
    """

    solver: Solver = "fast"
    lr: float = 1e-3
    batch_size: int = 256
    min_epochs: int = 10
    max_epochs: int = 100
    max_iter: int = 500
    min_iter: int = 10
    patience: int = 10
    min_delta: float = 1e-4
    clip: float | None = 1.0
    max_steps: int | None = None
    backend: str = "auto"
    data_parallel: int = 1
    lr_schedule: str = "constant"
    optimizer: str = "adam"
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.solver not in ("fast", "minibatch"):
            raise InputError(f"solver: unknown solver {self.solver!r} (fast|minibatch)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"lr: the learning rate must be finite and > 0, got {self.lr}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.patience < 1:
            raise InputError(f"patience must be >= 1, got {self.patience}")
        if self.data_parallel < 1:
            raise InputError(f"data_parallel must be >= 1, got {self.data_parallel}")
        if self.lr_schedule not in ("constant", "linear"):
            raise InputError(f"lr_schedule: unknown schedule {self.lr_schedule!r} "
                             "(constant|linear)")
        if self.optimizer not in ("adam", "sgd"):
            raise InputError(f"optimizer: unknown optimizer {self.optimizer!r} (adam|sgd)")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; refuse an unavailable cuda (errors name ``device``)."""
    return _resolve_device(device, api=True)


def as_triplets(triplets: Any, n_objects: int, where: str = "triplets") -> np.ndarray:
    """Validate a triplet array (or :class:`alignkit.data.Triplets`) as int64 (N, 3)."""
    return _validate.as_triplets(triplets, n_objects, name=where,
                                 n_what=f"the features have {n_objects} rows")


def triplets_checksum(triplets: Any) -> str:
    """The triplet loaders' sha256 (``Triplets.checksum``; of the int32 array for plain arrays)."""
    cs = getattr(triplets, "checksum", None)
    if isinstance(cs, str):
        return cs
    from alignkit.provenance import sha256_array

    return sha256_array(np.ascontiguousarray(np.asarray(getattr(triplets, "array", triplets)),
                                             dtype=np.int32))


def standardization(features: np.ndarray) -> tuple[float, float]:
    """The paper's scalar mean and (population) std of a feature matrix."""
    x = np.asarray(features, dtype=np.float64)
    mean, std = float(x.mean()), float(x.std())
    if not std > 0:
        raise InputError("features are constant: their standard deviation is 0")
    return mean, std


def fit_one(
    x: torch.Tensor,
    train: np.ndarray,
    spec: ObjectiveSpec,
    opts: SolverOptions,
    *,
    val: np.ndarray | None,
    reference: torch.Tensor | None,
    seed: int,
    progress: ProgressFn | None = None,
    stopper: Any = None,
    val_reference: torch.Tensor | None = None,
    init: list[np.ndarray] | None = None,
) -> FitResult:
    """One fit with either solver on standardised features ``x``.

    ``init``: fast solver only: starting parameters (a warm start).

    ``stopper``: a shared :class:`~alignkit.probe._common.EarlyStopper` (the
    paper protocol's state kept across folds) or None for a fresh one.
    ``val_reference``: gLocal, mini-batch: reference rows whose local loss is
    added to the validation NLL for early stopping.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if opts.solver == "fast":
        return fit_fast(x, train, spec, val=val, reference=reference, generator=gen, options=opts,
                        progress=progress, stopper=stopper, init=init)
    if init is not None:
        raise InputError("a warm start (init) needs the fast solver")
    return fit_minibatch(x, train, spec, val=val, reference=reference, generator=gen,
                         options=opts, progress=progress, stopper=stopper,
                         val_reference=val_reference)


class NotFittedError(InputError, AttributeError):
    """A probe was used before ``fit``.

    Where scikit-learn is installed, the error raised is of a subclass that also
    derives from ``sklearn.exceptions.NotFittedError``, so both
    ``except alignkit.probe.estimator.NotFittedError`` and scikit-learn's own
    class catch it (and it is a ``ValueError`` and an ``AttributeError``, as
    scikit-learn's is).
    """


@functools.cache
def _sklearn_not_fitted_class() -> type[NotFittedError]:
    """:class:`NotFittedError` joined with scikit-learn's class (or alone without scikit-learn)."""
    try:
        from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    except ImportError:
        return NotFittedError
    return type("SklearnNotFittedError", (NotFittedError, SklearnNotFittedError),
                {"__module__": __name__, "__doc__": NotFittedError.__doc__})


def __getattr__(name: str) -> Any:
    # lets the joined class pickle by reference (module.SklearnNotFittedError)
    if name == "SklearnNotFittedError" and _sklearn_not_fitted_class() is not NotFittedError:
        return _sklearn_not_fitted_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: ``LinearProbe`` parameters that are fields of :class:`SolverOptions`.
_SOLVER_FIELDS = tuple(f.name for f in fields(SolverOptions))
#: ``LinearProbe`` parameters that are fields of :class:`ObjectiveSpec`.
_SPEC_FIELDS = tuple(f.name for f in fields(ObjectiveSpec))


def _real(name: str, value: Any, *, none: bool = False) -> None:
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value!r}")


def _integer(name: str, value: Any, *, none: bool = False) -> None:
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {value!r}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not (isinstance(value, str) and value in choices):
        raise InputError(f"{name}: unknown value {value!r} ({'|'.join(choices)})")


def clone(probe: LinearProbe) -> LinearProbe:
    """An unfitted copy of ``probe`` with deep copies of its parameters.

    The same as ``sklearn.base.clone(probe)``, without scikit-learn.
    """
    params = probe.get_params(deep=False)
    return type(probe)(**{k: copy.deepcopy(v) for k, v in params.items()})


class LinearProbe:
    """A linear probe learned from odd-one-out triplets (a scikit-learn estimator).

    ``fit(X, y)`` standardises the features ``X`` (one row per object) by one
    scalar mean and std, then learns ``W`` (and ``b``) so that dot products of
    ``((x - mean) / std) @ W + b`` predict the human's most similar pair of
    every triplet in ``y`` (an ``(N, 3)`` int array of row indices into ``X``,
    the odd one out last).

    Every argument is stored as given and checked by ``fit`` (as scikit-learn
    requires), so ``get_params``, ``set_params`` and ``sklearn.base.clone``
    work and a bad value raises :class:`~alignkit.errors.InputError` naming it.

    Args:
        objective: ``paper`` or ``glocal``.
        lam: regularisation strength lambda.
        bias: learn a bias.
        solver: ``fast`` or ``minibatch``.
        alpha, tau, sigma, ref_batch, regulariser: gLocal settings (see ``ObjectiveSpec``).
        standardize_reference: gLocal: standardise the reference features
            with the features' scalar mean and std before the local term
            (default False: they enter as given, as in the published code).
        val_fraction: fraction of the triplets held out for early stopping when
            ``fit`` gets no validation triplets (0: none, fit to convergence
            with the fast solver or for ``max_epochs`` with the mini-batch one).
        seed: seeds initialisation, shuffling and the validation split.
        device: ``auto``, ``cpu`` or ``cuda``.
        dtype: ``float32`` (fast) or ``float64`` (exact checks).
        lr, batch_size, min_epochs, max_epochs, max_iter, min_iter, patience,
            min_delta, clip, max_steps, backend, data_parallel, lr_schedule,
            optimizer, momentum: solver settings (see :class:`SolverOptions`,
            whose defaults they share).

    Attributes (after ``fit``):
        weights_: ``W`` (p x p), float64.
        bias_: ``b`` (p,) float64, or None without a bias.
        mean_, std_: the scalar standardisation of the training features.
        n_features_in_: p.
        n_iter_: iterations (fast solver) or epochs (mini-batch) run.
        transform_: the fitted :class:`~alignkit.probe.transform.Transform`.
        result_: the solver's :class:`~alignkit.probe._common.FitResult`.

    Example:
        >>> probe = LinearProbe(lam=1e-3).fit(features, triplets)  # doctest: +SKIP
        >>> probe.score(features, test_triplets)  # doctest: +SKIP
    """

    def __init__(
        self,
        objective: str = "paper",
        lam: float = 1e-3,
        *,
        bias: bool = False,
        solver: str = "fast",
        alpha: float = 0.25,
        tau: float = 1.0,
        sigma: float = 1e-3,
        ref_batch: int = 1024,
        regulariser: str = "identity",
        standardize_reference: bool = False,
        val_fraction: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
        dtype: str = "float32",
        lr: float = 1e-3,
        batch_size: int = 256,
        min_epochs: int = 10,
        max_epochs: int = 100,
        max_iter: int = 500,
        min_iter: int = 10,
        patience: int = 10,
        min_delta: float = 1e-4,
        clip: float | None = 1.0,
        max_steps: int | None = None,
        backend: str = "auto",
        data_parallel: int = 1,
        lr_schedule: str = "constant",
        optimizer: str = "adam",
        momentum: float = 0.9,
    ) -> None:
        self.objective = objective
        self.lam = lam
        self.bias = bias
        self.solver = solver
        self.alpha = alpha
        self.tau = tau
        self.sigma = sigma
        self.ref_batch = ref_batch
        self.regulariser = regulariser
        self.standardize_reference = standardize_reference
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.lr = lr
        self.batch_size = batch_size
        self.min_epochs = min_epochs
        self.max_epochs = max_epochs
        self.max_iter = max_iter
        self.min_iter = min_iter
        self.patience = patience
        self.min_delta = min_delta
        self.clip = clip
        self.max_steps = max_steps
        self.backend = backend
        self.data_parallel = data_parallel
        self.lr_schedule = lr_schedule
        self.optimizer = optimizer
        self.momentum = momentum

    # -- parameters (scikit-learn's BaseEstimator protocol) --------------------------

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = []
        for p in list(sig.parameters.values())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must name every parameter (no *args/**kwargs)")
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The estimator's parameters (``deep`` is accepted; a probe holds no sub-estimators)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> LinearProbe:
        """Set parameters by name (checked by ``fit``, not here); returns self."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise InputError(f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                                 f"Valid parameters are: {valid!r}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if repr(v) != repr(sig.parameters[k].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (only scikit-learn calls this; it needs scikit-learn >= 1.6)."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=True),
                    transformer_tags=TransformerTags(), input_tags=InputTags())

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "transform_")

    def _settings(self) -> tuple[ObjectiveSpec, SolverOptions]:
        """Check every parameter (messages name the argument); the solvers' settings."""
        _choice("objective", self.objective, ("paper", "glocal"))
        _real("lam", self.lam)
        if self.lam < 0:
            raise InputError(f"lam must be >= 0, got {self.lam}")
        _real("alpha", self.alpha)
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha must lie in [0, 1], got {self.alpha}")
        _real("tau", self.tau)
        if not self.tau > 0:
            raise InputError(f"tau must be > 0, got {self.tau}")
        _real("sigma", self.sigma)
        _integer("ref_batch", self.ref_batch)
        if self.ref_batch < 2:
            raise InputError(f"ref_batch: a reference batch holds at least 2 rows, got {self.ref_batch}")
        _choice("regulariser", self.regulariser, ("identity", "l2"))
        for name in ("bias", "standardize_reference"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InputError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _real("val_fraction", self.val_fraction)
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        _integer("seed", self.seed)
        _choice("dtype", self.dtype, ("float32", "float64"))
        _choice("solver", self.solver, ("fast", "minibatch"))
        for name in ("lr", "min_delta", "momentum"):
            _real(name, getattr(self, name))
        _real("clip", self.clip, none=True)
        for name in ("batch_size", "min_epochs", "max_epochs", "max_iter", "min_iter",
                     "patience", "data_parallel"):
            _integer(name, getattr(self, name))
        _integer("max_steps", self.max_steps, none=True)
        if not isinstance(self.backend, str):
            raise InputError(f"backend must be a string, got {self.backend!r}")
        spec = ObjectiveSpec(**{f: getattr(self, f) for f in _SPEC_FIELDS})
        opts = SolverOptions(**{f: getattr(self, f) for f in _SOLVER_FIELDS})
        return spec, opts

    # -- learning ------------------------------------------------------------------------

    def _learn(
        self,
        X: Any,
        y: Any,
        *,
        val_triplets: Any = None,
        reference: Any = None,
        reference_val: Any = None,
        early_stopper: Any = None,
        progress: ProgressFn | None = None,
        require_triplets: bool = False,
        init: list[np.ndarray] | None = None,
    ) -> tuple[FitResult, float, float]:
        """Check, standardise and fit; ``(result, mean, std)``, no state set.

        ``init``: fast solver: starting parameters (cross-validation's warm starts).

        ``early_stopper``: a shared :class:`~alignkit.probe._common.EarlyStopper`
        (cross-validation keeps one across the folds of a configuration).
        """
        spec, opts = self._settings()
        feats = _as_features(X, "X")
        n, p = feats.shape
        if y is None:
            raise InputError(f"y: {type(self).__name__} requires y to be passed, but the target "
                             "y is None (give the (N, 3) triplets of row indices into X)")
        t = as_triplets(y, n, "y (triplets)")
        if require_triplets and len(t) == 0:
            raise InputError("y: no triplets to fit")
        val = None if val_triplets is None else as_triplets(val_triplets, n, "val_triplets")
        if val is None and self.val_fraction > 0 and len(t) > 1:
            rng = np.random.default_rng(self.seed)
            perm = rng.permutation(len(t))
            n_val = max(1, int(round(self.val_fraction * len(t))))
            val, t = t[perm[:n_val]], t[perm[n_val:]]
        mean, std = standardization(feats)
        dev = resolve_device(self.device)
        tdt = torch.float64 if self.dtype == "float64" else torch.float32
        x = torch.as_tensor((feats - mean) / std, dtype=tdt, device=dev)
        ref = ref_val = None
        if spec.objective == "glocal":
            if reference is None:
                raise InputError("reference: objective='glocal' needs reference features")

            def prep(a: Any, what: str) -> torch.Tensor:
                r = _as_features(a, what)
                if r.shape[1] != p:
                    raise MismatchError(f"{what}: {r.shape[1]} columns, X has {p}")
                r = (r - mean) / std if self.standardize_reference else r
                return torch.as_tensor(r, dtype=tdt, device=dev)

            ref = prep(reference, "reference")
            ref_val = ref if reference_val is None else prep(reference_val, "reference_val")
        res = fit_one(x, t, spec, opts, val=val, reference=ref, seed=int(self.seed),
                      progress=progress, stopper=early_stopper, val_reference=ref_val, init=init)
        return res, mean, std

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        val_triplets: Any = None,
        reference: Any = None,
        reference_val: Any = None,
        progress: ProgressFn | None = None,
    ) -> LinearProbe:
        """Learn the transform.

        Args:
            X: ``(n, p)`` features of the objects the triplets index.
            y: ``(N, 3)`` int array of row indices into ``X`` (odd one out
                last), or a ``Triplets``.
            val_triplets: triplets for early stopping; default: a seeded
                ``val_fraction`` of ``y``.
            reference: gLocal reference features ``(m, p)``, used as given
                (or standardised with the features' mean and std when
                ``standardize_reference``).
            reference_val: gLocal, mini-batch: reference rows whose local loss
                is added to the validation NLL for early stopping (default
                ``reference``).
            progress: per-step callback.

        Returns:
            self, with ``weights_``, ``bias_``, ``mean_``, ``std_``,
            ``n_features_in_``, ``n_iter_``, ``transform_`` and ``result_`` set.

        Raises:
            InputError: a bad parameter, features or triplets, or a diverged fit.
        """
        res, mean, std = self._learn(X, y, val_triplets=val_triplets, reference=reference,
                                        reference_val=reference_val, progress=progress,
                                        require_triplets=True)
        for name, v in (("weights", res.weights), ("bias", res.bias)):
            if v is not None and not np.isfinite(v).all():
                raise InputError(f"the fit diverged: the {name} are not finite "
                                 f"(lam={self.lam}, lr={self.lr}); try a smaller lr or a larger lam")
        transform = Transform(
            weights=res.weights, bias=res.bias, mean=mean, std=std,
            attrs={"estimator": self.get_params(), "train_loss": res.train_loss,
                   "val_nll": res.val_nll, "steps": res.steps, "step_unit": res.step_unit,
                   "diverged": res.diverged, "train_triplets_checksum": triplets_checksum(y)},
        )
        self.weights_ = transform.weights
        self.bias_ = transform.bias
        self.mean_ = mean
        self.std_ = std
        self.n_features_in_ = int(transform.p)
        self.n_iter_ = int(res.steps)
        self.result_ = res
        self.transform_ = transform
        return self

    # -- using a fitted probe -------------------------------------------------------------

    def _fitted_features(self, X: Any) -> np.ndarray:
        if not self.__sklearn_is_fitted__():
            raise _sklearn_not_fitted_class()(
                f"This {type(self).__name__} instance is not fitted yet: call fit first")
        x = _as_features(X, "X")
        if x.shape[1] != self.n_features_in_:
            raise MismatchError(f"X has {x.shape[1]} features, but {type(self).__name__} is "
                                f"expecting {self.n_features_in_} features as input")
        return x

    def transform(self, X: Any) -> np.ndarray:
        """``((x - mean) / std) @ W + b`` for every row (float64)."""
        x = self._fitted_features(X)
        return self.transform_.apply(x)

    def fit_transform(self, X: Any, y: Any, **fit_params: Any) -> np.ndarray:
        """``fit(X, y, **fit_params)``, then ``transform(X)``."""
        return self.fit(X, y, **fit_params).transform(X)

    def predict(self, X: Any, triplets: Any, ties: str = "paper") -> np.ndarray:
        """The probe's odd-one-out choices on ``X``'s objects.

        Args:
            X: ``(n, p)`` raw features (the transform standardises them).
            triplets: ``(N, 3)`` object indices into ``X``'s rows.
            ties: ``paper`` (the paper's code: only a three-way tie gives -1), ``first`` or
                ``any-tie-wrong``.

        Returns:
            int8 (N,): position 0, 1 or 2 of the odd one out in each row, -1 for a tie.
        """
        return self._choices(X, triplets, ties)

    def score(self, X: Any, y: Any, ties: str = "paper") -> float:
        """Odd-one-out accuracy on the triplets ``y`` against the human choice (last column)."""
        choices = self._choices(X, y, ties)
        return float(np.mean(choices == 2)) if len(choices) else math.nan

    def _choices(self, X: Any, triplets: Any, ties: str) -> np.ndarray:
        z = torch.from_numpy(self.transform(X))
        t = as_triplets(triplets, z.shape[0])
        return gram_choices(z @ z.T, t, ties)


def _as_features(features: Any, where: str = "features") -> np.ndarray:
    """Validate a real ``(n, p)`` feature matrix (n, p >= 1, finite) as float64."""
    return _validate.as_features(features, name=where, dtype=np.float64, min_rows=1,
                                 min_cols=1, objects=True, reshape_hint=True)
