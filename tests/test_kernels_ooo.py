"""Similarity and odd-one-out kernels against plain numpy / scipy references."""

from __future__ import annotations

from pathlib import Path

import naive
import numba
import numpy as np
import pytest
import scipy.special
from _threads import run_with_threads
from hypothesis import given, settings
from hypothesis import strategies as st

from alignkit._kernels import ooo
from alignkit._kernels import similarity as ksim

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIMS = ("dot", "cosine", "euclidean", "correlation")
INT_TYPES = (np.int16, np.int32, np.int64)
FAST = settings(max_examples=50, deadline=None)


# ----------------------------------------------------------------------------- references
ref_gram = naive.gram  # pairwise similarities by a plain double loop over rows


def ref_sims(S: np.ndarray, T: np.ndarray) -> np.ndarray:
    i, j, k = T[:, 0], T[:, 1], T[:, 2]
    return np.stack([S[i, j], S[i, k], S[j, k]], axis=1).astype(np.float64)


TIES = ("paper", "first", "any-tie-wrong")


ref_choices = naive.choices
ref_tie_counts = naive.tie_counts


def random_triplets(rng: np.random.Generator, n: int, N: int, dtype=np.int64) -> np.ndarray:
    T = np.array([rng.choice(n, 3, replace=False) for _ in range(N)], dtype=np.int64)
    return T.reshape(N, 3).astype(dtype)


@st.composite
def tie_cases(draw):
    """Integer-valued symmetric S (many exact ties), triplets, index dtype, tie rule."""
    n = draw(st.integers(3, 9))
    N = draw(st.integers(0, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    A = rng.integers(-2, 3, size=(n, n)).astype(np.float64)
    S = np.triu(A) + np.triu(A, 1).T
    T = random_triplets(rng, n, N, draw(st.sampled_from(INT_TYPES)))
    return S, T, draw(st.sampled_from(TIES))


# ----------------------------------------------------------------------------- choices
@FAST
@given(tie_cases())
def test_choices_counts_correct_match_reference(case):
    S, T, ties = case
    expected = ref_choices(ref_sims(S, T), ties)
    got = ooo.ooo_choices(S, T, ties)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ooo.ooo_correct(S, T, ties), (expected == 2).astype(np.uint8))
    sims = ref_sims(S, T)
    assert ooo.ooo_counts(S, T, ties) == (int(np.count_nonzero(expected == 2)), *ref_tie_counts(sims))
    # the same through precomputed similarities (the direct path's entry point)
    np.testing.assert_array_equal(ooo.ooo_choices(sims, None, ties), expected)
    np.testing.assert_array_equal(ooo.ooo_choices_sims(sims, ties), expected)
    assert ooo.ooo_counts_sims(sims, ties) == ooo.ooo_counts(S, T, ties)
    np.testing.assert_array_equal(ooo.ooo_correct_sims(sims, ties), ooo.ooo_correct(S, T, ties))
    np.testing.assert_array_equal(ooo.triplet_sims(S, T), sims)


@pytest.mark.parametrize(
    ("row", "paper", "first", "any_tie_wrong", "tie2", "tie3"),
    [
        ([3.0, 1.0, 2.0], 2, 2, 2, 0, 0),
        ([1.0, 3.0, 2.0], 1, 1, 1, 0, 0),
        ([1.0, 2.0, 3.0], 0, 0, 0, 0, 0),
        ([3.0, 3.0, 1.0], 2, 2, -1, 1, 0),
        ([1.0, 3.0, 3.0], 1, 1, -1, 1, 0),
        ([3.0, 1.0, 3.0], 2, 2, -1, 1, 0),
        ([2.0, 2.0, 2.0], -1, 2, -1, 0, 1),
        ([-0.0, 0.0, -1.0], 2, 2, -1, 1, 0),
        ([1.0, 1.0, 3.0], 0, 0, 0, 0, 0),  # a tie below the maximum is no tie
    ],
)
def test_choice_rule_by_hand(row, paper, first, any_tie_wrong, tie2, tie3):
    sims = np.array([row])
    for rule, want in (("paper", paper), ("first", first), ("any-tie-wrong", any_tie_wrong)):
        assert ooo.ooo_choices_sims(sims, rule)[0] == want, rule
        assert ooo.ooo_counts_sims(sims, rule) == (int(want == 2), tie2, tie3), rule
    assert ooo.ooo_choices_sims(sims, "wrong")[0] == any_tie_wrong  # the deprecated alias


def test_branch_free_hit_agrees_with_choice_on_every_tie_pattern():
    from itertools import product

    from alignkit._kernels import ties

    for a, b, c in product([-1.0, 0.0, 1.0], repeat=3):
        for rule in ties.TIE_RULES.values():
            assert bool(ties.hit(a, b, c, rule.mode)) == (ties.choice(a, b, c, rule.mode) == 2)
            assert bool(ooo._hit(a, b, c, rule.mode)) == (ooo._choice(a, b, c, rule.mode) == 2)


def test_duplicated_rows_tie_on_both_paths():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6, 4)).astype(np.float32)
    X[4] = X[1]
    X[5] = X[1]  # objects 1, 4 and 5 are identical: all their pair similarities tie
    T = np.array([[1, 4, 5], [5, 1, 4], [4, 5, 1], [0, 2, 3]], dtype=np.int32)
    for sim in SIMS:
        S = ksim.gram(X, sim)
        direct = ksim.triplet_sims_direct(X, T, sim)
        for src, tri in ((S, T), (direct, None)):
            np.testing.assert_array_equal(ooo.ooo_choices(src, tri, "any-tie-wrong")[:3], -1)
            np.testing.assert_array_equal(ooo.ooo_choices(src, tri, "paper")[:3], -1)
            np.testing.assert_array_equal(ooo.ooo_choices(src, tri, "first")[:3], 2)
            last = int(ooo.ooo_choices(src, tri)[3] == 2)
            assert ooo.ooo_counts(src, tri, "any-tie-wrong")[1:] == (0, 3)
            assert ooo.ooo_counts(src, tri, "first") == (3 + last, 0, 3)


