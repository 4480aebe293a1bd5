"""Readers for the published human-data releases, each in its own convention.

Every reader returns one of the package's plain objects (:class:`Triplets`,
:class:`RDM`, :class:`ConceptEmbedding`, a probe :class:`Transform` or an
:class:`~alignkit.data.images.ImageCollection`) whose ``convention`` says how the
file was read. :mod:`alignkit.data.formats` names them (``"things-2023-raw"``,
``"alignet-npz"``, ...). What each release holds, and which parts of a layout were
confirmed from the publishers' own code, is in ``docs/data-formats.md``.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alignkit.data.bundled import resolve_source
from alignkit.data.triplets import (
    THINGS_N_OBJECTS,
    Triplets,
    _object_ids,
    load_sortindex,
    load_triplets,
)
from alignkit.errors import DataError, FormatError, InputError, MismatchError
from alignkit.provenance import sha256_file

__all__ = [
    "read_things2023_raw", "read_things2023_split", "read_brainscore_validation",
    "read_things2020_batch", "read_spose_text", "read_vice", "read_rdm48_mat",
    "read_rdm48_splithalf", "read_mat_rdm", "read_cichy2019", "read_king2019",
    "read_peterson", "read_alignet", "read_levels", "read_glocal", "image_concept",
    "LEVELS",
]

#: Level labels of the Levels data set, by the number of distinct ImageNet classes in a triplet.
LEVELS = {1: "fine", 2: "boundary", 3: "coarse"}
_LEVEL_NAMES = {
    "within_class": "fine", "fine": "fine",
    "class_border": "boundary", "class_boundary": "boundary", "boundary": "boundary",
    "between_class": "coarse", "coarse": "coarse",
}
_RAW2023_COLUMNS = ("image1", "image2", "image3", "choice")
_ODD_LAST = np.array([[1, 2, 0], [0, 2, 1], [0, 1, 2]], dtype=np.intp)
_NO_CHOICE = {"", "no image selected", "none", "null", "nan"}


def _path(source: Any) -> tuple[Path, str]:
    if not isinstance(source, (str, os.PathLike)):
        raise InputError("this reader takes a file path")
    path, name = resolve_source(source)
    return path, name or str(path)


def _things_ids() -> np.ndarray:
    from alignkit.data.concepts import things_ids

    return things_ids().astype(str)


def image_concept(name: str, concepts: dict[str, int] | None = None) -> str | None:
    """The THINGS concept of an image file name, or None.

    ``aardvark_01b.jpg`` -> ``aardvark``; ``chicken_wire_02s.jpg`` -> ``chicken_wire``;
    a reference image ``aardvark.jpg`` -> ``aardvark``. Folders are ignored. The prefix
    is the longest leading ``_``-joined part of the stem that is a THINGS uniqueID.
    """
    index = concepts if concepts is not None else _things_index()
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", str(name).replace("\\", "/").rsplit("/", 1)[-1])
    parts = stem.split("_")
    for k in range(len(parts), 0, -1):
        cand = "_".join(parts[:k])
        if cand in index:
            return cand
    return None


_THINGS_INDEX: dict[str, int] | None = None


def _things_index() -> dict[str, int]:
    global _THINGS_INDEX
    if _THINGS_INDEX is None:
        _THINGS_INDEX = {c: i for i, c in enumerate(_things_ids().tolist())}
    return _THINGS_INDEX


# --------------------------------------------------------------------------- THINGS 2023


def read_things2023_raw(
    source: Any,
    *,
    subjects: Iterable[str] | None = None,
    repeats: str = "keep",
) -> Triplets:
    """The raw THINGS odd-one-out release (``triplets_large_final_correctednc_correctedorder.csv``).

    Tab separated with a header: ``image1 image2 image3 choice RT noise_ceiling subject_id
    HIT_nr trial_nr age gender date time dataset``. ``image1..3`` are the THINGS objects,
    **1-based in canonical THINGS order** (the release's "corrected order"); a column of
    image file names (``aardvark_01b.jpg``) is also accepted and mapped to its concept by
    the name's concept prefix. ``choice`` is the **position (1-3)** of the odd one out among
    ``image1..3``. The odd one out is moved last, the other two keep their order.
    ``noise_ceiling`` is 0 for ordinary judgments and 1, 2, 3 for the repeated triplets the
    noise ceilings are computed from (1: the original 1,000 random triplets; 2: a second
    1,000 repeated within subject; 3: the same 1,000 repeated between subjects); ``dataset``
    (1-4) is the collection batch. Both are kept in ``row_info``; ``subject_id`` in
    ``subjects``.

    Args:
        source: the CSV file.
        subjects: keep only these participants' judgments.
        repeats: ``"keep"`` every row, ``"drop"`` the noise-ceiling repeats
            (``noise_ceiling != 0``) or keep ``"only"`` them.

    Raises:
        FormatError: a missing column, an unreadable index or choice.
        DataError: an index outside 1..1854, a choice outside 1..3, an image name that
            names no THINGS concept (the line is named).
    """
    if repeats not in ("keep", "drop", "only"):
        raise InputError(f"repeats={repeats!r}: expected keep, drop or only")
    path, where = _path(source)
    cols = _raw2023_header(path, where)
    parsed = _raw2023_fast(path, cols) or _raw2023_slow(path, where, cols)
    arr, choice, subj, nc, dataset, rt, names_used = parsed
    out = np.take_along_axis(arr, _ODD_LAST[choice - 1], axis=1)
    _check_distinct(out, where, first_line=2)
    info = {"noise_ceiling": np.asarray(nc), "dataset": np.asarray(dataset), "RT": np.asarray(rt)}
    conv = (
        "raw THINGS 2023 CSV (tab separated, header): image1..3 = "
        + ("THINGS concepts by image-name prefix" if names_used else
           "1-based canonical THINGS indices")
        + ", choice = position (1-3) of the odd one out, moved last (the other two keep their "
        "order); subject_id kept per judgment; noise_ceiling (0 = ordinary, 1-3 = repeats for "
        "the noise ceilings) and dataset (collection batch) kept as row info; n_objects = 1854 (THINGS)"
    )
    t = Triplets(np.ascontiguousarray(out, dtype=np.int32), THINGS_N_OBJECTS, where, sha256_file(path),
                 conv, _things_ids(), np.asarray(subj), info)
    if repeats != "keep":
        is_rep = info["noise_ceiling"] != 0
        t = t.select(is_rep if repeats == "only" else ~is_rep,
                     note="noise-ceiling repeats only" if repeats == "only" else "noise-ceiling repeats dropped")
    if subjects is not None:
        wanted = np.asarray([str(s) for s in subjects])
        t = t.select(np.isin(t.subjects, wanted), note=f"{len(wanted)} subject(s) selected")
        if len(t) == 0:
            raise MismatchError(f"{where}: no judgment by the selected subject(s)")
    return t


def _raw2023_header(path: Path, where: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh, delimiter="\t"), None)
    if header is None:
        raise FormatError(f"{where}: empty file")
    cols = [h.strip() for h in header]
    missing = [c for c in _RAW2023_COLUMNS if c not in cols]
    if missing:
        raise FormatError(
            f"{where}: not the raw THINGS 2023 table: missing column(s) {', '.join(missing)} "
            "(expected a tab-separated header image1 image2 image3 choice RT noise_ceiling "
            "subject_id ...)"
        )
    return cols


def _raw2023_fast(path: Path, cols: list[str]) -> tuple[Any, ...] | None:
    """Parse with numpy's C reader when every image is an index and every choice valid; else None."""
    pos = {c: cols.index(c) for c in cols}
    num_cols = [pos["image1"], pos["image2"], pos["image3"], pos["choice"]]
    extra = [pos[k] for k in ("noise_ceiling", "dataset", "RT") if k in pos]
    kw = dict(delimiter="\t", skiprows=1, ndmin=2, comments=None, encoding="utf-8-sig")
    try:
        num = np.loadtxt(path, usecols=num_cols + extra, dtype=np.float64, **kw)
        subj = (np.loadtxt(path, usecols=pos["subject_id"], dtype=str, **{**kw, "ndmin": 1})
                if "subject_id" in pos else np.full(num.shape[0], "", dtype=str))
    except (ValueError, IndexError):
        return None  # image names, ragged rows or bad values: the row-by-row reader names them
    if num.shape[0] == 0:
        return None
    idx, choice = num[:, :3], num[:, 3]
    if (not np.isfinite(idx).all() or (idx != np.round(idx)).any() or (idx < 1).any()
            or (idx > THINGS_N_OBJECTS).any() or not np.isin(choice, (1, 2, 3)).all()):
        return None
    rest = {k: num[:, 4 + i] for i, k in enumerate(k for k in ("noise_ceiling", "dataset", "RT") if k in pos)}
    n = num.shape[0]
    nan = np.full(n, np.nan)
    return (idx.astype(np.int64) - 1, choice.astype(np.int64), np.char.strip(subj.astype(str)),
            rest.get("noise_ceiling", np.zeros(n)), rest.get("dataset", nan), rest.get("RT", nan), False)


def _raw2023_slow(path: Path, where: str, cols: list[str]) -> tuple[Any, ...]:
    """Parse row by row (image names allowed); errors name the line."""
    index = _things_index()
    idx_rows: list[list[int]] = []
    choice: list[int] = []
    subj: list[str] = []
    nc: list[float] = []
    dataset: list[float] = []
    rt: list[float] = []
    names_used = False
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        pos = {c: cols.index(c) for c in cols}
        ci = [pos["image1"], pos["image2"], pos["image3"]]
        cc = pos["choice"]
        cs, cn, cd, cr = (pos.get(k) for k in ("subject_id", "noise_ceiling", "dataset", "RT"))
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not x.strip() for x in row):
                continue
            if len(row) < len(cols):
                raise FormatError(f"{where}: line {lineno}: {len(row)} columns, the header has {len(cols)}")
            trip = []
            for c in ci:
                tok = row[c].strip()
                if re.fullmatch(r"\d+", tok):
                    v = int(tok)
                    if not 1 <= v <= THINGS_N_OBJECTS:
                        raise DataError(f"{where}: line {lineno}: image index {v} outside 1..{THINGS_N_OBJECTS}")
                    trip.append(v - 1)
                else:
                    concept = image_concept(tok, index)
                    if concept is None:
                        raise DataError(f"{where}: line {lineno}: {tok!r} names no THINGS concept")
                    names_used = True
                    trip.append(index[concept])
            tok = row[cc].strip()
            if tok not in ("1", "2", "3"):
                raise DataError(f"{where}: line {lineno}: choice {tok!r} is not a position 1, 2 or 3")
            idx_rows.append(trip)
            choice.append(int(tok))
            subj.append(row[cs].strip() if cs is not None else "")
            nc.append(_num(row[cn]) if cn is not None else 0.0)
            dataset.append(_num(row[cd]) if cd is not None else np.nan)
            rt.append(_num(row[cr]) if cr is not None else np.nan)
    if not idx_rows:
        raise FormatError(f"{where}: no judgments after the header")
    return (np.asarray(idx_rows, dtype=np.int64), np.asarray(choice, dtype=np.int64), np.asarray(subj),
            np.asarray(nc), np.asarray(dataset), np.asarray(rt), names_used)


