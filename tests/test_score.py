"""The scoring API against plain numpy/scipy references and the real data's known figures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from alignkit.errors import DataError, InputError, MismatchError
from alignkit.score import (
    CHANCE,
    assign_concepts,
    model_rdm,
    normalised_score,
    odd_one_out,
    rsa,
    rsa_features,
)


def _reference_choices(X: np.ndarray, T: np.ndarray, similarity: str, ties: str) -> np.ndarray:
    """Plain numpy: position of the model's odd one out, -1 for a tie under 'wrong'."""
    X = X.astype(np.float64)
    if similarity == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = X @ X.T
    sims = np.stack([S[T[:, 0], T[:, 1]], S[T[:, 0], T[:, 2]], S[T[:, 1], T[:, 2]]], axis=1)
    first = np.argmax(sims, axis=1)  # pair 0 -> odd 2, pair 1 -> odd 1, pair 2 -> odd 0
    choice = (2 - first).astype(np.int8)
    n_max = (sims == sims.max(axis=1, keepdims=True)).sum(axis=1)
    if ties == "any-tie-wrong":
        choice[n_max > 1] = -1
    elif ties == "paper":
        choice[n_max == 3] = -1
    return choice


@pytest.fixture(scope="module")
def spose(shared_data):
    return np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")


@pytest.fixture(scope="module")
def test20k(shared_data):
    return np.loadtxt(shared_data / "things" / "triplets_test20k_0based_oddlast.txt", dtype=np.int64)


@pytest.mark.parametrize(("similarity", "expected"), [("dot", 0.63475), ("cosine", 0.6318)])
def test_real_spose_accuracy(spose, test20k, similarity, expected):
    from alignkit.data import load_triplets

    res = odd_one_out(spose, load_triplets(test20k, object_ids="things"), similarity=similarity)
    assert res.n_triplets == 20000
    assert (res.n_ties, res.n_ties2, res.n_ties3) == (0, 0, 0)
    assert res.accuracy == pytest.approx(expected, abs=1e-12)
    assert res.ceiling == 0.673 and "THINGS" in res.ceiling_source
    assert res.normalised == pytest.approx((expected - 1 / 3) / (0.673 - 1 / 3))
    # the same triplets without object ids are not known to be THINGS: no ceiling
    bare = odd_one_out(spose, test20k, similarity=similarity)
    assert bare.accuracy == res.accuracy
    assert bare.ceiling is None and bare.normalised is None
    assert any("not THINGS" in n for n in bare.notes)


def test_bundled_inputs_give_the_same_figures(spose, test20k):
    from alignkit.data import load_embedding, load_triplets

    emb = load_embedding("spose-49d")
    trip = load_triplets("things-test20k")
    np.testing.assert_array_equal(emb.values, spose)
    np.testing.assert_array_equal(trip.array, test20k)
    res = odd_one_out(emb.values, trip, similarity="dot")
    assert res.accuracy == pytest.approx(0.63475, abs=1e-12)
    assert res.provenance["triplets"]["checksum"] == trip.checksum


def _assert_cosine_choices_explained(choices: np.ndarray, X: np.ndarray, T: np.ndarray,
                                     ties: str) -> None:
    """The kernel's cosine choices equal a float64 reference computed by the kernel's own
    definition (rows scaled by ``1 / sqrt(sum x^2)``, then dot products), except where the
    reference's two largest similarities lie within rounding of each other: there the two
    orders of summation may legitimately split (or make) a tie, and nowhere else."""
    Y = X.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", Y, Y))
    Y = Y * np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)[:, None]
    pairs = ((0, 1), (0, 2), (1, 2))
    sims = np.stack([np.einsum("ij,ij->i", Y[T[:, a]], Y[T[:, b]]) for a, b in pairs], axis=1)
    first = np.argmax(sims, axis=1)
    ref = (2 - first).astype(np.int8)
    n_max = (sims == sims.max(axis=1, keepdims=True)).sum(axis=1)
    if ties == "any-tie-wrong":
        ref[n_max > 1] = -1
    elif ties == "paper":
        ref[n_max == 3] = -1
    # each unit-row dot product of p terms is within about (p + 2) eps of the exact cosine
    # in either evaluation, so two evaluations of one similarity differ by at most twice that
    margin = 2 * (X.shape[1] + 2) * np.finfo(np.float64).eps
    top = np.sort(sims, axis=1)[:, ::-1]
    near_tie = top[:, 0] - top[:, 1] < margin
    differ = np.flatnonzero(choices != ref)
    for t in differ:
        assert near_tie[t], (
            f"triplet {t} {T[t].tolist()}: kernel chose {choices[t]}, reference {ref[t]}, with "
            f"similarities {sims[t].tolist()} (top two {top[t, 0] - top[t, 1]:.3g} apart, "
            f"rounding margin {margin:.3g})"
        )
    np.testing.assert_array_equal(choices[~near_tie], ref[~near_tie])


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("ties", ["paper", "first", "any-tie-wrong"])
def test_per_triplet_choices_match_numpy(similarity, ties):
    rng = np.random.default_rng(3)
    X = rng.integers(-2, 3, size=(40, 4)).astype(np.float32)  # small integers: exact ties happen
    X[5] = X[6]  # duplicated rows force ties
    T = np.array([rng.choice(40, 3, replace=False) for _ in range(3000)], dtype=np.int32)
    T[:20, :2] = [5, 6]
    X[np.linalg.norm(X, axis=1) == 0] = 1.0
    res = odd_one_out(X, T, similarity=similarity, ties=ties, per_triplet=True)
    ref = _reference_choices(X, T, similarity, ties)
    if similarity == "dot":  # exact ties are exact in both
        np.testing.assert_array_equal(res.choices, ref)
    else:
        _assert_cosine_choices_explained(res.choices, X, T, ties)
    assert res.n_correct == int((res.choices == 2).sum())
    np.testing.assert_array_equal(res.correct, (res.choices == 2).astype(np.uint8))
    ref_ties = _reference_choices(X, T, similarity, "any-tie-wrong") == -1
    if similarity == "dot":
        assert res.n_ties == int(ref_ties.sum()) > 0


