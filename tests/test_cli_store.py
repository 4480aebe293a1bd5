"""Feature and id readers, and the ``alignkit store`` commands."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.data.features import FEATURE_FORMATS, load_features, load_ids
from alignkit.errors import DataError, FormatError, InputError, MismatchError
from alignkit.store import EmbeddingStore


def _x(n: int = 6, p: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, p)).astype(np.float32)


def _ids_file(path: Path, n: int, trailing: str = "\n") -> Path:
    path.write_text("\n".join(f"img{i}" for i in range(n)) + trailing)
    return path


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _one_error_line(res, match: str) -> None:
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("alignkit: error: ") and "Traceback" not in res.stderr
    assert match in lines[0], lines[0]


# --------------------------------------------------------------------------- load_features
def test_npy_npz_pt_and_text_formats(tmp_path: Path) -> None:
    import torch

    x = _x()
    np.save(tmp_path / "a.npy", x.astype(np.float64))
    np.savez(tmp_path / "one.npz", feats=x)
    np.savez(tmp_path / "two.npz", a=x, b=x[:2])
    torch.save(torch.from_numpy(x), tmp_path / "t.pt")
    torch.save({"penultimate": torch.from_numpy(x).to(torch.bfloat16), "logits": torch.zeros(6, 2)},
               tmp_path / "d.pth")
    np.savetxt(tmp_path / "w.txt", x, fmt="%.9g")
    np.savetxt(tmp_path / "c.csv", x, fmt="%.9g", delimiter=",", header="f0,f1,f2,f3", comments="")
    np.savetxt(tmp_path / "t.tsv", x, fmt="%.9g", delimiter="\t")
    for name in ("a.npy", "one.npz", "t.pt", "w.txt", "c.csv", "t.tsv"):
        got = load_features(tmp_path / name)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, x, err_msg=name)
    np.testing.assert_array_equal(load_features(tmp_path / "two.npz", key="b"), x[:2])
    np.testing.assert_array_equal(
        load_features(tmp_path / "d.pth", key="penultimate"),
        torch.from_numpy(x).to(torch.bfloat16).float().numpy(),
    )
    with pytest.raises(InputError, match=r"holds 2 arrays \(a, b\)"):
        load_features(tmp_path / "two.npz")
    with pytest.raises(InputError, match=r"no array named 'c' \(arrays: a, b\)"):
        load_features(tmp_path / "two.npz", key="c")
    with pytest.raises(InputError, match="holds 2 arrays"):
        load_features(tmp_path / "d.pth")
    with pytest.raises(InputError, match="applies only"):
        load_features(tmp_path / "a.npy", key="x")


def test_text_header_comments_trailing_delimiters(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("# made by hand\ndim1 dim2 dim3\n1 2 3 \n\n4 5 6 \n\n")
    (tmp_path / "b.csv").write_text("a,b\n1.5,2,\n-3e2,.5,\n")
    np.testing.assert_array_equal(load_features(tmp_path / "a.txt"), [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(load_features(tmp_path / "b.csv"), [[1.5, 2], [-300, 0.5]])


@pytest.mark.parametrize(
    ("name", "content", "err", "match"),
    [
        ("nan.txt", "h1 h2\n# note\n1 2\n3 nan\n", DataError, "row 4, column 2"),
        ("inf.csv", "1,2\n3,4\n-inf,6\n", DataError, "row 3, column 1"),
        ("ragged.txt", "1 2 3\n4 5\n", FormatError, "row 2: 2 columns, expected 3"),
        ("word.csv", "1,2\n3,x\n", FormatError, "row 2, column 2: 'x' is not a number"),
        ("empty.txt", "\n# nothing\n", DataError, "empty"),
        ("header.csv", "a,b\n", DataError, "only a header"),
        ("big.txt", "1 1e300\n", DataError, "float32 range"),
    ],
)
def test_text_errors_name_row_and_column(tmp_path: Path, name, content, err, match) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(err, match=match) as info:
        load_features(tmp_path / name)
    assert str(tmp_path / name) in str(info.value)


def test_array_errors(tmp_path: Path) -> None:
    x = _x()
    x[4, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    np.save(tmp_path / "v.npy", np.ones(5))
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "cplx.npy", np.ones((2, 2), dtype=complex))
    (tmp_path / "x.h5").write_bytes(b"")
    cases = [
        ("nan.npy", DataError, "row 5, column 2"),
        ("v.npy", FormatError, r"2-D \(n x p\) array, got shape \(5,\)"),
        ("cube.npy", FormatError, "2-D"),
        ("obj.npy", FormatError, "cannot be read"),
        ("cplx.npy", FormatError, "real numbers"),
        ("x.h5", FormatError, "unknown feature file format '.h5'; supported: .npy, .npz"),
        ("missing.npy", InputError, "no such features file"),
    ]
    for name, err, match in cases:
        with pytest.raises(err, match=match):
            load_features(tmp_path / name)
    assert set(FEATURE_FORMATS) >= {".npy", ".npz", ".pt", ".pth", ".txt", ".csv"}


def test_real_spose_text(shared_data: Path) -> None:
    path = shared_data / "things" / "spose_embedding_49d_sorted.txt"
    got = load_features(path)
    assert got.shape == (1854, 49)
    np.testing.assert_array_equal(got, np.loadtxt(path).astype(np.float32))


# --------------------------------------------------------------------------- load_ids
def test_load_ids(tmp_path: Path) -> None:
    ids = load_ids(_ids_file(tmp_path / "ids.txt", 5, trailing="\n\n\n"), n=5)
    assert ids.tolist() == [f"img{i}" for i in range(5)]
    with pytest.raises(MismatchError, match=r"ids file .*ids.txt has 5 ids but features have 6 rows"):
        load_ids(tmp_path / "ids.txt", n=6)
    (tmp_path / "dup.txt").write_text("a\nb\nc\nb\na\n")
    with pytest.raises(DataError, match=r"'b' occurs twice \(rows 2 and 4\)"):
        load_ids(tmp_path / "dup.txt")
    (tmp_path / "gap.txt").write_text("a\n\nb\n")
    with pytest.raises(FormatError, match="row 2: blank line"):
        load_ids(tmp_path / "gap.txt")
    with pytest.raises(InputError, match="no such ids file"):
        load_ids(tmp_path / "nope.txt")


def test_load_ids_things(shared_data: Path) -> None:
    want = (shared_data / "things" / "unique_id.txt").read_text().split()
    try:
        got = load_ids("things", n=1854)
    except ImportError as exc:  # pragma: no cover - alignkit.data without things_ids
        pytest.skip(f"alignkit.data.things_ids is not available: {exc}")
    assert got.tolist() == want
    with pytest.raises(MismatchError, match="1854 THINGS uniqueIDs but features have 1853 rows"):
        load_ids("things", n=1853)


# --------------------------------------------------------------------------- CLI
def test_import_formats_and_provenance(tmp_path: Path) -> None:
    import torch

    x = _x(6, 4)
    ids = _ids_file(tmp_path / "ids.txt", 6)
    np.savez(tmp_path / "f.npz", a=x, b=x * 2)
    torch.save({"feat": torch.from_numpy(x)}, tmp_path / "f.pt")
    np.savetxt(tmp_path / "f.txt", x, fmt="%.9g")
    np.savetxt(tmp_path / "f.csv", x, fmt="%.9g", delimiter=",")
    store = str(tmp_path / "s.zarr")
    cases = [("f.npz", ["--key", "b"], x * 2), ("f.pt", [], x), ("f.txt", [], x), ("f.csv", [], x)]
    for name, extra, want in cases:
        res = _run("store", "import", str(tmp_path / name), "--ids", str(ids), "--store", store,
                   "--model", "net", "--layer", name, *extra)
        assert res.exit_code == 0, res.stderr
        e = EmbeddingStore(store).entry("net", name)
        np.testing.assert_array_equal(e.features(), want)
        assert e.ids.tolist() == [f"img{i}" for i in range(6)]
        prov = e.attrs
        digest = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert prov["source_checksum"] == f"sha256:{digest}"
        assert prov["ids_source"] == str(ids.resolve())
        assert prov["ids_checksum"] == "sha256:" + hashlib.sha256(ids.read_bytes()).hexdigest()

    res = _run("store", "import", str(tmp_path / "f.txt"), "--ids", str(ids), "--store", store,
               "--model", "net", "--layer", "f.txt", "--dtype", "float16", "--overwrite")
    assert res.exit_code == 0, res.stderr
    assert EmbeddingStore(store).entry("net", "f.txt").dtype == "float16"

    res = _run("store", "ls", store)
    assert res.exit_code == 0
    assert res.stdout.splitlines() == ["net/f.csv", "net/f.npz", "net/f.pt", "net/f.txt"]
    res = _run("store", "info", store, "--format", "json")
    info = json.loads(res.stdout)
    assert [(e["model"], e["layer"], e["n"], e["p"], e["complete"]) for e in info["entries"]] == [
        ("net", n, 6, 4, True) for n in ("f.csv", "f.npz", "f.pt", "f.txt")
    ]
    res = _run("store", "info", store)
    assert res.exit_code == 0 and "6 x 4" in res.stdout and "float16" in res.stdout
    res = _run("store", "rm", store, "--model", "net", "--layer", "f.pt")
    assert res.exit_code == 0 and "removed net/f.pt" in res.stderr
    assert _run("store", "ls", store).stdout.splitlines() == ["net/f.csv", "net/f.npz", "net/f.txt"]


def test_info_shows_probes(tmp_path: Path) -> None:
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    e = st.write("m", "l", _x(5, 3), [f"s{i}" for i in range(5)], attrs={"weights": "w1"})
    e.save_probe("glocal", weights=np.eye(3), mean=0.0, std=1.0)
    res = _run("store", "info", str(tmp_path / "s.zarr"))
    assert res.exit_code == 0
    assert "glocal" in res.stdout and "weights=w1" in res.stdout and "complete" in res.stdout
    assert json.loads(_run("store", "info", str(tmp_path / "s.zarr"), "--format", "json")
                      .stdout)["entries"][0]["probes"] == ["glocal"]


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path) -> None:
    x = _x(6, 4)
    ids = _ids_file(tmp_path / "ids.txt", 6)
    short_ids = _ids_file(tmp_path / "short.txt", 5)
    bad = x.copy()
    bad[2, 3] = np.inf
    np.save(tmp_path / "good.npy", x)
    np.save(tmp_path / "bad.npy", bad)
    (tmp_path / "nan.csv").write_text("a,b\n1,2\nnan,3\n")
    (tmp_path / "f.h5").write_bytes(b"\x00")
    (tmp_path / "plain_file").write_text("not a store")
    (tmp_path / "empty").mkdir()
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    store = str(tmp_path / "s.zarr")

    def imp(feats: str, ids_path: Path = ids, store_path: str = store, *extra: str):
        return _run("store", "import", str(tmp_path / feats), "--ids", str(ids_path),
                    "--store", store_path, "--model", "m", "--layer", "l", *extra)

    _one_error_line(imp("bad.npy"), "row 3, column 4")
    _one_error_line(imp("nan.csv", _ids_file(tmp_path / "ids2.txt", 2)), "row 3, column 1")
    _one_error_line(imp("good.npy", short_ids), "has 5 ids but features have 6 rows")
    _one_error_line(imp("f.h5"), "unknown feature file format '.h5'")
    _one_error_line(imp("good.npy", ids, str(tmp_path / "plain_file")), "is a file")
    _one_error_line(imp("good.npy", ids, str(tmp_path / "other.zarr")), "without the alignkit")
    _one_error_line(imp("good.npy", ids, store, "--key", "x"), "applies only")
    assert not (tmp_path / "s.zarr").exists()  # no failed import left a store behind
    assert imp("good.npy").exit_code == 0
    _one_error_line(imp("good.npy"), "--overwrite")
    for sub in ("info", "ls"):
        _one_error_line(_run("store", sub, str(tmp_path / "empty")), "empty directory")
        _one_error_line(_run("store", sub, str(tmp_path / "plain_file")), "is a file")
        _one_error_line(_run("store", sub, str(tmp_path / "other.zarr")), "store marker")
        _one_error_line(_run("store", sub, str(tmp_path / "missing")), "does not exist")
    _one_error_line(_run("store", "rm", str(tmp_path / "missing"), "--model", "m", "--layer", "l"),
                    "does not exist")
    assert not (tmp_path / "missing").exists()
    _one_error_line(_run("store", "rm", store, "--model", "m", "--layer", "zz"), "no entry")


def test_cli_process_error_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "alignkit.cli", "store", "info", str(tmp_path / "f")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"alignkit: error: {tmp_path / 'f'}: is a file, not an alignkit store (a Zarr directory)"
    ]


def test_help_has_examples() -> None:
    for sub in ("import", "info", "ls", "rm"):
        res = _run("store", sub, "--help")
        assert res.exit_code == 0 and "Example" in res.stdout and f"alignkit store {sub}" in res.stdout