def _num(tok: str) -> float:
    try:
        return float(tok)
    except ValueError:
        return float("nan")


def _check_distinct(arr: np.ndarray, where: str, first_line: int = 1) -> None:
    rep = (arr[:, 0] == arr[:, 1]) | (arr[:, 0] == arr[:, 2]) | (arr[:, 1] == arr[:, 2])
    if rep.any():
        r = int(np.flatnonzero(rep)[0])
        raise DataError(f"{where}: judgment {r + 1} (line {r + first_line}): an object repeats "
                        f"within the triplet {arr[r].tolist()}")


def read_things2023_split(source: Any) -> Triplets:
    """A derived split of the 2023 release (``trainset.txt``, ``validationset.txt``,
    ``testset1.txt``, ``testset2.txt``, ``testset2_repeat.txt``, ``testset3.txt``).

    Space separated, no header, **0-based canonical THINGS indices, odd one out last**:
    the package's own convention, read as plain text with the THINGS ids.
    """
    t = load_triplets(source, format="text", n_objects=THINGS_N_OBJECTS, object_ids="things")
    name = Path(str(source)).name
    note = ("; the repeated triplets of the noise ceiling (use 'alignkit data ceiling')"
            if "repeat" in name else "")
    return _reconvention(t, "THINGS 2023 derived split " + repr(name) + ": space separated, "
                         "0-based canonical THINGS indices, odd one out last (as stored)" + note)