def test_direct_path_equals_gram_path():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 16)).astype(np.float32)
    T = np.array([rng.choice(200, 3, replace=False) for _ in range(5000)])
    for sim in ("cosine", "dot", "euclidean", "correlation"):
        a = odd_one_out(X, T, similarity=sim)
        b = odd_one_out(X, T, similarity=sim, memory_budget=0)
        assert b.method == "direct" and a.method == "gram"
        assert a.n_correct == b.n_correct and a.n_ties == b.n_ties


def test_rotation_invariance():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 10))
    Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    T = np.array([rng.choice(100, 3, replace=False) for _ in range(4000)])
    for sim in ("cosine", "dot", "euclidean"):
        assert odd_one_out(X, T, similarity=sim).n_correct == odd_one_out(X @ Q, T, similarity=sim).n_correct


def test_bootstrap_interval_is_seeded_and_covers_the_accuracy(spose, test20k):
    a = odd_one_out(spose, test20k, similarity="dot", bootstrap=500, seed=7)
    b = odd_one_out(spose, test20k, similarity="dot", bootstrap=500, seed=7)
    c = odd_one_out(spose, test20k, similarity="dot", bootstrap=500, seed=8)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert a.ci_low < a.accuracy < a.ci_high
    # the binomial standard error sets the width of a 95% interval: about 2 x 1.96 x se
    se = np.sqrt(a.accuracy * (1 - a.accuracy) / a.n_triplets)
    assert 0.8 * 3.92 * se < a.ci_high - a.ci_low < 1.2 * 3.92 * se


def test_concept_breakdown_matches_numpy(spose, test20k):
    res = odd_one_out(spose, test20k, similarity="dot", concepts=spose, per_triplet=True)
    pc = res.per_concept
    ref_dims = np.argmax((spose[test20k[:, 0]] + spose[test20k[:, 1]]) / 2, axis=1)
    np.testing.assert_array_equal(pc.counts, np.bincount(ref_dims, minlength=49))
    np.testing.assert_array_equal(pc.n_correct, np.bincount(ref_dims, weights=res.correct, minlength=49))
    assert pc.counts.sum() == 20000 and pc.n_correct.sum() == res.n_correct
    top2 = assign_concepts(test20k, spose, top=2)
    np.testing.assert_array_equal(top2[:, 0], ref_dims)
    assert (top2[:, 0] != top2[:, 1]).all()


def test_normalised_score_and_ceiling():
    assert normalised_score(CHANCE, 0.673) == 0.0
    assert normalised_score(0.2, 0.673) == 0.0
    assert normalised_score(0.673, 0.673) == pytest.approx(1.0)
    assert normalised_score(0.5, None) is None
    with pytest.raises(InputError, match="ceiling"):
        normalised_score(0.5, 0.3)


def test_empty_and_minimal_inputs():
    X = np.eye(3)
    res = odd_one_out(X, np.zeros((0, 3), dtype=np.int16))
    assert res.n_triplets == 0 and res.n_correct == 0
    res = odd_one_out(np.array([[1.0, 0], [1.0, 0.1], [0, 1.0]]), np.array([[0, 1, 2]], dtype=np.int16))
    assert res.accuracy == 1.0


def test_float16_features_and_index_dtypes():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 8)).astype(np.float16)
    T = np.array([rng.choice(50, 3, replace=False) for _ in range(1000)])
    ref = _reference_choices(X.astype(np.float32), T, "dot", "paper")
    for dt in (np.int16, np.int32, np.int64):
        res = odd_one_out(X, T.astype(dt), similarity="dot", per_triplet=True)
        np.testing.assert_array_equal(res.choices, ref)


