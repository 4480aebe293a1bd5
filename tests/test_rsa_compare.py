"""RDM comparison methods, their inference and the paired comparison of two models.

Every method is checked against a plain numpy/scipy formula written here (scipy's
kendalltau for tau-b, the pair-sign sum for tau-a, Nili et al.'s rho-a, and the whitened
cosine as ``v' V^-1 w`` with the RDM-entry covariance ``V`` of i.i.d. patterns), and against
rsatoolbox's ``compare`` when it is installed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats as ss
from click.testing import CliRunner
from scipy.spatial.distance import pdist, squareform

from alignkit._kernels import compare as kc
from alignkit._kernels import rank as krank
from alignkit._kernels import rsa as krsa
from alignkit._kernels._rng import bounded, draw, permutation, stream_key
from alignkit.score import compare_models_rsa, model_rdm, rsa, rsa_features
from alignkit.score.rsa import COMPARE

METHODS = kc.METHODS
RSATOOLBOX_NAME = {
    "spearman": "spearman", "pearson": "corr", "kendall-tau-b": "kendall", "tau-a": "tau-a",
    "rho-a": "rho-a", "cosine": "cosine", "whitened-cosine": "cosine_cov",
    "whitened-pearson": "corr_cov",
}


# --------------------------------------------------------------------------- references


def _contrasts(m: int) -> np.ndarray:
    """Pair-by-stimulus contrast matrix: row (i, j) is e_i - e_j, pdist order."""
    rows = []
    for i in range(m - 1):
        for j in range(i + 1, m):
            c = np.zeros(m)
            c[i], c[j] = 1.0, -1.0
            rows.append(c)
    return np.array(rows)


def _whitened_reference(a: np.ndarray, b: np.ndarray, centred: bool) -> float:
    """Cosine in the metric V^-1, V = (C C')∘(C C') (Diedrichsen et al. 2020, Sigma_k = I)."""
    m = krsa.n_stimuli(a.shape[0])
    C = _contrasts(m)
    xi = C @ C.T
    V = xi * xi
    if centred:
        a, b = a - a.mean(), b - b.mean()
    wa, wb = np.linalg.solve(V, a), np.linalg.solve(V, b)
    return float(a @ wb / np.sqrt((a @ wa) * (b @ wb)))


def _tau_a_reference(a: np.ndarray, b: np.ndarray) -> float:
    sa = np.sign(a[:, None] - a[None, :])
    sb = np.sign(b[:, None] - b[None, :])
    n = a.shape[0]
    return float(np.triu(sa * sb, 1).sum() / (n * (n - 1) / 2))


def _rho_a_reference(a: np.ndarray, b: np.ndarray) -> float:
    n = a.shape[0]
    ra, rb = ss.rankdata(a), ss.rankdata(b)
    return float(12.0 * ((ra - ra.mean()) * (rb - rb.mean())).sum() / (n**3 - n))


def reference(a: np.ndarray, b: np.ndarray, method: str) -> float:
    if method == "spearman":
        return float(ss.spearmanr(a, b).statistic)
    if method == "pearson":
        return float(np.corrcoef(a, b)[0, 1])
    if method == "kendall-tau-b":
        return float(ss.kendalltau(a, b).statistic)
    if method == "tau-a":
        return _tau_a_reference(a, b)
    if method == "rho-a":
        return _rho_a_reference(a, b)
    if method == "cosine":
        return float(a @ b / np.sqrt((a @ a) * (b @ b)))
    return _whitened_reference(a, b, method == "whitened-pearson")


def _resampled_whitened(A: np.ndarray, B: np.ndarray, idx: np.ndarray, centred: bool) -> float:
    """The whitened method on resampled patterns: copies' pairs missing, means over the rest."""
    same = idx[:, None] == idx[None, :]
    off = ~same
    diag = np.eye(len(idx), dtype=bool)
    present = off | diag
    out = []
    for D in (A, B):
        P = D[np.ix_(idx, idx)].copy()
        if centred:
            P[off] -= P[np.triu(off, 1)].mean()
        P[~off] = 0.0
        row = (P * present).sum(1) / present.sum(1)
        grand = (P * present).sum() / present.sum()
        out.append(np.where(present, P - row[:, None] - row[None, :] + grand, 0.0))
    return float((out[0] * out[1]).sum() / np.sqrt((out[0] ** 2).sum() * (out[1] ** 2).sum()))


def _draws(seed: int, r: int, m: int) -> np.ndarray:
    key = np.uint64(stream_key(np.uint64(seed), np.uint64(r)))
    return np.array([int(bounded(np.uint64(draw(key, np.uint64(t))), np.uint64(m)))
                     for t in range(m)], dtype=np.int64)