def _reconvention(t: Triplets, conv: str) -> Triplets:
    return Triplets(t.array, t.n_objects, t.source, t.checksum, f"{conv}; {t.convention}",
                    t.object_ids, t.subjects, t.row_info)


def read_brainscore_validation(source: Any) -> Triplets:
    """Brain-Score's Hebart2023 ``validationset.csv``: header ``img1,img2,ooo``, 0-based
    canonical THINGS indices, ``ooo`` the odd one out (the ``things-validation`` format)."""
    return load_triplets(source, format="things-validation")


def read_things2020_batch(source: Any, *, sortindex: Any = None,
                          canonical: bool = False) -> Triplets:
    """The 2020 test set ``data1854_batch5_test10.txt`` (Hebart et al. 2020, OSF z2784).

    Space separated, no header, 0-based, odd one out in column 3 (the published MATLAB
    code adds 1 and reorders objects by ``variables/sortind.mat``). Which object order
    the archived file is in is not confirmed (public reproductions disagree on whether
    that reordering is the identity), so the THINGS ids are attached only when the
    order is said: ``sortindex`` (0-based; canonical ``c`` = raw ``r`` where
    ``sortindex[c] == r``, i.e. the published ``sortind`` minus 1) applies the
    reordering, ``canonical=True`` takes the file as canonical THINGS order. Otherwise
    the triplets carry no object ids and scoring them needs ``--object-ids``.
    """
    t = load_triplets(source, format="text", n_objects=THINGS_N_OBJECTS)
    conv = ("THINGS 2020 batch file (data1854_batch5_test10.txt): space separated, 0-based, "
            "odd one out in column 3")
    arr = t.array
    ids = _things_ids()
    if sortindex is not None:
        if canonical:
            raise InputError("give sortindex or canonical=True, not both")
        perm = load_sortindex(sortindex)
        if perm.size != THINGS_N_OBJECTS:
            raise MismatchError(f"sortindex has {perm.size} entries, expected {THINGS_N_OBJECTS}")
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(perm.size)
        arr = inverse[arr].astype(np.int32)
        conv += "; reordered by the given sortindex (canonical c = raw r where sortindex[c] == r)"
    elif canonical:
        conv += "; taken as canonical THINGS order (canonical=True)"
    else:
        ids = None
        conv += ("; object order not confirmed, so no object ids attached: give --object-ids "
                 "things if this copy is in canonical THINGS order, or a sortindex")
    return Triplets(np.ascontiguousarray(arr), t.n_objects, t.source, t.checksum,
                    f"{conv}; n_objects = 1854 (THINGS)", ids)


