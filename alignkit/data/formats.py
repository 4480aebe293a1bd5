"""The published human-data formats by name: name -> reader and its convention.

The names are the ones the data registry (``alignkit.data.public``) gives each
release, so a downloaded file is read with ``read_format(path, entry.format)``;
``alignkit data info FILE --format NAME`` prints how a file is read with one.

Example:
    >>> from alignkit.data.formats import FORMATS, read_format
    >>> FORMATS["things-2023-raw"].kind
    'triplets'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from alignkit.data import images as _img
from alignkit.data import readers as _r
from alignkit.errors import InputError

__all__ = ["DataFormat", "FORMATS", "read_format", "describe", "guess_format"]


class DataFormat(NamedTuple):
    """One published format.

    Attributes:
        name: the format name.
        kind: what the reader returns: ``triplets``, ``rdm``, ``embedding``, ``transform``
            or ``images``.
        reader: ``reader(path, **options)``.
        convention: one line: how the file is read.
        confirmed: whether the layout was checked against the publishers' own code
            (``docs/data-formats.md`` says what was not).
    """

    name: str
    kind: str
    reader: Callable[..., Any]
    convention: str
    confirmed: bool = True


_F = DataFormat

#: Format name -> :class:`DataFormat`.
FORMATS: dict[str, DataFormat] = {f.name: f for f in (
    _F("things-2023-raw", "triplets", _r.read_things2023_raw,
       "THINGS 2023 raw CSV, tab separated with header; image1..3 1-based canonical THINGS "
       "indices, choice = position 1-3 of the odd one out (moved last); subject_id, noise_ceiling "
       "(0 ordinary, 1-3 repeats) and dataset kept per judgment"),
    _F("things-2023-split", "triplets", _r.read_things2023_split,
       "THINGS 2023 derived split (trainset.txt, validationset.txt, testset1/2/3.txt, "
       "testset2_repeat.txt): space separated, 0-based canonical, odd one out last"),
    _F("brainscore-validation", "triplets", _r.read_brainscore_validation,
       "Brain-Score Hebart2023 validationset.csv: header img1,img2,ooo, 0-based canonical, "
       "ooo = odd one out (placed last)"),
    _F("things-2020-batch", "triplets", _r.read_things2020_batch,
       "THINGS 2020 data1854_batch5_test10.txt: space separated, 0-based, odd one out in column 3; "
       "object order not confirmed: no ids unless a sortindex or canonical=True is given",
       confirmed=False),
    _F("spose-text", "embedding", _r.read_spose_text,
       "SPoSE embedding text: space separated floats, one object a row, canonical THINGS order"),
    _F("vice-npz", "embedding", _r.read_vice,
       "VICE pruned_params.npz (pruned_loc = embedding, pruned_scale ignored) or parameters.npz "
       "(loc), or SPoSE-style text"),
    _F("vice-npy", "embedding", _r.read_vice,
       "VICE embedding as a plain .npy array (objects x dimensions, float32, canonical THINGS "
       "order; the published 1854 x 42 file)"),
    _F("rdm48-mat", "rdm", _r.read_rdm48_mat,
       "RDM48_triplet.mat: key RDM48_triplet, 48 x 48 dissimilarities, rows in rdm48_order.tsv order"),
    _F("rdm48-splithalf-mat", "rdm", _r.read_rdm48_splithalf,
       "RDM48_triplet_splithalf.mat: keys RDM48_triplet_split1 / _split2 (split=1 or 2), 48 x 48 "
       "dissimilarities, rows in rdm48_order.tsv order"),
    _F("mat-rdm", "rdm", _r.read_mat_rdm,
       ".mat RDM: key= variable or rsatoolbox model name (e.g. 92_modelRDMs.mat monkeyIT); square, "
       "condensed or a participants stack averaged over axis 0"),
    _F("cichy2019", "rdm", _r.read_cichy2019,
       "Cichy et al. 2019 judgments_general.mat: judgments (participants x 118 x 118), mean over axis 0"),
    _F("king2019", "rdm", _r.read_king2019,
       "King et al. 2019 BEHAVIOR.mat: BEHAVIOR[set][0,0]['pairwisedistances'][0,0] (participants x "
       "condensed pdist vector), mean over axis 0, squareform; set_name set1 or set2"),
    _F("peterson-mat", "rdm", _r.read_peterson,
       "Peterson et al. 2016/2018 .mat: the variable whose name contains 'sim' is a SIMILARITY "
       "matrix, converted to dissimilarities as max(S) - S"),
    _F("alignet-npz", "triplets", _r.read_alignet,
       "AligNet .npz: filenames (n, 3) with the odd one out last, similarities [s01, s02, s12], "
       "indices (tfds imagenet2012); object ids = file names without extension, sorted"),
    _F("levels", "triplets", _r.read_levels,
       "Levels jsPsych records: exp_trial rows, image1Path..image3Path, selected_image = odd one "
       "out (moved last); level coarse/fine/boundary per judgment; subject_id kept",
       confirmed=False),
    _F("glocal-npz", "transform", _r.read_glocal,
       "gLocal transform .npz: weights (p x p), bias (p,), mean, std (scalars); "
       "((x - mean) / std) @ weights + bias"),
    _F("images-zip", "images", _img.read_images_zip,
       "THINGS image zip (password from ALIGNKIT_THINGS_PASSWORD), read in place; concept = "
       "folder uniqueID or file-name prefix"),
    _F("images-folder", "images", _img.read_images_folder,
       "THINGS image folder: one folder per concept or images named <concept>[_NNx].jpg"),
)}


def read_format(source: Any, name: str, **options: Any) -> Any:
    """Read ``source`` with the reader of format ``name`` (options go to the reader).

    Raises:
        InputError: an unknown format name.
    """
    fmt = FORMATS.get(name)
    if fmt is None:
        raise InputError(f"unknown data format {name!r}; expected one of {', '.join(FORMATS)}")
    return fmt.reader(source, **options)


def describe(obj: Any, name: str | None = None) -> dict[str, Any]:
    """A JSON-able summary of what a reader returned, with the format's name."""
    if hasattr(obj, "info"):
        info = dict(obj.info())
    else:  # a probe Transform
        w = obj.weights
        info = {
            "kind": "transform",
            "source": obj.label,
            "shape": list(w.shape),
            "bias": obj.bias is not None,
            "mean": float(obj.mean) if getattr(obj.mean, "ndim", 0) == 0 else "per dimension",
            "std": float(obj.std) if getattr(obj.std, "ndim", 0) == 0 else "per dimension",
            "convention": "((x - mean) / std) @ weights + bias",
        }
    if name is not None:
        info = {"format": name, **info}
        fmt = FORMATS[name]
        if not fmt.confirmed:
            info["layout_confirmed"] = "partly (see docs/data-formats.md)"
    return info


