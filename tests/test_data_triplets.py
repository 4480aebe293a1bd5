"""Triplet readers: conventions, the raw published format, validation and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.data import Triplets, bundled_path, load_sortindex, load_triplets
from alignkit.errors import DataError, FormatError, InputError, MismatchError
from alignkit.provenance import sha256_file


def _random_triplets(rng: np.random.Generator, n_objects: int, n: int) -> np.ndarray:
    """Three distinct objects per row (rejection sampling, plain numpy)."""
    out = rng.integers(0, n_objects, size=(n, 3))
    while True:
        bad = (out[:, 0] == out[:, 1]) | (out[:, 0] == out[:, 2]) | (out[:, 1] == out[:, 2])
        if not bad.any():
            return out.astype(np.int64)
        out[bad] = rng.integers(0, n_objects, size=(int(bad.sum()), 3))


def _write_raw(path: Path, canon: np.ndarray, sortindex: np.ndarray, rng: np.random.Generator) -> None:
    """Write canonical odd-last triplets in the raw published format (reference encoder)."""
    n = len(canon)
    pos = rng.integers(0, 3, size=n)
    rows = []
    for (i, j, k), p in zip(canon.tolist(), pos.tolist(), strict=True):
        items = [i, j]
        items.insert(p, k)  # odd one out at position p, the pair keeps its order
        raw = [int(sortindex[c]) + 1 for c in items]
        rows.append("\t".join(map(str, [*raw, p + 1, 7])))
    path.write_text("\n".join(rows) + "\n")


# ---------------------------------------------------------------------------
# real data


def test_raw_published_format_gives_the_canonical_file(shared_data: Path) -> None:
    raw = shared_data / "things" / "triplets_test20k_raw_vice_format.tsv"
    ref = np.loadtxt(shared_data / "things" / "triplets_test20k_0based_oddlast.txt", dtype=np.int64)
    t = load_triplets(raw)
    assert t.array.dtype == np.int32 and t.array.shape == (20000, 3)
    np.testing.assert_array_equal(t.array, ref)
    assert t.n_objects == 1854
    assert "raw VICE format" in t.convention and "sortindex" in t.convention
    assert t.checksum == sha256_file(raw)
    # the same with the shared sortindex file given explicitly, and with format="raw"
    t2 = load_triplets(raw, format="raw", sortindex=shared_data / "things" / "vice_sortindex.txt")
    np.testing.assert_array_equal(t2.array, ref)


def test_bundled_test20k_equals_the_shared_file(shared_data: Path) -> None:
    ref = np.loadtxt(shared_data / "things" / "triplets_test20k_0based_oddlast.txt", dtype=np.int64)
    t = load_triplets("things-test20k")
    np.testing.assert_array_equal(t.array, ref)
    assert t.array.dtype == np.int32 and t.n_objects == 1854 and t.source == "things-test20k"
    assert t.checksum == sha256_file(bundled_path("things-test20k"))
    # the shared text file reads the same, n_objects then max + 1
    t_txt = load_triplets(shared_data / "things" / "triplets_test20k_0based_oddlast.txt")
    np.testing.assert_array_equal(t_txt.array, ref)
    assert t_txt.n_objects == ref.max() + 1


def test_bundled_sortindex_is_the_shared_permutation(shared_data: Path) -> None:
    ref = np.loadtxt(shared_data / "things" / "vice_sortindex.txt", dtype=np.int64)
    np.testing.assert_array_equal(load_sortindex(), ref)


# ---------------------------------------------------------------------------
# formats and round trips


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_raw_format_round_trip_with_a_random_sortindex(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_objects = 40
    canon = _random_triplets(rng, n_objects, 300)
    sortindex = rng.permutation(n_objects)
    path = tmp_path / "raw.tsv"
    _write_raw(path, canon, sortindex, rng)
    t = load_triplets(path, sortindex=sortindex)
    np.testing.assert_array_equal(t.array, canon)
    assert t.n_objects == n_objects
    si_file = tmp_path / "si.txt"
    np.savetxt(si_file, sortindex, fmt="%d")
    np.testing.assert_array_equal(load_triplets(path, sortindex=si_file).array, canon)


def test_things_validation_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    canon = _random_triplets(rng, 1854, 50)
    path = tmp_path / "validationset.csv"
    path.write_text("img1,img2,ooo\n" + "\n".join(",".join(map(str, r)) for r in canon.tolist()) + "\n")
    t = load_triplets(path)
    np.testing.assert_array_equal(t.array, canon)
    assert t.n_objects == 1854 and "validationset" in t.convention
    # columns in another order are picked by name
    other = tmp_path / "other.csv"
    other.write_text(
        "ooo,img1,img2\n" + "\n".join(f"{k},{i},{j}" for i, j, k in canon.tolist()) + "\n"
    )
    np.testing.assert_array_equal(load_triplets(other, format="things-validation").array, canon)
    with pytest.raises(FormatError, match="img1,img2,ooo"):
        load_triplets(_write(tmp_path / "plain.csv", "1,2,3\n"), format="things-validation")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_text_variants_header_comma_comments(tmp_path: Path) -> None:
    expected = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    variants = {
        "a.txt": "0 1 2\n3 4 5\n6 7 8\n",
        "b.csv": "i,j,odd\n0, 1, 2\n3,4,5\n6,7,8\n",
        "c.tsv": "# comment\n0\t1\t2\n\n3\t4\t5   # trailing\n6\t7\t8",
        "d.dat": "a b c\r\n0 1 2\r\n3 4 5\r\n6 7 8\r\n",
    }
    for name, text in variants.items():
        t = load_triplets(_write(tmp_path / name, text))
        np.testing.assert_array_equal(t.array, expected, err_msg=name)
        assert t.n_objects == 9


def test_npy_and_save_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    a = _random_triplets(rng, 30, 100)
    t = Triplets.from_array(a, n_objects=50)
    assert t.array.dtype == np.int32 and t.n_objects == 50 and len(t) == 100
    for ext in (".npy", ".txt"):
        path = t.save(tmp_path / f"t{ext}")
        back = load_triplets(path, n_objects=50)
        np.testing.assert_array_equal(back.array, a)
        assert back.n_objects == 50
    np.save(tmp_path / "f.npy", a.astype(np.float64))  # integral floats are accepted
    np.testing.assert_array_equal(load_triplets(tmp_path / "f.npy").array, a)
    np.testing.assert_array_equal(load_triplets(a.astype(np.uint16)).array, a)
    np.testing.assert_array_equal(t.similar_pairs, a[:, :2])
    np.testing.assert_array_equal(t.odd, a[:, 2])
    with pytest.raises(FormatError):
        t.save(tmp_path / "t.csv")


def test_large_text_file_reads_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    a = _random_triplets(rng, 1854, 200_000)
    path = tmp_path / "big.txt"
    np.savetxt(path, a, fmt="%d")
    t = load_triplets(path, n_objects=1854)
    np.testing.assert_array_equal(t.array, a)


# ---------------------------------------------------------------------------
# bad input: the error class, the file and the 1-based row


BAD_CASES = [
    # name, content, options, error class, text expected in the message
    ("range.txt", "0 1 2\n3 4 5\n6 7 10\n", {"n_objects": 10}, DataError, "row 3"),
    ("negative.txt", "0 1 2\n3 -4 5\n", {}, DataError, "row 2"),
    ("repeat.txt", "0 1 2\n\n3 4 5\n3 5 3\n", {}, DataError, "row 4"),
    ("float.txt", "0 1 2\n3 1.5 5\n", {}, DataError, "row 2"),
    ("letters.txt", "0 1 2\n3 4 5\n3 abc 5\n", {}, FormatError, "row 3"),
    ("columns.txt", "0 1 2\n3 4 5\n3 4\n", {}, FormatError, "row 3"),
    ("twocols.txt", "0 1\n3 4\n", {}, FormatError, "row 1"),
    ("empty.txt", "", {}, FormatError, "empty"),
    ("blank.txt", "\n  \n# only a comment\n", {}, FormatError, "empty"),
    ("header_only.csv", "img1,img2,ooo\n", {}, FormatError, "header"),
    ("badpos.tsv", "1\t2\t3\t1\t9\n1\t2\t3\t4\t9\n", {}, FormatError, "row 2"),
    ("rawzero.tsv", "1\t2\t3\t1\t9\n0\t2\t3\t2\t9\n", {}, DataError, "row 2"),
    ("rawpos.tsv", "1\t2\t3\t1\t9\n5\t2\t3\t0\t9\n", {"format": "raw"}, DataError, "row 2"),
    ("rawrepeat.tsv", "1\t2\t3\t1\t9\n5\t5\t3\t2\t9\n", {}, DataError, "row 2"),
    ("header.csv", "i,j,odd\n0,1,2\n\n3,3,4\n", {}, DataError, "row 4"),
    ("header_float.csv", "i,j,odd\n0,1,2\n3,2.0,4\n", {}, DataError, "row 3"),
    ("weird.xyz", "0 1 2\n", {}, FormatError, "extension"),
]


@pytest.mark.parametrize(("name", "content", "options", "error", "needle"), BAD_CASES)
def test_bad_input_names_file_and_row(
    tmp_path: Path, name: str, content: str, options: dict, error: type, needle: str
) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(error) as info:
        load_triplets(path, **options)
    message = str(info.value)
    assert str(path) in message and needle in message, message


def test_bad_npy_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "shape.npy", np.zeros((4, 2), dtype=np.int64))
    np.save(tmp_path / "frac.npy", np.array([[0, 1, 2], [0.5, 1, 2]]))
    np.save(tmp_path / "text.npy", np.array([["a", "b", "c"]]))
    np.save(tmp_path / "range.npy", np.array([[0, 1, 2], [3, 4, 9]]))
    with pytest.raises(FormatError, match="shape"):
        load_triplets(tmp_path / "shape.npy")
    with pytest.raises(DataError, match="row 2"):
        load_triplets(tmp_path / "frac.npy")
    with pytest.raises(FormatError, match="dtype"):
        load_triplets(tmp_path / "text.npy")
    with pytest.raises(DataError, match="row 2"):
        load_triplets(tmp_path / "range.npy", n_objects=9)
    with pytest.raises(DataError, match="row 1"):
        Triplets.from_array([[1, 1, 2]])


def test_option_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.txt", "0 1 2\n")
    with pytest.raises(InputError, match="format"):
        load_triplets(path, format="parquet")
    with pytest.raises(InputError, match="no such file"):
        load_triplets(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="raw format only"):
        load_triplets(path, sortindex=[0, 1, 2])
    raw = _write(tmp_path / "r.tsv", "1\t2\t3\t1\t9\n")
    with pytest.raises(FormatError, match="needs a sortindex"):
        load_triplets(raw, n_objects=10)
    with pytest.raises(MismatchError, match="sortindex has 3"):
        load_triplets(raw, n_objects=4, sortindex=[2, 0, 1])
    with pytest.raises(DataError, match="repeats"):
        load_triplets(raw, sortindex=[0, 0, 1])
    with pytest.raises(InputError, match="not a triplet set"):
        load_triplets("rdm48")


@pytest.mark.parametrize(("name", "content", "options", "error", "needle"), BAD_CASES)
def test_cli_bad_input_exits_2_with_one_line(
    tmp_path: Path, name: str, content: str, options: dict, error: type, needle: str
) -> None:
    path = _write(tmp_path / name, content)
    args = ["data", "info", str(path), "--kind", "triplets"]
    if "n_objects" in options:
        args += ["--n-objects", str(options["n_objects"])]
    if "format" in options:
        args += ["--triplet-format", options["format"]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alignkit: error:"), result.stderr
    assert needle in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.output + result.stderr
    assert result.stdout == ""


def test_cli_info_reads_raw_format(shared_data: Path) -> None:
    import json

    raw = shared_data / "things" / "triplets_test20k_raw_vice_format.tsv"
    result = CliRunner().invoke(cli, ["data", "info", str(raw), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["kind"] == "triplets" and info["shape"] == [20000, 3] and info["n_objects"] == 1854
    assert "raw VICE format" in info["convention"] and info["checksum"] == sha256_file(raw)
