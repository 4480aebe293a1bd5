"""concept-ridge against scikit-learn's RidgeCV fitted on the same object folds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.errors import DataError, InputError
from alignkit.measures.concept_ridge import concept_ridge

ALPHAS = (0.01, 0.3, 3.0, 30.0, 300.0, 3000.0)


def _sklearn(X, Y, folds, seed, alphas=ALPHAS):
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    P = np.empty_like(Y, dtype=np.float64)
    chosen = []
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(X):
        m = RidgeCV(alphas=alphas, alpha_per_target=True).fit(X[train], Y[train])
        P[test] = m.predict(X[test])
        chosen.append(m.alpha_)
    return P, r2_score(Y, P, multioutput="raw_values"), np.array(chosen)


def _data(n, p, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) + 2.0  # a mean far from 0: the intercept matters
    W = rng.normal(size=(p, d)) * (rng.random((p, d)) < 0.1)
    Y = X @ W + rng.normal(size=(n, d)) * 2.0 + 7.0
    return X, Y


@pytest.mark.parametrize("n,p", [(120, 300), (200, 15)])  # Gram (n < p) and covariance forms
def test_equals_sklearn_ridgecv_on_the_same_folds(n, p):
    X, Y = _data(n, p, 5, n + p)
    r = concept_ridge(X, Y, alphas=",".join(map(str, ALPHAS)), folds=4, seed=9, bootstrap=0,
                      keep_predictions=True)
    P, r2, chosen = _sklearn(X, Y, 4, 9)
    assert r.method == ("gram" if n * 3 / 4 <= p else "covariance")
    np.testing.assert_allclose(r.predictions, P, rtol=0, atol=1e-8 * np.abs(Y).max())
    np.testing.assert_allclose([dim["r2"] for dim in r.dimensions], r2, rtol=0, atol=1e-8)
    assert r.mean_r2 == pytest.approx(r2.mean(), abs=1e-8)
    np.testing.assert_array_equal([dim["alphas"] for dim in r.dimensions], chosen.T)


def test_rows_are_matched_by_id_and_labels_kept():
    from alignkit.data.concepts import ConceptEmbedding

    X, Y = _data(90, 40, 3, 1)
    ids = np.array([f"s{t}" for t in range(90)])
    emb = ConceptEmbedding(Y, ids, np.array(["red", "round", "soft"]), source="toy")
    perm = np.random.default_rng(2).permutation(90)
    a = concept_ridge(X, emb, ids=ids, folds=3, bootstrap=0)
    b = concept_ridge(X[perm], emb, ids=ids[perm], folds=3, bootstrap=0)
    assert [d["r2"] for d in a.dimensions] == pytest.approx([d["r2"] for d in b.dimensions],
                                                            abs=1e-12)
    assert [d["label"] for d in a.dimensions] == ["red", "round", "soft"]
    # features for only some of the embedding's rows: those are used, and it is said
    c = concept_ridge(X[:60], emb, ids=ids[:60], folds=3, bootstrap=0)
    assert c.n_objects == 60 and "60 of the embedding's 90 rows" in c.notes[0]


def test_bootstrap_interval_is_over_objects_and_reproducible():
    X, Y = _data(150, 30, 4, 3)
    r = concept_ridge(X, Y, folds=5, bootstrap=300, seed=4, keep_predictions=True)
    assert r.ci_low < r.mean_r2 < r.ci_high
    for dim in r.dimensions:
        assert dim["ci_low"] < dim["r2"] < dim["ci_high"]
    # each resample is the plain R² formula on the objects drawn by stream_key(seed, b)
    from alignkit._kernels._rng import bounded, draw, stream_key
    from alignkit._kernels.ridge import bootstrap_r2

    boot = bootstrap_r2(Y, r.predictions, 3, seed=4)
    n = np.uint64(len(Y))
    for b in range(3):
        key = np.uint64(stream_key(np.uint64(4), np.uint64(b)))
        idx = np.array([int(bounded(np.uint64(draw(key, np.uint64(i))), n))
                        for i in range(len(Y))])
        y, p = Y[idx], r.predictions[idx]
        want = 1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(boot[b], want, rtol=1e-10)
    again = concept_ridge(X, Y, folds=5, bootstrap=300, seed=4)
    assert (again.ci_low, again.ci_high) == (r.ci_low, r.ci_high)


def test_errors_name_the_option():
    X, Y = _data(20, 5, 2, 0)
    with pytest.raises(InputError, match="alphas"):
        concept_ridge(X, Y, alphas="1,ten")
    with pytest.raises(InputError, match="alphas"):
        concept_ridge(X, Y, alphas="0,1")
    with pytest.raises(DataError, match="folds"):
        concept_ridge(X[:7], Y[:7], folds=4)


@pytest.fixture(scope="module")
def store(tmp_path_factory, shared_data):
    from alignkit.store import EmbeddingStore

    rng = np.random.default_rng(5)
    spose = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    rows = rng.choice(len(ids), 300, replace=False)  # not in the embedding's order
    feats = spose[rows] @ rng.normal(size=(49, 64)) + rng.normal(size=(300, 64))
    path = tmp_path_factory.mktemp("r") / "r.zarr"
    EmbeddingStore(str(path), mode="a").write("toy", "mix", feats.astype(np.float32), ids[rows])
    # folds are made over the objects in the embedding's row order, whatever the store's
    order = np.argsort(rows)
    return path, feats.astype(np.float32).astype(np.float64)[order], spose[rows][order]


def test_cli_score_concept_ridge(store, tmp_path):
    from alignkit.cli import cli

    path, feats, Y = store
    r = CliRunner().invoke(cli, ["score", "concept-ridge", str(path), "--embedding", "spose-49d",
                                 "--alphas", "0.1,1,10,100,1000", "--bootstrap", "50",
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    _, r2, _ = _sklearn(feats, Y, 5, 0, alphas=(0.1, 1, 10, 100, 1000))
    assert res["mean_r2"] == pytest.approx(r2.mean(), abs=1e-8)
    assert res["n_objects"] == 300 and res["n_dimensions"] == 49
    assert res["dimensions"][0]["label"] != "dim1"  # the SPoSE labels
    assert "1 result(s) recorded" in r.stderr

    from alignkit.report import write_report

    files = write_report(path, tmp_path / "rep")
    assert "Concept dimensions from features" in files.markdown.read_text()
    assert any(p.name.startswith("concept-ridge-r2") for p in files.figures)
    bad = CliRunner().invoke(cli, ["score", "concept-ridge", str(path), "--embedding",
                                   "spose-49d", "--alphas", "x"])
    assert bad.exit_code == 2 and "alphas" in bad.output


@pytest.mark.parametrize("module", ["concept_ridge", "calibration"])
def test_importing_the_module_first_keeps_the_registry_order(module):
    import subprocess
    import sys

    code = (f"import alignkit.measures.{module}\n"
            "from alignkit.measures import measure_names\n"
            "names = measure_names()\n"
            "assert names[:2] == ('ooo', 'rsa'), names\n"
            "assert {'calibration', 'concept-ridge'} <= set(names), names\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
