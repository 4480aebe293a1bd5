"""Calibration of odd-one-out choice probabilities against plain numpy/scipy references.

Synthetic triplets are sampled in the test from ``softmax(T_true * [s_ij, s_ik, s_jk])`` over a
known embedding, so the fitted temperature has a known target; ECE, NLL, entropy bins, KL and
JSD are recomputed here from their definitions (the ECE as the paper's code loops over its bin
borders; KL and JSD with scipy).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.errors import DataError, InputError
from alignkit.score.calibration import calibration

T_TRUE = 2.5


def _sample(X: np.ndarray, triples: np.ndarray, T: float, rng: np.random.Generator) -> np.ndarray:
    """Rows i j k with k the sampled odd one out, the similar pair first."""
    S = X @ X.T
    i, j, k = triples.T
    s = np.stack([S[i, j], S[i, k], S[j, k]], axis=1) * T
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(len(p))
    c = (u[:, None] > np.cumsum(p, axis=1)).sum(axis=1)  # 0: (i,j) similar, 1: (i,k), 2: (j,k)
    return np.where(c[:, None] == 0, np.stack([i, j, k], 1),
                    np.where(c[:, None] == 1, np.stack([i, k, j], 1), np.stack([j, k, i], 1)))


def _random_triples(n: int, N: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((N, 3), dtype=np.int64)
    for t in range(N):
        out[t] = rng.choice(n, 3, replace=False)
    return out


@pytest.fixture(scope="module")
def synth():
    rng = np.random.default_rng(7)
    n = 80
    X = rng.normal(size=(n, 6)) / np.sqrt(6) * 1.5
    triples = np.sort(rng.integers(0, n, size=(60000, 3)), axis=1)
    ok = (triples[:, 0] != triples[:, 1]) & (triples[:, 1] != triples[:, 2])
    T = _sample(X, triples[ok], T_TRUE, rng)
    return X, T


def _sims(X: np.ndarray, T: np.ndarray) -> np.ndarray:
    S = X @ X.T
    i, j, k = T.T
    return np.stack([S[i, j], S[i, k], S[j, k]], axis=1)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _paper_ece(probas: np.ndarray, n_bins: int = 10) -> float:
    """The ECE as the paper's code computes it (borders b / n_bins, then 1.1)."""
    n = len(probas)
    max_vals, max_idcs = probas.max(axis=1), probas.argmax(axis=1)
    borders = [b / n_bins for b in range(n_bins)] + [1.1]
    ece = 0.0
    for b in range(n_bins):
        sel = (borders[b] <= max_vals) & (max_vals < borders[b + 1])
        if sel.any():
            ece += sel.sum() / n * abs(np.mean(max_idcs[sel] == 0) - np.mean(max_vals[sel]))
    return ece


def test_fitted_temperature_recovers_the_sampling_temperature(synth):
    from scipy.optimize import minimize_scalar

    X, T = synth
    r = calibration(X, T, similarity="dot", bootstrap=0)
    # 59k triplets: the NLL fit is within 4% of the temperature the choices were sampled at
    assert r.temperature == pytest.approx(T_TRUE, rel=0.04)
    # each fold's fit rests on about an eighth of the triplets
    for t in r.fold_temperatures:
        assert t == pytest.approx(T_TRUE, rel=0.12)
    # and it is the minimiser of the mean NLL (scipy on the plain formula)
    s = _sims(X, T)

    def nll(t):
        z = t * s
        m = z.max(axis=1)
        return np.mean(m + np.log(np.exp(z - m[:, None]).sum(axis=1)) - z[:, 0])

    ref = minimize_scalar(nll, bounds=(0.01, 20), method="bounded",
                          options={"xatol": 1e-9}).x
    assert r.temperature == pytest.approx(ref, abs=1e-5)


def test_folds_are_object_folds_as_sklearn_kfold(synth):
    from sklearn.model_selection import KFold

    X, T = synth
    r = calibration(X, T, similarity="dot", bootstrap=0, per_triplet=True, folds=3, split_seed=5)
    for f, (train, test) in enumerate(KFold(3, shuffle=True, random_state=5).split(X)):
        inside = np.isin(T, test).all(axis=1)
        fit = np.isin(T, train).all(axis=1)
        np.testing.assert_array_equal(r.fold == f, inside)
        # no object of an evaluated triplet is in the triplets its T was fitted on
        assert not np.isin(T[fit], np.unique(T[inside])).any()
        assert r.fold_counts[f] == {"fit": int(fit.sum()), "evaluated": int(inside.sum())}
    assert r.n_evaluated == int((r.fold >= 0).sum())


