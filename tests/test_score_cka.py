"""The cka and shape measures, their inference and the entry-by-entry matrix, against plain
numpy/scipy formulas written here."""

from __future__ import annotations

import json
from pathlib import Path

import naive  # noqa: E402
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from alignkit.cli import cli
from alignkit.data import load_embedding
from alignkit.errors import InputError, MismatchError
from alignkit.score import cka_features, compare_models, shape_features, similarity_matrix


def cka_gram(X, Y):
    n = X.shape[0]
    H = np.eye(n) - 1.0 / n
    K, L = X @ X.T, Y @ Y.T

    def h(A, B):
        return np.trace(A @ H @ B @ H)
    return h(K, L) / np.sqrt(h(K, K) * h(L, L))


def procrustes_ref(X, Y):
    """Centred, padded, unit-norm orthogonal Procrustes distance via scipy."""
    w = max(X.shape[1], Y.shape[1])
    X = np.pad(X - X.mean(0), ((0, 0), (0, w - X.shape[1])))
    Y = np.pad(Y - Y.mean(0), ((0, 0), (0, w - Y.shape[1])))
    X, Y = X / np.linalg.norm(X), Y / np.linalg.norm(Y)
    R, _ = orthogonal_procrustes(X, Y)
    return np.linalg.norm(X @ R - Y)


def angular_ref(X, Y):
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    return np.arccos(np.linalg.norm(Xc.T @ Yc, "nuc") / (np.linalg.norm(Xc) * np.linalg.norm(Yc)))


from test_kernels_cka import boot_ref  # noqa: E402


def resample_idx(n, b, seed):
    return np.array([naive.bounded(naive.draw(seed, b, i), n) for i in range(n)])


def fisher_yates(n, stream, seed):
    perm = list(range(n))
    for t in range(n - 1, 0, -1):
        j = naive.bounded(naive.draw(seed, stream, t), t + 1)
        perm[t], perm[j] = perm[j], perm[t]
    return np.array(perm)


@pytest.fixture(scope="module")
def emb():
    return load_embedding("spose-49d")


@pytest.fixture(scope="module")
def model(emb):
    """A model of 400 stimuli (another order than the embedding's) related to SPoSE."""
    rs = np.random.default_rng(0)
    rows = rs.permutation(1854)[:400]
    X = emb.values[rows] @ rs.normal(size=(49, 30)) + 0.5 * rs.normal(size=(400, 30))
    return X, emb.ids[rows], rows


def test_cka_matches_gram_formula_by_id(emb, model):
    X, ids, rows = model
    r = cka_features(X, ids, emb)
    # the embedding's rows, in its order, that the model has
    order = np.sort(rows)
    Xm = X[np.argsort(rows)]
    assert r.value == pytest.approx(cka_gram(Xm, emb.values[order]), rel=1e-10)
    assert r.n_stimuli == 400 and r.kernel == "linear" and r.p_value is None
    assert r.provenance["embedding"]["checksum"] == emb.checksum
    assert r.provenance["options"]["kernel"] == "linear"


def test_shape_matches_scipy(emb, model):
    X, ids, rows = model
    Xm, Y = X[np.argsort(rows)], emb.values[np.sort(rows)]
    r = shape_features(X, ids, emb, metric="procrustes")
    assert r.value == pytest.approx(procrustes_ref(Xm, Y), rel=1e-8)
    assert r.width == 49
    assert shape_features(X, ids, emb).value == pytest.approx(angular_ref(Xm, Y), rel=1e-9)


def test_bootstrap_and_permutations_follow_streams(emb, model):
    X, ids, rows = model
    Xm, Y = X[np.argsort(rows)], emb.values[np.sort(rows)]
    seed = 11
    r = cka_features(X, ids, emb, bootstrap=5, permutations=6, seed=seed)
    want = [boot_ref(Xm, Y, resample_idx(400, b, seed), False) for b in range(5)]
    np.testing.assert_allclose(r.bootstrap_values, want, rtol=1e-9)
    lo, hi = np.percentile(want, [2.5, 97.5])
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), rel=1e-9)
    null = [cka_gram(Xm, Y[fisher_yates(400, 2**31 + p, seed)]) for p in range(6)]
    np.testing.assert_allclose(r.null, null, rtol=1e-9)
    assert r.p_value == pytest.approx((1 + sum(v >= r.value for v in null)) / 7)
    # the same for the shape distance (small is significant)
    s = shape_features(X, ids, emb, metric="procrustes", bootstrap=3, permutations=4, seed=seed)
    want = [procrustes_ref(Xm[i], Y[i]) for i in (resample_idx(400, b, seed) for b in range(3))]
    np.testing.assert_allclose(s.bootstrap_values, want, rtol=1e-8)
    null = [procrustes_ref(Xm, Y[fisher_yates(400, 2**31 + p, seed)]) for p in range(4)]
    np.testing.assert_allclose(s.null, null, rtol=1e-8)
    assert s.p_value == pytest.approx(1 / 5)
    # seeded: the same twice
    again = cka_features(X, ids, emb, bootstrap=5, permutations=6, seed=seed)
    assert (again.ci_low, again.ci_high, again.p_value) == (r.ci_low, r.ci_high, r.p_value)


