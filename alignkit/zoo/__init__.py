"""Model tables: the models a study evaluated, as data.

A *model table* is a bundled CSV, one row per model, with what the figures of a
report plot accuracy against (family, training data and objective, ImageNet
top-1 accuracy, parameter count) and, where the model is public, the alignkit
model specification that builds it (``source``, ``weights``, ``layers``). The
tables are a registry (:data:`TABLES`): a new table is one CSV file in this
package and one entry there.

``paper2023`` is the model list of Muttenthaler et al. (ICLR 2023), "Human
alignment of neural network representations". Its names, ImageNet accuracies
and parameter counts are those of the authors' analysis code (the
``networks.csv`` of github.com/LukasMut/human_alignment, as updated on
2023-01-17 "for new weights"); the two plotting aliases there (``clip-ViT``,
``clip-RN``) are the same models as ``clip_ViT-B/32`` and ``clip_RN50`` and are
left out. The ImageNet figure of the self-supervised models is their linear
evaluation, that of the CLIP models CLIP's linear probe; an empty cell is one
the paper's table leaves empty. ``source`` is ``not public`` where no model
source can build the checkpoint the paper used, and the ``note`` says why.

Nothing here imports torch.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from alignkit.errors import InputError

__all__ = ["ModelCard", "TABLES", "NOT_PUBLIC", "table", "table_names", "card_for", "label_of",
           "study_toml"]

#: The ``source`` of a model that no model source can build.
NOT_PUBLIC = "not public"

#: Model tables by name: (bundled CSV file, one line saying what it is, the
#: odd-one-out preset its study scores with).
TABLES: dict[str, tuple[str, str, str]] = {
    "paper2023": ("paper2023.csv",
                  "the models of Muttenthaler et al. (ICLR 2023), with the figures of its code",
                  "paper2023"),
}

_COLUMNS = ("name", "family", "training", "data", "objective", "imagenet_top1", "n_params_m",
            "source", "weights", "layers", "note")


@dataclass(frozen=True)
class ModelCard:
    """One model of a table.

    Attributes:
        name: the model's name in the study that evaluated it.
        family: architecture or model family (``ResNet``, ``CLIP``, ``SSL``).
        training: the training regime the paper groups by (``image/text``,
            ``self-supervised``, ``supervised (ImageNet-1K)``, ...).
        data: the training data.
        objective: the training objective.
        imagenet_top1: ImageNet top-1 accuracy in percent, as the table gives it (None: empty).
        n_params: number of parameters (None: empty).
        source: the alignkit model specification, or :data:`NOT_PUBLIC`.
        weights: ``--weights`` for ``source``.
        layers: the layers the paper extracted (presets).
        note: what else to know (why a model is not public, what a figure means).
        table: the table's name.
    """

    name: str
    family: str
    training: str
    data: str
    objective: str
    imagenet_top1: float | None
    n_params: float | None
    source: str
    weights: str
    layers: tuple[str, ...]
    note: str
    table: str

    @property
    def public(self) -> bool:
        """Whether a model source builds this model by name (``source`` is a specification)."""
        return self.source != NOT_PUBLIC

    @property
    def label(self) -> str:
        """The name results use for this model (:func:`label_of`)."""
        return label_of(self.name)

    def attrs(self) -> dict[str, float]:
        """The numeric attributes a report plots accuracy against."""
        out: dict[str, float] = {}
        if self.imagenet_top1 is not None:
            out["imagenet_top1"] = self.imagenet_top1
        if self.n_params is not None:
            out["n_params"] = self.n_params
        return out

    def row(self) -> dict[str, Any]:
        """A flat row for tables and JSON."""
        return {"name": self.name, "family": self.family, "training": self.training,
                "data": self.data, "objective": self.objective,
                "imagenet_top1": self.imagenet_top1, "n_params": self.n_params,
                "source": self.source, "weights": self.weights or None,
                "layers": ",".join(self.layers) or None, "note": self.note or None}


def label_of(name: str) -> str:
    """A model name as a result label: characters other than ``A-Za-z0-9._+-`` become ``_``.

    The default ``label`` of a study's ``[[model]]`` (of the file name, for a path).
    """
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).lstrip("._+-") or "model"


def table_names() -> tuple[str, ...]:
    """The registered model tables."""
    return tuple(TABLES)


def table(name: str = "paper2023") -> tuple[ModelCard, ...]:
    """The rows of model table ``name``.

    Raises:
        InputError: no such table (the message lists them).
    """
    if name not in TABLES:
        raise InputError(f"unknown model table {name!r} (known: {', '.join(TABLES)})")
    return _read(name)


@cache
def _read(name: str) -> tuple[ModelCard, ...]:
    fname = TABLES[name][0]
    text = resources.files(__package__).joinpath(fname).read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise InputError(f"model table {fname}: columns {reader.fieldnames} are not {_COLUMNS}")
    out = []
    for i, r in enumerate(reader, start=2):
        def num(key: str, scale: float = 1.0, r: dict[str, str] = r, i: int = i) -> float | None:
            v = r[key].strip()
            if not v:
                return None
            x = float(v)
            if not math.isfinite(x) or x < 0:
                raise InputError(f"model table {fname} line {i}: {key} {v!r} is not a number >= 0")
            return x * scale

        out.append(ModelCard(
            name=r["name"], family=r["family"], training=r["training"], data=r["data"],
            objective=r["objective"], imagenet_top1=num("imagenet_top1"),
            n_params=num("n_params_m", 1e6), source=r["source"], weights=r["weights"],
            layers=tuple(x for x in r["layers"].split(";") if x), note=r["note"], table=name))
    return tuple(out)


def card_for(model: str, *, tables: tuple[str, ...] | None = None) -> ModelCard | None:
    """The table row of a model named by its table name, its result label or its source.

    A source matches only where one row has it (``resnet50``,
    ``open_clip:ViT-B-32:openai``), so that a store named after the
    specification finds its row.
    """
    for tname in tables or table_names():
        rows = table(tname)
        for c in rows:
            if model in (c.name, c.label):
                return c
        hits = [c for c in rows if c.public and c.source == model]
        if len(hits) == 1:
            return hits[0]
    return None


def _toml(s: str) -> str:
    """``s`` as a TOML basic string (control characters, which TOML forbids raw, as escapes)."""
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", lambda m: f"\\u{ord(m[0]):04x}", s) + '"'


def study_toml(name: str, *, images: str, store: str, triplets: str = "things-test20k",
               include_code: bool = False, device: str = "auto",
               batch_size: int = 32) -> tuple[str, list[ModelCard]]:
    """A study file sweeping every public model of table ``name`` (``alignkit sweep --preset``).

    Args:
        name: the model table.
        images: a THINGS image folder (one image per concept, layout ``things``).
        store: the embedding store the sweep writes.
        triplets: the triplet set scored, a bundled name or a file.
        include_code: include models whose source runs code that came with
            the specification (torch hub repositories); left out otherwise.
        device: the sweep's device.
        batch_size: images per forward pass.

    Returns:
        The TOML text and the public models left out (code-running ones when
        ``include_code`` is false).
    """
    from alignkit.extract.sources import source_for

    lines = [
        f"# Every public model of the {name} model table (alignkit models ls --preset {name}).",
        "# alignkit sweep --preset rewrites this file: copy it under another name to edit it.",
        "[sweep]", f"store = {_toml(store)}", f"device = {_toml(device)}",
        f"batch_size = {int(batch_size)}", "",
    ]
    left_out: list[ModelCard] = []
    for c in table(name):
        if not c.public or not c.layers:
            continue
        if source_for(c.source).runs_code and not include_code:
            left_out.append(c)
            continue
        lines += ["[[model]]", f"name = {_toml(c.source)}", f"weights = {_toml(c.weights or 'DEFAULT')}",
                  f"layers = [{', '.join(_toml(x) for x in c.layers)}]", f"label = {_toml(c.label)}", ""]
    lines += ["[[images]]", 'name = "things"', f"path = {_toml(images)}", 'layout = "things"', "",
              "[[triplets]]", f"name = {_toml(label_of(Path(triplets).stem))}",
              f"source = {_toml(triplets)}", f"preset = {_toml(TABLES[name][2])}", ""]
    return "\n".join(lines), left_out