def test_ece_nll_accuracy_and_entropy_bins_match_numpy(synth):
    X, T = synth
    r = calibration(X, T, similarity="dot", bootstrap=200, seed=3, per_triplet=True)
    P = _softmax(r.temperatures[:, None] * _sims(X, T))
    np.testing.assert_allclose(r.probabilities, P, rtol=1e-12, atol=1e-15)
    E = r.fold >= 0
    assert r.ece == pytest.approx(_paper_ece(P[E]), abs=1e-12)
    assert r.nll == pytest.approx(np.mean(-np.log(P[E, 0])), rel=1e-12)
    assert r.accuracy == pytest.approx(np.mean(P[E].argmax(axis=1) == 0), abs=1e-15)
    H = -(P * np.log(P)).sum(axis=1)
    np.testing.assert_allclose(r.entropy, H, rtol=1e-12)
    assert r.mean_entropy == pytest.approx(H[E].mean(), rel=1e-12)
    edges = np.arange(0, np.log(3) + 0.1, 0.1)
    idx = np.digitize(H[E], edges, right=True)
    correct = P[E].argmax(axis=1) == 0
    for b, row in enumerate(r.entropy_bins):
        sel = (idx == b + 1) | ((idx == 0) if b == 0 else False)
        assert row["count"] == int(sel.sum())
        if sel.any():
            assert row["accuracy"] == pytest.approx(correct[sel].mean(), abs=1e-15)
    # reliability rows are the ECE's bins
    conf = P[E].max(axis=1)
    for b, row in enumerate(r.reliability):
        sel = (b / 10 <= conf) & (conf < (b + 1) / 10 if b < 9 else conf <= 1)
        assert row["count"] == int(sel.sum())
        if sel.any():
            assert row["confidence"] == pytest.approx(conf[sel].mean(), rel=1e-12)
    # intervals bracket their estimates and are reproducible
    assert r.ci_low < r.ci_high
    assert r.nll_ci[0] <= r.nll <= r.nll_ci[1]
    assert r.accuracy_ci[0] <= r.accuracy <= r.accuracy_ci[1]
    again = calibration(X, T, similarity="dot", bootstrap=200, seed=3)
    assert (again.ci_low, again.ci_high) == (r.ci_low, r.ci_high)


def test_kl_and_jsd_on_repeated_triplets_match_scipy():
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import entropy

    rng = np.random.default_rng(11)
    n = 40
    X = rng.normal(size=(n, 4))
    base = _random_triples(n, 400, rng)
    reps = rng.integers(2, 12, size=len(base))
    triples = np.repeat(base, reps, axis=0)
    T = _sample(X, triples, 0.7, rng)
    # the unique triples' first two objects come in any order
    swap = rng.random(len(T)) < 0.5
    T[swap, :2] = T[swap][:, [1, 0]]
    single = _sample(X, _random_triples(n, 300, rng), 0.7, rng)  # answered once: not counted
    T = np.concatenate([T, single])
    r = calibration(X, T, similarity="dot", bootstrap=100, per_triplet=True)
    P = r.probabilities
    kls, jss = [], []
    for tri in np.unique(np.sort(T, axis=1), axis=0):
        rows = np.flatnonzero((np.sort(T, axis=1) == tri).all(axis=1))
        if len(rows) < 2 or r.fold[rows[0]] < 0:
            continue
        h = np.array([(T[rows, 2] == o).mean() for o in tri])
        i, j, k = T[rows[0]]
        odd = {k: P[rows[0], 0], j: P[rows[0], 1], i: P[rows[0], 2]}
        q = np.array([odd[o] for o in tri])
        kls.append(entropy(h, q))
        jss.append(jensenshannon(h, q) ** 2)
    assert r.human["n_unique"] == len(kls) > 20
    assert r.kl == pytest.approx(np.mean(kls), rel=1e-10)
    assert r.jsd == pytest.approx(np.mean(jss), rel=1e-10)
    assert r.human["log_base"] == "e"
    assert r.human["jsd_ci"][0] <= r.jsd <= r.human["jsd_ci"][1]


def test_ece_grid_is_the_papers_search(synth):
    from alignkit._kernels.calibration import PAPER_TEMPERATURES

    X, T = synth
    r = calibration(X, T, similarity="dot", fit="ece-grid", bootstrap=0)
    s = _sims(X, T)
    eces = [_paper_ece(_softmax(t * s)) for t in PAPER_TEMPERATURES]
    assert r.temperature == PAPER_TEMPERATURES[int(np.argmin(eces))]


def test_errors_name_the_problem():
    X = np.eye(4)
    with pytest.raises(DataError, match="folds"):
        calibration(X, np.array([[0, 1, 2], [1, 2, 3]]), folds=2)
    with pytest.raises(InputError, match="bins"):
        calibration(X, np.array([[0, 1, 2]]), bins=0)
    with pytest.raises(InputError, match="fit"):
        calibration(X, np.array([[0, 1, 2]]), fit="grid")


def test_spose_on_things_test20k():
    from alignkit.data import load_embedding, load_triplets

    emb = load_embedding("spose-49d")
    r = calibration(emb.values, load_triplets("things-test20k"), similarity="dot",
                    bootstrap=0)
    # SPoSE was trained with dot products at temperature 1: the fit is close to 1
    assert 0.7 < r.temperature < 1.1
    assert r.ece < 0.05
    # the test set is the THINGS repeat set: 1000 triples, 20 responses each
    assert r.human["n_repeated_all"] == 1000
    assert 0 < r.jsd < np.log(2)


