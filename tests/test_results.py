"""The results table: records, round trips, concurrent appends and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from alignkit.errors import DataError, InputError
from alignkit.results import (
    FORMAT_VERSION,
    RESULTS_FILE,
    ResultsTable,
    latest,
    record_field,
    record_from_result,
)


def ooo_result(model: str = "vgg16", layer: str = "classifier.3", accuracy: float = 0.6) -> dict:
    """A dict shaped like ``OddOneOutResult.to_dict()``."""
    return {
        "accuracy": accuracy,
        "n_triplets": 20000,
        "n_correct": int(accuracy * 20000),
        "n_ties": 0,
        "similarity": "cosine",
        "ties": "wrong",
        "ceiling": 0.673,
        "normalised": (accuracy - 1 / 3) / (0.673 - 1 / 3),
        "chance": 1 / 3,
        "ci_low": accuracy - 0.01,
        "ci_high": accuracy + 0.01,
        "model": model,
        "layer": layer,
        "per_concept": None,
        "provenance": {
            "triplets": {"source": "things-test20k", "checksum": "sha256:ab"},
            "transform": None,
            "created": "2026-01-02T03:04:05+00:00",
        },
    }


def test_record_from_result_fills_the_fields():
    rec = record_from_result("ooo", ooo_result(), model_attrs={"n_params": np.int64(138_357_544)})
    assert rec["format_version"] == FORMAT_VERSION
    assert (rec["kind"], rec["model"], rec["layer"]) == ("ooo", "vgg16", "classifier.3")
    assert rec["dataset"] == "things-test20k"  # the triplets' source
    assert rec["transform"] is None
    assert rec["created"] == "2026-01-02T03:04:05+00:00"  # the result's own time
    assert (
        "provenance" not in rec["result"]
        and rec["provenance"]["triplets"]["checksum"] == "sha256:ab"
    )
    assert rec["model_attrs"] == {"n_params": 138_357_544}
    assert type(rec["model_attrs"]["n_params"]) is int
    rsa = record_from_result(
        "rsa",
        {
            "value": 0.5,
            "model": "m",
            "layer": "l",
            "transform": "paper",
            "reference": "RDM48_triplet.mat",
        },
        store="s.zarr",
    )
    assert (rsa["dataset"], rsa["transform"], rsa["store"]) == (
        "RDM48_triplet.mat",
        "paper",
        "s.zarr",
    )
    over = record_from_result(
        "ooo", ooo_result(), model="other", dataset="mine", provenance={"x": 1}
    )
    assert (over["model"], over["dataset"], over["provenance"]["x"]) == ("other", "mine", 1)
    assert over["provenance"]["triplets"]["source"] == "things-test20k"  # merged, not replaced


def test_record_from_a_real_result_object():
    from alignkit.score import odd_one_out

    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4))
    T = np.array([rng.choice(12, 3, replace=False) for _ in range(50)], dtype=np.int32)
    res = odd_one_out(X, T, model="rand", layer="x")
    rec = record_from_result("ooo", res)
    assert rec["result"]["accuracy"] == res.accuracy
    assert rec["result"]["n_triplets"] == 50
    assert rec["provenance"]["features_checksum"].startswith("sha256:")
    assert json.loads(json.dumps(rec, allow_nan=False)) == rec


def test_round_trip_and_kind_filter(tmp_path):
    table = ResultsTable(tmp_path / "r.jsonl")
    assert table.records() == [] and not table.exists()
    written = [
        table.append(record_from_result("ooo", ooo_result(accuracy=0.5))),
        table.append(
            record_from_result(
                "probe",
                {"model": "vgg16", "layer": "fc", "accuracy": 0.6, "accuracy_sd": float("nan")},
            )
        ),
        table.append(record_from_result("rsa", {"value": np.float32(0.25), "model": "vgg16"})),
    ]
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["format_version"] == 1 for line in lines)
    back = table.records()
    assert back == written
    assert back[1]["result"]["accuracy_sd"] is None  # NaN stored as null: strict JSON
    assert back[2]["result"]["value"] == float(np.float32(0.25))
    assert [r["kind"] for r in table.records("probe")] == ["probe"]
    assert len(table) == 3 and [r["kind"] for r in table] == ["ooo", "probe", "rsa"]
    with pytest.raises(InputError, match="kind must be one of"):
        table.records("nope")


def test_append_fills_version_and_time_and_refuses_bad_records(tmp_path):
    table = ResultsTable(tmp_path / "sub" / "r.jsonl")  # parent folders are created
    rec = table.append({"kind": "ooo", "model": "m", "result": {"accuracy": 0.5}})
    assert rec["format_version"] == 1 and rec["created"]
    for bad, match in (
        ({"kind": "zzz", "result": {}}, "'kind' must be one of"),
        ({"kind": "ooo", "result": [1]}, "'result' must be a JSON object"),
        ({"kind": "ooo", "result": {}, "model": 3}, "'model' must be a string"),
        ({"kind": "ooo", "result": {}, "format_version": 2}, "newer alignkit"),
        ({"kind": "ooo", "result": {}, "created": "yesterday"}, "ISO 8601"),
        ({"kind": "ooo", "result": {"x": object()}}, "cannot store a value of type object"),
    ):
        with pytest.raises(InputError, match=match):
            table.append(bad)
    assert len(table.records()) == 1  # nothing half-written
    with pytest.raises(InputError, match="kind must be one of"):
        record_from_result("score", {})
    with pytest.raises(InputError, match="must be a dict or have to_dict"):
        record_from_result("ooo", 3.0)


def test_newer_format_is_refused_with_its_line(tmp_path):
    path = tmp_path / "r.jsonl"
    table = ResultsTable(path)
    table.append(record_from_result("ooo", ooo_result()))
    newer = dict(table.records()[0], format_version=2)
    with path.open("a") as fh:
        fh.write(json.dumps(newer) + "\n")
    with pytest.raises(DataError) as info:
        table.records()
    msg = str(info.value)
    assert f"{path} line 2 was written by a newer alignkit (format 2)" in msg
    assert "this alignkit reads format 1; upgrade alignkit" in msg


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"kind": "ooo", "format_version": 1, "resu', "not a valid JSON record"),
        ("[1, 2, 3]", "must be a JSON object, got list"),
        ('{"kind": "ooo", "result": {}, "created": "2026-01-01T00:00:00+00:00"}', "format_version"),
        ('{"format_version": 1, "kind": "knn", "result": {}, "created": "2026-01-01"}', "'kind'"),
        ("\xff\xfe", "not a valid JSON record"),
    ],
)
def test_corrupt_line_names_file_and_line(tmp_path, line, match):
    path = tmp_path / "r.jsonl"
    table = ResultsTable(path)
    table.append(record_from_result("ooo", ooo_result()))
    good = path.read_bytes()
    with path.open("ab") as fh:
        fh.write(b"\n")  # a blank line (allowed) shifts the faulty one to line 3
        fh.write(line.encode("latin-1") + b"\n")
        fh.write(good)  # a whole record after it: the faulty line is not a partial last one
    with pytest.raises(DataError, match=match) as info:
        table.records()
    assert f"{path} line 3" in str(info.value)
    assert not table.corrupt_path.exists()  # nothing set aside: the table is left as it is


def _whole_lines(raw: bytes) -> list[dict]:
    """An independent reading: every newline-terminated line that parses as JSON."""
    out = []
    for line in raw.split(b"\n")[:-1]:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


@pytest.mark.parametrize("ending", [b"", b"\n"])
def test_partial_last_line_is_set_aside_never_glued(tmp_path, capfd, ending):
    path = tmp_path / "r.jsonl"
    table = ResultsTable(path)
    first = [table.append(record_from_result("ooo", ooo_result(layer=f"l{i}"))) for i in range(3)]
    before = path.read_bytes()
    one = before.split(b"\n")[0]
    fragment = one[: len(one) // 2]  # a writer killed mid-append: half a record
    with path.open("ab") as fh:
        fh.write(fragment + ending)
    capfd.readouterr()
    last = table.append(record_from_result("rsa", {"value": 0.5, "model": "m", "layer": "x"}))
    err = capfd.readouterr().err
    assert table.set_aside == 1
    warn = [ln for ln in err.splitlines() if ln.strip()]
    assert len(warn) == 1 and warn[0].startswith("alignkit: warning: ") and "1 partial" in warn[0]
    assert str(table.corrupt_path) in warn[0]
    raw = path.read_bytes()
    tail = raw[len(before):]  # not glued onto the new record: it is one whole line
    assert raw.startswith(before) and tail.count(b"\n") == 1 and json.loads(tail) == last
    assert table.corrupt_path.read_bytes() == fragment + b"\n"
    back = table.records()
    assert back == first + [last] == _whole_lines(raw)
    assert capfd.readouterr().err == ""  # read again: nothing left to set aside
    assert table.set_aside == 0


def test_partial_last_line_is_set_aside_on_read_and_report_reads_the_rest(tmp_path):
    from click.testing import CliRunner

    from alignkit.cli import cli

    store = tmp_path / "s.zarr"
    store.mkdir()
    path = store / RESULTS_FILE
    table = ResultsTable(path)
    kept = [table.append(record_from_result("ooo", ooo_result(model=m))) for m in ("a", "b")]
    with path.open("ab") as fh:
        fh.write(b'{"format_version":1,"kind":"ooo","model":"c","res')  # no newline
    res = CliRunner().invoke(cli, ["report", str(store), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert res.stderr.count("alignkit: warning: ") == 1 and "partial record" in res.stderr
    assert table.corrupt_path.read_bytes().startswith(b'{"format_version":1,"kind":"ooo","model":"c"')
    assert ResultsTable(path).records() == kept
    assert path.read_bytes().endswith(b"}\n")


def test_partial_last_line_of_a_read_only_table_is_read_around(tmp_path, capfd):
    path = tmp_path / "r.jsonl"
    table = ResultsTable(path)
    kept = table.append(record_from_result("ooo", ooo_result()))
    with path.open("ab") as fh:
        fh.write(b'{"kind": "ooo", "form')
    before = path.read_bytes()
    path.chmod(0o444)
    try:
        if os.access(path, os.W_OK):
            pytest.skip("running as a user that can write read-only files")
        assert table.records() == [kept]
        assert "partial record" in capfd.readouterr().err
        assert path.read_bytes() == before and not table.corrupt_path.exists()
    finally:
        path.chmod(0o644)


def test_a_whole_last_record_without_newline_is_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    table = ResultsTable(path)
    a = table.append(record_from_result("ooo", ooo_result(model="a")))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # e.g. saved by an editor
    assert table.records() == [a]
    b = table.append(record_from_result("ooo", ooo_result(model="b")))
    assert table.records() == [a, b] and table.set_aside == 0
    assert not table.corrupt_path.exists()


def test_concurrent_appends_from_four_processes(tmp_path):
    path = tmp_path / "r.jsonl"
    n = 150
    script = textwrap.dedent(
        """
        import sys
        from alignkit.results import ResultsTable
        table = ResultsTable(sys.argv[1])
        writer = sys.argv[2]
        pad = writer * 5000  # lines of ~5 kB: larger than a pipe buffer's atomic size
        for i in range(int(sys.argv[3])):
            table.append({"kind": "ooo", "model": writer, "layer": str(i),
                          "result": {"i": i, "pad": pad}})
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), w, str(n)]) for w in "abcd"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 4 * n
    records = ResultsTable(path).records()  # every line parses: nothing interleaved
    assert len(records) == 4 * n
    for w in "abcd":
        mine = [r["result"] for r in records if r["model"] == w]
        assert [r["i"] for r in mine] == list(range(n))  # each writer's lines complete, in order
        assert all(r["pad"] == w * 5000 for r in mine)