def guess_format(source: Any) -> str | None:
    """The published format a file evidently is (by its keys or header), or None.

    ``.npz`` files: ``filenames`` -> ``alignet-npz``, ``pruned_loc``/``loc`` -> ``vice-npz``,
    ``weights`` and ``mean`` -> ``glocal-npz``; a text file whose header names ``image1``,
    ``image2``, ``image3`` and ``choice`` -> ``things-2023-raw``; jsPsych records (JSON, JSON
    lines or CSV, or a folder of them) naming ``image1Path`` and ``selected_image`` ->
    ``levels``. Anything else (plain triplet
    tables, RDMs, embeddings) is left to the generic readers.
    """
    import os
    from pathlib import Path

    import numpy as np

    if not isinstance(source, (str, os.PathLike)):
        return None
    path = Path(source)
    if path.is_dir():
        first = next((p for p in sorted(path.rglob("*"))
                      if p.is_file() and p.suffix.lower() in (".json", ".jsonl", ".csv", ".tsv")),
                     None)
        return "levels" if first is not None and _levels_records(first) else None
    if not path.is_file():
        return None
    ext = path.suffix.lower()
    if ext in (".json", ".jsonl", ".csv", ".tsv") and _levels_records(path):
        return "levels"
    if ext == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
        except (OSError, ValueError):
            return None
        if "filenames" in keys:
            return "alignet-npz"
        if keys & {"pruned_loc", "loc"}:
            return "vice-npz"
        if {"weights", "mean"} <= keys:
            return "glocal-npz"
        return None
    if ext in (".csv", ".tsv", ".txt"):
        try:
            with open(path, encoding="utf-8-sig", errors="replace") as fh:
                first = fh.readline()
        except OSError:
            return None
        cols = {c.strip() for c in first.replace(",", "\t").split("\t")}
        if {"image1", "image2", "image3", "choice"} <= cols:
            return "things-2023-raw"
    return None


def _levels_records(path: Any) -> bool:
    """Whether a file's head names the Levels records' ``image1Path`` and ``selected_image``."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    return "image1Path" in head and "selected_image" in head
