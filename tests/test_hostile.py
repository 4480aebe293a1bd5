"""Hostile input on every command: a user mistake exits 2 with one line naming what is at fault.

One row a case: the files it needs (built in a temporary folder), the command, the
exit status and the words the one error line must hold (and must not hold). A few
rows simulate the environment (a full disk, a read-only store) by patching the
writer in the process that runs the command.
"""

from __future__ import annotations

import errno
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.cli import cli

N = 10
NETS = """
from torch import nn

def tiny():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))
"""
EXTRACT = ["extract", "nets.py:tiny", "-l", "4", "--device", "cpu", "--workers", "0",
           "--resize", "32", "--crop", "32", "--no-progress"]
OOO = ["score", "ooo", "s.zarr", "--triplets", "t.txt", "--object-ids", "ids.txt",
       "--ceiling", "0.9", "--no-record"]
PROBE = ["probe", "s.zarr", "--model", "m", "--layer", "l", "--triplets", "t300.txt",
         "--object-ids", "ids.txt", "--no-save", "--no-record", "--folds", "3",
         "--lambdas", "1e-2"]


# --------------------------------------------------------------------------- files


def _png(path: Path, size: int = 32, value: int = 0) -> None:
    from PIL import Image

    Image.new("RGB", (size, size), (value, 0, 0)).save(path)


