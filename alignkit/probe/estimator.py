"""``LinearProbe``: a small sklearn-style estimator over the two solvers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from alignkit.errors import DeviceError, InputError, MismatchError
from alignkit.probe._common import FitResult, ObjectiveSpec, ProgressFn
from alignkit.probe._gram import gram_choices
from alignkit.probe.fast import fit_fast
from alignkit.probe.minibatch import fit_minibatch
from alignkit.probe.transform import Transform

__all__ = ["LinearProbe", "SolverOptions", "resolve_device", "fit_one", "as_triplets"]

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
            raise InputError(f"--solver: unknown solver {self.solver!r} (fast|minibatch)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"--lrs: learning rate must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.patience < 1:
            raise InputError(f"--patience must be >= 1, got {self.patience}")
        if self.data_parallel < 1:
            raise InputError(f"--data-parallel must be >= 1, got {self.data_parallel}")
        if self.lr_schedule not in ("constant", "linear"):
            raise InputError(f"--lr-schedule: unknown schedule {self.lr_schedule!r} "
                             "(constant|linear)")
        if self.optimizer not in ("adam", "sgd"):
            raise InputError(f"--optimizer: unknown optimizer {self.optimizer!r} (adam|sgd)")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; refuse an unavailable cuda."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {device}: CUDA is not available on this machine")
    if not (device == "cpu" or device.startswith("cuda")):
        raise InputError(f"--device: unknown device {device!r} (auto|cpu|cuda)")
    return torch.device(device)


def as_triplets(triplets: Any, n_objects: int, where: str = "triplets") -> np.ndarray:
    """Validate a triplet array (or :class:`alignkit.data.Triplets`) as int64 (N, 3)."""
    arr = getattr(triplets, "array", triplets)
    t = np.asarray(arr)
    if t.ndim != 2 or t.shape[1] != 3 or t.dtype.kind not in "iu":
        raise InputError(f"{where}: expected an integer (N, 3) array, got {t.dtype} {t.shape}")
    t = t.astype(np.int64, copy=False)
    if len(t) and (t.min() < 0 or t.max() >= n_objects):
        bad = int(np.flatnonzero((t < 0).any(1) | (t >= n_objects).any(1))[0])
        raise MismatchError(
            f"{where}: row {bad + 1} indexes object {t[bad].tolist()} outside 0..{n_objects - 1} "
            f"(the features have {n_objects} rows)"
        )
    return t


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
) -> FitResult:
    """One fit with either solver on standardised features ``x``.

    ``stopper``: a shared :class:`~alignkit.probe._common.EarlyStopper` (the
    paper protocol's state kept across folds) or None for a fresh one.
    ``val_reference``: gLocal, mini-batch: reference rows whose local loss is
    added to the validation NLL for early stopping.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if opts.solver == "fast":
        return fit_fast(
            x, train, spec, val=val, reference=reference, generator=gen,
            max_iter=opts.max_iter, patience=opts.patience, min_delta=opts.min_delta,
            min_iter=opts.min_iter, backend=opts.backend, progress=progress, stopper=stopper,
        )
    return fit_minibatch(
        x, train, spec, val=val, reference=reference, generator=gen, lr=opts.lr,
        batch_size=opts.batch_size, min_epochs=opts.min_epochs, max_epochs=opts.max_epochs,
        patience=opts.patience, min_delta=opts.min_delta, clip=opts.clip,
        max_steps=opts.max_steps, progress=progress, data_parallel=opts.data_parallel,
        stopper=stopper, lr_schedule=opts.lr_schedule, optimizer=opts.optimizer,
        momentum=opts.momentum, val_reference=val_reference,
    )


class LinearProbe:
    """A linear probe learned from odd-one-out triplets (sklearn-style).

    ``fit`` standardises the features by one scalar mean and std, then learns
    ``W`` (and ``b``) so that dot products of ``((x - mean) / std) @ W + b``
    predict the human's most similar pair.

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
        **solver_options: fields of :class:`SolverOptions` (lr, max_iter, ...).

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
        **solver_options: Any,
    ) -> None:
        self.spec = ObjectiveSpec(objective=objective, lam=lam, bias=bias, alpha=alpha,  # type: ignore[arg-type]
                                  tau=tau, sigma=sigma, ref_batch=ref_batch,
                                  regulariser=regulariser)
        self.standardize_reference = standardize_reference
        self.options = SolverOptions(solver=solver, **solver_options)  # type: ignore[arg-type]
        if not 0.0 <= val_fraction < 1.0:
            raise InputError(f"val_fraction must lie in [0, 1), got {val_fraction}")
        if dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.transform_: Transform | None = None
        self.result_: FitResult | None = None

    def get_params(self) -> dict[str, Any]:
        """The estimator's settings as a JSON-able dict."""
        return {**asdict(self.spec), **asdict(self.options), "val_fraction": self.val_fraction,
                "standardize_reference": self.standardize_reference,
                "seed": self.seed, "device": self.device, "dtype": self.dtype}

    def fit(
        self,
        features: np.ndarray,
        triplets: Any,
        *,
        val_triplets: Any = None,
        reference: np.ndarray | None = None,
        progress: ProgressFn | None = None,
    ) -> LinearProbe:
        """Learn the transform.

        Args:
            features: ``(n, p)`` features of the objects the triplets index.
            triplets: ``(N, 3)`` int array (odd one out last) or ``Triplets``.
            val_triplets: triplets for early stopping; default: a seeded
                ``val_fraction`` of ``triplets``.
            reference: gLocal reference features ``(m, p)``, used as given
                (or standardised with the features' mean and std when
                ``standardize_reference``).
            progress: per-step callback.

        Returns:
            self, with ``transform_`` and ``result_`` set.
        """
        feats = _as_features(features)
        n, p = feats.shape
        t = as_triplets(triplets, n)
        val = None if val_triplets is None else as_triplets(val_triplets, n, "validation triplets")
        if val is None and self.val_fraction > 0 and len(t) > 1:
            rng = np.random.default_rng(self.seed)
            perm = rng.permutation(len(t))
            n_val = max(1, int(round(self.val_fraction * len(t))))
            val, t = t[perm[:n_val]], t[perm[n_val:]]
        mean, std = standardization(feats)
        dev = resolve_device(self.device)
        tdt = torch.float64 if self.dtype == "float64" else torch.float32
        x = torch.as_tensor((feats - mean) / std, dtype=tdt, device=dev)
        ref = None
        if self.spec.objective == "glocal":
            if reference is None:
                raise InputError("--objective glocal needs reference features")
            r = _as_features(reference, "reference features")
            if r.shape[1] != p:
                raise MismatchError(f"reference features have {r.shape[1]} columns, features {p}")
            r = (r - mean) / std if self.standardize_reference else r
            ref = torch.as_tensor(r, dtype=tdt, device=dev)
        res = fit_one(x, t, self.spec, self.options, val=val, reference=ref, seed=self.seed,
                      progress=progress, val_reference=ref)
        self.result_ = res
        self.transform_ = Transform(
            weights=res.weights, bias=res.bias, mean=mean, std=std,
            attrs={"estimator": self.get_params(), "train_loss": res.train_loss,
                   "val_nll": res.val_nll, "steps": res.steps, "step_unit": res.step_unit,
                   "diverged": res.diverged, "train_triplets_checksum": triplets_checksum(triplets)},
        )
        return self

    def _fitted(self) -> Transform:
        if self.transform_ is None:
            raise InputError("the probe is not fitted yet: call fit first")
        return self.transform_

    def transform(self, features: np.ndarray) -> np.ndarray:
        """``((x - mean) / std) @ W + b`` for every row (float64)."""
        return self._fitted().apply(_as_features(features))

    def predict(self, features: np.ndarray, triplets: Any, ties: str = "paper") -> np.ndarray:
        """The probe's odd-one-out choices on ``features``' objects.

        Args:
            features: ``(n, p)`` raw features (the transform standardises them).
            triplets: ``(N, 3)`` object indices into ``features``' rows.
            ties: ``paper`` (the paper's code: only a three-way tie gives -1), ``first`` or
                ``any-tie-wrong``.

        Returns:
            int8 (N,): position 0, 1 or 2 of the odd one out in each row, -1 for a tie.
        """
        z = torch.from_numpy(self.transform(features))
        t = as_triplets(triplets, z.shape[0])
        return gram_choices(z @ z.T, t, ties)

    def score(self, features: np.ndarray, triplets: Any, ties: str = "paper") -> float:
        """Odd-one-out accuracy against the human choice (last column)."""
        choices = self.predict(features, triplets, ties)
        return float(np.mean(choices == 2)) if len(choices) else math.nan


def _as_features(features: Any, where: str = "features") -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2 or x.dtype.kind not in "fiu":
        raise InputError(f"{where}: expected a real (n, p) array, got {x.dtype} {x.shape}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        r, c = np.argwhere(~np.isfinite(x))[0]
        raise InputError(f"{where}: NaN or infinity at row {r + 1}, column {c + 1}")
    return x
