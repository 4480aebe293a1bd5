"""CKA and shape-metric kernels against plain numpy/scipy formulas written here."""

from __future__ import annotations

import itertools

import naive  # noqa: E402
import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from alignkit._kernels import cka as kcka


# ----------------------------------------------------------------------------- references
def centring(n):
    return np.eye(n) - np.ones((n, n)) / n


def hsic_gram(K, L):
    """tr(K H L H) (the biased HSIC without its 1/(n-1)^2)."""
    H = centring(K.shape[0])
    return float(np.trace(K @ H @ L @ H))


def cka_gram(K, L):
    return hsic_gram(K, L) / np.sqrt(hsic_gram(K, K) * hsic_gram(L, L))


def rbf_paper(X, fraction=1.0):
    """The RBF kernel as the paper's code builds it (median of the non-zero entries)."""
    GX = X @ X.T
    KX = np.diag(GX) - GX + (np.diag(GX) - GX).T
    sigma = fraction * np.sqrt(np.median(KX[KX != 0]))
    return np.exp(KX * (-0.5 / sigma**2)), sigma


def hsic_ustat(K, L):
    """Song et al. 2012, Theorem 2: the U-statistic over distinct 4-tuples."""
    n = K.shape[0]
    total = 0.0
    count = 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        # h(i,j,q,r) = 1/24 sum over the orderings (s,t,u,v) of (i,j,q,r) of
        # k_st l_st + k_st l_uv - 2 k_st l_su
        h = 0.0
        for s, t, u, v in itertools.permutations((i, j, q, r)):
            h += K[s, t] * L[s, t] + K[s, t] * L[u, v] - 2 * K[s, t] * L[s, u]
        total += h / 24
        count += 1
    return total / count