@pytest.mark.parametrize("kw", [dict(debiased=True), dict(kernel="rbf"),
                                dict(kernel="rbf", debiased=True)])
def test_permutation_null_of_other_cka_forms(emb, model, kw):
    from alignkit._kernels import cka as kcka

    X, ids, rows = model
    Xm, Y = X[np.argsort(rows)], emb.values[np.sort(rows)]
    r = cka_features(X, ids, emb, permutations=3, seed=2, **kw)
    for p, v in enumerate(r.null):
        perm = fisher_yates(400, 2**31 + p, 2)
        if kw.get("kernel") == "rbf":
            K = kcka.rbf_gram(Xm, kcka.median_sigma(Xm))
            L = kcka.rbf_gram(Y, kcka.median_sigma(Y))[np.ix_(perm, perm)]
        else:
            K, L = Xm @ Xm.T, Y[perm] @ Y[perm].T
        assert v == pytest.approx(kcka.kernel_cka(K, L, debiased=kw["debiased"]
                                                  if "debiased" in kw else False), rel=1e-8)


def test_invariance_on_spose(emb):
    Q = ortho_group.rvs(49, random_state=1)
    Y = 3.0 * emb.values @ Q + 1.5
    assert cka_features(Y, emb.ids, emb).value == pytest.approx(1.0, abs=1e-10)
    assert shape_features(Y, emb.ids, emb, metric="procrustes").value < 1e-6
    assert shape_features(Y, emb.ids, emb).value < 1e-6
    S = emb.values * np.linspace(0.1, 4, 49)
    assert cka_features(S, emb.ids, emb).value < 0.99


def test_paired_comparison(emb, model):
    X, ids, rows = model
    same = compare_models(X, ids, X.copy(), ids, emb, bootstrap=40)
    assert same.difference == 0.0 and same.p_value == 1.0
    assert same.ci_low == 0.0 and same.ci_high == 0.0
    noise = np.random.default_rng(3).normal(size=X.shape)
    better = compare_models(X, ids, noise, ids, emb, bootstrap=40, seed=5)
    assert better.ci_low > 0 and better.p_value == pytest.approx(2 / 41)
    # the differences are those of the two models on the same resamples
    Xm, Y, Nm = X[np.argsort(rows)], emb.values[np.sort(rows)], noise[np.argsort(rows)]
    for b in range(3):
        i = resample_idx(400, b, 5)
        assert better.differences[b] == pytest.approx(
            boot_ref(Xm, Y, i, False) - boot_ref(Nm, Y, i, False), rel=1e-9)
    shape = compare_models(noise, ids, X, ids, emb, measure="shape", bootstrap=30)
    assert shape.ci_low > 0  # the noise is farther away
    with pytest.raises(MismatchError, match="shared"):
        compare_models(X[:2], ids[:2], X[:2], ids[:2], emb)


def test_bad_options():
    with pytest.raises(InputError, match="kernel"):
        cka_features(np.zeros((5, 2)), list("abcde"), np.zeros((5, 2)),
                     embedding_ids=list("abcde"), kernel="poly")
    with pytest.raises(InputError, match="alpha"):
        shape_features(np.zeros((5, 2)), list("abcde"), np.zeros((5, 2)),
                       embedding_ids=list("abcde"), alpha=2.0)


def _store(tmp_path: Path, emb, rows):
    from alignkit.store import EmbeddingStore

    rs = np.random.default_rng(7)
    path = tmp_path / "f.zarr"
    st = EmbeddingStore(path, mode="a")
    feats = {
        ("close", "a"): emb.values[rows] @ rs.normal(size=(49, 20)),
        ("noisy", "a"): emb.values[rows] @ rs.normal(size=(49, 12)) + rs.normal(size=(len(rows), 12)),
        ("random", "b"): rs.normal(size=(len(rows), 8)),
    }
    for (m, lay), X in feats.items():
        st.write(m, lay, X.astype(np.float32), emb.ids[rows])
    return path, feats


