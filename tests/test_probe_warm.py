"""Warm starts along the lambda path (opt-in): same optimum, same choice, no held-out objects seen."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import alignkit.probe.estimator as estimator
from alignkit.errors import InputError
from alignkit.probe._common import ObjectiveSpec
from alignkit.probe.cv import cross_validate
from alignkit.probe.fast import fit_fast


def _planted(seed: int, n: int = 60, p: int = 8, n_tri: int = 6000):
    """Triplets whose choices follow a hidden 3-d embedding, features that carry it plus noise."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, 3))
    t = np.stack([rng.choice(n, 3, replace=False) for _ in range(n_tri)]).astype(np.int64)
    s = np.einsum("ij,ij->i", e[t[:, 0]], e[t[:, 1]]), np.einsum(
        "ij,ij->i", e[t[:, 0]], e[t[:, 2]]), np.einsum("ij,ij->i", e[t[:, 1]], e[t[:, 2]])
    logits = np.stack(s, 1) * 2.0
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    pick = (rng.random(n_tri)[:, None] > np.cumsum(prob, 1)).sum(1)  # sampled similar pair
    pairs = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])[pick]
    t = np.take_along_axis(t, pairs, axis=1)
    feats = e @ rng.normal(size=(3, p)) + 0.3 * rng.normal(size=(n, p))
    return feats, t


def test_warm_start_reaches_the_cold_optimum() -> None:
    feats, t = _planted(0)
    x = torch.tensor((feats - feats.mean()) / feats.std())
    opts = {"max_iter": 3000, "min_iter": 1}
    g = torch.Generator
    big = fit_fast(x, t, ObjectiveSpec(lam=1e-1), generator=g().manual_seed(0), **opts)
    cold = fit_fast(x, t, ObjectiveSpec(lam=1e-2), generator=g().manual_seed(0), **opts)
    warm = fit_fast(x, t, ObjectiveSpec(lam=1e-2), generator=g().manual_seed(0),
                    init=[big.weights], **opts)
    assert abs(warm.train_loss - cold.train_loss) <= 1e-6 * abs(cold.train_loss)
    # the warm fit starts at the larger lambda's solution, not at N(0, 1e-3^2)
    assert warm.history[0]["train_loss"] < cold.history[0]["train_loss"]
    # the loss is invariant to W -> W Q (Q orthogonal), so compare the similarities
    np.testing.assert_allclose(warm.weights @ warm.weights.T, cold.weights @ cold.weights.T,
                               rtol=0, atol=1e-4 * np.abs(cold.weights @ cold.weights.T).max())


def test_warm_start_checks_shapes() -> None:
    feats, t = _planted(1, n_tri=500)
    x = torch.tensor(feats)
    with pytest.raises(InputError, match="shape"):
        fit_fast(x, t, ObjectiveSpec(), generator=torch.Generator(), init=[np.zeros((3, 3))])
    with pytest.raises(InputError, match="2 arrays"):
        fit_fast(x, t, ObjectiveSpec(bias=True), generator=torch.Generator(),
                 init=[np.zeros((8, 8))])


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []
    real = estimator.fit_fast

    def spy(x, train, spec, **kw):
        res = real(x, train, spec, **kw)
        calls.append({"lam": spec.lam, "train": np.asarray(train).copy(),
                      "init": kw.get("init"), "res": res})
        return res

    monkeypatch.setattr(estimator, "fit_fast", spy)
    return calls