def cka_unbiased_ref(K, L):
    def hu(A, B):
        n = A.shape[0]
        At, Bt = A.copy(), B.copy()
        np.fill_diagonal(At, 0)
        np.fill_diagonal(Bt, 0)
        one = np.ones(n)
        return (np.trace(At @ Bt) + (one @ At @ one) * (one @ Bt @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ At @ Bt @ one) / (n * (n - 3))
    return hu(K, L) / np.sqrt(hu(K, K) * hu(L, L))


def pad(X, width):
    return np.pad(X, ((0, 0), (0, width - X.shape[1])))


def whiten_ref(X, alpha, tol=1e-7):
    """netrep's whiten (preserve_variance=True) written out."""
    if alpha > 1 - tol:
        return X
    lam, V = np.linalg.eigh(X.T @ X)
    lam = np.maximum(lam, tol)
    d = alpha + (1 - alpha) * lam ** (-0.5)
    new_var = np.sum(alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2)
    d *= np.sqrt(np.sum(lam) / new_var)
    return X @ ((V * d) @ V.T)


def shape_ref(X, Y, alpha=1.0, centre=True, metric="angular", normalise=True):
    w = max(X.shape[1], Y.shape[1])
    X, Y = pad(X, w), pad(Y, w)
    if centre:
        X, Y = X - X.mean(0), Y - Y.mean(0)
    Xw, Yw = whiten_ref(X, alpha), whiten_ref(Y, alpha)
    if metric == "angular":
        nuc = np.linalg.svd(Xw.T @ Yw, compute_uv=False).sum()
        return np.arccos(np.clip(nuc / (np.linalg.norm(Xw) * np.linalg.norm(Yw)), -1, 1))
    if normalise:
        Xw, Yw = Xw / np.linalg.norm(Xw), Yw / np.linalg.norm(Yw)
    R, _ = orthogonal_procrustes(Xw, Yw)
    return np.linalg.norm(Xw @ R - Yw)


@pytest.fixture(scope="module")
def spose(shared_data):
    return np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")


def rand(seed, n, p, q):
    rs = np.random.default_rng(seed)
    X = rs.normal(size=(n, p)) + rs.normal(size=p)
    Y = X[:, : min(p, q)] @ rs.normal(size=(min(p, q), q)) + 2 * rs.normal(size=(n, q))
    return X, Y


# ----------------------------------------------------------------------------- linear CKA
@pytest.mark.parametrize("seed,n,p,q", [(0, 50, 7, 5), (1, 40, 60, 3), (2, 3000, 9, 4)])
def test_linear_cka_matches_gram_form(seed, n, p, q):
    X, Y = rand(seed, n, p, q)
    ref = cka_gram(X @ X.T, Y @ Y.T)
    assert kcka.linear_cka(X, Y) == pytest.approx(ref, rel=1e-10)
    assert kcka.linear_cka(X.astype(np.float32), Y.astype(np.float32)) == pytest.approx(ref, rel=1e-5)


def test_linear_cka_weights_equal_repeated_rows():
    X, Y = rand(3, 60, 6, 4)
    idx = np.random.default_rng(0).integers(0, 60, 60)
    w = np.bincount(idx, minlength=60)
    Xe, Ye = X[idx], Y[idx]
    assert kcka.linear_cka(X, Y, w) == pytest.approx(cka_gram(Xe @ Xe.T, Ye @ Ye.T), rel=1e-10)
    assert kcka.linear_cka(X, Y, w, debiased=True) == pytest.approx(
        cka_unbiased_ref(Xe @ Xe.T, Ye @ Ye.T), rel=1e-9)


def test_unbiased_hsic_is_the_u_statistic():
    rs = np.random.default_rng(5)
    X, Y = rs.normal(size=(7, 3)), rs.normal(size=(7, 2))
    K, L = X @ X.T, Y @ Y.T
    n = 7
    assert kcka.hsic_unbiased(K, L) / (n * (n - 3)) == pytest.approx(hsic_ustat(K, L), rel=1e-9)
    K2, _ = rbf_paper(X)
    assert kcka.hsic_unbiased(K2, L) / (n * (n - 3)) == pytest.approx(hsic_ustat(K2, L), rel=1e-9)


@pytest.mark.parametrize("seed,n,p,q", [(0, 30, 5, 4), (1, 25, 40, 6)])
def test_debiased_linear_feature_space_matches_gram(seed, n, p, q):
    X, Y = rand(seed, n, p, q)
    ref = cka_unbiased_ref(X @ X.T, Y @ Y.T)
    assert kcka.linear_cka(X, Y, debiased=True) == pytest.approx(ref, rel=1e-9)
    assert kcka.kernel_cka(X @ X.T, Y @ Y.T, debiased=True) == pytest.approx(ref, rel=1e-9)


def test_reduce_width_keeps_linear_cka_and_shape():
    X, Y = rand(4, 30, 80, 5)
    Xr = kcka.reduce_width(X)
    assert Xr.shape == (30, 30)
    assert kcka.linear_cka(Xr, Y) == pytest.approx(kcka.linear_cka(X, Y), rel=1e-8)
    assert kcka.linear_cka(Xr, Y, debiased=True) == pytest.approx(
        kcka.linear_cka(X, Y, debiased=True), rel=1e-7)
    for metric in ("angular", "procrustes"):
        assert kcka.shape_distance(Xr, Y, metric=metric) == pytest.approx(
            shape_ref(X, Y, metric=metric), rel=1e-7)


# ----------------------------------------------------------------------------- RBF CKA
@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_rbf_cka_matches_paper_kernel(fraction):
    X, Y = rand(6, 40, 5, 3)
    K, sx = rbf_paper(X, fraction)
    L, sy = rbf_paper(Y, fraction)
    assert kcka.median_sigma(X, fraction) == pytest.approx(sx, rel=1e-12)
    Kk = kcka.rbf_gram(X, kcka.median_sigma(X, fraction))
    np.testing.assert_allclose(Kk, K, rtol=1e-10, atol=1e-12)
    Lk = kcka.rbf_gram(Y, kcka.median_sigma(Y, fraction))
    assert kcka.kernel_cka(Kk, Lk) == pytest.approx(cka_gram(K, L), rel=1e-10)
    assert kcka.kernel_cka(Kk, Lk, debiased=True) == pytest.approx(cka_unbiased_ref(K, L), rel=1e-9)


# ----------------------------------------------------------------------------- shape metrics
@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("centre", [True, False])
@pytest.mark.parametrize("p,q", [(6, 6), (8, 5)])
def test_shape_matches_netrep_style_reference(alpha, centre, p, q):
    X, Y = rand(7, 80, p, q)
    for metric in ("angular", "procrustes"):
        got = kcka.shape_distance(X, Y, metric=metric, alpha=alpha, centre=centre)
        assert got == pytest.approx(shape_ref(X, Y, alpha, centre, metric), rel=1e-7, abs=1e-9)
    got = kcka.shape_distance(X, Y, metric="procrustes", alpha=alpha, centre=centre,
                              normalise=False)
    assert got == pytest.approx(shape_ref(X, Y, alpha, centre, "procrustes", False), rel=1e-7)


def test_angular_is_arccos_of_normalised_nuclear_norm():
    X, Y = rand(8, 50, 4, 4)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    ref = np.arccos(np.linalg.norm(Xc.T @ Yc, "nuc") / (np.linalg.norm(Xc) * np.linalg.norm(Yc)))
    assert kcka.shape_distance(X, Y) == pytest.approx(ref, rel=1e-10)


def test_shape_weights_equal_repeated_rows():
    X, Y = rand(9, 40, 5, 3)
    idx = np.random.default_rng(1).integers(0, 40, 40)
    w = np.bincount(idx, minlength=40)
    for alpha in (1.0, 0.3):
        assert kcka.shape_distance(X, Y, w, alpha=alpha) == pytest.approx(
            shape_ref(X[idx], Y[idx], alpha), rel=1e-8)


def test_cca_invariance_and_procrustes_non_invariance():
    rs = np.random.default_rng(10)
    X = rs.normal(size=(100, 10))
    Y = X @ rs.normal(size=(10, 10)) + rs.normal(size=10)
    assert kcka.shape_distance(X, Y, alpha=0.0) < 1e-6
    assert kcka.shape_distance(X, Y, alpha=1.0) > 1e-2


# ----------------------------------------------------------------------------- invariances on SPoSE
def test_spose_rotated_scaled_copy(spose):
    Q = ortho_group.rvs(49, random_state=3)
    Y = 2.5 * spose @ Q + 0.7
    assert kcka.linear_cka(spose, Y) == pytest.approx(1.0, abs=1e-10)
    assert kcka.linear_cka(spose, Y, debiased=True) == pytest.approx(1.0, abs=1e-10)
    assert kcka.shape_distance(spose, Y, metric="angular") < 1e-6
    assert kcka.shape_distance(spose, Y, metric="procrustes") < 1e-6
    K = kcka.rbf_gram(spose[:300], kcka.median_sigma(spose[:300]))
    L = kcka.rbf_gram(Y[:300], kcka.median_sigma(Y[:300]))
    assert kcka.kernel_cka(K, L) == pytest.approx(1.0, abs=1e-9)
    # a wider copy (rotated into 60 dimensions) is zero-padded: still the same shape
    Q60 = ortho_group.rvs(60, random_state=4)[:49]
    assert kcka.shape_distance(spose, spose @ Q60, metric="procrustes") < 1e-6
    assert kcka.linear_cka(spose, spose @ Q60) == pytest.approx(1.0, abs=1e-10)


def test_spose_anisotropic_scaling_changes_measures(spose):
    s = np.linspace(0.2, 5.0, 49)
    Y = spose * s
    ref = cka_gram(spose @ spose.T, Y @ Y.T)
    got = kcka.linear_cka(spose, Y)
    assert got == pytest.approx(ref, rel=1e-9)
    assert got < 0.99
    assert kcka.shape_distance(spose, Y) == pytest.approx(shape_ref(spose, Y), rel=1e-8)
    assert kcka.shape_distance(spose, Y) > 0.05
    # CCA (alpha = 0) undoes any invertible linear map
    assert kcka.shape_distance(spose, Y, alpha=0.0) < 1e-5


# ----------------------------------------------------------------------------- streams
def test_resample_counts_follow_the_stream_spec():
    n, seed = 37, 12345
    for b in (0, 1, 9):
        idx = [naive.bounded(naive.draw(seed, b, i), n) for i in range(n)]
        np.testing.assert_array_equal(kcka.resample_counts(n, b, seed), np.bincount(idx, minlength=n))


def test_permutation_is_a_permutation():
    p = kcka.permutation_index(20, 3, 7)
    assert sorted(p.tolist()) == list(range(20))
    assert not np.array_equal(p, kcka.permutation_index(20, 4, 7))


def test_bad_arguments():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="row counts"):
        kcka.linear_cka(X, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="metric"):
        kcka.shape_distance(X + np.arange(5)[:, None], X, metric="cosine")