def test_cli_score_cka_and_shape(tmp_path: Path, emb):
    rows = np.arange(0, 1854, 9)
    path, feats = _store(tmp_path, emb, rows)
    runner = CliRunner()
    help_ = runner.invoke(cli, ["score", "cka", "--help"])
    assert help_.exit_code == 0 and "--kernel" in help_.output and "spose-49d" in help_.output
    out = runner.invoke(cli, ["score", "cka", str(path), "--embedding", "spose-49d",
                              "--bootstrap", "20", "--format", "json"])
    assert out.exit_code == 0, out.output
    recs = {(r["model"], r["layer"]): r for r in json.loads(out.stdout)}
    for key, X in feats.items():
        want = cka_gram(X.astype(np.float32).astype(np.float64), emb.values[rows])
        assert recs[key]["value"] == pytest.approx(want, rel=1e-9)
        assert recs[key]["ci_low"] <= recs[key]["ci_high"]
    from alignkit.results import ResultsTable

    assert len(ResultsTable.for_store(path).records("cka")) == 3
    out = runner.invoke(cli, ["score", "shape", str(path), "--embedding", "spose-49d",
                              "--metric", "procrustes", "--model", "close", "--no-record",
                              "--format", "json"])
    assert out.exit_code == 0, out.output
    (rec,) = json.loads(out.output)
    X = feats[("close", "a")].astype(np.float32).astype(np.float64)
    assert rec["value"] == pytest.approx(procrustes_ref(X, emb.values[rows]), rel=1e-7)
    bad = runner.invoke(cli, ["score", "cka", str(path), "--embedding", "spose-49d",
                              "--kernel", "poly"])
    assert bad.exit_code == 2


def test_similarity_matrix(tmp_path: Path, emb):
    rows = np.arange(0, 1854, 11)
    path, feats = _store(tmp_path, emb, rows)
    sim = similarity_matrix(path, "cka")
    keys = list(feats)
    assert sim.labels == [f"{m}/{lay}" for m, lay in keys]
    for i, ki in enumerate(keys):
        for j, kj in enumerate(keys):
            a = feats[ki].astype(np.float32).astype(np.float64)
            b = feats[kj].astype(np.float32).astype(np.float64)
            assert sim.values[i, j] == pytest.approx(cka_gram(a, b), rel=1e-8)
    assert np.all(sim.n_stimuli == len(rows))
    shp = similarity_matrix(path, "shape", metric="procrustes")
    assert np.diag(shp.values) == pytest.approx(0, abs=1e-6)
    a = feats[keys[0]].astype(np.float32).astype(np.float64)
    b = feats[keys[2]].astype(np.float32).astype(np.float64)
    assert shp.values[0, 2] == pytest.approx(procrustes_ref(a, b), rel=1e-7)


def test_cli_compare_pair_and_matrix(tmp_path: Path, emb):
    rows = np.arange(0, 1854, 13)
    path, feats = _store(tmp_path, emb, rows)
    runner = CliRunner()
    help_ = runner.invoke(cli, ["compare", "cka", "--help"])
    assert help_.exit_code == 0 and "Example" in help_.output and "--a" in help_.output
    out = runner.invoke(cli, ["compare", "cka", str(path), "--embedding", "spose-49d",
                              "--a", "close", "--b", "random/b", "--bootstrap", "50",
                              "--format", "json"])
    assert out.exit_code == 0, out.output
    res = json.loads(out.stdout)
    Y = emb.values[rows]
    a = cka_gram(feats[("close", "a")].astype(np.float32).astype(np.float64), Y)
    b = cka_gram(feats[("random", "b")].astype(np.float32).astype(np.float64), Y)
    assert res["difference"] == pytest.approx(a - b, rel=1e-8)
    assert res["ci_low"] > 0 and res["p_value"] == pytest.approx(2 / 51)
    same = runner.invoke(cli, ["compare", "shape", str(path), "--embedding", "spose-49d",
                               "--a", "close", "--b", "close/a", "--no-centre", "--format", "json"])
    assert same.exit_code == 0, same.output
    res = json.loads(same.stdout)
    assert res["difference"] == 0 and res["p_value"] == 1 and res["options"]["centre"] is False
    bad = runner.invoke(cli, ["compare", "cka", str(path), "--embedding", "spose-49d",
                              "--a", "nope", "--b", "close"])
    assert bad.exit_code == 2
    fig = tmp_path / "m.png"
    out = runner.invoke(cli, ["compare", "matrix", str(path), "--figure", str(fig),
                              "--format", "json"])
    assert out.exit_code == 0, out.output
    assert fig.stat().st_size > 1000
    assert json.loads(out.stdout)["labels"] == ["close/a", "noisy/a", "random/b"]