def test_empty_and_three_objects():
    S = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.1], [0.2, 0.1, 1.0]])
    for dtype in INT_TYPES:
        E = np.zeros((0, 3), dtype=dtype)
        assert ooo.ooo_choices(S, E).shape == (0,)
        assert ooo.ooo_correct(S, E).shape == (0,)
        assert ooo.ooo_counts(S, E, "first") == (0, 0, 0)
        assert ooo.triplet_sims(S, E).shape == (0, 3)
        assert ooo.choice_logprobs(S, E).shape == (0, 3)
        assert np.isnan(ooo.triplet_nll(S, E))
        T = np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0]], dtype=dtype)
        np.testing.assert_array_equal(ooo.ooo_choices(S, T), [2, 0, 1])
    assert ooo.ooo_counts_sims(np.zeros((0, 3))) == (0, 0, 0)
    X = np.eye(3)
    assert ksim.triplet_sims_direct(X, np.zeros((0, 3), np.int16), "cosine").shape == (0, 3)


def test_bad_arguments():
    S = np.eye(4)
    with pytest.raises(ValueError, match="tie rule"):
        ooo.ooo_counts(S, np.array([[0, 1, 2]]), "random")
    with pytest.raises(ValueError, match="out of range"):
        ooo.ooo_counts(S, np.array([[0, 1, 4]]))
    with pytest.raises(ValueError, match="out of range"):
        ooo.ooo_choices(S, np.array([[0, -1, 2]], dtype=np.int16))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        ooo.ooo_counts(S, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="square"):
        ooo.ooo_counts(np.ones((3, 4)), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="unknown similarity"):
        ksim.gram(S, "manhattan")


# ----------------------------------------------------------------------------- similarities
@FAST
@given(
    n=st.integers(3, 10),
    p=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    similarity=st.sampled_from(SIMS),
)
def test_gram_and_direct_match_reference(n, p, seed, dtype, similarity):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).astype(dtype)
    X[rng.integers(n)] = 0.0  # a zero row: cosine / correlation 0 with everything
    if n > 3:
        X[rng.integers(n)] = X[rng.integers(n)]
    ref = ref_gram(X, similarity)
    S = ksim.gram(X, similarity)
    assert S.dtype == np.float64 and S.shape == (n, n)
    np.testing.assert_allclose(S, ref, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(ref).max()))
    if similarity == "euclidean":
        np.testing.assert_array_equal(np.diagonal(S), 0.0)
    T = random_triplets(rng, n, 40, np.int32)
    direct = ksim.triplet_sims_direct(X, T, similarity)
    np.testing.assert_allclose(
        direct, ref_sims(S, T), rtol=1e-12, atol=1e-12 * max(1.0, np.abs(ref).max())
    )