# --------------------------------------------------------------------------- embeddings


def read_spose_text(source: Any, *, labels: Any = None, ids: Any = None) -> Any:
    """A SPoSE embedding text file (``spose_embedding_49d_sorted.txt``, ``..._66d_sorted.txt``):
    space separated floats, one object a row in canonical THINGS order (trailing spaces fine)."""
    from alignkit.data.concepts import load_embedding

    return load_embedding(source, labels, ids=ids)


def read_vice(source: Any, *, labels: Any = None, ids: Any = None) -> Any:
    """A VICE embedding: ``pruned_params.npz`` (keys ``pruned_loc``, ``pruned_scale``; the
    means ``pruned_loc`` are the embedding, dimensions sorted by importance), a
    ``parameters.npz`` (``loc``, ``scale``) or a text file like SPoSE's."""
    from alignkit.data.concepts import (
        ConceptEmbedding,
        _embedding_ids,
        _embedding_labels,
        load_embedding,
    )

    path, where = _path(source)
    if path.suffix.lower() != ".npz":
        return load_embedding(source, labels, ids=ids)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            key = next((k for k in ("pruned_loc", "loc") if k in keys), None)
            if key is None:
                raise FormatError(f"{where}: not a VICE .npz: no pruned_loc or loc (keys: {', '.join(keys)})")
            values = np.asarray(z[key], dtype=np.float64)
            has_scale = ("pruned_scale" if key == "pruned_loc" else "scale") in keys
    except (OSError, ValueError) as exc:
        raise FormatError(f"{where}: not a readable .npz ({exc})") from None
    if values.ndim != 2:
        raise FormatError(f"{where}: {key} must be 2-D (objects x dimensions), got shape {values.shape}")
    if not np.isfinite(values).all():
        r = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise DataError(f"{where}: {key} row {r + 1} holds NaN or infinite values")
    n, d = values.shape
    label_arr, label_note = _embedding_labels(labels, None, d, where)
    id_arr, id_note = _embedding_ids(ids, n, where)
    conv = (f"VICE .npz: embedding = {key!r} (the variational means, {n} objects x {d} dimensions, "
            f"dimensions as stored){'; scale kept out' if has_scale else ''}; {id_note}; {label_note}")
    return ConceptEmbedding(values, id_arr, label_arr, where, sha256_file(path), conv)


