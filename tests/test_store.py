"""The Zarr v3 embedding store: layout, completion, resume, names, probes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from alignkit.cli import cli
from alignkit.errors import (
    DataError,
    EntryExistsError,
    EntryNotFoundError,
    IncompleteEntryError,
    InputError,
    MismatchError,
    NotAStoreError,
    StoreError,
)
from alignkit.store import (
    EmbeddingStore,
    decode_name,
    default_chunk_rows,
    encode_name,
    features_checksum,
)


def _data(n: int = 50, p: int = 7, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    x = np.random.default_rng(seed).normal(size=(n, p)).astype(np.float32)
    return x, [f"stim_{i:04d}" for i in range(n)]


def _sha(x: np.ndarray) -> str:
    return "sha256:" + hashlib.sha256(np.ascontiguousarray(x, dtype="<f4").tobytes()).hexdigest()


# --------------------------------------------------------------------------- round trip
def test_round_trip_read_with_plain_zarr(tmp_path: Path) -> None:
    x, ids = _data(50, 7)
    path = tmp_path / "s.zarr"
    st = EmbeddingStore(path, mode="a")
    st.write("vgg16", "classifier.3", x, ids, attrs={"weights": "IMAGENET1K_V1", "seed": np.int64(3)},
             chunk_rows=16)

    # the read path below uses zarr and numpy only
    root = zarr.open_group(str(path), mode="r")
    assert root.attrs["alignkit"] == {"kind": "embedding-store", "format_version": 1}
    g = root["vgg16/classifier.3"]
    feats = g["features"]
    assert feats.shape == (50, 7) and feats.dtype == np.float32 and feats.chunks == (16, 7)
    np.testing.assert_array_equal(feats[:], x)
    got_ids = g["ids"][:].tolist()
    assert got_ids == ids and all(type(s) is str for s in got_ids)
    meta = g.attrs["alignkit"]
    assert meta["model"] == "vgg16" and meta["layer"] == "classifier.3"
    assert (meta["n"], meta["p"], meta["dtype"]) == (50, 7, "float32")
    assert meta["complete"] is True and meta["rows_done"] == 50
    assert meta["features_checksum"] == _sha(x)
    assert meta["provenance"] == {"weights": "IMAGENET1K_V1", "seed": 3}
    assert meta["created"] and meta["completed"] and meta["versions"]["zarr"] == zarr.__version__
    # dots stay literal on disk
    assert (path / "vgg16" / "classifier.3" / "zarr.json").is_file()

    e = EmbeddingStore(path).entry("vgg16", "classifier.3")
    out = e.features()
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, x)
    assert e.ids.tolist() == ids and e.checksum == _sha(x) == features_checksum(x)
    assert e.attrs == {"weights": "IMAGENET1K_V1", "seed": 3}
    assert e.verify() == e.checksum


def test_float16_storage_and_checksum(tmp_path: Path) -> None:
    x, ids = _data(40, 5, seed=1)
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    e = st.write("m", "l", x, ids, dtype="float16", chunk_rows=8)
    want = x.astype(np.float16).astype(np.float32)
    assert e.dtype == "float16"
    assert zarr.open_group(str(tmp_path / "s.zarr"))["m/l/features"].dtype == np.float16
    np.testing.assert_array_equal(e.features(), want)
    assert e.checksum == _sha(want)


def test_features_iter_blocks(tmp_path: Path) -> None:
    x, ids = _data(45, 3)
    e = EmbeddingStore(tmp_path / "s.zarr", mode="a").write("m", "l", x, ids, chunk_rows=10)
    starts, blocks = zip(*e.features_iter(block_rows=20), strict=True)
    assert starts == (0, 20, 40) and [b.shape[0] for b in blocks] == [20, 20, 5]
    np.testing.assert_array_equal(np.concatenate(blocks), x)
    np.testing.assert_array_equal(np.concatenate([b for _, b in e.features_iter()]), x)


def test_default_chunk_rows_sizes() -> None:
    for p, dtype in ((4096, "float32"), (512, "float16"), (49, "float32"), (25088, "float32")):
        rows = default_chunk_rows(10**6, p, dtype)
        nbytes = rows * p * np.dtype(dtype).itemsize
        assert 4 << 20 <= nbytes <= 16 << 20
    assert default_chunk_rows(1854, 49) == 1854  # a small matrix is one chunk
    assert default_chunk_rows(10, 10**8) == 1  # a huge row still gets one row per chunk


def test_memory_store_object(tmp_path: Path) -> None:
    mem = zarr.storage.MemoryStore()
    x, ids = _data(12, 4)
    EmbeddingStore(mem, mode="a").write("m", "l", x, ids)
    np.testing.assert_array_equal(EmbeddingStore(mem).entry("m", "l").features(), x)


# --------------------------------------------------------------------------- interruption
_KILLED_WRITER = """
import os, signal, sys
import numpy as np
from alignkit.store import EmbeddingStore
x = np.load(sys.argv[2])
st = EmbeddingStore(sys.argv[1], mode="a")
w = st.create("net", "fc.7", n=x.shape[0], p=x.shape[1], ids=[f"s{i}" for i in range(x.shape[0])],
              chunk_rows=4, attrs={"fingerprint": "job-1"})