def test_direct_equals_gram_path_on_real_sized_features():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 97)).astype(np.float32)
    T = random_triplets(rng, 300, 5000, np.int16)
    for sim in SIMS:
        gathered = ooo.triplet_sims(ksim.gram(X, sim), T)
        direct = ksim.triplet_sims_direct(X, T, sim)
        scale = np.abs(gathered).max()
        np.testing.assert_allclose(direct, gathered, rtol=1e-12, atol=1e-13 * scale)
        S, tri = ksim.triplet_sims_auto(X, T, sim, budget=0)
        assert tri is None and np.array_equal(S, direct)


def test_integer_features_give_identical_counts_on_both_paths():
    rng = np.random.default_rng(11)
    X = rng.integers(-2, 3, size=(40, 3)).astype(np.float32)  # many exact ties
    T = random_triplets(rng, 40, 3000, np.int64)
    for ties in ("wrong", "first"):
        via_gram = ooo.ooo_counts(ksim.gram(X, "dot"), T, ties)
        via_direct = ooo.ooo_counts(ksim.triplet_sims_direct(X, T, "dot"), None, ties)
        assert via_gram == via_direct
        assert via_gram[1] > 0


def test_gram_budget_helpers():
    assert ksim.gram_bytes(1854) == 8 * 1854 * 1854
    assert ksim.use_gram(1854)
    assert not ksim.use_gram(1854, budget=ksim.gram_bytes(1854) - 1)


# ----------------------------------------------------------------------------- log-probabilities
@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4, 1e150]),
    temperature=st.sampled_from([0.0, 0.5, 1.0, 7.0, -2.0]),
)
def test_logprobs_and_nll_match_scipy(seed, scale, temperature):
    rng = np.random.default_rng(seed)
    n = 8
    A = rng.normal(size=(n, n)) * scale
    S = (A + A.T) / 2
    T = random_triplets(rng, n, 50, np.int32)
    expected = scipy.special.log_softmax(temperature * ref_sims(S, T), axis=1)
    got = ooo.choice_logprobs(S, T, temperature)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ooo.choice_logprobs_sims(ref_sims(S, T), temperature), got)
    nll = ooo.triplet_nll(S, T, temperature)
    np.testing.assert_allclose(nll, -expected[:, 0].mean(), rtol=1e-12, atol=1e-12)
    assert ooo.triplet_nll_sims(ref_sims(S, T), temperature) == nll


def test_logprobs_finite_for_huge_similarities():
    sims = np.array([[1e300, -1e300, 0.0], [1e300, 1e300, 1e300], [-5e307, 5e307, 1e-300]])
    lp = ooo.choice_logprobs_sims(sims, 1.0)
    assert np.isfinite(lp).all()
    np.testing.assert_allclose(lp[0], [0.0, -2e300, -1e300])
    np.testing.assert_allclose(lp[1], np.full(3, -np.log(3.0)))
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0)


def _check_nll_thread_invariance(n_threads: int) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 16))
    T = random_triplets(rng, 200, 70_000, np.int32)  # 5 reduction blocks of 2**14
    S = ksim.gram(X, "cosine")
    sims = ooo.triplet_sims(S, T)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = (ooo.triplet_nll(S, T, 3.0), ooo.triplet_nll_sims(sims, 3.0), ooo.ooo_counts(S, T))
        numba.set_num_threads(n_threads)
        assert numba.get_num_threads() > 1
        many = (ooo.triplet_nll(S, T, 3.0), ooo.triplet_nll_sims(sims, 3.0), ooo.ooo_counts(S, T))
    finally:
        numba.set_num_threads(before)
    assert one == many


def test_nll_independent_of_thread_count():
    run_with_threads(_check_nll_thread_invariance)


