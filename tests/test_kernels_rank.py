"""Ranks, Spearman / Pearson and the RSA permutation / bootstrap kernels vs numpy and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import squareform

from alignkit._kernels import rank, rsa

FAST = settings(max_examples=50, deadline=None)
# ----------------------------------------------------------------------------- RNG reference
from naive import draw as ref_draw  # noqa: E402


def ref_permutation(seed: int, p: int, m: int) -> np.ndarray:
    perm = np.arange(m)
    for t in range(m - 1, 0, -1):
        j = ((ref_draw(seed, p, t) >> 32) * (t + 1)) >> 32
        perm[t], perm[j] = perm[j], perm[t]
    return perm


# ----------------------------------------------------------------------------- ranks
VALUES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 1e-300, -1e300, np.inf, -np.inf, 7.0])


@FAST
@given(st.lists(st.one_of(VALUES, st.floats(-1e6, 1e6, allow_nan=False)), max_size=300))
def test_ranks_equal_scipy_with_ties_zeros_and_infinities(values):
    x = np.array(values, dtype=np.float64)
    expected = scipy.stats.rankdata(x, method="average")
    np.testing.assert_array_equal(rank.rankdata_average(x), expected)
    # the radix path on the same input (it normally starts at 2**14 values)
    np.testing.assert_array_equal(rank._rank_one(x, 1), expected)


@pytest.mark.parametrize("n", [1, 2, 3, (1 << 14) + 5, 100_003])
def test_ranks_large_and_tiny(n):
    rng = np.random.default_rng(n)
    for x in (
        rng.normal(size=n),
        rng.integers(-50, 50, size=n).astype(np.float32),  # many ties, float32 input
        np.where(rng.random(n) < 0.5, -0.0, 0.0),  # only signed zeros: all tie
        rng.normal(size=n) * 1e-310,  # subnormals of both signs
    ):
        np.testing.assert_array_equal(rank.rankdata_average(x), scipy.stats.rankdata(x))
    a, b = rng.normal(size=n), rng.integers(0, 3, size=n)
    ra, rb = rank.rank_pair(a, b)
    np.testing.assert_array_equal(ra, scipy.stats.rankdata(a))
    np.testing.assert_array_equal(rb, scipy.stats.rankdata(b))


def test_float_keys_preserve_order():
    x = np.array([-np.inf, -1e300, -1.0, -1e-310, -0.0, 0.0, 1e-310, 1.0, 1e300, np.inf])
    keys = rank.float_keys(x)
    assert keys[4] == keys[5]
    assert np.all(np.diff(keys[[0, 1, 2, 3, 5, 6, 7, 8, 9]].astype(object)) > 0)


def test_rank_errors_and_empty():
    with pytest.raises(ValueError, match="NaN"):
        rank.rankdata_average([1.0, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        rank.rankdata_average(np.ones((2, 2)))
    assert rank.rankdata_average(np.array([])).shape == (0,)


# ----------------------------------------------------------------------------- correlations
@FAST
@given(
    n=st.integers(2, 400),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_spearman_and_pearson_match_scipy(n, seed, ties):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = a + rng.normal(size=n)
    if ties:
        a, b = np.round(a), np.round(b * 2)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert np.isnan(rank.spearman(a, b)) and np.isnan(rank.pearson(a, b))
        return
    np.testing.assert_allclose(
        rank.spearman(a, b), scipy.stats.spearmanr(a, b).statistic, rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        rank.pearson(a, b), scipy.stats.pearsonr(a, b).statistic, rtol=1e-12, atol=1e-14
    )


def test_spearman_large_concurrent_ranking():
    rng = np.random.default_rng(1)
    a = rng.normal(size=200_000)
    b = np.round(a + rng.normal(size=200_000), 1)
    np.testing.assert_allclose(
        rank.spearman(a, b), scipy.stats.spearmanr(a, b).statistic, rtol=1e-12
    )
    np.testing.assert_allclose(rank.pearson(a, b), scipy.stats.pearsonr(a, b).statistic, rtol=1e-12)


def test_correlation_edge_cases():
    const = np.full(10, 0.1)  # its float mean is not exactly 0.1
    x = np.arange(10.0)
    assert np.isnan(rank.pearson(const, x)) and np.isnan(rank.spearman(x, const))
    assert rank.spearman(x, x**3) == 1.0
    assert rank.pearson(x, -2 * x) == -1.0
    with pytest.raises(ValueError, match="differ in length"):
        rank.spearman(x, x[:-1])
    with pytest.raises(ValueError, match="two values"):
        rank.pearson([1.0], [2.0])
    with pytest.raises(ValueError, match="NaN"):
        rank.spearman([1.0, np.nan], [1.0, 2.0])


@pytest.mark.parametrize("n", [0, 1, 2, 5, 48])
def test_condensed_is_squareform_order(n):
    rng = np.random.default_rng(n)
    A = rng.normal(size=(n, n))
    M = A + A.T
    np.fill_diagonal(M, 0.0)
    got = rank.condensed(M)
    np.testing.assert_array_equal(got, squareform(M, checks=False) if n else np.empty(0))
    np.testing.assert_array_equal(got, M[np.triu_indices(n, 1)])
    with pytest.raises(ValueError, match="square"):
        rank.condensed(np.ones((2, 3)))


# ----------------------------------------------------------------------------- RSA
def random_rdm(rng: np.random.Generator, m: int, p: int = 4, integer: bool = False) -> np.ndarray:
    X = rng.normal(size=(m, p))
    if integer:
        X = np.round(X)
    return squareform(scipy.spatial.distance.pdist(X))


@FAST
@given(
    m=st.integers(3, 25),
    seed=st.integers(0, 2**64 - 1),
    method=st.sampled_from(["spearman", "pearson"]),
    integer=st.booleans(),
)
def test_permutation_null_matches_numpy_loop(m, seed, method, integer):
    rng = np.random.default_rng(seed % 2**32)
    A, B = random_rdm(rng, m, integer=integer), random_rdm(rng, m, integer=integer)
    corr = scipy.stats.spearmanr if method == "spearman" else scipy.stats.pearsonr
    a = squareform(A, checks=False)
    if np.ptp(a) == 0 or np.ptp(squareform(B, checks=False)) == 0:
        observed, null = rsa.rsa_permutation(A, B, 5, seed, method)
        assert np.isnan(observed) and np.isnan(null).all()
        return
    n_perm = 12
    observed, null = rsa.rsa_permutation(A, B, n_perm, seed, method)
    np.testing.assert_allclose(
        observed, corr(a, squareform(B, checks=False)).statistic, rtol=1e-12, atol=1e-13
    )
    expected = []
    for p in range(n_perm):
        perm = ref_permutation(seed, p, m)
        expected.append(corr(a, squareform(B[np.ix_(perm, perm)], checks=False)).statistic)
    np.testing.assert_allclose(null, expected, rtol=1e-11, atol=1e-12)
    # condensed input gives the same result
    obs2, null2 = rsa.rsa_permutation(a, squareform(B, checks=False), n_perm, seed, method)
    assert obs2 == observed and np.array_equal(null2, null)


def test_permutation_test_detects_structure_and_pvalue():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    A = squareform(scipy.spatial.distance.pdist(X))
    B = squareform(scipy.spatial.distance.pdist(X + 0.3 * rng.normal(size=X.shape)))
    observed, null = rsa.rsa_permutation(A, B, 500, seed=9)
    assert observed > 0.8 and null.max() < observed
    assert abs(null.mean()) < 0.05
    assert rsa.permutation_pvalue(null, observed) == 1 / 501
    assert rsa.permutation_pvalue(np.array([0.1, 0.5, 0.5, 0.9]), 0.5) == 4 / 5
    assert np.isnan(rsa.permutation_pvalue(null, float("nan")))
    # independent RDMs: p-values spread out, the null is centred on 0
    C = random_rdm(rng, 40)
    obs_c, null_c = rsa.rsa_permutation(A, C, 500, seed=9)
    assert 0.0 < rsa.permutation_pvalue(null_c, obs_c) <= 1.0
    # deterministic
    assert np.array_equal(
        rsa.rsa_permutation(A, B, 50, seed=3)[1], rsa.rsa_permutation(A, B, 50, 3)[1]
    )


def ref_bootstrap(a: np.ndarray, b: np.ndarray, m: int, n_boot: int, seed: int, method: str):
    corr = scipy.stats.spearmanr if method == "spearman" else scipy.stats.pearsonr
    A, B = squareform(a), squareform(b)
    out = []
    for r in range(n_boot):
        idx = np.array([(ref_draw(seed, r, t) >> 32) * m >> 32 for t in range(m)])
        s, t = np.triu_indices(m, 1)
        keep = idx[s] != idx[t]
        va, vb = A[idx[s[keep]], idx[t[keep]]], B[idx[s[keep]], idx[t[keep]]]
        if len(va) < 2 or np.ptp(va) == 0 or np.ptp(vb) == 0:
            out.append(np.nan)
        else:
            out.append(corr(va, vb).statistic)
    return np.array(out)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(3, 15),
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(["spearman", "pearson"]),
)
def test_stimulus_bootstrap_matches_numpy_loop(m, seed, method):
    rng = np.random.default_rng(seed)
    A, B = random_rdm(rng, m, integer=True), random_rdm(rng, m)
    a, b = squareform(A, checks=False), squareform(B, checks=False)
    got = rsa.rsa_bootstrap_stimuli(A, B, 8, seed, method)
    expected = ref_bootstrap(a, b, m, 8, seed, method)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-11, atol=1e-12)


def test_rsa_argument_errors():
    A = random_rdm(np.random.default_rng(0), 6)
    with pytest.raises(ValueError, match="differ in size"):
        rsa.rsa_permutation(A, A[:5, :5], 10)
    with pytest.raises(ValueError, match="condensed"):
        rsa.rsa_permutation(np.ones(4), np.ones(4), 10)
    with pytest.raises(ValueError, match="method"):
        rsa.rsa_permutation(A, A, 10, method="kendall")
    with pytest.raises(ValueError, match="at least 3"):
        rsa.rsa_bootstrap_stimuli(np.ones(1), np.ones(1), 10)
    with pytest.raises(ValueError, match="seed"):
        rsa.rsa_permutation(A, A, 10, seed=-1)
    assert rsa.rsa_permutation(A, A, 0)[1].shape == (0,)
    assert rsa.rsa_bootstrap_stimuli(A, A, 0).shape == (0,)