def test_for_store_keeps_the_table_inside_a_zarr_store(tmp_path):
    import zarr

    from alignkit.store import EmbeddingStore

    path = tmp_path / "s.zarr"
    st = EmbeddingStore(str(path), mode="a")
    ids = np.array([f"o{i}" for i in range(5)])
    st.write("m", "l", np.arange(15, dtype=np.float32).reshape(5, 3), ids)
    table = ResultsTable.for_store(str(path))
    assert table.path == path / RESULTS_FILE
    assert ResultsTable.for_store(st).path == table.path
    assert ResultsTable.for_store(path).path == table.path
    assert ResultsTable.for_store(f"file://{path}").path == table.path
    table.append(record_from_result("ooo", ooo_result()))
    # zarr and the store ignore the extra file (zarr 3 warns about it when listing members)
    group = zarr.open_group(str(path), mode="r")
    again = EmbeddingStore(str(path))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*results.jsonl", category=UserWarning)
        # the store's own bookkeeping group (locks, staging) sits beside the models
        assert sorted(group.group_keys()) == [".alignkit", "m"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the store lists its entries without that warning
        assert again.entries() == [("m", "l")]
    np.testing.assert_array_equal(again.entry("m", "l").features()[:, 0], [0, 3, 6, 9, 12])
    # non-local URLs: a local file named after the store, in the fallback folder
    remote = ResultsTable.for_store("s3://bucket/runs/feat.zarr/", fallback_dir=tmp_path)
    assert remote.path == tmp_path / f"feat.zarr.{RESULTS_FILE}"
    with pytest.raises(InputError, match="is a file"):
        ResultsTable.for_store(path / RESULTS_FILE)


def test_unwritable_table_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot open the results table"):
        ResultsTable(blocker / "r.jsonl").append({"kind": "ooo", "result": {}})
    with pytest.raises(InputError, match="is a folder"):
        ResultsTable(tmp_path).records()


def test_latest_keeps_the_newest_per_key():
    def rec(model, created, acc, sim="cosine"):
        return {
            "kind": "ooo",
            "model": model,
            "layer": "l",
            "dataset": "d",
            "transform": None,
            "created": created,
            "result": {"accuracy": acc, "similarity": sim},
        }

    records = [
        rec("a", "2026-01-01T00:00:00+00:00", 0.1),
        rec("b", "2026-01-01T00:00:00+00:00", 0.2),
        rec("a", "2026-01-03T00:00:00+00:00", 0.3),
        rec("a", "2026-01-02T00:00:00+00:00", 0.4),  # older than the previous line
        rec(
            "b", "2026-01-01T01:00:00+01:00", 0.5
        ),  # the same instant as b's first: later line wins
        rec("a", "2026-01-01T00:00:00+00:00", 0.6, sim="dot"),
    ]
    kept = latest(records)
    assert [(r["model"], r["result"]["accuracy"]) for r in kept] == [("a", 0.3), ("b", 0.5)]
    by_sim = latest(records, key=("model", "result.similarity"))
    assert sorted((r["model"], r["result"]["accuracy"]) for r in by_sim) == [
        ("a", 0.3),
        ("a", 0.6),
        ("b", 0.5),
    ]
    assert latest(records, key=lambda r: r["kind"])[0]["result"]["accuracy"] == 0.3
    assert record_field(records[0], "result.accuracy") == 0.1
    assert record_field(records[0], "result.nothing.deeper") is None
    assert [r["result"]["accuracy"] for r in latest(records, key=())] == [0.3]


def test_a_store_without_results_has_no_records(tmp_path):
    table = ResultsTable.for_store(tmp_path / "new.zarr")
    assert table.records() == [] and not Path(table.path).exists()
