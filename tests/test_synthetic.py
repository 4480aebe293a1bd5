"""Synthetic THINGS-scale triplets: the sampling spec, determinism and the SPoSE statistics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats
from naive import bounded, draw

from alignkit._kernels import ooo
from alignkit._kernels import similarity as ksim
from alignkit._kernels.synthetic import sample_triplets
from alignkit.errors import InputError


def ref_sample(E: np.ndarray, N: int, seed: int, temperature: float = 1.0) -> np.ndarray:
    """The documented procedure, one triplet at a time with Python integers."""
    n = E.shape[0]
    out = np.empty((N, 3), dtype=np.int64)
    for t in range(N):
        u = [draw(seed, t, q) for q in range(4)]  # stream t: the triplet's index
        i = bounded(u[0], n)
        j = bounded(u[1], n - 1)
        j += j >= i
        k = bounded(u[2], n - 2)
        k += k >= min(i, j)
        k += k >= max(i, j)
        p = scipy.special.softmax(temperature * np.array([E[i] @ E[j], E[i] @ E[k], E[j] @ E[k]]))
        r = (u[3] >> 11) * 2.0**-53
        if r < p[0]:
            out[t] = (i, j, k)
        elif r < p[0] + p[1]:
            out[t] = (i, k, j)
        else:
            out[t] = (j, k, i)
    return out


@pytest.fixture(scope="module")
def spose() -> np.ndarray:
    from alignkit.data import load_embedding

    return load_embedding("spose-49d").values


def test_kernel_follows_the_documented_procedure():
    rng = np.random.default_rng(0)
    for n, temperature in ((3, 1.0), (4, 0.5), (57, 2.0)):
        E = rng.random((n, 6)) * 2
        for seed in (0, 12345, 2**64 - 1):
            got = sample_triplets(E, 300, seed, temperature)
            assert got.dtype == np.int32
            np.testing.assert_array_equal(got, ref_sample(E, 300, seed, temperature))


def test_triplets_are_distinct_and_uniform():
    E = np.random.default_rng(1).random((7, 3))
    T = sample_triplets(E, 70_000, seed=3, temperature=0.0)  # choices uniform at T = 0
    assert T.min() >= 0 and T.max() < 7
    assert np.all((T[:, 0] != T[:, 1]) & (T[:, 0] != T[:, 2]) & (T[:, 1] != T[:, 2]))
    # every object equally often overall (chi-square goodness of fit)
    counts = np.bincount(T.ravel(), minlength=7)
    assert scipy.stats.chisquare(counts).pvalue > 1e-4
    # every unordered triple equally often
    keys = np.sort(T, axis=1) @ np.array([49, 7, 1])
    triple_counts = np.unique(keys, return_counts=True)[1]
    assert len(triple_counts) == 35
    assert scipy.stats.chisquare(triple_counts).pvalue > 1e-4


def test_wrapper_returns_triplets_and_is_deterministic(spose):
    from alignkit.data import Triplets, synthetic_triplets

    a = synthetic_triplets(n=5000, seed=7)
    assert isinstance(a, Triplets)
    assert a.array.shape == (5000, 3) and a.array.dtype == np.int32
    assert a.n_objects == 1854 and "seed=7" in a.source
    np.testing.assert_array_equal(a.array, synthetic_triplets(spose, n=5000, seed=7).array)
    np.testing.assert_array_equal(a.array, sample_triplets(spose, 5000, 7))
    assert not np.array_equal(a.array, synthetic_triplets(n=5000, seed=8).array)
    small = synthetic_triplets(spose, n=1000, seed=1, n_objects=10)
    assert small.n_objects == 10 and small.array.max() < 10
    assert sample_triplets(spose, 0).shape == (0, 3)
    assert synthetic_triplets(spose[:3], n=10).array.shape == (10, 3)


def test_wrapper_errors(spose):
    from alignkit.data import synthetic_triplets

    with pytest.raises(InputError, match="n_objects"):
        synthetic_triplets(spose, n=10, n_objects=2)
    with pytest.raises(InputError, match=">= 1"):
        synthetic_triplets(spose, n=0)
    with pytest.raises(InputError, match="seed"):
        synthetic_triplets(spose, n=10, seed=-5)
    with pytest.raises(InputError, match="NaN"):
        synthetic_triplets(np.full((4, 2), np.nan), n=10)
    with pytest.raises(InputError, match=r"\(n, d\)"):
        synthetic_triplets(np.ones(5), n=10)


def test_spose_statistics_on_200k_synthetic_triplets(spose):
    from alignkit.data import synthetic_triplets

    T = synthetic_triplets(spose, n=200_000, seed=2024).array
    S = ksim.gram(spose, "dot")
    n_correct, n_tie2, n_tie3 = ooo.ooo_counts(S, T, "any-tie-wrong")
    accuracy = n_correct / len(T)
    assert 0.62 <= accuracy <= 0.66
    assert (n_tie2, n_tie3) == (0, 0)

    # the sampled choices follow softmax([s_ij, s_ik, s_jk]) of the unordered triple
    p = np.exp(ooo.choice_logprobs(S, T, 1.0))  # p[:, 0] = probability of the sampled pair
    probs = np.sort(p, axis=1)
    chosen = p[:, 0]
    # rank of the sampled outcome among the three (0 = most probable)
    rank = (p[:, 1:] > chosen[:, None]).sum(axis=1)
    # expected frequency of picking the most / middle / least probable pair
    expected = probs[:, ::-1].sum(axis=0)
    observed = np.bincount(rank, minlength=3)
    assert scipy.stats.chisquare(observed, expected).pvalue > 1e-4
    # calibration: within bins of the top probability, the top pair is chosen as often
    top = probs[:, 2]
    edges = np.quantile(top, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, top, side="right") - 1, 0, 9)
    hits = np.bincount(bins, weights=(rank == 0), minlength=10)
    pred = np.bincount(bins, weights=top, minlength=10)
    size = np.bincount(bins, minlength=10)
    var = np.bincount(bins, weights=top * (1 - top), minlength=10)
    z = (hits - pred) / np.sqrt(var)
    assert np.all(np.abs(z) < 4.5), z
    assert size.min() > 10_000