# ----------------------------------------------------------------------------- real data
def test_spose_accuracy_on_real_things_triplets():
    things = DATA / "things"
    if not (things / "triplets_test20k_0based_oddlast.txt").is_file():
        pytest.skip(f"real THINGS data not found under {things}")
    E = np.loadtxt(things / "spose_embedding_49d_sorted.txt")
    T = np.loadtxt(things / "triplets_test20k_0based_oddlast.txt", dtype=np.int64)
    assert T.shape == (20000, 3)
    for sim, expected in (("dot", 0.63475), ("cosine", 0.6318)):
        for dtype in INT_TYPES:
            for ties in TIES:
                n_correct, n2, n3 = ooo.ooo_counts(ksim.gram(E, sim), T.astype(dtype), ties)
                assert (n2, n3) == (0, 0)
                assert n_correct == round(expected * 20000)
        direct = ksim.triplet_sims_direct(E, T, sim)
        assert ooo.ooo_counts(direct, None, "any-tie-wrong") == (round(expected * 20000), 0, 0)


def test_blocked_gram_is_exactly_symmetric_and_equals_the_product(monkeypatch):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(1000, 37))
    X[7] = X[500]  # identical rows in different blocks must tie exactly
    whole = {sim: ksim.gram(X, sim) for sim in SIMS}  # one syrk
    monkeypatch.setattr(ksim, "SYRK_MAX_ROWS", 256)
    monkeypatch.setattr(ksim, "_GRAM_BLOCK", 128)
    idx = np.r_[0:5, 7, 126:131, 255:258, 500, 620:625, 999]  # rows across blocks
    for sim in SIMS:
        S = ksim.gram(X, sim)
        assert (S == S.T).all(), sim
        np.testing.assert_allclose(S, whole[sim], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(S[np.ix_(idx, idx)], ref_gram(X[idx], sim), rtol=1e-10,
                                   atol=1e-10)
        assert S[7, 3] == S[500, 3] and S[3, 7] == S[3, 500]


def test_gram_of_16000_objects_does_not_crash(tmp_path):
    """OpenBLAS 0.3.31's threaded dsyrk crashes the process at about 16,000 x 768."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from alignkit.score import odd_one_out\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.normal(size=(16000, 768)).astype(np.float32)\n"
        "T = rng.integers(0, 16000, size=(5000, 3))\n"
        "T = T[(T[:, 0] != T[:, 1]) & (T[:, 0] != T[:, 2]) & (T[:, 1] != T[:, 2])]\n"
        "r = odd_one_out(X, T, similarity='dot')\n"
        "assert r.method == 'gram', r.method\n"
        "print(r.n_correct)\n"
    )
    import os

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "nc"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, env=env)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert int(out.stdout.strip()) > 0


# ----------------------------------------------------------------------------- two precisions
@st.composite
def near_tie_cases(draw):
    """Symmetric S whose entries differ by a few float64 ulps (equal once rounded to
    float32) or are exactly equal, with triplets and a tie rule."""
    n = draw(st.integers(3, 12))
    N = draw(st.integers(1, 200))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    base = rng.integers(-2, 3, size=(n, n)).astype(np.float64) * 0.1
    ulps = rng.integers(-3, 4, size=(n, n))
    A = base + ulps * np.spacing(np.maximum(np.abs(base), 0.1))
    S = np.triu(A) + np.triu(A, 1).T
    return S, random_triplets(rng, n, N, draw(st.sampled_from(INT_TYPES))), draw(st.sampled_from(TIES))


@FAST
@given(near_tie_cases())
def test_two_precision_tally_equals_float64_on_near_ties(case):
    S, T, ties = case
    S32 = ooo.rounded32(S)
    np.testing.assert_array_equal(S32, S.astype(np.float32))
    expected = ref_choices(ref_sims(S, T), ties)
    counts = (int(np.count_nonzero(expected == 2)), *ref_tie_counts(ref_sims(S, T)))
    for s32 in (None, S32):
        n_c, n2, n3, cor, ch = ooo.ooo_tally(S, T, ties, correct=True, choices=True, S32=s32)
        assert (n_c, n2, n3) == counts
        np.testing.assert_array_equal(ch, expected)
        np.testing.assert_array_equal(cor, (expected == 2).astype(np.uint8))
        n_c, n2, n3, cor, ch = ooo.ooo_tally(S, T, ties, correct=True, S32=s32)
        assert (n_c, n2, n3) == counts and ch is None
        np.testing.assert_array_equal(cor, (expected == 2).astype(np.uint8))


def test_two_precision_keeps_ties_of_real_features():
    """Duplicated feature rows tie exactly; the float32 copy must not change any count."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1200, 16))
    X[600:] = X[:600]  # every object has an exact twin: many two- and three-way ties
    X = X * 1e-3  # small values: many float32 collisions
    T = random_triplets(rng, 1200, 400_000 // 1000)
    T = np.concatenate([T, np.array([[0, 600, 1], [1, 601, 602], [2, 602, 3]])])
    for sim in ("dot", "cosine", "euclidean"):
        S = ksim.gram(X, sim)
        for ties in TIES:
            a = ooo.ooo_tally(S, T, ties, correct=True, S32=ooo.rounded32(S))
            b = ooo.ooo_tally(S, T, ties, correct=True)
            assert a[:3] == b[:3] and a[2] >= 0
            np.testing.assert_array_equal(a[3], b[3])
    assert ooo.use_two_precision(1854, 4_700_000) and not ooo.use_two_precision(1854, 20_000)
    assert not ooo.use_two_precision(100, 10**7)


def test_scoring_reads_the_float32_copy_and_counts_as_float64():
    """At >= 1024 objects and many triplets the CPU backend takes the two-precision path;
    on integer features (exact ties everywhere) its counts equal the float64 kernel's."""
    from alignkit._kernels.backends import backend

    rng = np.random.default_rng(3)
    X = rng.integers(-2, 3, size=(1100, 4)).astype(np.float32)
    T = rng.integers(0, 1100, size=(310_000, 3)).astype(np.int32)
    assert ooo.use_two_precision(1100, len(T))
    for ties in TIES:
        want = ooo.ooo_counts(ksim.gram(X, "dot"), T, ties)
        n_c, n2, n3, ch, cor = backend("odd_one_out", "cpu")(
            X, T, "dot", ties, use_gram=True, per_triplet=True, need_correct=True)
        assert (n_c, n2, n3) == want and n2 > 0 and n3 > 0
        np.testing.assert_array_equal(ch, ooo.ooo_choices(ksim.gram(X, "dot"), T, ties))


def test_blocked_direct_path_equals_the_plain_kernel_bit_for_bit(monkeypatch):
    """Grouping triplets by row blocks changes no value; float32 rows read as they are give
    the float64 similarities to rounding; twin rows tie exactly (euclidean: distance 0)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 43)).astype(np.float32)  # 43: not a multiple of a vector width
    X[250:] = X[:250]  # twins: exact ties and zero distances
    T = rng.integers(0, 500, size=(3000, 3)).astype(np.int32)
    twins = np.stack([np.arange(250), np.arange(250) + 250, rng.integers(0, 500, 250)], 1)
    T = np.concatenate([T, twins.astype(np.int32)])
    plain = {sim: ksim.triplet_sims_direct(X, T, sim) for sim in SIMS}
    monkeypatch.setattr(ksim, "DIRECT_CACHE_BYTES", 3 * 43 * 8 * 40)  # blocks of 40 rows
    monkeypatch.setattr(ksim, "DIRECT_BLOCKED_MIN_TRIPLETS", 100)
    for sim in SIMS:
        got = ksim.triplet_sims_direct(X, T, sim)
        np.testing.assert_array_equal(got, plain[sim])
        ref = naive.triplet_sims(X, T, sim)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
        tw = got[-250:]
        np.testing.assert_array_equal(tw[:, 1], tw[:, 2])  # s(i, k) == s(i', k) exactly
        if sim == "euclidean":
            assert np.all(tw[:, 0] == 0.0)  # twins at distance exactly 0
    order, starts = ksim._bucket_order(T, 40)
    assert sorted(order.tolist()) == list(range(len(T)))
    blocks = np.sort(T[order] // 40, axis=1)
    keys = (blocks[:, 0] * 13 + blocks[:, 1]) * 13 + blocks[:, 2]
    assert np.all(np.diff(keys) >= 0) and starts[-1] == len(T)
