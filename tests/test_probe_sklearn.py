"""``LinearProbe`` as a scikit-learn estimator: the parameter protocol, clone, fitted state,
``NotFittedError`` and scikit-learn's own estimator checks.

scikit-learn's checks feed an estimator features ``X`` and one label per row (or
none). A probe learns from triplets of rows instead, so, as cblearn does for its
triplet estimators, the checks drive a subclass that only supplies triplets:
where ``y`` is not an ``(N, 3)`` integer array it answers seeded random triplets
of ``X``'s rows by ``X``'s own dot products, and ``predict``/``score`` use the same
triplets. Everything else (parameters, validation, fitted state, errors) is
``LinearProbe``'s own. The checks that do not involve triplets also run on
``LinearProbe`` itself.
"""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

# scikit-learn is a test dependency (setup.py's dev extras, >= 1.6): imported plainly, so a
# missing or too old scikit-learn fails these tests instead of skipping them
import sklearn
from sklearn.base import clone as sk_clone
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.utils.estimator_checks import (
    estimator_checks_generator,
    parametrize_with_checks,
)

assert tuple(int(x) for x in sklearn.__version__.split(".")[:2]) >= (1, 6), sklearn.__version__

from alignkit.errors import AlignkitError, InputError  # noqa: E402
from alignkit.probe._common import ObjectiveSpec  # noqa: E402
from alignkit.probe.estimator import (  # noqa: E402
    LinearProbe,
    NotFittedError,
    SolverOptions,
    clone,
)


def _is_triplets(y: object) -> bool:
    a = np.asarray(getattr(y, "array", y)) if y is not None else None
    return a is not None and a.ndim == 2 and a.shape[1:] == (3,) and a.dtype.kind in "iu"


def _triplets_for(X: object) -> np.ndarray:
    """Seeded triplets of X's rows, most similar pair (dot product) first, odd one last.

    Input the probe must refuse (1-D, empty, non-numeric) gets a placeholder, so that
    ``LinearProbe`` itself reports what is wrong with ``X``.
    """
    try:
        x = np.asarray(X)
        if x.dtype.kind == "c":
            raise TypeError("complex")
        x = x.astype(np.float64)
    except (TypeError, ValueError):
        return np.zeros((1, 3), dtype=np.int64)
    if x.ndim != 2 or x.shape[0] == 0 or not np.isfinite(x).all():
        return np.zeros((1, 3), dtype=np.int64)
    n = x.shape[0]
    t = np.random.default_rng(0).integers(0, n, size=(max(30, 10 * n), 3))
    s = x @ x.T
    sims = np.stack((s[t[:, 0], t[:, 1]], s[t[:, 0], t[:, 2]], s[t[:, 1], t[:, 2]]), axis=1)
    order = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])[sims.argmax(axis=1)]
    return np.take_along_axis(t, order, axis=1)


class ProbeOnFeatures(LinearProbe):
    """``LinearProbe`` given triplets of ``X``'s rows wherever the checks give labels."""

    def fit(self, X, y=None, **fit_params):
        return super().fit(X, y if _is_triplets(y) else _triplets_for(X), **fit_params)

    def predict(self, X):
        return super().predict(X, _triplets_for(X))

    def score(self, X, y=None):
        return super().score(X, y if _is_triplets(y) else _triplets_for(X))


#: Checks that cannot apply to a probe, with the reason (they are run and must fail).
EXPECTED_FAILED_CHECKS = {
    "check_methods_sample_order_invariance": (
        "predict answers triplets of row indices: permuting the rows of X changes which "
        "objects each triplet names, not only the order of the answers (transform is "
        "row-wise and does pass)"
    ),
    "check_methods_subset_invariance": (
        "predict answers triplets of row indices: a batch of X's rows is a different set "
        "of objects with different triplets (transform is row-wise and does pass)"
    ),
}

CHECKED = [ProbeOnFeatures(), ProbeOnFeatures(solver="minibatch", max_epochs=3, min_epochs=1)]


_NOT_BASE_ESTIMATOR = "Estimator .* does not inherit from"
with warnings.catch_warnings():
    # the probe implements BaseEstimator's protocol without deriving from it
    warnings.filterwarnings("ignore", _NOT_BASE_ESTIMATOR, UserWarning)
    _with_checks = parametrize_with_checks(
        CHECKED, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS, xfail_strict=True)


@_with_checks
def test_sklearn_estimator_checks(estimator, check) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NOT_BASE_ESTIMATOR, UserWarning)
        check(estimator)


