"""Concept tables, concept embeddings, the bundled registry and the ``data`` commands."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import alignkit.data as data
from alignkit.cli import cli
from alignkit.data import (
    BUNDLED,
    bundled_path,
    load_concepts,
    load_embedding,
    things_ids,
)
from alignkit.errors import DataError, FormatError, InputError, MismatchError
from alignkit.provenance import sha256_file


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln]


def test_things_concepts_and_ids(shared_data: Path) -> None:
    ref_ids = _lines(shared_data / "things" / "unique_id.txt")
    assert things_ids().tolist() == ref_ids and len(ref_ids) == 1854
    with open(shared_data / "things" / "things_concepts.tsv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    c = load_concepts()
    assert len(c) == 1854 and c.ids.tolist() == ref_ids
    assert c.words.tolist() == [r["Word"] for r in rows]
    definition = "Definition (from WordNet, Google, or Wikipedia)"
    assert c.definitions.tolist() == [r[definition].strip() for r in rows]
    assert c.columns == list(rows[0].keys())
    assert c.rows()[1]["uniqueID"] == "abacus"
    assert c.index_of(["abacus", "aardvark"]).tolist() == [1, 0]
    with pytest.raises(MismatchError, match="'nope'"):
        c.index_of(["nope"])
    assert load_concepts("things").ids.tolist() == ref_ids  # alias
    assert c.checksum == sha256_file(shared_data / "things" / "things_concepts.tsv")


def test_bundled_spose_equals_the_published_text_bit_for_bit(shared_data: Path) -> None:
    ref = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt", dtype=np.float64)
    e = load_embedding()
    assert e.values.dtype == np.float64 and e.values.shape == (1854, 49)
    assert np.array_equal(e.values.view(np.uint64), ref.view(np.uint64))
    assert e.labels.tolist() == _lines(shared_data / "things" / "labels_49d_short.txt")
    assert e.ids.tolist() == _lines(shared_data / "things" / "unique_id.txt")
    # the published text file reads to the same values, with the same ids
    t = load_embedding(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    assert np.array_equal(t.values, e.values) and t.ids.tolist() == e.ids.tolist()
    assert t.labels[0] == "dim1" and t.labels[-1] == "dim49"
    assert "negative" in e.convention  # the published file has a few tiny negatives


def test_generic_embedding_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((6, 4))
    text = tmp_path / "emb.txt"
    text.write_text("\n".join(" ".join(f"{v:.20f}" for v in row) + " " for row in x) + "\n")
    e = load_embedding(text, labels=["a", "b", "c", "d"])
    np.testing.assert_array_equal(e.values, np.loadtxt(text))
    assert e.ids.tolist() == [str(i) for i in range(6)] and e.labels.tolist() == list("abcd")
    np.save(tmp_path / "emb.npy", x.astype(np.float32))
    e2 = load_embedding(tmp_path / "emb.npy", ids=list("uvwxyz"))
    assert e2.values.dtype == np.float64 and e2.ids.tolist() == list("uvwxyz")
    np.testing.assert_array_equal(e2.values, x.astype(np.float32).astype(np.float64))
    label_file = tmp_path / "labels.txt"
    label_file.write_text("p\nq\nr\ns\n")
    assert load_embedding(text, labels=label_file).labels.tolist() == list("pqrs")


def test_bad_embeddings(tmp_path: Path) -> None:
    (tmp_path / "nan.txt").write_text("1 2\n3 nan\n")
    (tmp_path / "word.txt").write_text("1 2\n3 x\n")
    (tmp_path / "ragged.txt").write_text("1 2\n3 4 5\n")
    (tmp_path / "neg.txt").write_text("1 2\n3 -4\n")
    with pytest.raises(DataError, match="row 2"):
        load_embedding(tmp_path / "nan.txt")
    with pytest.raises(FormatError, match="row 2.*'x'"):
        load_embedding(tmp_path / "word.txt")
    with pytest.raises(FormatError, match="row 2"):
        load_embedding(tmp_path / "ragged.txt")
    with pytest.warns(UserWarning, match="row 2"):
        load_embedding(tmp_path / "neg.txt", warn_negative=True)
    with pytest.raises(MismatchError, match="3 labels for 2"):
        load_embedding(tmp_path / "neg.txt", labels=["a", "b", "c"])
    with pytest.raises(MismatchError, match="1 ids for 2"):
        load_embedding(tmp_path / "neg.txt", ids=["a"])
    with pytest.raises(InputError, match="not an embedding"):
        load_embedding("things-test20k")


def test_bad_concept_tables(tmp_path: Path) -> None:
    (tmp_path / "noid.tsv").write_text("Word\tx\na\tb\n")
    (tmp_path / "dup.tsv").write_text("Word\tuniqueID\na\tx\nb\ty\nc\tx\n")
    (tmp_path / "ragged.tsv").write_text("Word\tuniqueID\na\tx\nb\n")
    with pytest.raises(FormatError, match="uniqueID"):
        load_concepts(tmp_path / "noid.tsv")
    with pytest.raises(DataError, match=r"rows \[2, 4\]"):
        load_concepts(tmp_path / "dup.tsv")
    with pytest.raises(FormatError, match="row 3"):
        load_concepts(tmp_path / "ragged.tsv")


def test_bundled_registry_is_complete_and_small() -> None:
    total = 0
    for name, item in BUNDLED.items():
        path = bundled_path(name)
        assert path.is_file(), name
        assert item.description and item.citation and item.licence, name
        total += path.stat().st_size
    assert total < 4 * 1024 * 1024
    readme = (bundled_path("rdm48").parent / "README.md").read_text()
    for item in BUNDLED.values():
        assert item.file in readme
    with pytest.raises(InputError, match="things-test20k"):
        bundled_path("nope")


def test_import_is_light_and_lazy_reexports(monkeypatch: pytest.MonkeyPatch) -> None:
    code = (
        "import sys, alignkit.data\n"
        "print(sorted(m for m in ('scipy', 'torch', 'numba', 'zarr') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError):
        data.no_such_name  # noqa: B018
    # a re-export whose module is missing fails on access only, as AttributeError
    monkeypatch.setitem(data._LAZY, "ghost", "alignkit.data._no_such_module")
    with pytest.raises(AttributeError, match="unavailable"):
        data.ghost  # noqa: B018
    # present sibling modules are re-exported as the same objects
    import importlib

    for name, module in (("load_features", "alignkit.data.features"),
                         ("synthetic_triplets", "alignkit.data.synthetic")):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        assert getattr(data, name) is getattr(mod, name)


def test_cli_data_ls_and_info() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "ls"])
    assert result.exit_code == 0
    for name in BUNDLED:
        assert name in result.stdout
    listed = [r for r in json.loads(runner.invoke(cli, ["data", "ls", "--format", "json"]).stdout)
              if r["source"] == "bundled"]
    assert {r["name"] for r in listed} == set(BUNDLED)
    assert all(r["bytes"] == bundled_path(r["name"]).stat().st_size for r in listed)
    info = json.loads(runner.invoke(cli, ["data", "info", "spose-49d", "--format", "json"]).stdout)
    assert info["shape"] == [1854, 49] and info["kind"] == "embedding"
    info = json.loads(runner.invoke(cli, ["data", "info", "rdm48", "--format", "json"]).stdout)
    assert info["shape"] == [48, 48] and info["ids"][0] == "pizza"
    table = runner.invoke(cli, ["data", "info", "things-concepts"])
    assert table.exit_code == 0 and "1854" in table.stdout
    for args in (["data", "--help"], ["data", "ls", "--help"], ["data", "info", "--help"]):
        helped = runner.invoke(cli, args)
        assert helped.exit_code == 0 and "Example" in helped.stdout
    for name, n in (("things-ids", 1854), ("spose-49d-labels", 49), ("things-sortindex", 1854),
                    ("rdm48-order", 48)):
        listed_info = json.loads(runner.invoke(cli, ["data", "info", name, "--format", "json"]).stdout)
        assert listed_info["n_entries"] == n, name
    missing = runner.invoke(cli, ["data", "info", "no-such-file.txt"])
    assert missing.exit_code == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_cli_guesses_what_a_file_holds(tmp_path: Path, shared_data: Path) -> None:
    from alignkit.commands.data import guess_kind

    rng = np.random.default_rng(1)
    (tmp_path / "t.txt").write_text("i j k\n0 1 2\n3 4 5\n6 7 8\n")
    (tmp_path / "v.csv").write_text("img1,img2,ooo\n1,2,3\n")
    (tmp_path / "c.tsv").write_text("Word\tuniqueID\na\tb\n")
    np.savetxt(tmp_path / "r.csv", np.eye(4), delimiter=",")
    np.savetxt(tmp_path / "cond.txt", rng.random((1, 6)))
    np.savetxt(tmp_path / "e.txt", rng.random((6, 3)))
    np.save(tmp_path / "t.npy", np.array([[0, 1, 2]], dtype=np.int32))
    np.save(tmp_path / "r.npy", np.eye(3))
    np.save(tmp_path / "e.npy", rng.random((5, 2)))
    expected = {"t.txt": "triplets", "v.csv": "triplets", "c.tsv": "concepts", "r.csv": "rdm",
                "cond.txt": "rdm", "e.txt": "embedding", "t.npy": "triplets", "r.npy": "rdm",
                "e.npy": "embedding"}
    for name, kind in expected.items():
        assert guess_kind(str(tmp_path / name)) == kind, name
    things = shared_data / "things"
    assert guess_kind(str(things / "triplets_test20k_raw_vice_format.tsv")) == "triplets"
    assert guess_kind(str(things / "spose_embedding_49d_sorted.txt")) == "embedding"
    assert guess_kind(str(shared_data / "rdm" / "RDM48_triplet.mat")) == "rdm"
    assert guess_kind("things-sortindex") == "list" and guess_kind("rdm48") == "rdm"
