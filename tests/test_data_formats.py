"""Readers of the published human-data formats, on small files written in exactly those formats."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.data import load_embedding, load_rdm, things_ids
from alignkit.data.formats import FORMATS, describe, read_format
from alignkit.data.triplets import split_by_subject
from alignkit.errors import DataError, FormatError, InputError

IDS = things_ids().astype(str)

PUBLIC_NAMES = (
    "things-2023-raw", "things-2023-split", "brainscore-validation", "things-2020-batch",
    "spose-text", "vice-npz", "vice-npy", "rdm48-mat", "rdm48-splithalf-mat", "mat-rdm", "cichy2019",
    "king2019", "peterson-mat", "alignet-npz", "levels", "glocal-npz", "images-zip",
    "images-folder",
)


def test_registry_names_every_published_format():
    assert set(PUBLIC_NAMES) == set(FORMATS)
    for f in FORMATS.values():
        assert f.convention and "\n" not in f.convention
        assert callable(f.reader)


# --------------------------------------------------------------------------- THINGS 2023 raw

RAW_HEADER = ("image1\timage2\timage3\tchoice\tRT\tnoise_ceiling\tsubject_id\tHIT_nr\ttrial_nr\t"
              "age\tgender\tdate\ttime\tdataset\n")


def _raw_rows(rng, n, subjects=("s01", "s02", "s03")):
    rows = []
    for k in range(n):
        trip = rng.choice(1854, size=3, replace=False) + 1  # 1-based canonical
        choice = int(rng.integers(1, 4))
        nc = int(rng.choice([0, 0, 0, 1, 2, 3]))
        rows.append((trip, choice, nc, subjects[k % len(subjects)], 1 + k % 4))
    return rows


def _write_raw(path, rows, names=False):
    with open(path, "w") as fh:
        fh.write(RAW_HEADER)
        for k, (trip, choice, nc, subj, ds) in enumerate(rows):
            cells = [f"{IDS[t - 1]}_01b.jpg" for t in trip] if names else [str(t) for t in trip]
            fh.write("\t".join([*cells, str(choice), "1234", str(nc), subj, str(k // 20 + 1),
                                str(k % 20 + 1), "NaN", "female", "2020-03-01", "12:00:00",
                                str(ds)]) + "\n")


def _expected_raw(rows):
    out = []
    for trip, choice, *_ in rows:
        t = [int(x) - 1 for x in trip]
        odd = t.pop(choice - 1)
        out.append([*t, odd])
    return np.array(out)


@pytest.mark.parametrize("names", [False, True])
def test_things2023_raw_round_trip(tmp_path, names):
    rng = np.random.default_rng(0)
    rows = _raw_rows(rng, 60)
    f = tmp_path / "triplets_large_final_correctednc_correctedorder.csv"
    _write_raw(f, rows, names=names)
    t = read_format(f, "things-2023-raw")
    np.testing.assert_array_equal(t.array, _expected_raw(rows))
    assert t.n_objects == 1854 and t.is_things
    assert "position (1-3)" in t.convention
    assert list(t.subjects[:3]) == ["s01", "s02", "s03"]
    nc = np.array([r[2] for r in rows])
    np.testing.assert_array_equal(t.row_info["noise_ceiling"], nc)
    np.testing.assert_array_equal(t.row_info["dataset"], [r[4] for r in rows])

    dropped = read_format(f, "things-2023-raw", repeats="drop")
    np.testing.assert_array_equal(dropped.array, _expected_raw(rows)[nc == 0])
    only = read_format(f, "things-2023-raw", repeats="only")
    assert len(only) + len(dropped) == len(t)

    one = read_format(f, "things-2023-raw", subjects=["s02"])
    np.testing.assert_array_equal(one.array, _expected_raw(rows)[1::3])
    parts = split_by_subject(t)
    assert sorted(parts) == ["s01", "s02", "s03"]
    np.testing.assert_array_equal(parts["s02"].array, one.array)
    assert sum(len(p) for p in parts.values()) == len(t)


def test_things2023_raw_fast_and_row_by_row_readers_agree(tmp_path, monkeypatch):
    import alignkit.data.readers as readers

    f = tmp_path / "raw.csv"
    _write_raw(f, _raw_rows(np.random.default_rng(5), 40))
    fast = read_format(f, "things-2023-raw")
    monkeypatch.setattr(readers, "_raw2023_fast", lambda *a: None)
    slow = read_format(f, "things-2023-raw")
    np.testing.assert_array_equal(fast.array, slow.array)
    np.testing.assert_array_equal(fast.subjects, slow.subjects)
    for k in ("noise_ceiling", "dataset", "RT"):
        np.testing.assert_array_equal(fast.row_info[k], slow.row_info[k])
    assert fast.convention == slow.convention


def test_things2023_raw_refuses_bad_rows(tmp_path, shared_data):
    f = tmp_path / "raw.csv"
    f.write_text(RAW_HEADER + "1\t2\t3\t4\t100\t0\ts1\t1\t1\t30\tmale\td\tt\t1\n")
    with pytest.raises(DataError, match="line 2: choice '4'"):
        read_format(f, "things-2023-raw")
    f.write_text(RAW_HEADER + "1\t2\t1855\t1\t100\t0\ts1\t1\t1\t30\tmale\td\tt\t1\n")
    with pytest.raises(DataError, match="line 2: image index 1855"):
        read_format(f, "things-2023-raw")
    f.write_text("a\tb\tc\n1\t2\t3\n")
    with pytest.raises(FormatError, match="missing column"):
        read_format(f, "things-2023-raw")
    with pytest.raises(InputError, match="carry no subject"):
        split_by_subject(read_format(shared_data / "things" / "triplets_test20k_0based_oddlast.txt",
                                     "things-2023-split"))


# --------------------------------------------------------------------------- derived text files


def test_things2023_split_and_2020_batch(tmp_path):
    arr = np.array([[0, 1, 2], [1853, 5, 7], [10, 11, 12]])
    for name in ("trainset.txt", "testset2_repeat.txt"):
        f = tmp_path / name
        np.savetxt(f, arr, fmt="%d", delimiter=" ")
        t = read_format(f, "things-2023-split")
        np.testing.assert_array_equal(t.array, arr)
        assert t.n_objects == 1854 and t.is_things
    assert "noise ceiling" in t.convention

    f = tmp_path / "data1854_batch5_test10.txt"
    np.savetxt(f, arr, fmt="%d", delimiter=" ")
    t = read_format(f, "things-2020-batch")
    np.testing.assert_array_equal(t.array, arr)
    # its object order is not confirmed: no ids unless the order is said
    assert t.object_ids is None and "not confirmed" in t.convention
    assert read_format(f, "things-2020-batch", canonical=True).is_things
    perm = np.roll(np.arange(1854), 1)  # canonical c = raw perm[c]
    t2 = read_format(f, "things-2020-batch", sortindex=perm)
    inverse = np.argsort(perm)
    np.testing.assert_array_equal(t2.array, inverse[arr])
    assert t2.is_things


def test_brainscore_validation(tmp_path):
    f = tmp_path / "validationset.csv"
    f.write_text("ooo,img1,img2\n5,1,2\n7,3,4\n")
    t = read_format(f, "brainscore-validation")
    np.testing.assert_array_equal(t.array, [[1, 2, 5], [3, 4, 7]])
    assert t.is_things


# --------------------------------------------------------------------------- embeddings


def test_spose_text_and_vice(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((1854, 4))
    f = tmp_path / "spose_embedding_4d_sorted.txt"
    np.savetxt(f, x, fmt="%.6f", delimiter=" ")
    e = read_format(f, "spose-text")
    np.testing.assert_allclose(e.values, x, atol=1e-6)
    assert list(e.ids[:2]) == list(IDS[:2])

    g = tmp_path / "pruned_params.npz"
    with open(g, "wb") as fh:
        np.savez_compressed(fh, pruned_loc=x, pruned_scale=x * 0.1)
    v = read_format(g, "vice-npz")
    np.testing.assert_array_equal(v.values, x)
    assert "pruned_loc" in v.convention and v.ids[0] == IDS[0]
    h = tmp_path / "parameters.npz"
    np.savez(h, loc=x[:10], scale=x[:10])
    assert read_format(h, "vice-npz").values.shape == (10, 4)
    bad = tmp_path / "other.npz"
    np.savez(bad, weights=x)
    with pytest.raises(FormatError, match="pruned_loc"):
        read_format(bad, "vice-npz")


# --------------------------------------------------------------------------- RDMs


def test_rdm48_formats(tmp_path):
    ref = load_rdm("rdm48")
    f = tmp_path / "RDM48_triplet.mat"
    scipy.io.savemat(f, {"RDM48_triplet": ref.matrix})
    r = read_format(f, "rdm48-mat")
    np.testing.assert_array_equal(r.matrix, ref.matrix)
    np.testing.assert_array_equal(r.ids, ref.ids)

    half2 = ref.matrix * 0.5
    g = tmp_path / "RDM48_triplet_splithalf.mat"
    scipy.io.savemat(g, {"RDM48_triplet_split1": ref.matrix, "RDM48_triplet_split2": half2})
    np.testing.assert_array_equal(read_format(g, "rdm48-splithalf-mat").matrix, ref.matrix)
    r2 = read_format(g, "rdm48-splithalf-mat", split=2)
    np.testing.assert_array_equal(r2.matrix, half2)
    assert "RDM48_triplet_split2" in r2.convention and r2.ids[0] == ref.ids[0]


def test_mat_cichy_king_peterson(tmp_path):
    rng = np.random.default_rng(2)
    n = 6
    subj = rng.random((3, n, n))
    subj = (subj + subj.transpose(0, 2, 1)) / 2
    for s in subj:
        np.fill_diagonal(s, 0)
    f = tmp_path / "judgments_general.mat"
    scipy.io.savemat(f, {"judgments": subj})
    np.testing.assert_allclose(read_format(f, "cichy2019").matrix, subj.mean(axis=0))

    g = tmp_path / "any.mat"
    scipy.io.savemat(g, {"rdm": subj[0]})
    np.testing.assert_allclose(read_format(g, "mat-rdm", key="rdm").matrix, subj[0])

    from scipy.spatial.distance import squareform

    cond = np.stack([squareform(s, checks=False) for s in subj])
    beh = np.zeros((1, 1), dtype=[("set1", object), ("set2", object)])
    inner = np.zeros((1, 1), dtype=[("pairwisedistances", object)])
    inner[0, 0]["pairwisedistances"] = cond
    beh[0, 0]["set1"] = inner
    beh[0, 0]["set2"] = inner
    k = tmp_path / "BEHAVIOR.mat"
    scipy.io.savemat(k, {"BEHAVIOR": beh})
    np.testing.assert_allclose(read_format(k, "king2019", set_name="set1").matrix, subj.mean(axis=0))

    sim = 1 - subj[0]
    p = tmp_path / "animals.mat"
    scipy.io.savemat(p, {"simMatrix": sim})
    r = read_format(p, "peterson-mat")
    assert r.kind_read == "similarity"
    np.testing.assert_allclose(r.matrix, sim.max() - sim)


# --------------------------------------------------------------------------- AligNet


def test_alignet_npz(tmp_path):
    names = np.array([["n01_1.JPEG", "n01_2.JPEG", "n02_9.JPEG"],
                      ["n02_9.JPEG", "n03_4.JPEG", "n01_1.JPEG"]])
    sims = np.array([[0.9, 0.5, 0.1], [0.7, 0.6, 0.2]])
    f = tmp_path / "alignet_valid.npz"
    np.savez_compressed(f, filenames=names, similarities=sims, indices=np.array([[3, 5, 8], [8, 1, 3]]))
    t = read_format(f, "alignet-npz")
    assert list(t.object_ids) == ["n01_1", "n01_2", "n02_9", "n03_4"]
    ids = t.object_ids
    np.testing.assert_array_equal(ids[t.array], np.vectorize(lambda s: s[:-5])(names))
    assert list(ids[t.odd]) == ["n02_9", "n01_1"]  # the last file name is the odd one out
    np.testing.assert_array_equal(t.row_info["similarities"], sims)
    assert "0 row(s)" in t.convention
    from alignkit.data.formats import guess_format

    assert guess_format(f) == "alignet-npz"
    ti = read_format(f, "alignet-npz", ids="indices")
    assert list(ti.object_ids) == ["1", "3", "5", "8"]
    assert list(ti.object_ids[ti.odd]) == ["8", "3"]

    bad = tmp_path / "obj.npz"
    np.savez(bad, filenames=names.astype(object))
    with pytest.raises(FormatError, match="unpickling"):
        read_format(bad, "alignet-npz")


# --------------------------------------------------------------------------- Levels


def _levels_records(subject, rows):
    recs = [{"subject_id": subject, "trial_type": "instructions"}]
    for (a, b, c), sel, kind in rows:
        root = "stimuli/imagenet2012_human_eval_v2.1_category_stratified_triplets/"
        recs.append({"subject_id": subject, "exp_trial_type": kind, "rt": 1500,
                     "image1Path": root + a, "image2Path": root + b, "image3Path": root + c,
                     "selected_image": root + sel if sel else "No image selected"})
    return recs


def test_levels_records(tmp_path):
    folder = tmp_path / "levels"
    folder.mkdir()
    p0 = _levels_records("participant_0", [
        (("n01_1.JPEG", "n01_2.JPEG", "n01_3.JPEG"), "n01_2.JPEG", "exp_trial"),   # fine
        (("n01_1.JPEG", "n02_5.JPEG", "n01_3.JPEG"), "n02_5.JPEG", "exp_trial"),   # boundary
        (("n01_1.JPEG", "n02_5.JPEG", "n01_3.JPEG"), "n02_5.JPEG", "catch_trial"),
    ])
    p1 = _levels_records("participant_1", [
        (("n03_7.JPEG", "n02_5.JPEG", "n01_3.JPEG"), "n03_7.JPEG", "exp_trial"),   # coarse
        (("n03_7.JPEG", "n02_5.JPEG", "n01_3.JPEG"), None, "exp_trial"),           # unanswered
    ])
    (folder / "2024-04-11 11_00_10.json").write_text("\n".join(json.dumps(r) for r in p0) + "\n")
    (folder / "2024-04-12 09_00_00.json").write_text(json.dumps(p1))  # a JSON array
    t = read_format(folder, "levels")
    ids = t.object_ids
    assert [list(ids[row]) for row in t.array] == [
        ["n01_1", "n01_3", "n01_2"], ["n01_1", "n01_3", "n02_5"], ["n02_5", "n01_3", "n03_7"]]
    assert list(t.row_info["level"]) == ["fine", "boundary", "coarse"]
    assert list(t.subjects) == ["participant_0", "participant_0", "participant_1"]
    assert "catch trials (1)" in t.convention and "unanswered trials (1)" in t.convention
    assert sorted(split_by_subject(t)) == ["participant_0", "participant_1"]
    fine = t.select(t.row_info["level"] == "fine")
    assert len(fine) == 1 and fine.row_info["level"][0] == "fine"


# --------------------------------------------------------------------------- gLocal


def test_glocal_npz(tmp_path):
    rng = np.random.default_rng(3)
    f = tmp_path / "transform.npz"
    np.savez(f, weights=rng.normal(size=(4, 4)), bias=rng.normal(size=4), mean=np.float64(0.5),
             std=np.float64(2.0))
    tr = read_format(f, "glocal-npz")
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(tr.apply(x), ((x - 0.5) / 2.0) @ tr.weights + tr.bias, rtol=1e-5)
    assert describe(tr, "glocal-npz")["shape"] == [4, 4]


# --------------------------------------------------------------------------- images


def _png(path, colour):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def test_images_folder(tmp_path):
    root = tmp_path / "THINGS" / "object_images"
    _png(root / "aardvark" / "aardvark_01b.jpg", (255, 0, 0))
    _png(root / "aardvark" / "aardvark_02s.jpg", (0, 255, 0))
    _png(root / "chicken_wire" / "chicken_wire_01b.jpg", (0, 0, 255))
    _png(tmp_path / "THINGS" / "readme_image.png", (1, 1, 1))  # no concept
    coll = read_format(tmp_path / "THINGS", "images-folder")
    assert len(coll) == 4 and coll.concept_ids == ["aardvark", "chicken_wire"]
    ids, pos = coll.reference()
    assert ids == ["aardvark", "chicken_wire"]
    assert coll.open(pos[0]).getpixel((0, 0))[0] > 240  # aardvark_01b.jpg, red
    flat = tmp_path / "flat"
    _png(flat / "aardvark.jpg", (9, 9, 9))
    assert read_format(flat, "images-folder").concept_ids == ["aardvark"]


def _write_encrypted_zip(path: Path, base: Path, members: list[str], password: str) -> bool:
    """A ZipCrypto archive (Python's zipfile reads it but cannot write it; pyzipper writes AES only)."""
    from _zipcrypto import write_zipcrypto

    write_zipcrypto(path, {m: (base / m).read_bytes() for m in members}, password)
    return True


def test_images_zip_read_in_place(tmp_path, monkeypatch):
    src = tmp_path / "src"
    members = []
    for name, colour in (("aardvark/aardvark_01b.png", (200, 0, 0)),
                         ("abacus/abacus_01b.png", (0, 200, 0))):
        _png(src / "object_images" / name, colour)
        members.append(f"object_images/{name}")
    archive = tmp_path / "object_images_A-C.zip"
    secret = "s3cret-pw"
    if not _write_encrypted_zip(archive, src, members, secret):
        pytest.skip("the zip program (zip -P) is not available to write a ZipCrypto archive")
    with zipfile.ZipFile(archive) as zf:
        assert all(i.flag_bits & 0x1 for i in zf.infolist() if not i.is_dir())
    monkeypatch.delenv("ALIGNKIT_THINGS_PASSWORD", raising=False)
    with pytest.raises(InputError, match="password-protected"):
        read_format(archive, "images-zip")
    with pytest.raises(InputError, match="wrong password"):
        read_format(archive, "images-zip", password="nope")
    monkeypatch.setenv("ALIGNKIT_THINGS_PASSWORD", secret)
    before = sorted(p.name for p in tmp_path.iterdir())
    coll = read_format(archive, "images-zip")
    assert coll.concept_ids == ["aardvark", "abacus"]
    assert [coll.dataset()[k].getpixel((1, 1))[:2] for k in range(2)] == [(200, 0), (0, 200)]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing extracted
    info = describe(coll, "images-zip")
    assert secret not in json.dumps(info) and secret not in coll.convention and secret not in repr(coll)
    r = CliRunner().invoke(cli, ["data", "info", str(archive), "--format", "images-zip"])
    assert r.exit_code == 0, r.output
    assert "read in place" in r.output and secret not in r.output


def test_images_zip_a_wrong_password_that_passes_the_check_byte_is_refused(tmp_path):
    """ZipCrypto checks a password with one byte: about 1 wrong password in 256 passes it.
    Such a password must be refused when the archive is opened, not accepted."""
    src = tmp_path / "src"
    _png(src / "aardvark" / "aardvark_01b.png", (200, 0, 0))
    archive = tmp_path / "images.zip"
    _write_encrypted_zip(archive, src, ["aardvark/aardvark_01b.png"], "s3cret-pw")
    with zipfile.ZipFile(archive) as zf:
        info = zf.infolist()[0]
        lucky = None
        for k in range(20_000):  # a wrong password zipfile's check byte lets through
            try:
                with zf.open(info, pwd=f"wrong{k}".encode()):
                    lucky = f"wrong{k}"
                    break
            except RuntimeError:
                continue
    assert lucky is not None
    with pytest.raises(InputError, match="wrong password"):
        read_format(archive, "images-zip", password=lucky)


# --------------------------------------------------------------------------- the command line


def test_data_info_prints_the_convention(tmp_path):
    rng = np.random.default_rng(4)
    f = tmp_path / "raw.csv"
    _write_raw(f, _raw_rows(rng, 5))
    r = CliRunner().invoke(cli, ["data", "info", str(f), "--format", "things-2023-raw"])
    assert r.exit_code == 0, r.output
    assert "position (1-3)" in r.output and "subjects" in r.output
    r = CliRunner().invoke(cli, ["data", "info", str(f), "--data-format", "things-2023-raw",
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["format"] == "things-2023-raw" and info["n_triplets"] == 5
    r = CliRunner().invoke(cli, ["data", "info", str(f)])  # recognised by its header
    assert r.exit_code == 0 and "things-2023-raw" in r.output, r.output
    r = CliRunner().invoke(cli, ["data", "info", str(f), "--format", "levels",
                                 "--set-name", "set1"])
    assert r.exit_code == 2 and "do not apply" in r.output


def test_embedding_loader_unchanged():
    assert load_embedding("spose-49d").values.shape == (1854, 49)


def test_real_shared_files(shared_data):
    r = read_format(shared_data / "rdm" / "RDM48_triplet.mat", "rdm48-mat")
    assert r.matrix.shape == (48, 48) and r.ids[0] == "pizza"
    m = read_format(shared_data / "rdm" / "92_modelRDMs.mat", "mat-rdm", key="monkeyIT")
    assert m.matrix.shape == (92, 92)
    e = read_format(shared_data / "things" / "spose_embedding_49d_sorted.txt", "spose-text")
    assert e.values.shape == (1854, 49)
    t = read_format(shared_data / "things" / "triplets_test20k_0based_oddlast.txt", "things-2023-split")
    assert len(t) == 20000 and t.is_things


def test_every_fetchable_data_set_names_a_reader() -> None:
    """A registry entry's format is a reader, or one of the two non-data kinds (an archive
    that is unpacked, a plain table)."""
    from alignkit.data.formats import FORMATS
    from alignkit.data.public import public_datasets

    for ds in public_datasets():
        assert ds.format in FORMATS or (ds.format, ds.kind) in {("zip", "archive"),
                                                                ("tsv", "table")}, ds.name


def test_vice_npy_reads_a_plain_array(tmp_path) -> None:
    import numpy as np

    from alignkit.data.formats import read_format

    x = np.abs(np.random.default_rng(0).normal(size=(1854, 42))).astype("f4")
    np.save(tmp_path / "vice.npy", x)
    emb = read_format(tmp_path / "vice.npy", "vice-npy")
    assert emb.values.shape == (1854, 42) and np.array_equal(emb.values, x.astype(np.float64))