for start in (0, 4, 8):
    w.write_rows(start, x[start:start + 4])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_interrupted_write_is_incomplete_then_resumes(tmp_path: Path) -> None:
    x, _ = _data(22, 6, seed=2)
    ids = [f"s{i}" for i in range(22)]
    np.save(tmp_path / "x.npy", x)
    path = tmp_path / "s.zarr"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), str(path), str(tmp_path / "x.npy")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -9, proc.stderr

    e = EmbeddingStore(path).entry("net", "fc.7")
    assert not e.complete and e.rows_done == 12 and e.checksum is None
    with pytest.raises(IncompleteEntryError, match=r"interrupted after 12 of 22 rows.*allow_incomplete"):
        e.features()
    with pytest.raises(IncompleteEntryError):
        next(e.features_iter())
    np.testing.assert_array_equal(e.features(allow_incomplete=True), x[:12])

    res = CliRunner().invoke(cli, ["store", "info", str(path)])
    assert res.exit_code == 0 and "INCOMPLETE 12/22" in res.stdout
    res = CliRunner().invoke(cli, ["store", "info", str(path), "--format", "json"])
    info = json.loads(res.stdout)["entries"][0]
    assert info["complete"] is False and info["rows_done"] == 12

    st = EmbeddingStore(path, mode="a")
    with pytest.raises(EntryExistsError, match="12 of 22 rows"):
        st.create("net", "fc.7", n=22, p=6, ids=ids, chunk_rows=4)  # neither resume nor overwrite
    w = st.create("net", "fc.7", n=22, p=6, ids=ids, attrs={"fingerprint": "job-1"}, resume=True)
    assert w.rows_done == 12 and w.chunk_rows == 4
    for start in range(w.rows_done, 22, 8):
        w.write_rows(start, x[start:start + 8])
    resumed = w.finalize()

    fresh = st.write("net", "fresh", x, ids, chunk_rows=4)
    assert resumed.complete and resumed.checksum == fresh.checksum == _sha(x)
    np.testing.assert_array_equal(resumed.features(), fresh.features())
    assert [r["rows_done"] for r in resumed.meta["resumed"]] == [12]


def test_rows_done_not_advanced_when_data_write_fails(tmp_path: Path, monkeypatch) -> None:
    x, ids = _data(8, 3)
    w = EmbeddingStore(tmp_path / "s.zarr", mode="a").create("m", "l", n=8, p=3, ids=ids,
                                                             chunk_rows=4)
    w.write_rows(0, x[:4])

    def boom(self, key, value):
        raise OSError("disk full")

    monkeypatch.setattr(type(w._array), "__setitem__", boom)
    with pytest.raises(OSError, match="disk full"):
        w.write_rows(4, x[4:])
    assert w.rows_done == 4
    assert EmbeddingStore(tmp_path / "s.zarr").entry("m", "l").rows_done == 4


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"n": 21}, "n 22 != 21"),
        ({"p": 5}, "p 6 != 5"),
        ({"dtype": "float16"}, "dtype"),
        ({"ids": [f"t{i}" for i in range(22)]}, "ids differ"),
        ({"attrs": {"fingerprint": "job-2"}}, "fingerprint differs"),
        ({"chunk_rows": 8}, "chunk_rows"),
    ],
)
def test_resume_refuses_a_different_job(tmp_path: Path, change: dict, match: str) -> None:
    x, _ = _data(22, 6)
    ids = [f"s{i}" for i in range(22)]
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    w = st.create("m", "l", n=22, p=6, ids=ids, chunk_rows=4, attrs={"fingerprint": "job-1"})
    w.write_rows(0, x[:4])
    kwargs = {"n": 22, "p": 6, "ids": ids, "attrs": {"fingerprint": "job-1"}} | change
    if "n" in change:
        kwargs["ids"] = ids[: change["n"]]
    with pytest.raises(EntryExistsError, match=match):
        st.create("m", "l", resume=True, **kwargs)
    w2 = st.create("m", "l", resume=True, overwrite=True, **kwargs)
    assert w2.rows_done == 0


