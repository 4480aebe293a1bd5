"""The shared RNG and the in-kernel bootstrap, against an independent numpy implementation."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alignkit._kernels import _rng, bootstrap

FAST = settings(max_examples=50, deadline=None)
# ----------------------------------------------------------------------------- references
from _threads import run_with_threads  # noqa: E402
from naive import MASK, G  # noqa: E402
from naive import splitmix64 as splitmix64_int  # noqa: E402
from naive import splitmix64_vec as splitmix64_np  # noqa: E402


def ref_indices(seed: int, b: int, N: int) -> np.ndarray:
    key = splitmix64_int(splitmix64_int(seed) ^ b)
    i = np.arange(N, dtype=np.uint64)
    u = splitmix64_np(np.uint64(key) + i * np.uint64(G))
    return ((u >> np.uint64(32)) * np.uint64(N)) >> np.uint64(32)


def ref_counts(correct: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    N = len(correct)
    return np.array([int(correct[ref_indices(seed, b, N)].sum()) for b in range(n_boot)])


# ----------------------------------------------------------------------------- RNG
SEEDS = st.integers(0, 2**64 - 1)


@FAST
@given(seed=SEEDS, s=SEEDS, i=st.integers(0, 2**40), m=st.integers(1, 2**32 - 1))
def test_rng_primitives_match_the_spec(seed, s, i, m):
    key = splitmix64_int(splitmix64_int(seed) ^ s)
    assert int(_rng.stream_key(np.uint64(seed), np.uint64(s))) == key
    u = splitmix64_int((key + i * G) & MASK)
    assert int(_rng.draw(np.uint64(key), np.uint64(i))) == u
    assert int(_rng.bounded(np.uint64(u), np.uint64(m))) == ((u >> 32) * m) >> 32 < m
    assert _rng.uniform01(np.uint64(u)) == (u >> 11) * 2.0**-53


def test_numpy_reference_agrees_with_python_integers():
    x = np.array([0, 1, G, MASK, 12345678901234567], dtype=np.uint64)
    assert [int(v) for v in splitmix64_np(x)] == [splitmix64_int(int(v)) for v in x]


@FAST
@given(seed=SEEDS, p=st.integers(0, 10**6), m=st.integers(1, 60))
def test_fisher_yates_permutation_matches_the_spec(seed, p, m):
    key = splitmix64_int(splitmix64_int(seed) ^ p)
    perm = list(range(m))
    for t in range(m - 1, 0, -1):
        j = (((splitmix64_int((key + t * G) & MASK)) >> 32) * (t + 1)) >> 32
        perm[t], perm[j] = perm[j], perm[t]
    np.testing.assert_array_equal(_rng.permutation(np.uint64(key), m), perm)


def test_seed_validation():
    assert _rng.as_seed(2**64 - 1) == np.uint64(2**64 - 1)
    assert _rng.as_seed(np.int64(5)) == np.uint64(5)
    for bad in (-1, 2**64, 1.5, True, "3"):
        with pytest.raises(ValueError, match="seed"):
            _rng.as_seed(bad)


# ----------------------------------------------------------------------------- bootstrap
@FAST
@given(
    N=st.integers(1, 3000),
    n_boot=st.integers(1, 6),
    seed=SEEDS,
    p=st.floats(0.0, 1.0),
)
def test_bootstrap_counts_equal_numpy_reimplementation(N, n_boot, seed, p):
    rng = np.random.default_rng(seed % 2**32)
    correct = (rng.random(N) < p).astype(np.uint8)
    expected = ref_counts(correct, n_boot, seed)
    np.testing.assert_array_equal(bootstrap.bootstrap_counts(correct, n_boot, seed), expected)
    np.testing.assert_array_equal(bootstrap.bootstrap_means(correct, n_boot, seed), expected / N)
    # bool input is accepted as is
    np.testing.assert_array_equal(
        bootstrap.bootstrap_counts(correct.astype(bool), n_boot, seed), expected
    )


def test_bootstrap_across_chunks_equals_reference():
    # more than one (resample, chunk) work item per resample
    N = (1 << 20) + 4099
    correct = (np.random.default_rng(2).random(N) < 0.64).astype(np.uint8)
    np.testing.assert_array_equal(
        bootstrap.bootstrap_counts(correct, 3, seed=77), ref_counts(correct, 3, 77)
    )


def _check_bootstrap_thread_invariance(n_threads: int) -> None:
    N = 50_000
    correct = (np.random.default_rng(0).random(N) < 0.63).astype(np.uint8)
    acc = correct.mean()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = bootstrap.bootstrap_means(correct, 400, seed=123)
        numba.set_num_threads(n_threads)
        assert numba.get_num_threads() > 1
        many = bootstrap.bootstrap_means(correct, 400, seed=123)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)
    se = np.sqrt(acc * (1 - acc) / N)
    assert abs(many.mean() - acc) < 4 * se / np.sqrt(400) + 1e-12
    assert 0.8 * se < many.std() < 1.2 * se
    assert not np.array_equal(many, bootstrap.bootstrap_means(correct, 400, seed=124))


def test_bootstrap_statistics_and_thread_invariance():
    run_with_threads(_check_bootstrap_thread_invariance)


def test_bootstrap_edge_cases():
    assert bootstrap.bootstrap_means(np.zeros(0, np.uint8), 3, 0).shape == (3,)
    assert np.isnan(bootstrap.bootstrap_means(np.zeros(0, np.uint8), 3, 0)).all()
    assert bootstrap.bootstrap_means(np.ones(5, np.uint8), 0, 0).shape == (0,)
    np.testing.assert_array_equal(bootstrap.bootstrap_means(np.ones(7, np.uint8), 4, 1), 1.0)
    np.testing.assert_array_equal(bootstrap.bootstrap_means(np.zeros(1, np.uint8), 4, 1), 0.0)
    with pytest.raises(ValueError, match="1-D"):
        bootstrap.bootstrap_means(np.ones((2, 2), np.uint8), 3, 0)
    with pytest.raises(ValueError, match=">= 0"):
        bootstrap.bootstrap_means(np.ones(3, np.uint8), -1, 0)


def test_pack_bits_round_trip():
    correct = (np.random.default_rng(4).random(1000) < 0.5).astype(np.uint8)
    words = bootstrap.pack_bits(correct)
    assert words.dtype == np.uint64 and words.shape == (16,)
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")[:1000]
    np.testing.assert_array_equal(bits, correct)


def test_bootstrap_groups_uses_the_same_resamples():
    rng = np.random.default_rng(8)
    N, n_groups, n_boot, seed = 2000, 5, 6, 99
    correct = (rng.random(N) < 0.6).astype(np.uint8)
    groups = rng.integers(-1, n_groups, size=N)
    got = bootstrap.bootstrap_groups(correct, groups, n_groups, n_boot, seed)
    assert got.shape == (n_boot, n_groups)
    for b in range(n_boot):
        idx = ref_indices(seed, b, N)
        for g in range(n_groups):
            sel = idx[groups[idx] == g]
            np.testing.assert_allclose(got[b, g], correct[sel].mean())
    empty = bootstrap.bootstrap_groups(correct, groups, n_groups + 1, 2, seed)
    assert np.isnan(empty[:, n_groups]).all()
    with pytest.raises(ValueError, match="out of range"):
        bootstrap.bootstrap_groups(correct, groups, 2, 2, seed)


def test_percentile_ci():
    values = np.random.default_rng(1).normal(size=1001)
    lo, hi = bootstrap.percentile_ci(values, 0.9)
    assert (lo, hi) == tuple(np.percentile(values, [5.0, 95.0]))
    assert bootstrap.percentile_ci(values) == tuple(np.percentile(values, [2.5, 97.5]))
    with pytest.raises(ValueError, match="level"):
        bootstrap.percentile_ci(values, 1.0)
    with pytest.raises(ValueError, match="no values"):
        bootstrap.percentile_ci([])
