"""Fold partition over objects, protocols and selection."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold

from alignkit.errors import InputError
from alignkit.probe.cv import cross_validate, fold_splits, kfold_objects, split_triplets


def _sklearn_kfold_reference(n: int, k: int) -> list[np.ndarray]:
    """scikit-learn's KFold(k, shuffle=True, random_state=42) (a dev dependency)."""
    return [test for _, test in KFold(k, shuffle=True, random_state=42).split(np.arange(n))]


@pytest.mark.parametrize(("n", "k"), [(1854, 3), (1854, 4), (10, 3), (7, 7)])
def test_kfold_objects_partition(n: int, k: int) -> None:
    folds = kfold_objects(n, k)
    allx = np.concatenate(folds)
    assert np.array_equal(np.sort(allx), np.arange(n))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    # the shuffle is numpy's RandomState(42) permutation (scikit-learn's KFold rule)
    perm = np.arange(n)
    np.random.RandomState(42).shuffle(perm)
    assert np.array_equal(allx, perm)


def test_kfold_matches_sklearn() -> None:
    ref = _sklearn_kfold_reference(1854, 3)
    for a, b in zip(kfold_objects(1854, 3), ref, strict=True):
        assert np.array_equal(np.sort(a), np.sort(b))


def test_no_mixed_triplet_and_exact_counts() -> None:
    rng = np.random.default_rng(0)
    n, k = 300, 3
    t = np.stack([rng.choice(n, 3, replace=False) for _ in range(30000)])
    folds = kfold_objects(n, k)
    for held, (tr, te) in zip(folds, fold_splits(t, n, k), strict=True):
        inside = np.isin(t, held)
        assert inside[tr].sum() == 0  # training triplets: no held-out object
        assert inside[te].all()  # test triplets: only held-out objects
        mixed = np.setdiff1d(np.arange(len(t)), np.concatenate((tr, te)))
        assert (inside[mixed].any(1) & ~inside[mixed].all(1)).all()
        # counts equal a brute-force count
        assert len(tr) == sum(not set(r) & set(held) for r in t.tolist())
        assert len(te) == sum(set(r) <= set(held.tolist()) for r in t.tolist())
    # expected fractions for uniform triplets: (2/3)^3 ~ 0.296 and (1/3)^3 ~ 0.037
    tr0, te0 = fold_splits(t, n, k)[0]
    assert abs(len(tr0) / len(t) - (2 / 3) ** 3) < 0.02
    assert abs(len(te0) / len(t) - (1 / 3) ** 3) < 0.01


def test_split_triplets_empty_and_bad_folds() -> None:
    tr, te = split_triplets(np.zeros((0, 3), dtype=np.int64), np.array([0]), 4)
    assert len(tr) == len(te) == 0
    with pytest.raises(InputError, match="--folds"):
        kfold_objects(5, 1)


def _planted(seed: int = 0, n: int = 120, p: int = 5, n_tri: int = 6000):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, p))
    t = rng.integers(0, n, size=(n_tri * 2, 3))
    t = t[(t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2])][:n_tri]
    s = truth @ truth.T
    sims = np.stack((s[t[:, 0], t[:, 1]], s[t[:, 0], t[:, 2]], s[t[:, 1], t[:, 2]]), 1)
    odd = 2 - sims.argmax(1)  # position of the odd one out under the truth
    order = np.array([[1, 2, 0], [0, 2, 1], [0, 1, 2]])[odd]
    t = np.take_along_axis(t, order, axis=1)
    mix = rng.normal(size=(p, p)) * np.array([0.2, 5, 1, 0.1, 3])
    return truth @ mix, t


@pytest.mark.parametrize("protocol", ["nested", "paper"])
def test_cross_validate_protocols(protocol: str) -> None:
    x, t = _planted()
    res = cross_validate(x, t, folds=3, lambdas=(1e-2, 1e-4), protocol=protocol, seed=1)
    assert res.protocol == protocol and res.transform.attrs["protocol"] == protocol
    assert sum(s.chosen for s in res.summaries) == 1
    chosen = res.summaries[res.chosen]
    eligible = [s.selection_nll for s in res.summaries if s.eligible]
    assert chosen.selection_nll == min(eligible)
    runs = [r for r in res.runs if r.fold >= 0]
    assert len(runs) == 2 * 3
    assert res.probing_accuracy == pytest.approx(
        np.mean([r.test_acc for r in runs if r.config == res.chosen]))
    if protocol == "nested":
        refit = [r for r in res.runs if r.fold == -1]
        assert len(refit) == 1 and refit[0].n_train + refit[0].n_val == len(t)
        # the outer fold is never the validation set
        for r in runs:
            assert r.val_nll != r.test_nll
    else:
        for r in runs:
            assert r.val_nll == pytest.approx(r.test_nll)
    # a planted linear structure is learned far above chance
    assert res.probing_accuracy > 0.5  # chance is 1/3


def test_all_configurations_at_chance_are_refused() -> None:
    x, t = _planted(n_tri=600)
    with pytest.raises(InputError, match="ln 3"):
        cross_validate(x, t, folds=3, lambdas=(1e4,), seed=0)


def test_cross_validate_minibatch_grid_over_learning_rates() -> None:
    x, t = _planted(n_tri=3000)
    res = cross_validate(x, t, folds=3, lambdas=(1e-3,), lrs=(1e-2, 1e-3), solver="minibatch",
                         protocol="paper", seed=0,
                         solver_options={"max_epochs": 3, "min_epochs": 1})
    assert [s.label for s in res.summaries] == ["lambda=0.001 lr=0.01", "lambda=0.001 lr=0.001"]
    assert len(res.runs) == 6 and all(r.step_unit == "epoch" and r.steps <= 3 for r in res.runs)
    assert res.transform.attrs["fitted_on"] == "fold 3 training objects"