def test_complete_entry_needs_overwrite(tmp_path: Path) -> None:
    x, ids = _data(10, 2)
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    st.write("m", "l", x, ids)
    for resume in (False, True):
        with pytest.raises(EntryExistsError, match="complete"):
            st.create("m", "l", n=10, p=2, ids=ids, resume=resume)
    y = x + 1
    np.testing.assert_array_equal(st.write("m", "l", y, ids, overwrite=True).features(), y)


# --------------------------------------------------------------------------- writer checks
def test_unaligned_and_out_of_order_writes_refused(tmp_path: Path) -> None:
    x, ids = _data(10, 3)
    w = EmbeddingStore(tmp_path / "s.zarr", mode="a").create("m", "l", n=10, p=3, ids=ids,
                                                             chunk_rows=4)
    with pytest.raises(InputError, match="unaligned"):
        w.write_rows(1, x[1:5])  # start not a chunk boundary
    with pytest.raises(InputError, match="unaligned"):
        w.write_rows(0, x[:3])  # partial chunk not at the end
    with pytest.raises(InputError, match="in order"):
        w.write_rows(4, x[4:8])  # a gap before row 4
    with pytest.raises(InputError, match="outside"):
        w.write_rows(8, np.zeros((4, 3)))  # past n
    with pytest.raises(InputError, match=r"\(k, 3\)"):
        w.write_rows(0, x[:4, :2])
    with pytest.raises(IncompleteEntryError, match="0 of 10"):
        w.finalize()
    assert w.write_rows(0, x[:8]) == 8
    assert w.write_rows(8, x[8:]) == 10  # the short last block ends at n
    assert w.write_rows(4, x[4:8]) == 10  # rewriting a written chunk is allowed
    np.testing.assert_array_equal(w.finalize().features(), x)
    with pytest.raises(StoreError, match="finalized"):
        w.write_rows(0, x[:4])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_refused_with_row_and_column(tmp_path: Path, bad: float) -> None:
    x, ids = _data(10, 3)
    x[6, 2] = bad
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    with pytest.raises(DataError, match="row 7, column 3"):
        st.write("m", "l", x, ids)
    assert not st.has("m", "l")  # nothing is created for bad input
    w = st.create("m", "l", n=10, p=3, ids=ids, chunk_rows=4)
    w.write_rows(0, x[:4])
    with pytest.raises(DataError, match="row 7, column 3"):
        w.write_rows(4, x[4:8])
    assert w.rows_done == 4


def test_float16_overflow_refused_and_old_entry_kept(tmp_path: Path) -> None:
    x, ids = _data(4, 2)
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    st.write("m", "l", x, ids)
    y = x.copy()
    y[2, 1] = 1e6
    with pytest.raises(DataError, match="row 3, column 2 overflows float16"):
        st.write("m", "l", y, ids, dtype="float16", overwrite=True)
    np.testing.assert_array_equal(st.entry("m", "l").features(), x)  # not replaced
    w = st.create("m", "l16", n=4, p=2, ids=ids, dtype="float16", chunk_rows=2)
    w.write_rows(0, np.array([[1, 2], [65504, -65504]]))  # the largest float16 values fit
    with pytest.raises(DataError, match="row 4, column 1 overflows float16"):
        w.write_rows(2, np.array([[1, 2], [70000, 3]]))  # integers overflow too
    assert w.rows_done == 2


def test_foreign_node_is_not_clobbered(tmp_path: Path) -> None:
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    zarr.open_group(str(tmp_path / "s.zarr"), mode="r+").require_group("m").create_array(
        "l", shape=(2,), dtype="i4")
    assert st.entries() == []
    with pytest.raises(StoreError, match="not an alignkit entry"):
        st.write("m", "l", np.zeros((1, 1)), ["a"], overwrite=True)


@pytest.mark.parametrize(
    ("ids", "err", "match"),
    [
        (["a", "b", "a", "b"], DataError, r"'a' occurs more than once \(rows 1 and 3\)"),
        (["a", "", "c", "d"], DataError, "empty"),
        (["a", "b", "c"], MismatchError, "3 ids given for 4 rows"),
        ([1, 2, 3, 4], InputError, "strings"),
    ],
)
def test_bad_ids_refused(tmp_path: Path, ids: list, err: type, match: str) -> None:
    x, _ = _data(4, 2)
    with pytest.raises(err, match=match):
        EmbeddingStore(tmp_path / "s.zarr", mode="a").write("m", "l", x, ids)