# --------------------------------------------------------------------------- RDMs


def _rdm48_ids() -> list[str]:
    from alignkit.data.rdm import _rdm48_ids as ids

    return ids()


def read_rdm48_mat(source: Any, *, ids: Any = None) -> Any:
    """``RDM48_triplet.mat``: key ``RDM48_triplet``, 48 x 48 dissimilarities; rows in the
    order of ``rdm48_order.tsv`` (THINGS uniqueIDs) unless ``ids`` is given."""
    from alignkit.data.rdm import load_rdm

    return load_rdm(source, key="RDM48_triplet", ids=ids if ids is not None else _rdm48_ids())


def read_rdm48_splithalf(source: Any, *, split: int = 1, ids: Any = None) -> Any:
    """``RDM48_triplet_splithalf.mat``: keys ``RDM48_triplet_split1`` and ``..._split2``, two
    48 x 48 dissimilarity matrices from halves of the triplets; ``split`` picks one."""
    from alignkit.data.rdm import load_rdm

    if split not in (1, 2):
        raise InputError(f"split={split!r}: expected 1 or 2")
    return load_rdm(source, key=f"RDM48_triplet_split{split}",
                    ids=ids if ids is not None else _rdm48_ids())


def read_mat_rdm(source: Any, *, key: str | None = None, ids: Any = None, kind: str | None = None) -> Any:
    """A generic ``.mat`` RDM (``key=`` the variable or model name; square, condensed or a
    participants stack averaged over axis 0; rsatoolbox ``Models`` structs and Meadows exports)."""
    from alignkit.data.rdm import load_rdm

    return load_rdm(source, key=key, ids=ids, kind=kind)


def read_cichy2019(source: Any, *, ids: Any = None) -> Any:
    """Cichy et al. 2019 ``judgments_general.mat``: ``judgments`` (participants x 118 x 118),
    mean over participants; ids = the 118 image names sorted (give them with ``ids``)."""
    from alignkit.data.rdm import load_rdm

    return load_rdm(source, key="judgments", ids=ids)


def read_king2019(source: Any, *, set_name: str = "set1", ids: Any = None) -> Any:
    """King et al. 2019 ``BEHAVIOR.mat``: ``BEHAVIOR[set][0,0]['pairwisedistances'][0,0]``
    (participants x condensed ``pdist`` vector), mean over participants, squareform."""
    from alignkit.data.rdm import load_rdm

    return load_rdm(source, set_name=set_name, ids=ids)


def read_peterson(source: Any, *, domain: str | None = None, ids: Any = None) -> Any:
    """Peterson et al. 2016/2018, one ``.mat`` per domain: the variable whose name contains
    ``sim`` is a **similarity** matrix, converted to dissimilarities by ``max(S) - S``."""
    from alignkit.data.rdm import load_rdm

    return load_rdm(source, domain=domain, ids=ids)


# --------------------------------------------------------------------------- AligNet, Levels


def _strip_ext(name: str) -> str:
    return re.sub(r"\.[A-Za-z0-9]+$", "", str(name))