@pytest.fixture(scope="module")
def pair():
    """Two RDMs of 14 stimuli, the second rounded so that it has ties."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(14, 6))
    Y = X + rng.normal(scale=0.8, size=X.shape)
    return squareform(pdist(X)), squareform(np.round(pdist(Y), 1))


# --------------------------------------------------------------------------- values


def test_compare_names_match_the_kernels():
    assert COMPARE == METHODS


@pytest.mark.parametrize("method", METHODS)
def test_value_matches_reference_formula(pair, method):
    A, B = pair
    a, b = squareform(A), squareform(B)
    assert np.unique(b).size < b.size  # ties present
    assert kc.compare(A, B, method) == pytest.approx(reference(a, b, method), abs=1e-12)
    assert rsa(A, B, compare=method).value == pytest.approx(reference(a, b, method), abs=1e-12)


def test_spearman_and_pearson_unchanged_bit_for_bit(pair):
    A, B = pair
    a, b = squareform(A), squareform(B)
    assert rsa(A, B, compare="spearman").value == krank.spearman(a, b)
    assert rsa(A, B, compare="pearson").value == krank.pearson(a, b)
    r = rsa(A, B, compare="spearman", permutations=50, bootstrap=40, seed=3)
    _, null = krsa.rsa_permutation(A, B, 50, 3, method="spearman")
    assert np.array_equal(r.null, null)
    assert np.array_equal(r.bootstrap_values, krsa.rsa_bootstrap_stimuli(A, B, 40, 3))


def test_kendall_tau_b_long_vectors_with_ties():
    rng = np.random.default_rng(1)
    a = np.round(rng.normal(size=633 * 632 // 2), 2)  # a condensed RDM of 633 stimuli
    b = np.round(a + rng.normal(size=a.size), 1)
    assert kc.compare(a, b, "kendall-tau-b") == pytest.approx(
        ss.kendalltau(a, b).statistic, abs=1e-12)
    c = kc.kendall_counts(a[:2000], b[:2000])
    sa = np.sign(a[:2000, None] - a[None, :2000])
    sb = np.sign(b[:2000, None] - b[None, :2000])
    up = np.triu(np.ones((2000, 2000), dtype=bool), 1)
    assert c["discordant"] == int(((sa * sb) < 0)[up].sum())
    assert c["tied_both"] == int(((sa == 0) & (sb == 0))[up].sum())


def test_tau_a_and_rho_a_ignore_ties_in_the_denominator():
    a = np.array([1.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    # 14 concordant pairs, one tied in a, none discordant
    assert kc.compare(a, np.arange(6.0), "kendall-tau-b") == pytest.approx(14 / np.sqrt(14 * 15))
    assert kc.compare(a, np.arange(6.0), "tau-a") == pytest.approx(14 / 15)
    assert kc.compare(a, a, "rho-a") < 1.0 == kc.compare(a, a, "spearman")


def test_undefined_values_are_nan():
    c = np.ones(6)
    for method in ("kendall-tau-b", "cosine", "pearson", "spearman", "whitened-cosine"):
        assert np.isnan(kc.compare(c * 0, np.arange(6.0), method)), method
    assert np.isnan(kc.compare(c, np.arange(6.0), "kendall-tau-b"))
    assert kc.compare(c, np.arange(6.0), "tau-a") == 0.0  # all pairs tied in one: no C, no D
    with pytest.raises(ValueError, match="unknown comparison method"):
        kc.compare(c, c, "kendall")


def test_sqeuclidean_mean_is_squared_distance_over_channels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 5))
    D = model_rdm(X, "sqeuclidean-mean")
    ref = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) / 5
    np.testing.assert_allclose(D, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model_rdm(X, "euclidean"), np.sqrt(ref * 5), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- inference


@pytest.mark.parametrize("method", METHODS)
def test_permutation_null_is_the_method_on_permuted_rdms(pair, method):
    A, B = pair
    m = A.shape[0]
    r = rsa(A, B, compare=method, permutations=30, seed=11)
    a = squareform(A)
    for p in (0, 7, 29):
        perm = permutation(np.uint64(stream_key(np.uint64(11), np.uint64(p))), m)
        bp = squareform(B[np.ix_(perm, perm)])
        assert r.null[p] == pytest.approx(reference(a, bp, method), abs=1e-10)
    assert r.p_value == (1 + np.count_nonzero(r.null >= r.value - 1e-12)) / 31


@pytest.mark.parametrize("method", METHODS)
def test_stimulus_bootstrap_is_the_method_on_resampled_stimuli(pair, method):
    A, B = pair
    m = A.shape[0]
    r = rsa(A, B, compare=method, bootstrap=20, seed=5)
    for q in (0, 13):
        idx = _draws(5, q, m)
        if method.startswith("whitened"):
            expected = _resampled_whitened(A, B, idx, method == "whitened-pearson")
        else:
            s, t = np.triu_indices(m, 1)
            keep = idx[s] != idx[t]
            expected = reference(A[idx[s], idx[t]][keep], B[idx[s], idx[t]][keep], method)
        assert r.bootstrap_values[q] == pytest.approx(expected, abs=1e-10)
    assert r.ci_low <= np.median(r.bootstrap_values) <= r.ci_high


def test_whitened_resample_of_every_stimulus_once_is_the_value(pair):
    A, B = pair
    idx = np.arange(A.shape[0])
    for method in ("whitened-cosine", "whitened-pearson"):
        assert _resampled_whitened(A, B, idx, method == "whitened-pearson") == pytest.approx(
            kc.compare(A, B, method), abs=1e-12)


def test_subject_bootstrap_on_meadows(shared_data):
    from alignkit.data import load_rdm
    from alignkit.data.rdm import load_subject_rdms

    path = shared_data / "rdm" / "Meadows_myExp_v_v1_arrangement_1D.mat"
    human = load_rdm(str(path))
    stack, _ = load_subject_rdms(str(path))
    assert stack.shape[0] == 3
    rng = np.random.default_rng(0)
    X = rng.normal(size=(human.n, 8))
    for method in ("spearman", "tau-a"):
        r = rsa_features(X, human.ids, human, compare=method, subjects=stack,
                         subject_bootstrap=25, seed=4)
        assert r.n_subjects == 3
        a = squareform(model_rdm(X, "correlation"), checks=False)
        for q in (0, 24):
            key = np.uint64(stream_key(np.uint64(4), kc.SUBJECT_STREAM + np.uint64(q)))
            pick = [int(bounded(np.uint64(draw(key, np.uint64(t))), np.uint64(3))) for t in range(3)]
            mean = stack[pick].mean(0)
            expected = reference(a, squareform(mean, checks=False), method)
            assert r.subject_bootstrap_values[q] == pytest.approx(expected, abs=1e-10)
        assert r.subject_ci_low <= r.subject_ci_high


# --------------------------------------------------------------------------- paired


@pytest.fixture(scope="module")
def spose(shared_data):
    from alignkit.data import load_rdm

    X = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    return X, ids, load_rdm("rdm48")


@pytest.mark.parametrize("method", ["spearman", "kendall-tau-b", "whitened-pearson"])
def test_paired_identical_models_differ_by_zero(spose, method):
    X, ids, H = spose
    r = compare_models_rsa(X, X, ids, H, rdm_method="dot", compare=method, bootstrap=60, seed=1)
    assert r.difference == 0.0 and r.p_value == 1.0
    assert r.ci_low == 0.0 and r.ci_high == 0.0


@pytest.mark.parametrize("method", ["spearman", "tau-a", "whitened-cosine"])
def test_paired_spose_beats_a_noised_copy(spose, method):
    X, ids, H = spose
    rng = np.random.default_rng(0)
    Xn = X + rng.normal(scale=1.5 * X.std(), size=X.shape)
    r = compare_models_rsa(X, Xn, ids, H, rdm_method="dot", compare=method, bootstrap=300, seed=2)
    assert r.value_a == pytest.approx(rsa_features(X, ids, H, rdm_method="dot", compare=method).value)
    assert r.difference > 0 and r.ci_low > 0
    assert r.p_value < 0.01
    # the same resamples as each model's own bootstrap
    single_a = rsa_features(X, ids, H, rdm_method="dot", compare=method, bootstrap=300, seed=2)
    single_b = rsa_features(Xn, ids, H, rdm_method="dot", compare=method, bootstrap=300, seed=2)
    np.testing.assert_array_equal(r.differences,
                                  single_a.bootstrap_values - single_b.bootstrap_values)


def test_paired_by_subjects(shared_data):
    from alignkit.data import load_rdm
    from alignkit.data.rdm import load_subject_rdms

    path = shared_data / "rdm" / "Meadows_myExp_v_v1_arrangement_1D.mat"
    human = load_rdm(str(path))
    stack, _ = load_subject_rdms(str(path))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(human.n, 5))
    same = compare_models_rsa(X, X, human.ids, human, subjects=stack, bootstrap=30)
    assert same.resample == "subjects" and same.difference == 0.0 and same.p_value == 1.0


# --------------------------------------------------------------------------- rsatoolbox parity


def _rsatoolbox_compare():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    return rsatoolbox.rdm.compare


@pytest.mark.parametrize("method", METHODS)
def test_rsatoolbox_parity_rdm48(spose, method):
    compare = _rsatoolbox_compare()
    X, ids, H = spose
    from alignkit.data import align_by_ids

    ia, _ = align_by_ids(ids, H.ids)
    a = squareform(model_rdm(X[ia], "sqeuclidean-mean"), checks=False)
    h = squareform(H.matrix, checks=False)
    expected = float(compare(a[None], h[None], method=RSATOOLBOX_NAME[method])[0, 0])
    assert kc.compare(a, h, method) == pytest.approx(expected, abs=1e-9)


def test_rsatoolbox_parity_92_model_rdms(shared_data):
    compare = _rsatoolbox_compare()
    from scipy.io import loadmat

    models = loadmat(shared_data / "rdm" / "92_modelRDMs.mat")["Models"].ravel()
    vecs = np.stack([squareform(np.asarray(mdl["RDM"], dtype=np.float64), checks=False)
                     for mdl in models])
    assert vecs.shape == (8, 92 * 91 // 2)
    for method in METHODS:
        expected = compare(vecs, vecs, method=RSATOOLBOX_NAME[method])
        for i in range(8):
            for j in range(i + 1, 8):
                got = kc.compare(vecs[i], vecs[j], method)
                if np.isnan(expected[i, j]):
                    assert np.isnan(got), (method, i, j)
                else:
                    assert got == pytest.approx(expected[i, j], abs=1e-9), (method, i, j)


def test_rsatoolbox_parity_calc_rdm_euclidean():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12, 7))
    data = rsatoolbox.data.Dataset(X)
    expected = rsatoolbox.rdm.calc_rdm(data, method="euclidean").get_vectors()[0]
    got = squareform(model_rdm(X, "sqeuclidean-mean"), checks=False)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


# --------------------------------------------------------------------------- command line


def _cli(*args: str):
    from alignkit.cli import cli

    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def store(tmp_path_factory, spose):
    from alignkit.store import EmbeddingStore

    X, ids, _ = spose
    path = tmp_path_factory.mktemp("c") / "s.zarr"
    st = EmbeddingStore(str(path), mode="a")
    st.write("spose", "49d", X.astype(np.float32), ids)
    rng = np.random.default_rng(0)
    st.write("noisy", "49d", (X + rng.normal(scale=1.5 * X.std(), size=X.shape)).astype(np.float32),
             ids)
    return str(path)


def test_cli_rsa_compare(store):
    r = _cli("score", "rsa-compare", store, "--rdm", "rdm48", "--a", "spose/49d",
             "--b", "noisy/49d", "--rdm-method", "dot", "--compare", "tau-a",
             "--bootstrap", "200", "--format", "json")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    assert res["model_a"] == "spose/49d" and res["ci_low"] > 0 and res["p_value"] < 0.05
    assert res["provenance"]["entries"][0]["entry"] == "spose/49d"
    r = _cli("score", "rsa-compare", store, "--rdm", "rdm48", "--a", "spose", "--b", "noisy/49d")
    assert r.exit_code == 2 and "MODEL/LAYER" in r.output
    assert "rsa-compare" in _cli("score", "--help").output


def test_cli_rsa_compare_methods_and_subject_bootstrap(store, shared_data):
    r = _cli("score", "rsa", store, "--rdm", "rdm48", "--model", "spose", "--compare",
             "whitened-pearson", "--rdm-method", "sqeuclidean-mean", "--permutations", "50",
             "--no-record", "--format", "json")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    assert res["compare"] == "whitened-pearson" and res["rdm_method"] == "sqeuclidean-mean"
    assert res["p_value"] == pytest.approx(1 / 51)
    r = _cli("score", "rsa", store, "--rdm", "rdm48", "--subject-bootstrap", "10", "--no-record")
    assert r.exit_code == 2 and "--subjects" in r.output
    help_text = _cli("score", "rsa", "--help").output
    for name in ("kendall-tau-b", "whitened-cosine", "sqeuclidean-mean"):
        assert name in help_text
    meadows = str(shared_data / "rdm" / "Meadows_myExp_v_v1_arrangement_1D.mat")
    r = _cli("score", "rsa", meadows, "--rdm", meadows, "--subjects", meadows,
             "--subject-bootstrap", "20", "--format", "json")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    assert res["n_subjects"] == 3 and res["value"] == pytest.approx(1.0)