def test_grid_choice_unchanged_and_fewer_iterations(monkeypatch: pytest.MonkeyPatch) -> None:
    # more dimensions than the data support: the lambdas differ clearly in held-out NLL
    feats, t = _planted(4, n=50, p=40, n_tri=5000)
    kw = {"lambdas": (3e-3, 3e-1, 3e-2), "folds": (3, 4), "seed": 3}
    cold = cross_validate(feats, t, **kw)  # no warm starts by default
    calls = _spy(monkeypatch)
    warm = cross_validate(feats, t, warm_start="lambda", **kw)
    assert cold.settings["warm_start"] == "none" and warm.settings["warm_start"] == "lambda"
    assert warm.transform.attrs["settings"]["warm_start"] == "lambda"
    assert warm.summaries[warm.chosen].config == cold.summaries[cold.chosen].config
    for a, b in zip(warm.summaries, cold.summaries, strict=True):
        assert a.test_nll == pytest.approx(b.test_nll, rel=2e-2)
        assert a.eligible == b.eligible
    # runs in grid order, whatever order they were fitted in
    assert [(r.config, r.fold) for r in warm.runs] == [(r.config, r.fold) for r in cold.runs]
    steps = {name: sum(r.steps for r in res.runs if r.fold >= 0)
             for name, res in (("cold", cold), ("warm", warm))}
    assert steps["warm"] < steps["cold"]
    # the path: per k and fold, lambdas from the largest down; each warm fit starts from
    # the previous lambda's fit on exactly the same training triplets
    grid_fits = calls[:-1]  # the last one is the nested refit on all objects
    assert calls[-1]["init"] is None
    seen: dict[bytes, dict] = {}
    n_warm = 0
    for c in grid_fits:
        key = c["train"].tobytes()
        prev = seen.get(key)
        if prev is None:
            assert c["init"] is None and c["lam"] == 3e-1
        else:
            assert prev["lam"] > c["lam"]
            r = prev["res"]
            unusable = (r.diverged or abs(r.val_nll - np.log(3.0)) < 1e-4
                        or np.linalg.norm(r.weights) < 1e-3 * 40)
            if c["init"] is None:
                assert unusable
            else:
                np.testing.assert_array_equal(c["init"][0], r.weights)
                n_warm += 1
        seen[key] = c
    assert len(seen) == 7  # 3 + 4 outer folds, one fit/validation split each
    assert n_warm >= 7  # at least one warm fit per fold


def test_warm_start_defaults_and_refusals() -> None:
    feats, t = _planted(3, n=45, p=6, n_tri=4000)
    res = cross_validate(feats, t, protocol="paper", lambdas=(1e-2, 1e-3), folds=3)
    assert res.settings["warm_start"] == "none"  # the paper's initialisation for every fit
    res = cross_validate(feats, t, lambdas=(1e-2,), folds=3)
    assert res.settings["warm_start"] == "none"  # nested too
    res = cross_validate(feats, t, protocol="paper", lambdas=(1e-2, 1e-3), folds=3,
                         warm_start="lambda")
    assert res.settings["warm_start"] == "lambda"
    with pytest.raises(InputError, match="--warm-start"):
        cross_validate(feats, t, warm_start="folds")
    with pytest.raises(InputError, match="--solver fast"):
        cross_validate(feats, t, solver="minibatch", warm_start="lambda")


def test_no_warm_start_from_a_fit_at_chance(monkeypatch: pytest.MonkeyPatch) -> None:
    feats, t = _planted(4, n=50, p=40, n_tri=5000)
    calls = _spy(monkeypatch)
    cross_validate(feats, t, lambdas=(3e-2, 1e3, 3e-1), folds=3, seed=3, warm_start="lambda")
    prev: dict[bytes, dict] = {}
    chance = warm = 0
    for c in calls[:-1]:
        key = c["train"].tobytes()
        before = prev.get(key)
        if before is None:
            assert c["init"] is None and c["lam"] == 1e3
        elif np.linalg.norm(before["res"].weights) < 1e-3 * 40:  # W shrank: start cold
            assert c["init"] is None
            chance += 1
        else:
            np.testing.assert_array_equal(c["init"][0], before["res"].weights)
            warm += 1
        prev[key] = c
    assert chance >= 1 and warm >= 1  # lambda = 1000 stays at chance, 0.3 learns