class TransformOnly(ProbeOnFeatures):
    """The same probe without ``predict``: what remains must be row-wise."""

    @property
    def predict(self):
        raise AttributeError("predict answers triplets, not rows")


@pytest.mark.parametrize("check_name", sorted(EXPECTED_FAILED_CHECKS))
def test_the_excluded_checks_fail_only_through_predict(check_name: str) -> None:
    import sklearn.utils.estimator_checks as ec

    getattr(ec, check_name)("TransformOnly", TransformOnly())


#: Checks that never fit on labels: they run on LinearProbe itself, not on the subclass.
DIRECT_CHECKS = {
    "check_estimator_cloneable", "check_estimator_tags_renamed", "check_valid_tag_types",
    "check_estimator_repr", "check_no_attributes_set_in_init", "check_mixin_order",
    "check_do_not_raise_errors_in_init_or_set_params", "check_parameters_default_constructible",
    "check_get_params_invariance", "check_set_params", "check_requires_y_none",
    "check_transformers_unfitted",
}


def _check_name(check) -> str:
    while isinstance(check, functools.partial):
        check = check.func
    return check.__name__


def _direct_checks() -> list:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NOT_BASE_ESTIMATOR, UserWarning)
        return [pytest.param(est, check, id=_check_name(check))
                for est, check in estimator_checks_generator(LinearProbe())
                if _check_name(check) in DIRECT_CHECKS]


def test_direct_checks_are_all_found() -> None:
    names = {p.id for p in _direct_checks()}
    assert names == DIRECT_CHECKS


@pytest.mark.parametrize(("estimator", "check"), _direct_checks())
def test_sklearn_checks_on_linear_probe_itself(estimator, check) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NOT_BASE_ESTIMATOR, UserWarning)
        check(estimator)


# -- the contract, asserted directly -----------------------------------------------------


def _planted(seed: int = 0, n: int = 60, p: int = 4, n_tri: int = 1500):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * np.array([3.0, 1.0, 0.3, 0.1])[:p]
    return x, _triplets_for(rng.normal(size=(n, p)) + x)[:n_tri]


def test_init_only_stores_its_arguments() -> None:
    odd = dict(objective="nope", lam=-1.0, solver="sgd", dtype="float16", val_fraction=2.0,
               batch_size=0, device=7)
    probe = LinearProbe(**odd)  # no validation here ...
    assert vars(probe) == probe.get_params()
    for k, v in odd.items():
        assert getattr(probe, k) == v
    with pytest.raises(InputError):  # ... but in fit
        probe.fit(*_planted())


def test_defaults_are_the_solver_and_objective_defaults() -> None:
    params = LinearProbe().get_params()
    want = {**vars(SolverOptions()), **vars(ObjectiveSpec())}
    assert {k: params[k] for k in want} == want
    assert set(params) == set(want) | {"standardize_reference", "val_fraction", "seed",
                                       "device", "dtype"}


def test_get_set_params_and_repr() -> None:
    probe = LinearProbe(lam=0.01)
    assert probe.get_params(deep=True) == probe.get_params(deep=False)
    assert probe.set_params(solver="minibatch", lr=0.1) is probe
    assert (probe.solver, probe.lr) == ("minibatch", 0.1)
    assert repr(probe) == "LinearProbe(lam=0.01, lr=0.1, solver='minibatch')"
    with pytest.raises(ValueError, match="Invalid parameter 'lambda'"):
        probe.set_params(**{"lambda": 1.0})


@pytest.mark.parametrize("cloner", [sk_clone, clone], ids=["sklearn.base.clone", "alignkit"])
def test_a_fitted_clone_gives_identical_results(cloner) -> None:
    x, t = _planted()
    probe = LinearProbe(lam=1e-2, seed=3, bias=True).fit(x, t)
    twin = cloner(probe)
    assert twin.get_params() == probe.get_params()
    assert not hasattr(twin, "weights_") and not hasattr(twin, "transform_")
    with pytest.raises(NotFittedError):
        twin.transform(x)
    twin.fit(x, t)
    np.testing.assert_array_equal(twin.weights_, probe.weights_)
    np.testing.assert_array_equal(twin.bias_, probe.bias_)
    np.testing.assert_array_equal(twin.transform(x), probe.transform(x))
    # another seed gives another probe
    other = cloner(probe).set_params(seed=4).fit(x, t)
    assert not np.array_equal(other.weights_, probe.weights_)


