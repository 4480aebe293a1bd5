"""Every registered similarity against its slow, obvious reference in ``tests/naive.py``.

The test iterates :data:`alignkit._kernels.similarity.SIMILARITIES`, so a new similarity is
checked (Gram path, direct CPU path) as soon as it is registered, and fails until it has a
reference; its CUDA paths are checked under the simulator by ``check_similarities`` of
``tests/_cuda_sim_checks.py`` (run by ``tests/test_cuda_sim.py``), which iterates the same
registry.
"""

from __future__ import annotations

import dataclasses

import naive
import numpy as np
import pytest

from alignkit._kernels import ooo
from alignkit._kernels import similarity as ksim

ZERO, CONSTANT, SAME_A, SAME_B = 3, 8, 9, 10


def features(dtype: type, seed: int = 0) -> np.ndarray:
    """Small-integer features (exact products) with a zero row, a constant row and two
    identical rows; ``p = 11``: the direct kernel's eight accumulators plus a tail."""
    rng = np.random.default_rng(seed)
    X = rng.integers(-2, 3, size=(16, 11)).astype(dtype)
    X[ZERO] = 0.0
    X[CONSTANT] = 2.0
    X[SAME_B] = X[SAME_A]
    return X


def triplets(n: int, N: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.array([rng.choice(n, 3, replace=False) for _ in range(N)], dtype=np.int32)
    T[:4] = [[1, SAME_A, SAME_B], [ZERO, 1, 2], [CONSTANT, 1, 2], [SAME_A, SAME_B, ZERO]]
    return T


def test_registry_order_fields_and_references():
    assert tuple(ksim.SIMILARITIES) == ("dot", "cosine", "euclidean", "correlation")
    assert ", ".join(ksim.SIMILARITIES) == "dot, cosine, euclidean, correlation"
    assert set(ksim.SIMILARITIES) == set(naive.SIMILARITIES), "every similarity needs a reference"
    for name, sim in ksim.SIMILARITIES.items():
        assert isinstance(sim, ksim.Similarity) and sim.name == name
        assert sim.summary and "\n" not in sim.summary and sim.reference
        assert sim.row_factor in ksim.ROW_FACTORS
        assert sim.pair.__doc__ and "s =" in sim.pair.__doc__  # the formula
        with pytest.raises(dataclasses.FrozenInstanceError):
            sim.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", list(ksim.SIMILARITIES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_similarity_equals_its_reference_on_both_paths(name, dtype):
    X = features(dtype)
    X_ref = X.astype(np.float64)
    want = naive.gram(X_ref, name)
    S = ksim.gram(X, name)
    assert S.dtype == np.float64 and (S == S.T).all()
    np.testing.assert_allclose(S, want, rtol=1e-13, atol=1e-13)
    T = triplets(len(X), 300)
    ref = naive.triplet_sims(X_ref, T, name)
    direct = ksim.triplet_sims_direct(X, T, name)
    np.testing.assert_allclose(direct, ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(direct, ooo.triplet_sims(S, T), rtol=1e-13, atol=1e-13)
    # the cases defined exactly: identical rows tie exactly with each other's partners
    for src in (S, direct):
        sims = ooo.triplet_sims(src, T) if src is S else src
        assert sims[0, 0] == sims[0, 1], (name, sims[0])
    for a in range(len(X)):  # identical rows: the same similarity with everything
        assert S[SAME_A, a] == S[SAME_B, a]
    if name in ("cosine", "correlation"):
        dead = ZERO if name == "cosine" else CONSTANT  # a zero / constant row: 0 with all
        assert (S[dead] == 0.0).all() and (direct[1 if dead == ZERO else 2, :2] == 0.0).all()
    if name == "correlation":
        assert (S[ZERO] == 0.0).all()  # a zero row is constant too
    if name == "euclidean":
        assert (np.diagonal(S) == 0.0).all() and S[SAME_A, SAME_B] == 0.0
        assert direct[0, 2] == 0.0 and direct[3, 0] == 0.0
    if name == "dot":
        np.testing.assert_array_equal(S, want)  # integer features: exact
        np.testing.assert_array_equal(direct, ref)
    # the choices follow: equal to the reference's wherever rounding cannot reorder a row
    ok = naive.decided(ref)
    assert ok.mean() > 0.6
    ok[:4] = True  # built from identical, zero and constant rows: exact on every path
    for ties in ("paper", "first", "any-tie-wrong"):
        want_choices = naive.choices(ref, ties)
        for src, tri in ((S, T), (direct, None)):
            got = ooo.ooo_choices(src, tri, ties)
            np.testing.assert_array_equal(got[ok], want_choices[ok])


@pytest.mark.parametrize("name", list(ksim.SIMILARITIES))
def test_every_similarity_on_random_floats(name):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((12, 19))
    T = triplets(12, 60, seed=5)
    np.testing.assert_allclose(ksim.gram(X, name), naive.gram(X, name), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        ksim.triplet_sims_direct(X, T, name), naive.triplet_sims(X, T, name),
        rtol=1e-12, atol=1e-12,
    )


def test_prepare_rows_follows_the_declaration():
    X = features(np.float32)
    for name, sim in ksim.SIMILARITIES.items():
        Y, f = ksim.prepare_rows(X, name)
        assert Y.dtype == np.float64 and Y.flags.c_contiguous and f.shape == (len(X),)
        base = X.astype(np.float64)
        if sim.centre_rows:
            base = base - base.mean(axis=1, keepdims=True)
        np.testing.assert_array_equal(Y, base)
        np.testing.assert_array_equal(f, ksim.ROW_FACTORS[sim.row_factor](Y))