def test_bad_sizes_and_dtype(tmp_path: Path) -> None:
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    for kwargs, match in (({"n": 0}, "n must"), ({"p": -1}, "p must"), ({"dtype": "float64"}, "dtype"),
                          ({"chunk_rows": 0}, "chunk_rows")):
        args = {"n": 2, "p": 2, "ids": ["a", "b"]} | kwargs
        if args["n"] != 2:
            args["ids"] = []
        with pytest.raises(InputError, match=match):
            st.create("m", "l", **args)
    with pytest.raises(InputError, match="2-D"):
        st.write("m", "l", np.zeros(3), ["a", "b", "c"])
    with pytest.raises(InputError, match="JSON"):
        st.write("m", "l", np.zeros((1, 1)), ["a"], attrs={"f": object()})


# --------------------------------------------------------------------------- opening
def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "file.zarr").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"\x89PNG")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", attributes={"title": "x"})
    zarr.create_array(str(tmp_path / "array.zarr"), shape=(2,), dtype="i4")
    zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2)
    cases = {
        ("missing", "r"): "does not exist",
        ("file.zarr", "r"): "is a file",
        ("file.zarr", "a"): "is a file",
        ("empty", "r"): "empty directory",
        ("images", "a"): "non-empty directory without a Zarr group",
        ("plain.zarr", "r"): "without the alignkit store marker",
        ("plain.zarr", "a"): "without the alignkit store marker",
        ("array.zarr", "a"): "Zarr array",
        ("v2.zarr", "a"): "Zarr v2",
    }
    for (name, mode), match in cases.items():
        with pytest.raises(NotAStoreError, match=match) as info:
            EmbeddingStore(tmp_path / name, mode=mode)
        assert str(tmp_path / name) in str(info.value)
        assert isinstance(info.value, FileNotFoundError)
    # appending to an empty directory makes it a store; nothing else was touched
    assert EmbeddingStore(tmp_path / "empty", mode="a").entries() == []
    assert zarr.open_group(str(tmp_path / "plain.zarr")).attrs.asdict() == {"title": "x"}
    with pytest.raises(InputError, match="mode"):
        EmbeddingStore(tmp_path / "x", mode="w")


def test_read_only_store_refuses_writes(tmp_path: Path) -> None:
    x, ids = _data(4, 2)
    EmbeddingStore(tmp_path / "s.zarr", mode="a").write("m", "l", x, ids)
    st = EmbeddingStore(tmp_path / "s.zarr")
    with pytest.raises(StoreError, match="read-only"):
        st.write("m", "l2", x, ids)
    with pytest.raises(StoreError, match="read-only"):
        st.entry("m", "l").save_probe("p", weights=np.ones((2, 1)), mean=0.0, std=1.0)


def test_entries_delete_and_not_found(tmp_path: Path) -> None:
    x, ids = _data(4, 2)
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    for model, layer in (("b", "x"), ("a", "features.0"), ("a", "avgpool")):
        st.write(model, layer, x, ids)
    assert st.entries() == [("a", "avgpool"), ("a", "features.0"), ("b", "x")]
    assert st.has("a", "avgpool") and ("b", "x") in st and not st.has("b", "y")
    with pytest.raises(EntryNotFoundError, match=r"no entry for model 'b' layer 'y'.*a/avgpool"):
        st.entry("b", "y")
    st.delete("b", "x")
    assert not (tmp_path / "s.zarr" / "b").exists()  # the emptied model group goes too
    st.delete("a", "avgpool")
    assert st.entries() == [("a", "features.0")]
    with pytest.raises(EntryNotFoundError):
        st.delete("a", "avgpool")


# --------------------------------------------------------------------------- names
@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, exclude_characters="\x7f"), min_size=1))
def test_name_encoding_round_trips(name: str) -> None:
    key = encode_name(name)
    assert decode_name(key) == name
    assert "/" not in key and "\\" not in key and ":" not in key
    assert not key.startswith("__") and set(key) != {"."} and key != "zarr.json"


def test_names_with_slashes_colons_and_dots(tmp_path: Path) -> None:
    x, ids = _data(3, 2)
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    names = [("hf-hub:timm/vit_base", "blocks.11.mlp"), ("a/b", "c/d"), ("..", "__x"),
             ("zarr.json", "100%")]
    for i, (m, ly) in enumerate(names):
        st.write(m, ly, x + i, ids)
    assert sorted(names) == EmbeddingStore(tmp_path / "s.zarr").entries()
    for i, (m, ly) in enumerate(names):
        np.testing.assert_array_equal(st.entry(m, ly).features(), x + i)
    assert (tmp_path / "s.zarr" / "hf-hub%3Atimm%2Fvit_base" / "blocks.11.mlp").is_dir()
    for bad in ("", "a\nb"):
        with pytest.raises(InputError, match="layer name"):
            st.write("m", bad, x, ids)