def test_fitted_state() -> None:
    x, t = _planted()
    probe = LinearProbe(bias=True).fit(x, t)
    tr = probe.transform_
    assert probe.n_features_in_ == x.shape[1]
    assert probe.weights_.shape == (4, 4) and probe.bias_.shape == (4,)
    np.testing.assert_array_equal(probe.weights_, tr.weights)
    assert (probe.mean_, probe.std_) == (tr.mean, tr.std) == (x.mean(), x.std())
    assert probe.n_iter_ == probe.result_.steps >= 1
    assert probe.transform_.attrs["estimator"] == probe.get_params()
    assert LinearProbe().fit(x, t).bias_ is None
    with pytest.raises(ValueError, match="X has 3 features, but LinearProbe is expecting 4"):
        probe.transform(x[:, :3])


@pytest.mark.parametrize("method", ["transform", "predict", "score"])
def test_not_fitted_error_is_sklearns_and_alignkits(method: str) -> None:
    x, t = _planted()
    args = (x,) if method == "transform" else (x, t)
    with pytest.raises(SkNotFittedError, match="not fitted") as info:
        getattr(LinearProbe(), method)(*args)
    err = info.value
    assert isinstance(err, NotFittedError) and isinstance(err, AlignkitError)
    assert isinstance(err, ValueError) and isinstance(err, AttributeError)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and str(again) == str(err)


def test_sklearn_check_is_fitted() -> None:
    from sklearn.utils.validation import check_is_fitted

    probe = LinearProbe()
    with pytest.raises(SkNotFittedError):
        check_is_fitted(probe)
    check_is_fitted(probe.fit(*_planted()))


@pytest.mark.parametrize(
    ("params", "name"),
    [({"lam": -1.0}, "lam"), ({"lam": float("nan")}, "lam"), ({"alpha": 2.0}, "alpha"),
     ({"tau": 0.0}, "tau"), ({"objective": "x"}, "objective"), ({"solver": "x"}, "solver"),
     ({"lr": 0.0}, "lr"), ({"lr": "fast"}, "lr"), ({"batch_size": 0}, "batch_size"),
     ({"patience": 0}, "patience"), ({"data_parallel": 0}, "data_parallel"),
     ({"lr_schedule": "x"}, "lr_schedule"), ({"optimizer": "x"}, "optimizer"),
     ({"regulariser": "x"}, "regulariser"), ({"ref_batch": 1}, "ref_batch"),
     ({"val_fraction": 1.0}, "val_fraction"), ({"dtype": "float16"}, "dtype"),
     ({"seed": 1.5}, "seed"), ({"device": "tpu"}, "device"), ({"bias": "yes"}, "bias")],
)
def test_errors_name_the_argument(params: dict, name: str) -> None:
    with pytest.raises(InputError, match=rf"^{name}\b") as info:
        LinearProbe(**params).fit(*_planted())
    assert "--" not in str(info.value)


def test_fit_errors_name_x_and_y() -> None:
    x, t = _planted()
    with pytest.raises(InputError, match="^y: LinearProbe requires y"):
        LinearProbe().fit(x, None)
    with pytest.raises(InputError, match=r"^y \(triplets\): row 1"):
        LinearProbe().fit(x, np.array([[0, 1, len(x)]]))
    with pytest.raises(InputError, match="^y: no triplets"):
        LinearProbe().fit(x, np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(InputError, match="^X: NaN"):
        LinearProbe().fit(np.where(x > 2, np.nan, x), t)
    with pytest.raises(InputError, match="^reference: objective='glocal' needs"):
        LinearProbe("glocal").fit(x, t)


def test_import_needs_no_sklearn() -> None:
    code = ("import sys; from alignkit.probe import LinearProbe, cross_validate; "
            "import alignkit.probe.estimator as e; p = e.clone(LinearProbe(lam=0.5)); "
            "p.get_params(); repr(p); assert 'sklearn' not in sys.modules, 'sklearn imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cross_validation_checks_every_configuration_before_fitting() -> None:
    from alignkit.probe.cv import cross_validate

    x, t = _planted()
    calls = []
    with pytest.raises(InputError, match=r"^lam must be >= 0, got -1"):
        cross_validate(x, t, folds=3, lambdas=(1e-2, -1.0), progress=calls.append)
    assert calls == []  # refused before the first fold was fitted
    with pytest.raises(InputError, match="solver_options: unknown option.*nope"):
        cross_validate(x, t, folds=3, lambdas=(1e-2,), solver_options={"nope": 1})