def read_alignet(source: Any, *, ids: str = "filenames") -> Triplets:
    """AligNet's ``alignet_train.npz`` / ``alignet_valid.npz`` (Muttenthaler et al. 2025).

    Keys ``filenames`` ((n, 3) ImageNet-2012 file names ``[f0, f1, f2]``, ``f2`` the odd one
    out), ``similarities`` ((n, 3) model similarities ``[s01, s02, s12]`` with ``s12`` the
    smallest) and ``indices`` ((n, 3) positions of the images in the ``tfds`` ``imagenet2012``
    data source, redundant with the file names). The last column is already the odd one out.

    Args:
        ids: ``"filenames"`` (object ids = the file names without extension, sorted) or
            ``"indices"`` (object ids = the tfds indices as strings, sorted numerically).
    """
    if ids not in ("filenames", "indices"):
        raise InputError(f"ids={ids!r}: expected filenames or indices")
    path, where = _path(source)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            need = "filenames" if ids == "filenames" else "indices"
            if need not in keys:
                raise FormatError(f"{where}: not an AligNet .npz: no {need!r} (keys: {', '.join(keys)})")
            raw = np.asarray(z[need])
            sims = np.asarray(z["similarities"], dtype=np.float64) if "similarities" in keys else None
    except ValueError as exc:
        raise FormatError(
            f"{where}: cannot read without unpickling Python objects ({exc}); re-save the "
            "arrays as plain string/number arrays"
        ) from None
    except OSError as exc:
        raise FormatError(f"{where}: not a readable .npz ({exc})") from None
    if raw.ndim != 2 or raw.shape[1] != 3 or raw.shape[0] == 0:
        raise FormatError(f"{where}: {need} must be (n, 3), got shape {raw.shape}")
    if ids == "filenames":
        names = np.char.decode(raw, "utf-8") if raw.dtype.kind == "S" else raw.astype(str)
        names = np.vectorize(_strip_ext, otypes=[str])(names)
        uniq, inv = np.unique(names, return_inverse=True)
        obj_ids = uniq.astype(str)
    else:
        vals = raw.astype(np.int64)
        uniq, inv = np.unique(vals, return_inverse=True)
        obj_ids = uniq.astype(str)
    arr = inv.reshape(raw.shape).astype(np.int64)
    _check_distinct(arr, where)
    info: dict[str, np.ndarray] = {}
    note = ""
    if sims is not None:
        if sims.shape != raw.shape:
            raise FormatError(f"{where}: similarities has shape {sims.shape}, filenames {raw.shape}")
        info["similarities"] = sims
        bad = int(np.count_nonzero(~((sims[:, 2] < sims[:, 0]) & (sims[:, 2] < sims[:, 1]))))
        note = (f"; similarities [s01, s02, s12] kept as row info ({bad} row(s) where s12 is not "
                "the smallest)")
    conv = ("AligNet .npz: filenames [f0, f1, f2] with f2 the odd one out (kept last); object ids = "
            + ("the file names without extension" if ids == "filenames" else "the tfds imagenet2012 indices")
            + f", sorted ({len(obj_ids)} objects); n_objects = {len(obj_ids)}" + note)
    return Triplets(np.ascontiguousarray(arr, dtype=np.int32), len(obj_ids), where, sha256_file(path),
                    conv, obj_ids, None, info or None)


