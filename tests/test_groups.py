"""Odd-one-out accuracy per group: Levels' levels of abstraction and --group-by label files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.errors import MismatchError

CLASSES = ("n01440764", "n01443537", "n01484850", "n01491361")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _names() -> list[str]:
    return [f"{c}_{k}" for c in CLASSES for k in range(5)]


def _cosine_odd(X: np.ndarray, t: np.ndarray) -> int:
    """The position (0, 1, 2) of the model's odd one out: outside the most similar pair."""
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    i, j, k = t
    sims = [Z[i] @ Z[j], Z[i] @ Z[k], Z[j] @ Z[k]]  # pairs (i,j), (i,k), (j,k)
    return (2, 1, 0)[int(np.argmax(sims))]


@pytest.fixture(scope="module")
def levels(tmp_path_factory):
    """A Levels file (jsPsych JSON lines) written here, a store of features by image name,
    and the expected per-triplet correctness and level computed with numpy."""
    from alignkit.store import EmbeddingStore

    root = tmp_path_factory.mktemp("lv")
    rng = np.random.default_rng(7)
    names = _names()
    # features with class structure, so that levels differ in accuracy
    centres = rng.normal(size=(len(CLASSES), 6))
    X = np.stack([centres[i // 5] + 0.9 * rng.normal(size=6) for i in range(len(names))])
    lines = [{"trial_type": "instructions", "subject_id": "s1"}]
    expect_correct, expect_level = [], []
    for n in range(240):
        if n % 3 == 0:  # coarse: three classes
            cls = rng.choice(len(CLASSES), 3, replace=False)
            idx = [c * 5 + rng.integers(5) for c in cls]
        elif n % 3 == 1:  # fine: one class
            c = rng.integers(len(CLASSES))
            idx = [c * 5 + k for k in rng.choice(5, 3, replace=False)]
        else:  # boundary: two of one class, one of another
            a, b = rng.choice(len(CLASSES), 2, replace=False)
            k1, k2 = rng.choice(5, 2, replace=False)
            idx = [a * 5 + k1, a * 5 + k2, b * 5 + rng.integers(5)]
            rng.shuffle(idx)
        idx = np.asarray(idx)
        chosen = int(rng.integers(3)) if n % 4 else _cosine_odd(X, idx)
        model_odd = _cosine_odd(X, idx)
        expect_correct.append(int(chosen == model_odd))
        n_cls = len({names[i].split("_")[0] for i in idx})
        expect_level.append({1: "fine", 2: "boundary", 3: "coarse"}[n_cls])
        rec = {"subject_id": f"s{n % 3}", "exp_trial_type": "exp_trial",
               **{f"image{k + 1}Path": f"images/{names[i]}.JPEG" for k, i in enumerate(idx)},
               "selected_image": f"images/{names[idx[chosen]]}.JPEG"}
        lines.append(rec)
        if n == 10:
            lines.append({**rec, "exp_trial_type": "catch_trial"})  # left out by the reader
    path = root / "levels.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    store = root / "s.zarr"
    st = EmbeddingStore(str(store), mode="a")
    st.write("toy", "fc", X.astype(np.float32), np.asarray(names))
    return {"path": str(path), "store": str(store), "X": X,
            "correct": np.asarray(expect_correct), "level": np.asarray(expect_level)}


def _expected(correct: np.ndarray, labels: np.ndarray) -> dict[str, tuple[int, int, float]]:
    return {g: (int((labels == g).sum()), int(correct[labels == g].sum()),
                float(correct[labels == g].mean())) for g in np.unique(labels)}


def test_levels_group_by_level_cli(levels):
    r = run("score", "ooo", levels["store"], "--triplets", levels["path"], "--group-by", "level",
            "--bootstrap", "300", "--seed", "3", "--format", "json")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    want = _expected(levels["correct"], levels["level"])
    assert res["n_triplets"] == 240
    assert res["accuracy"] == pytest.approx(levels["correct"].mean())
    groups = res["per_group"]["groups"]
    assert [g["group"] for g in groups] == ["coarse", "fine", "boundary"]
    for g in groups:
        n, c, acc = want[g["group"]]
        assert (g["triplets"], g["correct"]) == (n, c)
        assert g["accuracy"] == pytest.approx(acc)
        assert g["ci_low"] <= acc <= g["ci_high"]
        assert g["ci_high"] - g["ci_low"] < 0.5
    assert res["provenance"]["groups"]["source"].startswith("row_info['level']")
    # the record carries the groups into the store's results table
    lines = (levels["store"] + "/results.jsonl")
    rec = json.loads(open(lines).read().splitlines()[-1])
    assert [g["group"] for g in rec["result"]["per_group"]["groups"]] == ["coarse", "fine",
                                                                          "boundary"]


def test_group_by_file_and_csv_column(levels, tmp_path):
    labels = np.where(np.arange(240) % 2 == 0, "even", "odd")
    txt = tmp_path / "labels.txt"
    txt.write_text("\n".join(labels) + "\n")
    r = run("score", "ooo", levels["store"], "--triplets", levels["path"], "--group-by", str(txt),
            "--no-record", "--format", "csv")
    assert r.exit_code == 0, r.output
    want = _expected(levels["correct"], labels)
    for g, (n, c, acc) in want.items():
        assert f"toy,fc,{g},{n},{c},{acc!r}," in r.output
    table = tmp_path / "labels.csv"
    table.write_text("row,half\n" + "".join(f"{i},{'a' if i < 100 else 'b'}\n" for i in range(240)))
    r = run("score", "ooo", levels["store"], "--triplets", levels["path"], "--group-by",
            f"{table}:half", "--no-record", "--format", "json")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    got = {g["group"]: g["correct"] for g in res["per_group"]["groups"]}
    assert got == {"a": int(levels["correct"][:100].sum()), "b": int(levels["correct"][100:].sum())}
    assert all(g["ci_low"] is None for g in res["per_group"]["groups"])  # no bootstrap asked


def test_group_by_errors(levels, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("a\nb\nc\n")
    r = run("score", "ooo", levels["store"], "--triplets", levels["path"], "--group-by", str(short),
            "--no-record")
    assert r.exit_code == 2
    assert str(short) in r.output and "3 labels for 240 triplets" in r.output
    table = tmp_path / "t.csv"
    table.write_text("x,y\n1,2\n")
    r = run("score", "ooo", levels["store"], "--triplets", levels["path"], "--group-by",
            f"{table}:z", "--no-record")
    assert r.exit_code == 2 and "no column 'z'" in r.output
    r = run("score", "ooo", levels["store"], "--triplets", "things-test20k", "--group-by", "level",
            "--no-record")
    assert r.exit_code == 2 and "neither a column of the triplets" in r.output


def test_api_groups_bootstrap_reproducible():
    from alignkit.score import odd_one_out

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    T = np.array([rng.choice(40, 3, replace=False) for _ in range(900)])
    labels = np.array(["x", "y", "z"])[rng.integers(0, 3, 900)]
    a = odd_one_out(X, T, groups=labels, bootstrap=200, seed=5, per_triplet=True)
    b = odd_one_out(X, T, groups=labels, bootstrap=200, seed=5)
    assert a.per_group.to_dict() == b.per_group.to_dict()
    for row in a.per_group.rows():
        m = labels == row["group"]
        assert row["triplets"] == int(m.sum())
        assert row["accuracy"] == pytest.approx(a.correct[m].mean())
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
    with pytest.raises(MismatchError, match="10 labels for 900 triplets"):
        odd_one_out(X, T, groups=labels[:10])


def test_covered_subset_keeps_labels_aligned():
    """Triplets left out by subset='covered' take their labels with them."""
    from alignkit.data import Triplets
    from alignkit.score import odd_one_out

    rng = np.random.default_rng(1)
    T = np.array([rng.choice(12, 3, replace=False) for _ in range(300)], dtype=np.int32)
    ids = np.array([f"o{i}" for i in range(12)])
    trip = Triplets(T, 12, "<t>", "sha256:0", "test", ids)
    labels = np.where(T[:, 0] % 2 == 0, "even", "odd")
    X = rng.normal(size=(11, 4))  # object o11 has no features
    res = odd_one_out(X, trip, ids=ids[:11], subset="covered", groups=labels, per_triplet=True)
    keep = ~(T == 11).any(axis=1)
    assert res.n_triplets == int(keep.sum())
    for row in res.per_group.rows():
        m = labels[keep] == row["group"]
        assert row["triplets"] == int(m.sum())
        assert row["correct"] == int(res.correct[m].sum())


def test_group_by_as_measure_option_and_study_loader(levels):
    """The study key path: the triplets loader reads a Levels file, and the ooo measure's
    group_by option gives the same per-group counts as --group-by."""
    from alignkit.measures import get_measure
    from alignkit.measures._data import load_triplet_set

    trip = load_triplet_set(levels["path"])
    assert len(trip) == 240 and "level" in trip.row_info
    names = np.asarray(_names())
    pos = {n: i for i, n in enumerate(names)}
    X = levels["X"][[pos[i] for i in trip.object_ids]]
    res = get_measure("ooo").compute(X, trip, {"group_by": "level"})
    want = _expected(levels["correct"], levels["level"])
    got = {r["group"]: (r["triplets"], r["correct"]) for r in res.per_group.rows()}
    assert got == {g: (n, c) for g, (n, c, _) in want.items()}