@pytest.mark.parametrize("debiased", [False, True])
def test_weighted_gram_cka_equals_repeated_rows(debiased):
    X, Y = rand(12, 40, 60, 5)
    idx = np.random.default_rng(2).integers(0, 40, 40)
    w = np.bincount(idx, minlength=40)
    Xe, Ye = X[idx], Y[idx]
    ref = (cka_unbiased_ref if debiased else cka_gram)(Xe @ Xe.T, Ye @ Ye.T)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    got = kcka.weighted_gram_cka(Xc @ Xc.T, Yc @ Yc.T, w, debiased=debiased)
    assert got == pytest.approx(ref, rel=1e-9)


def boot_ref(X, Y, idx, debiased):
    """CKA of the rows ``idx`` (repeats allowed) without the pairs of a stimulus with a copy
    of itself (the diagonal stays in the biased form, as it does without repeats; the
    debiased form zeroes every pair of copies, its diagonal included)."""
    Xe, Ye = X[idx], Y[idx]
    K, L = Xe @ Xe.T, Ye @ Ye.T
    n = len(idx)
    same = idx[:, None] == idx[None, :]
    if not debiased:
        H = centring(n)
        Kc, Lc = H @ K @ H, H @ L @ H
        M = ~same | np.eye(n, dtype=bool)

        def h(A, B):
            return np.sum(M * A * B)
        return h(Kc, Lc) / np.sqrt(h(Kc, Kc) * h(Lc, Lc))
    # the copies' pairs dropped, the resample's features centred first (with copies dropped
    # the estimate is no longer invariant to a shift of the features)
    Xe, Ye = Xe - Xe.mean(0), Ye - Ye.mean(0)
    K, L = Xe @ Xe.T, Ye @ Ye.T
    Kt, Lt = np.where(same, 0.0, K), np.where(same, 0.0, L)
    one = np.ones(n)

    def hu(A, B):
        return (np.trace(A @ B) + (one @ A @ one) * (one @ B @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ A @ B @ one)
    return hu(Kt, Lt) / np.sqrt(hu(Kt, Kt) * hu(Lt, Lt))


@pytest.mark.parametrize("debiased", [False, True])
def test_drop_copies_leaves_out_pairs_of_a_stimulus_with_itself(debiased):
    X, Y = rand(13, 50, 7, 4)
    idx = np.random.default_rng(6).integers(0, 50, 50)
    w = np.bincount(idx, minlength=50)
    ref = boot_ref(X, Y, idx, debiased)
    assert kcka.linear_cka(X, Y, w, debiased=debiased, drop_copies=True) == pytest.approx(
        ref, rel=1e-9)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    assert kcka.weighted_gram_cka(Xc @ Xc.T, Yc @ Yc.T, w, debiased=debiased,
                                  drop_copies=True) == pytest.approx(ref, rel=1e-9)
    # without repeats it is plain CKA
    one = np.ones(50, np.int64)
    assert kcka.linear_cka(X, Y, one, debiased=debiased, drop_copies=True) == pytest.approx(
        kcka.linear_cka(X, Y, debiased=debiased), rel=1e-10)
