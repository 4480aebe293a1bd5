"""``alignkit score`` end to end on real data, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def store(tmp_path_factory, shared_data):
    from alignkit.store import EmbeddingStore

    path = tmp_path_factory.mktemp("s") / "s.zarr"
    spose = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    st = EmbeddingStore(str(path), mode="a")
    st.write("spose", "49d", spose.astype(np.float32), ids)
    # the same features with their rows shuffled: matching by id must undo it
    perm = np.random.default_rng(0).permutation(len(ids))
    st.write("shuffled", "49d", spose[perm].astype(np.float32), ids[perm])
    return str(path)


def test_score_ooo_table_and_json(store):
    r = run("score", "ooo", store, "--triplets", "things-test20k", "--similarity", "dot")
    assert r.exit_code == 0, r.output
    assert r.output.count("0.63475") == 2  # both entries, the shuffled one matched by id
    r = run("score", "ooo", store, "--triplets", "things-test20k", "--model", "spose",
            "--format", "json", "--bootstrap", "100")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    assert res["accuracy"] == pytest.approx(0.6318)
    assert res["ci_low"] < res["accuracy"] < res["ci_high"]
    assert res["provenance"]["similarity"] == "cosine"
    assert res["provenance"]["triplets"]["checksum"].startswith("sha256:")


def test_score_ooo_per_triplet_and_concepts(store, tmp_path):
    out = tmp_path / "pt.npz"
    r = run("score", "ooo", store, "--triplets", "things-test20k", "--model", "spose",
            "--similarity", "dot", "--per-triplet", str(out), "--per-concept", "--format", "csv")
    assert r.exit_code == 0, r.output
    z = np.load(out)
    assert z["spose/49d/choices"].dtype == np.int8
    assert int(z["spose/49d/correct"].sum()) == 12695
    assert "food-related" in r.output or "animal-related" in r.output
    csv_out = tmp_path / "pt.csv"
    r = run("score", "ooo", store, "--triplets", "things-test20k", "--model", "spose",
            "--similarity", "dot", "--per-triplet", str(csv_out), "--no-record")
    assert r.exit_code == 0, r.output
    table = np.loadtxt(csv_out, delimiter=",", skiprows=1, usecols=range(2, 8), dtype=np.int64)
    np.testing.assert_array_equal(table[:, 0], np.arange(1, 20001))
    np.testing.assert_array_equal(table[:, 1:4], z["triplets"])
    np.testing.assert_array_equal(table[:, 4], z["spose/49d/choices"])
    np.testing.assert_array_equal(table[:, 5], z["spose/49d/correct"])


def test_score_rsa_store_and_rdm_vs_rdm(store, tmp_path):
    r = run("score", "rsa", store, "--rdm", "rdm48", "--rdm-method", "dot", "--format", "json")
    assert r.exit_code == 0, r.output
    vals = [x["value"] for x in json.loads(r.stdout)]
    assert len(vals) == 2 and vals[0] == pytest.approx(vals[1]) and 0.85 < vals[0] < 0.89
    # RDM vs RDM: the human RDM against itself
    from alignkit.data import load_rdm

    h = load_rdm("rdm48")
    np.save(tmp_path / "h.npy", h.matrix)
    (tmp_path / "ids.txt").write_text("\n".join(h.ids) + "\n")
    r = run("score", "rsa", str(tmp_path / "h.npy"), "--source-ids", str(tmp_path / "ids.txt"),
            "--rdm", "rdm48", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["value"] == pytest.approx(1.0)


def _err(r) -> str:
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert "Traceback" not in r.output
    return lines[-1]


def test_bad_inputs_exit_2(store, tmp_path):
    np.savetxt(tmp_path / "big.txt", np.array([[0, 1, 2], [0, 1, 5000]]), fmt="%d")
    msg = _err(run("score", "ooo", store, "--triplets", str(tmp_path / "big.txt"),
                   "--object-ids", "things"))
    assert "5001" in msg and "1854" in msg
    # ids that do not match the RDM's
    np.save(tmp_path / "r.npy", np.ones((3, 3)) - np.eye(3))
    (tmp_path / "rid.txt").write_text("x\ny\nz\n")
    msg = _err(run("score", "rsa", store, "--rdm", str(tmp_path / "r.npy"), "--rdm-ids",
                   str(tmp_path / "rid.txt")))
    assert "missing" in msg or "match" in msg
    # not square, not symmetric
    np.save(tmp_path / "ns.npy", np.ones((3, 4)))
    _err(run("score", "rsa", store, "--rdm", str(tmp_path / "ns.npy"), "--rdm-ids", str(tmp_path / "rid.txt")))
    np.save(tmp_path / "asym.npy", np.arange(9.0).reshape(3, 3))
    msg = _err(run("score", "rsa", store, "--rdm", str(tmp_path / "asym.npy"), "--rdm-ids",
                   str(tmp_path / "rid.txt")))
    assert "symmetric" in msg
    msg = _err(run("score", "ooo", store, "--triplets", "things-test20k", "--model", "nope"))
    assert "nope" in msg


def test_results_are_recorded_and_reported(tmp_path, shared_data):
    from alignkit.results import ResultsTable
    from alignkit.store import EmbeddingStore

    path = str(tmp_path / "r.zarr")
    spose = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    EmbeddingStore(path, mode="a").write("spose", "49d", spose.astype(np.float32), ids,
                                         attrs={"n_params": 90846})
    assert run("score", "ooo", path, "--triplets", "things-test20k", "--similarity", "dot",
               "--per-concept").exit_code == 0
    assert run("score", "rsa", path, "--rdm", "rdm48", "--rdm-method", "dot").exit_code == 0
    assert run("score", "ooo", path, "--triplets", "things-test20k", "--no-record").exit_code == 0
    recs = ResultsTable.for_store(path).records()
    assert [r["kind"] for r in recs] == ["ooo", "rsa"]
    assert recs[0]["result"]["accuracy"] == pytest.approx(0.63475)
    assert recs[0]["model_attrs"] == {"n_params": 90846}
    assert recs[0]["provenance"]["triplets"]["checksum"].startswith("sha256:")
    r = run("report", path, "--out", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "0.6348" in html and "0.8707" in html


def test_transform_applied_before_scoring(tmp_path, shared_data):
    from alignkit.data import load_rdm
    from alignkit.probe.transform import Transform
    from alignkit.score import odd_one_out, rsa_features
    from alignkit.store import EmbeddingStore

    spose = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt").astype(np.float32)
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    path = str(tmp_path / "t.zarr")
    st = EmbeddingStore(path, mode="a")
    entry = st.write("spose", "49d", spose, ids)
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(49, 49)), rng.normal(size=49)
    Transform(weights=W, bias=b, mean=0.1, std=0.5).save(entry, "rand")
    Transform(weights=W, bias=b, mean=0.1, std=0.5).to_npz(tmp_path / "rand.npz")
    Z = ((spose.astype(np.float64) - 0.1) / 0.5) @ W + b
    T = np.loadtxt(shared_data / "things" / "triplets_test20k_0based_oddlast.txt", dtype=np.int64)
    want_ooo = odd_one_out(Z, T, similarity="dot").accuracy
    want_rsa = rsa_features(Z, ids, load_rdm("rdm48"), rdm_method="correlation").value
    for tf in ("rand", str(tmp_path / "rand.npz")):
        r = run("score", "ooo", path, "--triplets", "things-test20k", "--similarity", "dot",
                "--transform", tf, "--format", "json", "--no-record")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)[0]["accuracy"] == pytest.approx(want_ooo, abs=1e-12)
        r = run("score", "rsa", path, "--rdm", "rdm48", "--transform", tf, "--format", "json",
                "--no-record")
        assert r.exit_code == 0, r.output
        got = json.loads(r.stdout)[0]
        assert got["value"] == pytest.approx(want_rsa, abs=1e-9) and got["transform"] == tf
    msg = _err(run("score", "rsa", path, "--rdm", "rdm48", "--transform", "nope"))
    assert "nope" in msg and "rand" in msg


def test_several_triplet_files_are_scored_together(store, tmp_path, shared_data):
    from alignkit.data import concat_triplets, load_triplets

    T = np.loadtxt(shared_data / "things" / "triplets_test20k_0based_oddlast.txt", dtype=np.int64)
    np.save(tmp_path / "a.npy", T[:12000])
    np.savetxt(tmp_path / "b.txt", T[12000:], fmt="%d")
    r = run("score", "ooo", store, "--model", "spose", "--similarity", "dot", "--no-record",
            "--triplets", str(tmp_path / "a.npy"), "--triplets", str(tmp_path / "b.txt"),
            "--object-ids", "things", "--format", "json")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    assert res["n_triplets"] == 20000 and res["accuracy"] == pytest.approx(0.63475)
    both = concat_triplets([load_triplets(tmp_path / "a.npy", n_objects=1854),
                            load_triplets(tmp_path / "b.txt", n_objects=1854)])
    assert res["provenance"]["triplets"]["checksum"] == both.checksum
    assert " + " in both.source


def test_mismatched_entry_is_named(tmp_path):
    from alignkit.store import EmbeddingStore

    path = str(tmp_path / "m.zarr")
    EmbeddingStore(path, mode="a").write("tiny", "fc", np.ones((9, 4), dtype=np.float32),
                                         [f"img{i}" for i in range(9)])
    msg = _err(run("score", "ooo", path, "--triplets", "things-test20k"))
    assert "tiny/fc" in msg and "no features" in msg and "--subset covered" in msg