def _level_records(path: Path, where: str) -> list[tuple[str, int, dict[str, Any]]]:
    """(file, line, record) of every record of a Levels source (folder, .json, .jsonl, .csv)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".json", ".jsonl", ".csv", ".tsv"))
        if not files:
            raise InputError(f"{where}: no .json, .jsonl, .csv or .tsv file in the folder")
    else:
        files = [path]
    out: list[tuple[str, int, dict[str, Any]]] = []
    for f in files:
        ext = f.suffix.lower()
        if ext in (".csv", ".tsv"):
            with open(f, encoding="utf-8-sig", newline="") as fh:
                for i, rec in enumerate(csv.DictReader(fh, delimiter="\t" if ext == ".tsv" else ","), start=2):
                    out.append((str(f), i, rec))
            continue
        text = f.read_text(encoding="utf-8-sig")
        stripped = text.lstrip()
        try:
            if stripped.startswith("["):
                out += [(str(f), i + 1, r) for i, r in enumerate(json.loads(text))]
            else:
                for i, line in enumerate(text.splitlines(), start=1):
                    if line.strip():
                        out.append((str(f), i, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise FormatError(f"{f}: not JSON records ({exc})") from None
    return out


def read_levels(source: Any, *, object_ids: Sequence[str] | None = None) -> Triplets:
    """The Levels data set (human odd-one-out judgments at three levels of abstraction).

    The jsPsych records of the experiment (one participant per file; JSON lines as the
    release's preprocessing writes them, a JSON array, or a CSV with the same columns):
    ``subject_id``, ``exp_trial_type`` (only ``exp_trial`` rows are judgments; catch trials
    are left out), ``image1Path``, ``image2Path``, ``image3Path`` (or ``image1..3``) and
    ``selected_image`` (the path of the chosen odd one out; ``"No image selected"`` when the
    participant did not answer: left out). A triplet's level is its ``triplet_class`` /
    ``triplet_type`` column when there is one, else the number of distinct ImageNet classes
    (the file name's ``nXXXXXXXX`` prefix): 1 -> ``fine`` (within class), 2 -> ``boundary``
    (class boundary), 3 -> ``coarse`` (between classes); kept in ``row_info["level"]``.

    Args:
        source: a folder of record files, or one file.
        object_ids: the object order (image names without extension); default the names
            used, sorted.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise InputError("the Levels reader takes a file or folder path")
    path = Path(source)
    where = str(path)
    if not path.exists():
        raise InputError(f"{where}: no such file or folder")
    records = _level_records(path, where)
    trips: list[tuple[str, str, str]] = []
    levels: list[str] = []
    subj: list[str] = []
    skipped_catch = skipped_missing = 0
    for f, line, rec in records:
        if not isinstance(rec, dict):
            continue
        kind = str(rec.get("exp_trial_type", "exp_trial") or "")
        imgs = [rec.get(f"image{k}Path", rec.get(f"image{k}")) for k in (1, 2, 3)]
        if any(v is None for v in imgs):
            continue  # an instruction, break or survey record
        if kind != "exp_trial":
            skipped_catch += kind == "catch_trial"
            continue
        sel = rec.get("selected_image")
        if sel is None or str(sel).strip().lower() in _NO_CHOICE:
            skipped_missing += 1
            continue
        names = [_strip_ext(str(v).replace("\\", "/").rsplit("/", 1)[-1]) for v in imgs]
        chosen = _strip_ext(str(sel).replace("\\", "/").rsplit("/", 1)[-1])
        if chosen not in names:
            raise DataError(f"{f}: record {line}: selected_image {sel!r} is none of the three images")
        if len(set(names)) != 3:
            raise DataError(f"{f}: record {line}: an image repeats within the triplet {names}")
        k = names.index(chosen)
        others = [n for i, n in enumerate(names) if i != k]
        trips.append((others[0], others[1], chosen))
        label = rec.get("triplet_class", rec.get("triplet_type"))
        if label is not None and str(label) in _LEVEL_NAMES:
            levels.append(_LEVEL_NAMES[str(label)])
        else:
            levels.append(LEVELS[len({n.split("_")[0] for n in names})])
        subj.append(str(rec.get("subject_id", "")))
    if not trips:
        raise FormatError(f"{where}: no judgment (exp_trial records with image1Path..image3Path "
                          "and selected_image) found")
    used = sorted({n for t in trips for n in t})
    if object_ids is not None:
        ids_arr, _ = _object_ids(list(object_ids), "object_ids")
        missing = sorted(set(used) - set(ids_arr.tolist()))
        if missing:
            raise MismatchError(f"{where}: {len(missing)} image(s) not in object_ids, first: {', '.join(missing[:5])}")
    else:
        ids_arr = np.asarray(used, dtype=str)
    pos = {n: i for i, n in enumerate(ids_arr.tolist())}
    arr = np.asarray([[pos[a], pos[b], pos[c]] for a, b, c in trips], dtype=np.int32)
    lev = np.asarray(levels)
    counts = ", ".join(f"{k} {int((lev == k).sum())}" for k in ("coarse", "fine", "boundary"))
    checksum = sha256_file(path) if path.is_file() else _folder_checksum(path)
    conv = ("Levels jsPsych records: exp_trial rows, the odd one out = selected_image (moved last, "
            "the other two keep their order); catch trials "
            f"({skipped_catch}) and unanswered trials ({skipped_missing}) left out; level per "
            f"judgment in row_info['level'] ({counts}); subject_id kept; object ids = image names "
            f"without extension ({len(ids_arr)} objects)")
    return Triplets(arr, len(ids_arr), where, checksum, conv, ids_arr, np.asarray(subj), {"level": lev})


def _folder_checksum(root: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode())
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- gLocal


def read_glocal(source: Any) -> Any:
    """A gLocal transform ``.npz`` (keys ``weights`` (p x p), ``bias`` (p,), ``mean``, ``std``
    (scalars)), applied as ``((x - mean) / std) @ weights + bias``."""
    from alignkit.probe.transform import Transform

    path, _ = _path(source)
    return Transform.from_npz(path)