# --------------------------------------------------------------------------- probes
def test_probe_round_trip(tmp_path: Path) -> None:
    x, ids = _data(20, 6)
    e = EmbeddingStore(tmp_path / "s.zarr", mode="a").write("m", "l", x, ids)
    rng = np.random.default_rng(5)
    w, b, mean = rng.normal(size=(6, 3)), rng.normal(size=3), x.mean(0).astype(np.float64)
    e.save_probe("glocal", weights=w, bias=b, mean=mean, std=2.5,
                 attrs={"protocol": "glocal", "lambda": 1e-3, "metrics": {"ooo": 0.61}})
    e.save_probe("naive", weights=w[:, :1].astype(np.float32), mean=0.0, std=np.full(6, 3.0))
    assert e.probes() == ["glocal", "naive"]

    got = EmbeddingStore(tmp_path / "s.zarr").entry("m", "l").load_probe("glocal")
    np.testing.assert_array_equal(got["weights"], w)
    np.testing.assert_array_equal(got["bias"], b)
    np.testing.assert_array_equal(got["mean"], mean)
    assert got["std"] == 2.5 and got["weights"].dtype == np.float64
    assert got["attrs"] == {"protocol": "glocal", "lambda": 1e-3, "metrics": {"ooo": 0.61}}
    assert got["meta"]["features_checksum"] == e.checksum
    naive = e.load_probe("naive")
    assert naive["bias"] is None and naive["mean"] == 0.0 and naive["weights"].dtype == np.float32
    np.testing.assert_array_equal(naive["std"], np.full(6, 3.0))
    # the transform as documented: ((x - mean) / std) @ weights + bias
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["m/l/probes/glocal"]
    np.testing.assert_allclose(((x - mean) / 2.5) @ g["weights"][:] + g["bias"][:],
                               ((x - mean) / 2.5) @ w + b)

    with pytest.raises(EntryExistsError):
        e.save_probe("naive", weights=w, mean=0.0, std=1.0)
    e.save_probe("naive", weights=w, mean=0.0, std=1.0, overwrite=True)
    assert e.load_probe("naive")["weights"].shape == (6, 3)
    e.delete_probe("naive")
    assert e.probes() == ["glocal"]
    with pytest.raises(EntryNotFoundError, match="probes: glocal"):
        e.load_probe("naive")


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"weights": np.ones((5, 2))}, MismatchError, r"\(6, q\)"),
        ({"bias": np.ones(3)}, MismatchError, "bias"),
        ({"mean": np.ones(5)}, MismatchError, "mean"),
        ({"std": 0.0}, DataError, "positive"),
        ({"weights": np.full((6, 2), np.nan)}, DataError, "weights"),
    ],
)
def test_probe_bad_input(tmp_path: Path, kwargs: dict, err: type, match: str) -> None:
    x, ids = _data(8, 6)
    e = EmbeddingStore(tmp_path / "s.zarr", mode="a").write("m", "l", x, ids)
    args = {"weights": np.ones((6, 2)), "bias": np.ones(2), "mean": 0.0, "std": 1.0} | kwargs
    with pytest.raises(err, match=match):
        e.save_probe("p", **args)
    assert e.probes() == []


def test_probe_on_incomplete_entry_refused(tmp_path: Path) -> None:
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    st.create("m", "l", n=4, p=2, ids=list("abcd"))
    with pytest.raises(IncompleteEntryError):
        st.entry("m", "l").save_probe("p", weights=np.ones((2, 1)), mean=0.0, std=1.0)


def test_verify_detects_changed_data(tmp_path: Path) -> None:
    x, ids = _data(6, 2)
    e = EmbeddingStore(tmp_path / "s.zarr", mode="a").write("m", "l", x, ids)
    zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")["m/l/features"][0, 0] = 42.0
    with pytest.raises(StoreError, match="does not match"):
        EmbeddingStore(tmp_path / "s.zarr").entry("m", "l").verify()
    assert e.checksum == _sha(x)


def test_real_spose_embedding(shared_data: Path, tmp_path: Path) -> None:
    x = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    ids = (shared_data / "things" / "unique_id.txt").read_text().split()
    e = EmbeddingStore(tmp_path / "s.zarr", mode="a").write("spose", "49d", x, ids)
    assert (e.n, e.p, e.chunk_rows) == (1854, 49, 1854)
    np.testing.assert_array_equal(e.features(), x.astype(np.float32))
    assert e.ids[0] == "aardvark" and e.checksum == _sha(x.astype(np.float32))