def _bomb(path: Path, side: int) -> None:
    """A valid 8 x 8 PNG whose header declares ``side`` x ``side`` pixels."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    d = bytearray(buf.getvalue())
    d[16:24] = struct.pack(">II", side, side)
    d[29:33] = struct.pack(">I", zlib.crc32(bytes(d[12:29])))
    path.write_bytes(bytes(d))


def _truncated_jpeg(path: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[:300])


def base_files(d: Path) -> None:
    """A store s.zarr with entry m/l (10 objects o0..o9), its ids and triplet files."""
    from alignkit.store import EmbeddingStore

    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 4)).astype(np.float32)
    np.save(d / "f.npy", x)
    ids = [f"o{i}" for i in range(N)]
    (d / "ids.txt").write_text("\n".join(ids) + "\n")
    EmbeddingStore(d / "s.zarr", mode="a").write("m", "l", x, ids)
    (d / "t.txt").write_text("0 1 2\n3 4 5\n6 7 8\n1 2 9\n0 5 7\n")
    t300 = np.array([rng.choice(N, 3, replace=False) for _ in range(300)])
    np.savetxt(d / "t300.txt", t300, fmt="%d")
    r = rng.random((N, N))
    r = (r + r.T) / 2
    np.fill_diagonal(r, 0)
    np.save(d / "r.npy", r)
    np.save(d / "tr.npy", np.hstack([np.eye(4), np.zeros((4, 1))]).astype(np.float32))
    np.savez(d / "tr.npz", weights=np.eye(4, dtype=np.float32), bias=np.zeros(4, np.float32),
             mean=np.zeros(4, np.float32), std=np.ones(4, np.float32))
    (d / "nets.py").write_text(NETS)
    (d / "imgs").mkdir()
    for i in range(2):
        _png(d / "imgs" / f"ok{i}.png", value=40 * i)
    (d / "afile").write_text("not a folder\n")


def _sparse_pt(layout: str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        import torch

        dense = torch.zeros(N, 4)
        dense[0, 1] = 1.0
        t = dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()
        torch.save(t, d / "x.pt")

    return make


def _write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())

    return make


def _object_npy(d: Path) -> None:
    np.save(d / "x.npy", np.array([[1, "a"]] * N, dtype=object), allow_pickle=True)


def _imageset(kind: str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        root = d / "set"
        root.mkdir()
        for i in range(2):
            _png(root / f"ok{i}.png", value=60 * i)
        bad = {"bomb": "b.png", "warnband": "b.png", "truncated": "b.jpg"}[kind]
        if kind == "bomb":
            _bomb(root / bad, 40000)  # 1.6e9 pixels: beyond twice PIL's limit, an error
        elif kind == "warnband":
            _bomb(root / bad, 12000)  # 1.44e8 pixels: between the limit and twice it, a warning
        else:
            _truncated_jpeg(root / bad)
        (d / "list.csv").write_text(f"id,path\na,set/ok0.png\nb,set/{bad}\nc,set/ok1.png\n")

    return make


def _twice(*argv: str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        res = CliRunner().invoke(cli, list(argv))
        assert res.exit_code == 0, res.output

    return make


def _rdm_text(name: str, text: str) -> Callable[[Path], None]:
    return _write(name, text)


BOM = b"\xef\xbb\xbf"


# --------------------------------------------------------------------------- patches


def _enospc(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _eacces(*args: Any, **kwargs: Any) -> None:
    raise PermissionError(errno.EACCES, "Permission denied", "ro.zarr/zarr.json")


def _patch_writer(mp: pytest.MonkeyPatch) -> None:
    import alignkit.store

    mp.setattr(alignkit.store.EntryWriter, "write_rows", _enospc)


def _patch_results(mp: pytest.MonkeyPatch) -> None:
    import alignkit.results

    mp.setattr(alignkit.results.os, "write", _enospc)


def _patch_create(mp: pytest.MonkeyPatch) -> None:
    import alignkit.store

    mp.setattr(alignkit.store.EmbeddingStore, "create", _eacces)


def _patch_write(mp: pytest.MonkeyPatch) -> None:
    import alignkit.store

    mp.setattr(alignkit.store.EmbeddingStore, "write", _eacces)


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    id: str
    argv: list[str]
    status: int = 2
    has: tuple[str, ...] = ()
    lacks: tuple[str, ...] = ()
    setup: Callable[[Path], None] | None = None
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    marks: list[Any] = field(default_factory=list)


CASES = [
    # 1. seeds out of range, on every command that takes --seed
    Case("seed-score-ooo-negative", [*OOO, "--bootstrap", "5", "--seed", "-1"],
         has=("--seed -1", "0 to 4294967295")),
    Case("seed-score-ooo-beyond-64-bits", [*OOO, "--bootstrap", "5", "--seed", str(2**70)],
         has=("--seed", "0 to 4294967295")),
    Case("seed-score-rsa-negative", ["score", "rsa", "s.zarr", "--rdm", "r.npy", "--rdm-ids",
                                     "ids.txt", "--permutations", "5", "--no-record",
                                     "--seed", "-5"], has=("--seed -5",)),
    Case("seed-probe-beyond-32-bits", [*PROBE, "--seed", str(2**32)], has=("--seed 4294967296",)),
    Case("seed-demo-negative", ["demo", "--no-extract", "--out", "demo", "--seed", "-1"],
         has=("--seed -1",)),
    # 2. feature files that are not what their name says
    Case("import-sparse-coo-pt", ["store", "import", "x.pt", "--ids", "ids.txt", "--store",
                                  "s2.zarr", "--model", "m", "--layer", "l"],
         has=("x.pt", "sparse"), setup=_sparse_pt("coo")),
    Case("import-sparse-csr-pt", ["store", "import", "x.pt", "--ids", "ids.txt", "--store",
                                  "s2.zarr", "--model", "m", "--layer", "l"],
         has=("x.pt", "sparse"), setup=_sparse_pt("csr")),
    Case("import-npz-not-a-zip", ["store", "import", "x.npz", "--ids", "ids.txt", "--store",
                                  "s2.zarr", "--model", "m", "--layer", "l"],
         has=("x.npz", "zip"), lacks=("pickle",), setup=_write("x.npz", "hello, not a zip\n")),
    Case("import-npy-object-dtype", ["store", "import", "x.npy", "--ids", "ids.txt", "--store",
                                     "s2.zarr", "--model", "m", "--layer", "l"],
         has=("x.npy", "dtype object"), lacks=("allow_pickle",), setup=_object_npy),
    Case("import-empty-npy", ["store", "import", "x.npy", "--ids", "ids.txt", "--store",
                              "s2.zarr", "--model", "m", "--layer", "l"],
         has=("x.npy", "empty file"), setup=_write("x.npy", b"")),
    Case("import-empty-pt", ["store", "import", "x.pt", "--ids", "ids.txt", "--store",
                             "s2.zarr", "--model", "m", "--layer", "l"],
         has=("x.pt", "empty file"), setup=_write("x.pt", b"")),
    # 7. torch's multi-line unpickler text, condensed
    Case("import-garbage-pt", ["store", "import", "x.pt", "--ids", "ids.txt", "--store",
                               "s2.zarr", "--model", "m", "--layer", "l"],
         has=("x.pt", "not a torch.save file"), setup=_write("x.pt", "garbage\nmore\n")),
    Case("weights-garbage", ["extract", "squeezenet1_1", "imgs", "--store", "e.zarr",
                             "--weights", "w.pth"],
         has=("--weights w.pth", "not a torch.save file"), lacks=("weights_only",),
         setup=_write("w.pth", "garbage\nmore\n")),
    Case("weights-a-folder", ["extract", "squeezenet1_1", "imgs", "--store", "e.zarr",
                              "--weights", "imgs"],
         has=("--weights imgs", "folder")),
    # 3. output files in a missing folder
    Case("per-triplet-missing-folder", [*OOO, "--per-triplet", "missing_dir/x.npz"],
         has=("--per-triplet missing_dir/x.npz", "does not exist")),
    Case("per-triplet-under-a-file", [*OOO, "--per-triplet", "afile/x.csv"],
         has=("--per-triplet afile/x.csv", "not a folder")),
    Case("probe-export-missing-folder", ["probe", "export", "s.zarr", "missing_dir/x.npz",
                                         "--model", "m", "--layer", "l", "--probe", "p"],
         has=("missing_dir/x.npz", "does not exist"),
         setup=_twice("probe", "import", "s.zarr", "tr.npz", "--model", "m", "--layer", "l",
                      "--name", "p")),
    Case("probe-export-under-a-file", ["probe", "export", "s.zarr", "afile/x.npz", "--model",
                                       "m", "--layer", "l", "--probe", "p"],
         has=("afile/x.npz", "not a folder"),
         setup=_twice("probe", "import", "s.zarr", "tr.npz", "--model", "m", "--layer", "l",
                      "--name", "p")),
    # 4. decompression bombs and corrupt images during extraction
    Case("extract-bomb-folder", [*EXTRACT, "set", "--store", "e.zarr", "--weights", "none"],
         has=("b.png", "too large"), setup=_imageset("bomb")),
    Case("extract-bomb-warning-band", [*EXTRACT, "set", "--store", "e.zarr", "--weights",
                                       "none"],
         has=("b.png", "too large"), setup=_imageset("warnband")),
    Case("extract-bomb-csv-row", [*EXTRACT, "list.csv", "--store", "e.zarr", "--weights",
                                  "none"],
         has=("list.csv, row 3", "b.png", "too large"), setup=_imageset("bomb")),
    Case("extract-truncated-csv-row", [*EXTRACT, "list.csv", "--store", "e.zarr", "--weights",
                                       "none"],
         has=("list.csv, row 3", "b.jpg", "cannot read image"), setup=_imageset("truncated")),
    # 5. probe transform options
    Case("probe-import-std-nan", ["probe", "import", "s.zarr", "tr.npy", "--model", "m",
                                  "--layer", "l", "--name", "q", "--std", "nan"],
         has=("--std nan",)),
    Case("probe-import-mean-inf", ["probe", "import", "s.zarr", "tr.npy", "--model", "m",
                                   "--layer", "l", "--name", "q", "--mean", "inf"],
         has=("--mean inf",)),
    Case("probe-import-std-zero", ["probe", "import", "s.zarr", "tr.npy", "--model", "m",
                                   "--layer", "l", "--name", "q", "--std", "0"],
         has=("--std 0",)),
    Case("probe-apply-std-nan", ["probe", "apply", "s.zarr", "--model", "m", "--layer", "l",
                                 "--probe", "tr.npy", "--std", "nan"],
         has=("--std nan",)),
    # 6. a full disk and a read-only store
    Case("extract-disk-full", [*EXTRACT, "imgs", "--store", "e.zarr", "--weights", "none"],
         has=("e.zarr", "disk full", "resum", "rerun"), patch=_patch_writer),
    Case("results-append-disk-full", OOO[:-1],
         has=("results.jsonl", "disk full", "rerun"), patch=_patch_results),
    Case("extract-read-only-store", [*EXTRACT, "imgs", "--store", "ro.zarr", "--weights",
                                     "none"],
         has=("ro.zarr", "Permission denied"), patch=_patch_create),
    Case("store-import-read-only-store", ["store", "import", "f.npy", "--ids", "ids.txt",
                                          "--store", "ro.zarr", "--model", "m", "--layer", "l"],
         has=("ro.zarr", "permission denied"), patch=_patch_write),
    # 8. hints in the command line's words
    Case("store-import-exists-hint", ["store", "import", "f.npy", "--ids", "ids.txt",
                                      "--store", "s.zarr", "--model", "m", "--layer", "l"],
         has=("--overwrite",), lacks=("overwrite=True",)),
    Case("probe-import-exists-hint", ["probe", "import", "s.zarr", "tr.npz", "--model", "m",
                                      "--layer", "l", "--name", "p"],
         has=("--overwrite",), lacks=("overwrite=True",),
         setup=_twice("probe", "import", "s.zarr", "tr.npz", "--model", "m", "--layer", "l",
                      "--name", "p")),
    # a file that is not a results table is refused, never repaired (it lost its tail before)
    Case("report-on-a-npy-file", ["report", "f.npy", "--out", "rep"],
         has=("f.npy", "not a results file"), patch=None),
    # 9. rows named as the file's lines
    Case("triplets-int64-overflow-line-5", ["data", "info", "o.txt", "--kind", "triplets"],
         has=("o.txt: row 5", "99999999999999999999"),
         setup=_write("o.txt", "0 1 2\n3 4 5\n6 7 8\n1 2 9\n99999999999999999999 5 7\n")),
    Case("triplets-negative-overflow-after-header", ["data", "info", "o.txt", "--kind",
                                                     "triplets"],
         has=("o.txt: row 4",),
         setup=_write("o.txt", "a b c\n0 1 2\n3 4 5\n1 2 -99999999999999999999\n")),
    Case("rdm-nan-after-comment-and-header", ["data", "info", "r.csv", "--kind", "rdm"],
         has=("r.csv: row 4, column 3",),
         setup=_rdm_text("r.csv", "# comment\na,b,c\n0,1,2\n1,0,nan\n2,3,0\n")),
    Case("rdm-asymmetric-after-blank-lines", ["data", "info", "r.txt", "--kind", "rdm"],
         has=("row 4, column 3 is 3", "row 5, column 2 is 99"), lacks=("np.float64",),
         setup=_rdm_text("r.txt", "# comment\n\n0 1 2\n1 0 3\n2 99 0\n")),
    # 10. a UTF-8 byte-order mark is accepted by every text reader
    Case("bom-triplets", ["data", "info", "b.txt", "--kind", "triplets"], status=0,
         has=("n_triplets",), setup=_write("b.txt", BOM + b"0 1 2\n3 4 5\n")),
    Case("bom-triplets-validation-header", ["data", "info", "b.csv"], status=0,
         has=("validationset",), setup=_write("b.csv", BOM + b"ooo,img1,img2\n2,0,1\n5,3,4\n")),
    Case("bom-embedding-table", ["data", "info", "e.txt", "--kind", "embedding"], status=0,
         has=("embedding",), setup=_write("e.txt", BOM + b"0.1 0.2\n0.3 0.4\n0.5 0.6\n")),
    Case("bom-concept-table-guessed", ["data", "info", "c.tsv"], status=0,
         has=("concepts",), setup=_write("c.tsv", BOM + b"uniqueID\tWord\na\tA\nb\tB\n")),
    Case("bom-sortindex", ["data", "info", "raw.tsv", "--sortindex", "si.txt"], status=0,
         has=("raw",), setup=lambda d: (_write("si.txt", BOM + b"2\n0\n1\n3\n")(d),
                                        _write("raw.tsv", "1\t2\t3\t1\t0\n2\t3\t4\t2\t0\n")(d))),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_hostile(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base_files(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    if case.patch is not None:
        case.patch(monkeypatch)
    before = {p: p.read_bytes() for p in tmp_path.glob("*.npy")}
    res = CliRunner().invoke(cli, case.argv)
    assert res.exit_code == case.status, (res.exit_code, res.stdout, res.stderr)
    assert {p: p.read_bytes() for p in before} == before, "an input file was modified"
    if case.status == 0:
        for word in case.has:
            assert word in res.stdout, res.stdout
        return
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("alignkit: error: "), lines[0]
    for word in case.has:
        assert word in lines[0], lines[0]
    for word in case.lacks:
        assert word not in lines[0], lines[0]


# --------------------------------------------------------------------------- the handler


@pytest.mark.parametrize(
    ("message", "argv", "expected"),
    [
        pytest.param("x.pt: cannot read (first line.\nsecond line\n\nthird)", None,
                     "x.pt: cannot read (first line. ...)", id="multi-line-cut-and-closed"),
        pytest.param("s.zarr: m/l: probe already exists; pass overwrite=True",
                     ["probe", "import", "s.zarr", "t.npz"],
                     "s.zarr: m/l: probe already exists; pass --overwrite", id="flag-to-option"),
        pytest.param("f.mat: holds 2 model RDMs; choose one with key=: a, b",
                     ["score", "rsa", "s.zarr"],
                     "f.mat: holds 2 model RDMs; choose one with --rdm-key: a, b",
                     id="key-to-rdm-key"),
        pytest.param("f.mat: choose one with set_name=", ["data", "info", "f.mat"],
                     "f.mat: choose one with --set-name", id="set-name"),
        pytest.param("s: exists; pass overwrite=True", ["probe", "s.zarr", "--model", "m"],
                     "s: exists; pass --overwrite", id="default-probe-fit"),
    ],
)
def test_one_line(message: str, argv: list[str] | None, expected: str) -> None:
    from alignkit.cli import one_line

    assert one_line(message, argv) == expected


def test_click_exception_exits_2() -> None:
    import click

    from alignkit.cli import run_guarded

    def bad() -> None:
        raise click.ClickException("bad option")

    assert run_guarded(bad) == 2


# --------------------------------------------------------------------------- the BOM rule, API


def _bom_readers(d: Path) -> dict[str, Callable[[], Any]]:
    from alignkit.data import load_concepts, load_embedding, load_rdm, load_triplets
    from alignkit.data.features import load_features, load_ids
    from alignkit.extract.images import from_csv

    (d / "t.txt").write_bytes(BOM + b"0 1 2\n3 4 5\n")
    (d / "ids.txt").write_bytes(BOM + b"a\nb\nc\n")
    (d / "r.csv").write_bytes(BOM + b"a,b,c\n0,1,2\n1,0,3\n2,3,0\n")
    (d / "r.txt").write_bytes(BOM + b"0 1 2\n1 0 3\n2 3 0\n")
    (d / "c.tsv").write_bytes(BOM + b"uniqueID\tWord\na\tA\nb\tB\n")
    (d / "e.txt").write_bytes(BOM + b"0.1 0.2\n0.3 0.4\n")
    (d / "f.csv").write_bytes(BOM + b"x,y\n1,2\n3,4\n")
    _png(d / "a.png")
    (d / "list.csv").write_bytes(BOM + b"id,path\na,a.png\n")
    return {
        "triplets": lambda: load_triplets(d / "t.txt").array.tolist() == [[0, 1, 2], [3, 4, 5]],
        "ids": lambda: load_ids(d / "ids.txt").tolist() == ["a", "b", "c"],
        "rdm-csv-header": lambda: load_rdm(d / "r.csv").ids.tolist() == ["a", "b", "c"],
        "rdm-text": lambda: load_rdm(d / "r.txt").matrix.shape == (3, 3),
        "concepts": lambda: load_concepts(d / "c.tsv").ids.tolist() == ["a", "b"],
        "embedding-text": lambda: load_embedding(d / "e.txt").values.shape == (2, 2),
        "features-csv": lambda: load_features(d / "f.csv").shape == (2, 2),
        "image-csv": lambda: from_csv(d / "list.csv").ids == ["a"],
    }


@pytest.mark.parametrize("reader", ["triplets", "ids", "rdm-csv-header", "rdm-text", "concepts",
                                    "embedding-text", "features-csv", "image-csv"])
def test_every_text_reader_drops_a_bom(reader: str, tmp_path: Path) -> None:
    assert _bom_readers(tmp_path)[reader]()
