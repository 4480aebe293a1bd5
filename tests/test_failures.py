"""``alignkit score failures``: triplets most entries get wrong, against a numpy computation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _numpy_correct(X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Cosine similarity; the paper's tie rule: argmax over [s_ij, s_ik, s_jk] (first pair
    wins a two-way tie), a three-way tie is wrong; correct when the odd one out is column 3."""
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = Z @ Z.T
    s = np.stack([S[T[:, 0], T[:, 1]], S[T[:, 0], T[:, 2]], S[T[:, 1], T[:, 2]]], axis=1)
    three = (s[:, 0] == s[:, 1]) & (s[:, 1] == s[:, 2])
    return (np.argmax(s, axis=1) == 0) & ~three


@pytest.fixture(scope="module")
def things(tmp_path_factory, shared_data):
    """A store of three entries on THINGS concepts (SPoSE, a noisy copy, half its dims)
    whose first entry's image set is a folder of tiny images written here."""
    from PIL import Image

    from alignkit.data import load_triplets
    from alignkit.store import EmbeddingStore

    root = tmp_path_factory.mktemp("f")
    spose = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    rng = np.random.default_rng(3)
    feats = {
        ("spose", "49d"): spose,
        ("noisy", "49d"): spose + 0.05 * rng.normal(size=spose.shape),
        ("half", "25d"): spose[:, :25],
    }
    images = root / "images"
    trip = load_triplets("things-test20k")
    used = np.unique(trip.array[:400])
    for t in used:  # one image per concept used by the first 400 triplets
        (images / ids[t]).mkdir(parents=True)
        Image.new("RGB", (8, 8), (int(t) % 256, 80, 160)).save(images / ids[t] / "a.png")
    store = root / "s.zarr"
    st = EmbeddingStore(str(store), mode="a")
    attrs = {"images": {"root": str(images), "layout": "things"}}
    for (m, lay), X in feats.items():
        st.write(m, lay, X.astype(np.float32), ids, attrs=attrs)
    return {"store": str(store), "feats": feats, "ids": ids, "root": root}


def _expected(things, T):
    C = np.stack([_numpy_correct(X.astype(np.float32).astype(np.float64), T)
                  for X in things["feats"].values()])
    return C.shape[0] - C.sum(axis=0)


def test_failures_all_and_most_against_numpy(things, tmp_path):
    from alignkit.data import load_concepts, load_triplets

    T = load_triplets("things-test20k").array.astype(np.int64)
    wrong = _expected(things, T)
    out = tmp_path / "failures.csv"
    r = run("score", "failures", things["store"], "--triplets", "things-test20k", "--out",
            str(out), "--no-record", "--format", "json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["n_entries"] == 3 and res["ties"] == "paper"
    assert res["n_all_wrong"] == int((wrong == 3).sum())
    rows = [f["row"] - 1 for f in res["failures"]]
    assert sorted(rows) == np.flatnonzero(wrong == 3).tolist()
    # words: the THINGS concept words of the three objects; the human's odd one out last
    words = dict(zip(load_concepts().ids, load_concepts().words, strict=True))
    f0 = res["failures"][0]
    assert [f0["word_i"], f0["word_j"], f0["word_k"]] == [
        words[things["ids"][x]] for x in T[f0["row"] - 1]]
    assert f0["human_odd"] == f0["word_k"]
    with open(out, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows) and table[0]["word_k"] == f0["word_k"]

    r = run("score", "failures", things["store"], "--triplets", "things-test20k",
            "--min-fraction", "0.6", "--no-record", "--format", "json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    want = np.flatnonzero(wrong >= 2)  # 2 of 3 entries is at least 0.6
    assert sorted(f["row"] - 1 for f in res["failures"]) == want.tolist()
    fr = [f["fraction_wrong"] for f in res["failures"]]
    assert fr == sorted(fr, reverse=True)  # ranked by the fraction of entries wrong
    assert fr[0] == 1.0 and fr[-1] == pytest.approx(2 / 3)


def test_failures_tie_rule_follows_ooo(tmp_path):
    """Identical entries with exact ties: a three-way tie is wrong under 'paper', and a
    two-way tie goes to the first pair, as in 'score ooo'."""
    from alignkit.store import EmbeddingStore

    X = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.05]])
    ids = np.array([f"o{i}" for i in range(5)])
    T = np.array([[0, 1, 2],   # three-way tie: wrong under paper and any-tie-wrong
                  [0, 3, 1],   # s(0,1) is the top: odd one out 3, human says 1 -> wrong
                  [0, 1, 3]])  # correct
    trip = tmp_path / "t.txt"
    np.savetxt(trip, T, fmt="%d")
    idf = tmp_path / "ids.txt"
    idf.write_text("\n".join(ids) + "\n")
    store = str(tmp_path / "s.zarr")
    st = EmbeddingStore(store, mode="a")
    st.write("a", "l", X.astype(np.float32), ids)
    st.write("b", "l", X.astype(np.float32), ids)
    r = run("score", "failures", store, "--triplets", str(trip), "--object-ids", str(idf),
            "--no-record", "--format", "json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert [f["row"] for f in res["failures"]] == [1, 2]
    assert next(f for f in res["failures"] if f["row"] == 1)["model_odd"] == "tie"
    r = run("score", "failures", store, "--triplets", str(trip), "--object-ids", str(idf),
            "--ties", "first", "--no-record", "--format", "json")
    res = json.loads(r.stdout)
    # the first pair (0, 1) wins the three-way tie: odd one out o2, the human's choice
    assert [f["row"] for f in res["failures"]] == [2]


def test_failures_record_and_gallery(things, tmp_path):
    r = run("score", "failures", things["store"], "--triplets", "things-test20k", "--top", "5",
            "--format", "table")
    assert r.exit_code == 0, r.output
    assert "human_odd" in r.output
    from alignkit.results import ResultsTable

    (rec,) = ResultsTable.for_store(things["store"]).records("failures")
    T = np.asarray(rec["result"]["failures"][0]["ids"])
    assert T.shape == (3,) and rec["result"]["n_listed"] == 5
    from alignkit.data import load_triplets

    wrong = _expected(things, load_triplets("things-test20k").array.astype(np.int64))
    assert rec["result"]["n_failures"] == int((wrong == 3).sum())
    r = run("report", things["store"], "--out", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Failure gallery" in md
    figs = list((tmp_path / "rep" / "figures").glob("failures-*.png"))
    assert figs, md  # the first failures lie within the 400 triplets that have images
    assert "no image set is recorded" not in md


def test_failures_errors(things):
    r = run("score", "failures", things["store"], "--triplets", "things-test20k",
            "--min-fraction", "0", "--no-record")
    assert r.exit_code == 2
    r = run("score", "failures", things["store"], "--triplets", "things-test20k", "--model",
            "nope", "--no-record")
    assert r.exit_code == 2 and "no entry matches nope" in r.output
