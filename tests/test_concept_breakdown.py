"""Per-concept odd-one-out accuracy: bootstrap intervals per dimension and a minimum count."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.errors import InputError
from alignkit.score import concept_breakdown, odd_one_out


def _resample_index(seed: int, b: int, n: int) -> np.ndarray:
    from alignkit._kernels._rng import bounded, draw, stream_key

    key = np.uint64(stream_key(np.uint64(seed), np.uint64(b)))
    return np.array([int(bounded(np.uint64(draw(key, np.uint64(i))), np.uint64(n)))
                     for i in range(n)])


def test_per_dimension_intervals_are_percentiles_of_the_resamples():
    rng = np.random.default_rng(1)
    n, N = 30, 400
    X = rng.normal(size=(n, 5))
    E = rng.random((n, 4))
    T = np.array([rng.choice(n, 3, replace=False) for _ in range(N)])
    r = odd_one_out(X, T, similarity="dot", bootstrap=40, seed=6, concepts=E,
                    concept_min_count=30, per_triplet=True)
    pc = r.per_concept
    dims = np.argmax(E[T[:, 0]] + E[T[:, 1]], axis=1)
    correct = r.correct.astype(float)
    boot = np.full((40, 4), np.nan)
    for b in range(40):
        idx = _resample_index(6, b, N)
        for k in range(4):
            sel = dims[idx] == k
            if sel.any():
                boot[b, k] = correct[idx][sel].mean()
    for k, row in enumerate(pc.rows()):
        assert row["triplets"] == int((dims == k).sum())
        if row["triplets"] < 30:
            assert row["accuracy"] is None and row["ci_low"] is None
            continue
        vals = boot[:, k][np.isfinite(boot[:, k])]
        lo, hi = np.percentile(vals, [2.5, 97.5])
        assert row["ci_low"] == pytest.approx(lo, abs=1e-12)
        assert row["ci_high"] == pytest.approx(hi, abs=1e-12)
        assert row["accuracy"] == pytest.approx(correct[dims == k].mean(), abs=1e-15)
    # the overall interval comes from the same resamples
    overall = [correct[_resample_index(6, b, N)].mean() for b in range(40)]
    assert r.ci_low == pytest.approx(np.percentile(overall, 2.5), abs=1e-12)


def test_min_count_validation_and_no_interval_without_bootstrap():
    T = np.array([[0, 1, 2], [1, 2, 3]])
    bd = concept_breakdown(T, np.array([1, 0]), np.eye(4)[:, :2])
    assert "ci_low" not in bd.rows()[0]
    with pytest.raises(InputError, match="min_count"):
        concept_breakdown(T, np.array([1, 0]), np.eye(4)[:, :2], min_count=0)


def test_cli_min_count_and_intervals(shared_data, tmp_path):
    from alignkit.cli import cli
    from alignkit.store import EmbeddingStore

    spose = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    store = tmp_path / "s.zarr"
    EmbeddingStore(str(store), mode="a").write("spose", "49d", spose.astype(np.float32), ids)
    r = CliRunner().invoke(cli, ["score", "ooo", str(store), "--triplets", "things-test20k",
                                 "--similarity", "dot", "--per-concept", "--min-count", "500",
                                 "--bootstrap", "100", "--format", "json", "--no-record"])
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    rows = res["per_concept"]["dimensions"]
    assert res["per_concept"]["min_count"] == 500
    big = [d for d in rows if d["triplets"] >= 500]
    assert big and all(d["ci_low"] <= d["accuracy"] <= d["ci_high"] for d in big)
    assert all(d["accuracy"] is None for d in rows if d["triplets"] < 500)


def test_report_shows_the_records_bootstrap_intervals(tmp_path):
    from alignkit.data import load_embedding, load_triplets
    from alignkit.report import build_report
    from alignkit.results import record_from_result

    emb = load_embedding("spose-49d")
    r = odd_one_out(emb.values, load_triplets("things-test20k"), similarity="dot",
                    bootstrap=100, concepts="spose-49d", model="spose", layer="49d")
    files = build_report([record_from_result("ooo", r)], tmp_path / "rep")
    md = files.markdown.read_text()
    big = max(r.per_concept.rows(), key=lambda d: d["triplets"])
    assert f"[{big['ci_low']:.4f}, {big['ci_high']:.4f}]" in md
    assert "0.95 bootstrap percentile intervals of the record (100 resamples" in md