def test_bad_inputs():
    X = np.ones((10, 3))
    with pytest.raises(MismatchError, match="row 2"):
        odd_one_out(X, np.array([[0, 1, 2], [0, 1, 10]]))
    X2 = np.ones((10, 3))
    X2[4, 1] = np.nan
    with pytest.raises(DataError, match="row 5"):
        odd_one_out(X2, np.array([[0, 1, 2]]))
    # the library names the argument (the command line names its option)
    with pytest.raises(InputError, match=r"^similarity: 'manhattan' is not one of dot, cosine"):
        odd_one_out(X, np.array([[0, 1, 2]]), similarity="manhattan")
    with pytest.raises(InputError, match=r"^bootstrap must be at least 0, got -1"):
        odd_one_out(X, np.array([[0, 1, 2]]), bootstrap=-1)
    with pytest.raises(InputError, match=r"^bootstrap: expected an integer, got 2\.5"):
        odd_one_out(X, np.array([[0, 1, 2]]), bootstrap=2.5)
    with pytest.raises(InputError, match=r"^ci_level must be less than 1, got 1\.0"):
        odd_one_out(X, np.array([[0, 1, 2]]), ci_level=1.0)
    with pytest.raises(InputError, match=r"'metric' is not an option of OddOneOutOptions"):
        odd_one_out(X, np.array([[0, 1, 2]]), metric="dot")


# ---------------------------------------------------------------- RSA


@pytest.fixture(scope="module")
def rdm48(shared_data):
    import csv

    from scipy.io import loadmat

    M = loadmat(shared_data / "rdm" / "RDM48_triplet.mat")["RDM48_triplet"]
    with open(shared_data / "rdm" / "rdm48_order.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return M, np.array([int(r["things_index0"]) for r in rows]), np.array([r["uniqueID"] for r in rows])


def test_rsa_spose_vs_rdm48(spose, rdm48, shared_data):
    M, idx, uids = rdm48
    things = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    res = rsa_features(spose, things, M, reference_ids=uids, rdm_method="dot")
    sub = spose[idx]
    iu = np.triu_indices(48, 1)
    ref = spearmanr(-(sub @ sub.T)[iu], M[iu]).statistic
    assert res.value == pytest.approx(ref, abs=1e-12)
    assert 0.85 < res.value < 0.89
    assert res.n_stimuli == 48 and res.n_pairs == 48 * 47 // 2
    # rows in another order give the same value: alignment is by id
    perm = np.random.default_rng(0).permutation(len(things))
    res2 = rsa_features(spose[perm], things[perm], M, reference_ids=uids, rdm_method="dot")
    assert res2.value == pytest.approx(res.value, abs=1e-12)


def test_rsa_with_bundled_rdm(spose, shared_data):
    from alignkit.data import load_rdm, things_ids

    res = rsa_features(spose, things_ids(), load_rdm("rdm48"), rdm_method="dot")
    assert 0.85 < res.value < 0.89


def test_model_rdm_methods_match_scipy():
    from scipy.spatial.distance import pdist, squareform

    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 7))
    np.testing.assert_allclose(model_rdm(X, "correlation"), squareform(pdist(X, "correlation")), atol=1e-12)
    np.testing.assert_allclose(model_rdm(X, "cosine"), squareform(pdist(X, "cosine")), atol=1e-12)
    np.testing.assert_allclose(model_rdm(X, "euclidean"), squareform(pdist(X)), atol=1e-9)


def test_rsa_permutation_and_bootstrap():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 5))
    A = model_rdm(X, "euclidean")
    B = model_rdm(X + 0.5 * rng.normal(size=X.shape), "euclidean")
    res = rsa(A, B, permutations=999, bootstrap=200, seed=3)
    iu = np.triu_indices(40, 1)
    assert res.value == pytest.approx(spearmanr(A[iu], B[iu]).statistic, abs=1e-12)
    assert res.p_value == pytest.approx(1 / 1000)  # strongly related: no permutation beats it
    assert res.ci_low < res.value < res.ci_high
    unrelated = model_rdm(rng.normal(size=(40, 5)), "euclidean")
    assert rsa(A, unrelated, permutations=999, seed=3).p_value > 0.01
    assert rsa(A, B, compare="pearson").value == pytest.approx(np.corrcoef(A[iu], B[iu])[0, 1])


def test_rsa_bad_inputs():
    A = np.zeros((4, 4))
    with pytest.raises(DataError, match="square"):
        rsa(np.zeros((4, 3)), A)
    B = np.arange(16.0).reshape(4, 4)
    with pytest.raises(DataError, match="symmetric"):
        rsa(A, B)
    with pytest.raises(MismatchError):
        rsa_features(np.ones((3, 2)), ["a", "b", "c"], np.zeros((3, 3)), reference_ids=["a", "b", "x"])
