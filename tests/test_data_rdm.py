"""RDM readers: published layouts written with scipy.io.savemat, real files, id alignment."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from alignkit.cli import cli
from alignkit.data import RDM, align_by_ids, load_rdm, squareform_vector, upper_triangle
from alignkit.errors import DataError, FormatError, InputError, MismatchError
from alignkit.provenance import sha256_file


def _dissimilarities(rng: np.random.Generator, n: int, p: int = 5) -> np.ndarray:
    """A symmetric, zero-diagonal Euclidean RDM from random points (scipy reference)."""
    return squareform(pdist(rng.normal(size=(n, p))))


# ---------------------------------------------------------------------------
# real data


def test_rdm48_matches_spose_about_087(shared_data: Path) -> None:
    """The documented check: Spearman(-(E E^T), RDM48) is about 0.87."""
    rdm = load_rdm("rdm48")
    assert rdm.matrix.shape == (48, 48) and rdm.kind_read == "dissimilarity"
    with open(shared_data / "rdm" / "rdm48_order.tsv", newline="") as fh:
        order = sorted(csv.DictReader(fh, delimiter="\t"), key=lambda r: int(r["rdm_pos"]))
    assert rdm.ids.tolist() == [r["uniqueID"] for r in order]
    ref = scipy.io.loadmat(shared_data / "rdm" / "RDM48_triplet.mat")["RDM48_triplet"]
    np.testing.assert_array_equal(rdm.matrix, ref)
    emb = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    e = emb[[int(r["things_index0"]) for r in order]]
    sim = e @ e.T
    iu = np.triu_indices(48, k=1)
    rho = spearmanr(-sim[iu], rdm.upper()).statistic
    assert 0.85 <= rho <= 0.89
    # the same through ids: load_embedding + align_by_ids
    from alignkit.data import load_embedding

    spose = load_embedding("spose-49d")
    ia, ib = align_by_ids(spose.ids, rdm.ids)
    np.testing.assert_array_equal(ib, np.arange(48))
    np.testing.assert_array_equal(spose.values[ia], e)


def test_meadows_export(shared_data: Path) -> None:
    path = shared_data / "rdm" / "Meadows_myExp_v_v1_arrangement_1D.mat"
    mat = scipy.io.loadmat(path)
    names = ["able_fly", "clean_koi", "cuddly_bunny"]
    stims = [s.strip() for s in mat["stimuli_able_fly"]]
    mean = np.mean([squareform(mat[f"rdmutv_{n}"].ravel()) for n in names], axis=0)
    rdm = load_rdm(path)
    assert rdm.ids.tolist() == stims and rdm.matrix.shape == (118, 118)
    np.testing.assert_allclose(rdm.matrix, mean, rtol=1e-14, atol=0)
    one = load_rdm(path, key="clean_koi")
    np.testing.assert_array_equal(one.matrix, squareform(mat["rdmutv_clean_koi"].ravel()))
    assert load_rdm(path, key="rdmutv_clean_koi").matrix.tolist() == one.matrix.tolist()
    with pytest.raises(InputError, match="participant"):
        load_rdm(path, key="nobody")


def test_meadows_participants_aligned_by_stimulus_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    names = np.array([f"s{i}.png" for i in (3, 10, 7, 1, 22)])  # names of unequal length
    d1, d2 = _dissimilarities(rng, 5), _dissimilarities(rng, 5)
    perm = np.array([4, 2, 0, 1, 3])  # participant 2 lists the stimuli in another order
    path = tmp_path / "Meadows_x_v_v1_arrangement_1D.mat"
    scipy.io.savemat(path, {
        "rdmutv_a_b": squareform(d1)[None, :], "stimuli_a_b": names,
        "rdmutv_c_d": squareform(d2[np.ix_(perm, perm)])[None, :], "stimuli_c_d": names[perm],
    })
    rdm = load_rdm(path)
    assert rdm.ids.tolist() == names.tolist()
    np.testing.assert_allclose(rdm.matrix, (d1 + d2) / 2, rtol=1e-15, atol=0)


def test_model_rdm_struct_array(shared_data: Path) -> None:
    path = shared_data / "rdm" / "92_modelRDMs.mat"
    models = scipy.io.loadmat(path)["Models"]
    ref = next(m["RDM"] for m in models.ravel() if m["name"][0] == "monkeyIT")
    rdm = load_rdm(path, key="monkeyIT")
    np.testing.assert_array_equal(rdm.matrix, ref)
    assert rdm.checksum == sha256_file(path) and "monkeyIT" in rdm.convention
    with pytest.raises(InputError, match="animacy"):
        load_rdm(path)  # must choose a model
    with pytest.raises(InputError, match="no variable or model"):
        load_rdm(path, key="nonexistent")


# ---------------------------------------------------------------------------
# published layouts, written in exactly those layouts


def test_cichy_2019_judgments(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stack = np.stack([_dissimilarities(rng, 12) for _ in range(4)])
    path = tmp_path / "judgments_general.mat"
    scipy.io.savemat(path, {"judgments": stack})
    rdm = load_rdm(path)
    np.testing.assert_allclose(rdm.matrix, stack.mean(axis=0), rtol=1e-15, atol=0)
    assert rdm.kind_read == "dissimilarity" and "Cichy" in rdm.convention
    assert rdm.ids.tolist() == [str(i) for i in range(12)]


def test_king_2019_behavior(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    p1 = np.stack([pdist(rng.normal(size=(10, 3))) for _ in range(5)])  # 5 participants
    p2 = np.stack([pdist(rng.normal(size=(8, 3))) for _ in range(3)])
    path = tmp_path / "BEHAVIOR.mat"
    scipy.io.savemat(path, {"BEHAVIOR": {"set1": {"pairwisedistances": p1},
                                         "set2": {"pairwisedistances": p2}}})
    loaded = scipy.io.loadmat(path, squeeze_me=False)
    layout = loaded["BEHAVIOR"]["set1"][0, 0]["pairwisedistances"][0, 0]
    np.testing.assert_array_equal(layout, p1)  # the published access path holds
    r1 = load_rdm(path, set_name="set1")
    np.testing.assert_allclose(r1.matrix, squareform(p1.mean(axis=0)), rtol=1e-15, atol=0)
    r2 = load_rdm(path, set_name="set2")
    np.testing.assert_allclose(r2.matrix, squareform(p2.mean(axis=0)), rtol=1e-15, atol=0)
    with pytest.raises(InputError, match="set_name"):
        load_rdm(path)
    with pytest.raises(InputError, match="set3"):
        load_rdm(path, set_name="set3")


def test_peterson_similarity_is_converted_rank_preserving(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(15, 4))
    sim = x @ x.T
    path = tmp_path / "animals.mat"
    scipy.io.savemat(path, {"simmat_animals": sim})
    rdm = load_rdm(path, domain="animals")
    assert rdm.kind_read == "similarity" and "max(S) - S" in rdm.convention
    np.testing.assert_array_equal(rdm.matrix, sim.max() - sim)
    iu = np.triu_indices(15, k=1)
    assert spearmanr(rdm.upper(), -sim[iu]).statistic == pytest.approx(1.0, abs=1e-12)
    assert (rdm.matrix >= 0).all()
    # an explicit kind overrides the name
    as_dis = load_rdm(path, kind="dissimilarity")
    np.testing.assert_array_equal(as_dis.matrix, sim)
    # a "dissim" variable is not a similarity
    d = _dissimilarities(rng, 6)
    scipy.io.savemat(tmp_path / "d.mat", {"dissim": d})
    named = load_rdm(tmp_path / "d.mat")
    assert named.kind_read == "dissimilarity"
    np.testing.assert_array_equal(named.matrix, d)


def test_mat_with_explicit_key_and_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    d = _dissimilarities(rng, 9)
    path = tmp_path / "several.mat"
    scipy.io.savemat(path, {"a": d, "b_vec": squareform(d)[None, :], "c": np.ones(3)})
    np.testing.assert_array_equal(load_rdm(path, key="a").matrix, d)
    np.testing.assert_allclose(load_rdm(path, key="b_vec").matrix, d, rtol=0, atol=0)
    with pytest.raises(FormatError, match="pass key"):
        load_rdm(path)
    with pytest.raises(InputError, match="no variable"):
        load_rdm(path, key="zzz")


@pytest.mark.parametrize("ext", [".npy", ".csv", ".txt", ".tsv"])
def test_square_and_condensed_files_round_trip(tmp_path: Path, ext: str) -> None:
    rng = np.random.default_rng(4)
    d = _dissimilarities(rng, 7)
    square, condensed = tmp_path / f"square{ext}", tmp_path / f"condensed{ext}"
    if ext == ".npy":
        np.save(square, d)
        np.save(condensed, squareform(d))
    else:
        sep = {".csv": ",", ".tsv": "\t", ".txt": " "}[ext]
        np.savetxt(square, d, delimiter=sep, fmt="%.17g")
        np.savetxt(condensed, squareform(d)[None, :], delimiter=sep, fmt="%.17g")
    for path in (square, condensed):
        rdm = load_rdm(path)
        np.testing.assert_array_equal(rdm.matrix, d)
        assert rdm.checksum == sha256_file(path) and rdm.kind_read == "dissimilarity"
    ids = [f"s{i}" for i in range(7)]
    assert load_rdm(square, ids=ids).ids.tolist() == ids
    id_file = tmp_path / "ids.txt"
    id_file.write_text("\n".join(ids) + "\n")
    assert load_rdm(square, ids=id_file).ids.tolist() == ids


def test_csv_with_header_row_of_ids(tmp_path: Path) -> None:
    d = _dissimilarities(np.random.default_rng(5), 4)
    path = tmp_path / "named.csv"
    path.write_text("a,b,c,d\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in d))
    rdm = load_rdm(path)
    assert rdm.ids.tolist() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(rdm.matrix, d)


def test_in_memory_array_and_select() -> None:
    d = _dissimilarities(np.random.default_rng(6), 6)
    rdm = load_rdm(d, ids=list("abcdef"))
    assert isinstance(rdm, RDM) and rdm.source == "<array>"
    sub = rdm.select(["e", "a", "c"])
    np.testing.assert_array_equal(sub.matrix, d[np.ix_([4, 0, 2], [4, 0, 2])])
    assert sub.ids.tolist() == ["e", "a", "c"]
    with pytest.raises(MismatchError, match="'z'"):
        rdm.select(["a", "z"])


def test_squareform_helpers_match_scipy() -> None:
    rng = np.random.default_rng(7)
    for n in (2, 3, 10):
        v = rng.random(n * (n - 1) // 2)
        np.testing.assert_array_equal(squareform_vector(v), squareform(v))
        np.testing.assert_array_equal(upper_triangle(squareform(v)), v)
    with pytest.raises(FormatError, match="length 4"):
        squareform_vector(np.ones(4))


# ---------------------------------------------------------------------------
# bad input


def test_bad_rdms_name_the_file(tmp_path: Path) -> None:
    d = _dissimilarities(np.random.default_rng(8), 5)
    asym = d.copy()
    asym[1, 3] += 1e-3
    nan = d.copy()
    nan[2, 4] = nan[4, 2] = np.nan
    cases = {
        "rect.npy": (np.ones((4, 5)), FormatError, "square"),
        "asym.npy": (asym, DataError, "row 2, column 4"),
        "nan.npy": (nan, DataError, "row 3, column 5"),
        "vec.npy": (np.ones(7), FormatError, "length 7"),
        "cube.npy": (np.ones((2, 3, 3)), FormatError, "square"),
    }
    for name, (arr, error, needle) in cases.items():
        np.save(tmp_path / name, arr)
        with pytest.raises(error) as info:
            load_rdm(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and needle in str(info.value), name
    # within the relative tolerance of 1e-8 the matrix counts as symmetric
    tiny = d.copy()
    tiny[1, 3] *= 1 + 1e-12
    np.save(tmp_path / "tiny.npy", tiny)
    np.testing.assert_array_equal(load_rdm(tmp_path / "tiny.npy").matrix, tiny)
    np.save(tmp_path / "ok.npy", d)
    with pytest.raises(MismatchError, match="4 ids"):
        load_rdm(tmp_path / "ok.npy", ids=list("abcd"))
    with pytest.raises(DataError, match="repeats"):
        load_rdm(tmp_path / "ok.npy", ids=list("abcda"))
    with pytest.raises(InputError, match="kind"):
        load_rdm(tmp_path / "ok.npy", kind="distance")
    with pytest.raises(InputError, match=r"key= applies to \.mat"):
        load_rdm(tmp_path / "ok.npy", key="x")
    (tmp_path / "x.parquet").write_bytes(b"xx")
    with pytest.raises(FormatError, match="extension"):
        load_rdm(tmp_path / "x.parquet")
    (tmp_path / "ragged.csv").write_text("0,1,2\n1,0\n2,1,0\n")
    with pytest.raises(FormatError, match="row 2"):
        load_rdm(tmp_path / "ragged.csv")
    (tmp_path / "word.tsv").write_text("0\t1\t2\n1\t0\tx\n2\t1\t0\n")
    with pytest.raises(FormatError, match="row 2.*'x'"):
        load_rdm(tmp_path / "word.tsv")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(FormatError, match="empty"):
        load_rdm(tmp_path / "empty.txt")
    (tmp_path / "broken.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(FormatError, match="broken.mat"):
        load_rdm(tmp_path / "broken.mat")


def test_cli_bad_rdm_exits_2(tmp_path: Path) -> None:
    d = _dissimilarities(np.random.default_rng(9), 5)
    d[0, 1] += 1.0
    path = tmp_path / "asym.npy"
    np.save(path, d)
    result = CliRunner().invoke(cli, ["data", "info", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not symmetric" in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------
# align_by_ids


def test_align_by_ids_basic() -> None:
    ia, ib = align_by_ids(["b", "a", "c"], ["c", "b"])
    assert ia.tolist() == [2, 0] and ib.tolist() == [0, 1]
    ia, ib = align_by_ids(["b", "a"], ["x", "a", "y", "b"], require_all=False)
    assert ia.tolist() == [1, 0] and ib.tolist() == [1, 3]
    with pytest.raises(MismatchError) as info:
        align_by_ids(["a"], ["a", "m1", "m2", "m3", "m4", "m5", "m6"])
    message = str(info.value)
    assert "6 of 7" in message and "'m5'" in message and "'m6'" not in message
    with pytest.raises(DataError, match="'a'"):
        align_by_ids(["a", "a"], ["a"])
    with pytest.raises(DataError, match="second"):
        align_by_ids(["a", "b"], ["b", "b"])
    with pytest.raises(MismatchError, match="share no id"):
        align_by_ids(["a"], ["b"], require_all=False)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=30, unique=True),
    st.randoms(use_true_random=False),
)
def test_align_by_ids_property(pool: list[str], rnd) -> None:
    a = list(pool)
    rnd.shuffle(a)
    b = rnd.sample(pool, rnd.randint(1, len(pool)))
    ia, ib = align_by_ids(a, b)
    assert np.array_equal(np.array(a, dtype=object)[ia], np.array(b, dtype=object)[ib])
    assert ib.tolist() == list(range(len(b)))