def test_report_has_model_by_model_matrix(tmp_path: Path, emb):
    from alignkit.report import write_report

    rows = np.arange(0, 1854, 17)
    path, _ = _store(tmp_path, emb, rows)
    out = CliRunner().invoke(cli, ["score", "cka", str(path), "--embedding", "spose-49d"])
    assert out.exit_code == 0, out.output
    files = write_report(path, tmp_path / "rep")
    html = files.html.read_text()
    assert "Model-by-model CKA" in html and "Linear CKA between the 3 entries" in html
    assert any("cka-matrix" in f.name for f in files.figures)


def test_study_embedding_table_runs_cka_by_default(tmp_path: Path, shared_data):
    from alignkit.sweep import load_study
    from alignkit.sweep.tasks import expand

    images = shared_data / "images"
    study = tmp_path / "study.toml"
    body = f"""
[sweep]
store = "features.zarr"

[[model]]
name = "squeezenet1_0"
weights = "none"
layers = ["penultimate"]

[[images]]
name = "sample"
path = "{images}"

[[embedding]]
name = "spose"
source = "spose-49d"
"""
    study.write_text(body)
    assert sorted(t.kind for t in expand(load_study(study))) == ["cka", "extract"]
    study.write_text(body + 'measures = ["cka", "shape"]\nkernel = "rbf"\nmetric = "procrustes"\n')
    st = load_study(study)
    (e,) = st.embeddings
    assert e.measure_options("cka").kernel == "rbf"
    assert e.measure_options("shape").metric == "procrustes"
    assert sorted(t.kind for t in expand(st)) == ["cka", "extract", "shape"]
    study.write_text(body + 'kernel = "poly"\n')
    with pytest.raises(InputError, match="kernel"):
        load_study(study)


@pytest.mark.parametrize("debiased", [False, True])
def test_bootstrap_of_wide_features(emb, debiased):
    """Features wider than the stimuli are many take the Gram route: same resamples and
    permutations, and the bootstrap centred on the estimate."""
    from alignkit._kernels import cka as kcka

    rs = np.random.default_rng(4)
    rows = np.arange(0, 1854, 31)  # 60 stimuli
    X = emb.values[rows] @ rs.normal(size=(49, 200)) + rs.normal(size=(60, 200))
    r = cka_features(X, emb.ids[rows], emb, bootstrap=4, permutations=3, seed=3,
                     debiased=debiased)
    Y = emb.values[rows]
    assert r.value == pytest.approx(kcka.kernel_cka(X @ X.T, Y @ Y.T, debiased=debiased)
                                    if debiased else cka_gram(X, Y), rel=1e-9)
    for b in range(4):
        assert r.bootstrap_values[b] == pytest.approx(
            boot_ref(X, Y, resample_idx(60, b, 3), debiased), rel=1e-8)
    for p in range(3):
        perm = fisher_yates(60, 2**31 + p, 3)
        want = (kcka.kernel_cka(X @ X.T, Y[perm] @ Y[perm].T, debiased=True) if debiased
                else cka_gram(X, Y[perm]))
        assert r.null[p] == pytest.approx(want, rel=1e-8)


def test_bootstrap_is_centred_on_the_estimate(emb):
    """Leaving out a stimulus's pairs with its own copies keeps the resampled CKA of
    high-dimensional noisy features around the full-sample value."""
    rs = np.random.default_rng(8)
    rows = np.arange(0, 1854, 3)
    X = emb.values[rows] @ rs.normal(size=(49, 300)) + 3 * rs.normal(size=(rows.size, 300))
    for debiased in (False, True):
        r = cka_features(X, emb.ids[rows], emb, bootstrap=20, debiased=debiased, seed=1)
        assert r.ci_low < r.value < r.ci_high
        assert abs(np.median(r.bootstrap_values) - r.value) < 0.25 * (r.ci_high - r.ci_low)