@pytest.fixture(scope="module")
def store(tmp_path_factory, synth):
    from alignkit.store import EmbeddingStore

    X, _ = synth
    path = tmp_path_factory.mktemp("c") / "c.zarr"
    ids = np.array([f"obj{t:03d}" for t in range(len(X))])
    st = EmbeddingStore(str(path), mode="a")
    st.write("toy", "feat", X.astype(np.float32), ids)
    (path.parent / "ids.txt").write_text("\n".join(ids) + "\n")
    return path


def test_cli_score_calibration(store, synth, tmp_path):
    from alignkit.cli import cli

    _, T = synth
    trip = tmp_path / "t.txt"
    np.savetxt(trip, T[:20000], fmt="%d")
    ids = store.parent / "ids.txt"
    out = tmp_path / "pt.csv"
    r = CliRunner().invoke(cli, ["score", "calibration", str(store), "--triplets", str(trip),
                                 "--object-ids", str(ids), "--similarity", "dot",
                                 "--bootstrap", "50", "--per-triplet", str(out), "--format",
                                 "json"])
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    assert res["temperature"] == pytest.approx(T_TRUE, rel=0.1)
    assert res["ci_low"] < res["ci_high"]  # the ECE of resamples is biased upwards
    table = np.genfromtxt(out, delimiter=",", skip_header=1, usecols=range(2, 12))
    assert table.shape == (20000, 10)
    np.testing.assert_allclose(table[:, 4:7].sum(axis=1), 1.0, atol=1e-12)
    assert int((table[:, 8] >= 0).sum()) == res["n_evaluated"]
    npz = tmp_path / "pt.npz"
    again = CliRunner().invoke(cli, ["score", "calibration", str(store), "--triplets", str(trip),
                                     "--object-ids", str(ids), "--similarity", "dot",
                                     "--bootstrap", "0", "--per-triplet", str(npz),
                                     "--no-record"])
    assert again.exit_code == 0, again.output
    z = np.load(npz)
    np.testing.assert_array_equal(z["toy/feat/probabilities"], table[:, 4:7])
    np.testing.assert_array_equal(z["toy/feat/fold"], table[:, 8])
    rec = (store / "results.jsonl").read_text().splitlines()
    assert json.loads(rec[-1])["kind"] == "calibration"
    bad = CliRunner().invoke(cli, ["score", "calibration", str(store), "--triplets", str(trip),
                                   "--object-ids", str(ids), "--bins", "0"])
    assert bad.exit_code == 2
    assert "bins" in bad.output


def test_report_has_a_reliability_diagram(store, synth, tmp_path):
    from alignkit.report import write_report
    from alignkit.results import ResultsTable, record_from_result

    X, T = synth
    res = calibration(X, T[:8000], similarity="dot", bootstrap=20, model="toy", layer="feat")
    recs = tmp_path / "r.jsonl"
    ResultsTable(recs).append(record_from_result("calibration", res))
    files = write_report(recs, tmp_path / "rep")
    md = files.markdown.read_text()
    assert "Calibration of choice probabilities" in md
    assert f"{res.temperature:.4f}" in md
    assert any(p.name.startswith("reliability") and p.suffix == ".png" for p in files.figures)


def test_edge_temperatures():
    from alignkit._kernels.calibration import fit_temperature

    # no better than chance: T = 0 (uniform probabilities)
    assert fit_temperature(np.array([[0.0, 1.0, 0.5], [0.0, 0.5, 1.0]])) == 0.0
    # the human pair is always the most similar: the NLL decreases without end
    s = np.array([[1.0, 0.0, 0.2], [0.9, 0.1, 0.3]])
    sep = fit_temperature(s)
    p = np.exp(sep * s - (sep * s).max(axis=1, keepdims=True))
    assert np.isfinite(sep) and np.all(p[:, 0] / p.sum(axis=1) > 1 - 1e-12)


def test_object_folds_are_the_probes_and_need_no_torch():
    import subprocess
    import sys

    from alignkit.probe.cv import kfold_objects as probe_folds
    from alignkit.score._folds import kfold_objects

    for n, k, seed in ((10, 3, 42), (1854, 2, 7), (5, 5, 0)):
        for a, b in zip(kfold_objects(n, k, seed), probe_folds(n, k, seed), strict=True):
            np.testing.assert_array_equal(a, b)
    code = ("import sys, numpy as np\n"
            "from alignkit.score.calibration import calibration\n"
            "from alignkit.measures.concept_ridge import concept_ridge\n"
            "X = np.random.default_rng(0).normal(size=(12, 3))\n"
            "T = np.array([[a, b, c] for a in range(12) for b in range(a + 1, 12)"
            " for c in range(b + 1, 12)])\n"
            "calibration(X, T, bootstrap=0); concept_ridge(X, X[:, :2], folds=2, bootstrap=0)\n"
            "assert 'torch' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
