"""Zero-shot odd-one-out accuracy of a representation on human triplets.

For a triplet ``(i, j, k)`` (the human chose ``k`` as the odd one out) the
model's odd one out is the item outside its most similar pair. Accuracy is the
fraction of triplets where the two agree. Exact ties between the most similar
pairs follow a named rule (:mod:`alignkit._kernels.ties`): ``paper`` (the
paper's code: a two-way tie goes to the first pair in ``[s_ij, s_ik, s_jk]``,
only a three-way tie is wrong; the default), ``first`` (Brain-Score: first
maximum) or ``any-tie-wrong``; two-way and three-way ties are always counted.
A named preset (:mod:`alignkit.score.presets`) sets the similarity, tie rule
and ceiling of a published protocol at once. The noise ceiling belongs to the
data: the THINGS ceiling applies only to triplets whose object ids are THINGS
concepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alignkit._kernels.device import resolve_device
from alignkit.errors import InputError, MismatchError
from alignkit.provenance import base_provenance, sha256_array
from alignkit.score._common import CHANCE, as_features, jsonable, resolve_ties
from alignkit.score.align import align_triplets
from alignkit.score.presets import PRESETS, normalise
from alignkit.validate import as_triplets

__all__ = [
    "OddOneOutResult",
    "ConceptBreakdown",
    "odd_one_out",
    "concept_breakdown",
    "assign_concepts",
    "DEFAULT_MEMORY_BUDGET",
]

#: What a result's provenance names as its protocol.
PROTOCOL = "zero-shot odd-one-out (Muttenthaler et al. 2023)"
#: Largest n x n float64 similarity matrix (bytes) built before switching to
#: the direct per-triplet path.
DEFAULT_MEMORY_BUDGET = 2 << 30


@dataclass
class ConceptBreakdown:
    """Accuracy per human concept dimension (the paper's concept-level analysis).

    Each triplet is assigned to the dimension that dominates its human-chosen
    similar pair: the argmax of the mean of the two objects' rows of a
    non-negative concept embedding (SPoSE or VICE). With a bootstrap, ``ci_low`` and
    ``ci_high`` hold each dimension's percentile interval from the same resamples of the
    triplets as the overall accuracy's (a resample's accuracy of a dimension over the
    dimension's triplets it drew). Dimensions with fewer than ``min_count`` triplets get
    no accuracy and no interval (their counts are kept).
    """

    labels: list[str]
    counts: np.ndarray
    n_correct: np.ndarray
    source: str
    top: int = 1
    min_count: int = 1
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    ci_level: float = 0.95
    n_bootstrap: int = 0

    @property
    def accuracy(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.n_correct / np.maximum(self.counts, 1), np.nan)

    def rows(self) -> list[dict[str, Any]]:
        acc = self.accuracy
        out = []
        for d in range(len(self.labels)):
            enough = self.counts[d] >= max(self.min_count, 1)
            row = {
                "dimension": d + 1,
                "label": self.labels[d],
                "triplets": int(self.counts[d]),
                "correct": int(self.n_correct[d]),
                "accuracy": None if not (enough and np.isfinite(acc[d])) else float(acc[d]),
            }
            if self.ci_low is not None and self.ci_high is not None:
                lo, hi = self.ci_low[d], self.ci_high[d]
                ok = enough and np.isfinite(lo) and np.isfinite(hi)
                row["ci_low"] = float(lo) if ok else None
                row["ci_high"] = float(hi) if ok else None
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "top": self.top,
                               "min_count": self.min_count, "dimensions": self.rows()}
        if self.ci_low is not None:
            out.update(ci_level=self.ci_level, n_bootstrap=self.n_bootstrap)
        return out


@dataclass
class OddOneOutResult:
    """The outcome of scoring one representation on a triplet set.

    Attributes:
        accuracy: fraction of triplets where the model's odd one out is the human's.
        n_triplets, n_correct: counts.
        n_ties2, n_ties3: two-way and three-way ties at the top (counted whatever the tie
            rule); ``n_ties`` is their sum.
        ties: the tie rule applied (``paper``, ``first`` or ``any-tie-wrong``).
        preset: the named protocol used (None: the defaults), ``overrides`` the options
            given explicitly beside it.
        ceiling, ceiling_source: the noise ceiling and where it comes from (None: no
            ceiling is known for these triplets).
        normalised: ``max(0, (accuracy - 1/3) / (ceiling - 1/3))`` (clipped to 1 under the
            ``brainscore`` preset) or None without a ceiling.
        in_sample: True when a probe transform was scored on the triplets it was trained
            on (None: no transform, or unknown).
        notes: plain statements about the number (why there is no ceiling, ties, subsets).
        ci_low, ci_high: percentile bootstrap interval (None without bootstrap).
        choices: per-triplet int8 choices (0, 1, 2 = position of the model's odd one
            out, -1 = tie), only when requested.
        correct: per-triplet uint8 correctness, only when requested.
        provenance: inputs' checksums, options and versions.
    """

    accuracy: float
    n_triplets: int
    n_correct: int
    n_ties: int
    similarity: str
    ties: str
    ceiling: float | None
    normalised: float | None
    n_ties2: int = 0
    n_ties3: int = 0
    preset: str | None = None
    overrides: list[str] = field(default_factory=list)
    ceiling_source: str | None = None
    in_sample: bool | None = None
    notes: list[str] = field(default_factory=list)
    chance: float = CHANCE
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float = 0.95
    n_bootstrap: int = 0
    seed: int | None = None
    device: str = "cpu"
    method: str = "gram"
    model: str | None = None
    layer: str | None = None
    per_concept: ConceptBreakdown | None = None
    per_group: Any = None
    choices: np.ndarray | None = field(default=None, repr=False)
    correct: np.ndarray | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, include_arrays: bool = False) -> dict[str, Any]:
        """A JSON-able dict; per-triplet arrays only with ``include_arrays``."""
        out = jsonable(
            {k: v for k, v in self.__dict__.items()
             if k not in ("choices", "correct", "per_concept", "per_group")}
        )
        out["per_concept"] = self.per_concept.to_dict() if self.per_concept is not None else None
        out["per_group"] = self.per_group.to_dict() if self.per_group is not None else None
        if include_arrays:
            out["choices"] = None if self.choices is None else self.choices.tolist()
            out["correct"] = None if self.correct is None else self.correct.tolist()
        return out

    def row(self) -> dict[str, Any]:
        """One flat table row (for ``--format table|csv``)."""
        return {
            "model": self.model,
            "layer": self.layer,
            "similarity": self.similarity,
            "ties": self.ties,
            "preset": self.preset,
            "triplets": self.n_triplets,
            "accuracy": self.accuracy,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "ties_2way": self.n_ties2,
            "ties_3way": self.n_ties3,
            "normalised": self.normalised,
            "ceiling": self.ceiling,
        }


def _triplet_array(triplets: Any) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
    """Accept an ``alignkit.data.Triplets`` or an (N, 3) integer array; also return the
    triplets' object ids (None when unknown). The index range is checked by the alignment."""
    info: dict[str, Any] = {}
    ids = None
    T = as_triplets(triplets, None, name="triplets", dtype=None)
    if hasattr(triplets, "array") and hasattr(triplets, "n_objects"):
        ids = getattr(triplets, "object_ids", None)
        info = {
            "source": getattr(triplets, "source", None),
            "checksum": getattr(triplets, "checksum", None),
            "n_objects": int(triplets.n_objects),
            "convention": getattr(triplets, "convention", None),
        }
    else:
        info = {"source": "<array>", "checksum": sha256_array(np.asarray(triplets))}
    if T.size == 0:
        T = T.astype(np.int32)
    return T, info, ids


def assign_concepts(triplets: np.ndarray, embedding: np.ndarray, top: int = 1) -> np.ndarray:
    """Dimension that dominates each triplet's human-chosen similar pair.

    Args:
        triplets: (N, 3) indices, odd one out last (so ``(i, j)`` is the similar pair).
        embedding: (n, d) non-negative human concept embedding (SPoSE/VICE).
        top: 1 for the argmax dimension; 2 returns the two largest, (N, 2).

    Returns:
        int64 array (N,) (or (N, top)) of dimension indices.
    """
    E = np.asarray(embedding, dtype=np.float64)
    T = np.asarray(triplets)
    out = np.empty((len(T), top) if top > 1 else len(T), dtype=np.int64)
    block = 1 << 18  # bounded memory: block x d float64
    for s in range(0, len(T), block):
        t = T[s : s + block]
        m = E[t[:, 0]] + E[t[:, 1]]  # the mean up to a factor 2: same argmax
        if top == 1:
            out[s : s + block] = np.argmax(m, axis=1)
        else:
            part = np.argpartition(-m, top - 1, axis=1)[:, :top]
            order = np.argsort(-np.take_along_axis(m, part, axis=1), axis=1, kind="stable")
            out[s : s + block] = np.take_along_axis(part, order, axis=1)
    return out


def concept_breakdown(
    triplets: np.ndarray,
    correct: np.ndarray,
    embedding: np.ndarray,
    labels: list[str] | None = None,
    *,
    source: str = "<array>",
    min_count: int = 1,
    n_bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
) -> ConceptBreakdown:
    """Per-dimension accuracy and counts (see :class:`ConceptBreakdown`).

    Args:
        min_count: dimensions with fewer triplets get no accuracy (nor interval).
        n_bootstrap, seed, ci_level: a percentile bootstrap interval per dimension, from the
            resamples :func:`alignkit._kernels.bootstrap.bootstrap_means` draws with ``seed``
            (0 resamples: none).

    Raises:
        InputError: ``min_count`` or ``n_bootstrap`` not an integer >= 1 / >= 0.
    """
    for name, value, low in (("min_count", min_count, 1), ("n_bootstrap", n_bootstrap, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    E = np.asarray(embedding, dtype=np.float64)
    T = np.asarray(triplets)
    if T.size and int(T.max()) >= E.shape[0]:
        raise MismatchError(
            f"the concept embedding has {E.shape[0]} rows but the triplets index object {int(T.max())}"
        )
    d = E.shape[1]
    labels = list(labels) if labels is not None else [f"dim{i + 1}" for i in range(d)]
    if len(labels) != d:
        raise MismatchError(f"{len(labels)} labels for a {d}-dimensional concept embedding")
    dims = assign_concepts(T, E)
    counts = np.bincount(dims, minlength=d).astype(np.int64)
    hits = np.bincount(dims, weights=np.asarray(correct, dtype=np.float64), minlength=d)
    out = ConceptBreakdown(labels, counts, np.rint(hits).astype(np.int64), source,
                           min_count=int(min_count))
    if n_bootstrap > 0 and len(T):
        from alignkit._kernels import bootstrap as kboot

        boot = kboot.bootstrap_groups(np.asarray(correct, dtype=np.uint8), dims, d,
                                      int(n_bootstrap), seed)
        lo, hi = np.full(d, np.nan), np.full(d, np.nan)
        for k in range(d):
            vals = boot[:, k][np.isfinite(boot[:, k])]
            if counts[k] and vals.size:
                lo[k], hi[k] = kboot.percentile_ci(vals, ci_level)
        out.ci_low, out.ci_high = lo, hi
        out.ci_level, out.n_bootstrap = float(ci_level), int(n_bootstrap)
    return out


def _concept_inputs(concepts: Any) -> tuple[np.ndarray, list[str] | None, str]:
    if isinstance(concepts, str):
        from alignkit.data import load_embedding

        concepts = load_embedding(concepts)
    if hasattr(concepts, "values") and hasattr(concepts, "labels"):
        return (
            np.asarray(concepts.values),
            list(concepts.labels),
            str(getattr(concepts, "source", "<embedding>")),
        )
    return np.asarray(concepts), None, "<array>"


def odd_one_out(
    features: Any,
    triplets: Any,
    options: Any = None,
    *,
    ids: Any = None,
    object_ids: Any = None,
    by_position: bool = False,
    subset: str = "all",
    per_triplet: bool = False,
    concepts: Any = None,
    concept_min_count: int = 1,
    groups: Any = None,
    device: str = "auto",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    model: str | None = None,
    layer: str | None = None,
    features_checksum: str | None = None,
    provenance: dict[str, Any] | None = None,
    **option_values: Any,
) -> OddOneOutResult:
    """Zero-shot odd-one-out accuracy of ``features`` on human ``triplets``.

    Args:
        features: (n, p) array of feature rows.
        triplets: an :class:`alignkit.data.Triplets` or an (N, 3) integer array,
            odd one out last.
        options: an :class:`alignkit.measures.ooo.OddOneOutOptions` (or a mapping of its
            fields: ``preset``, ``similarity``, ``ties``, ``ceiling``, ``bootstrap``,
            ``ci_level``, ``seed``, described there); the same names as keywords set or
            override single options.
        ids: the stimulus ids of the feature rows, matched by id to the triplets' objects
            (their ``object_ids``, or ``object_ids=``); without, row ``t`` is object ``t``.
        object_ids: the ids of the triplets' objects 0..n-1, overriding the triplets' own.
        by_position: pair object ``t`` with row ``t`` even when ``ids`` are given.
        subset: ``"all"`` (refuse when objects lack features) or ``"covered"`` (score the
            triplets whose objects all have features; the counts are recorded).
        per_triplet: keep per-triplet choices and correctness in the result.
        concepts: a concept embedding (a name such as ``"spose-49d"``, a ``ConceptEmbedding``
            or an (n, d) array) for the per-dimension breakdown (with bootstrap intervals per
            dimension when ``bootstrap`` is set).
        concept_min_count: dimensions of the breakdown with fewer triplets get no accuracy.
        groups: a per-triplet grouping for the per-group breakdown (``per_group``): the name
            of a column the triplets carry (``"level"`` of the Levels data), a label file
            (``FILE`` or ``FILE:COLUMN``) or one label per triplet (see
            :func:`alignkit.score.groups.group_labels`); groups of triplets left out by
            ``subset="covered"`` lose those triplets too.
        device: ``auto``, ``cpu`` or ``cuda``.
        memory_budget: bytes allowed for the n x n similarity matrix (above: per triplet).
        features_checksum: the features' checksum when the caller knows it (a store
            entry's); computed otherwise, as :func:`alignkit.provenance.features_checksum`.

    Returns:
        An :class:`OddOneOutResult`.

    Example:
        >>> from alignkit.data import load_embedding, load_triplets
        >>> emb = load_embedding("spose-49d")
        >>> odd_one_out(emb.values, load_triplets("things-test20k"), similarity="dot").accuracy
        0.63475
    """
    proto = _protocol(options, option_values)
    X, T, tinfo, t_ids, al, checksum = _aligned(
        features, triplets, ids=ids, object_ids=object_ids, by_position=by_position,
        subset=subset, where=f"entry {model}/{layer}" if model is not None else "features",
        checksum=features_checksum)
    ceiling, ceiling_source, notes = _resolve_ceiling(
        proto.options.ceiling, proto.base, proto.preset, _things_triplets(T, t_ids))
    concept_in = _concept_inputs(concepts) if concepts is not None else None  # fail fast
    group_in = None
    if groups is None:
        groups = proto.options.group_by
    if groups is not None:
        from alignkit.score.groups import group_labels

        gl = group_labels(groups, triplets)
        group_in = (gl.labels if al.keep is None else gl.labels[al.keep], gl.source)
    dev, opts, N = resolve_device(device), proto.options, len(T)
    c = _counted(X, T, proto, dev, memory_budget, per_triplet, concept_in, group_in,
                 concept_min_count)
    accuracy = c.n_correct / N if N else float("nan")
    notes += _count_notes(c.n2, c.n3, proto.ties, al)
    seed = opts.seed if opts.bootstrap else None
    prov = base_provenance(**proto.provenance(), features_checksum=checksum, triplets=tinfo,
                           seed=seed, ceiling=ceiling, ceiling_source=ceiling_source,
                           device=dev, method=c.method, **al.info)
    if group_in is not None:
        prov["groups"] = {"source": group_in[1], "labels_checksum": sha256_array(
            np.asarray(group_in[0]).astype("U"))}
    return OddOneOutResult(
        accuracy=accuracy, n_triplets=N, n_correct=c.n_correct, n_ties=c.n2 + c.n3,
        n_ties2=c.n2, n_ties3=c.n3, similarity=proto.similarity, ties=proto.ties,
        preset=proto.preset, overrides=proto.overrides, ceiling=ceiling,
        ceiling_source=ceiling_source,
        normalised=None if N == 0 else normalise(accuracy, ceiling,
                                                 clip=proto.base.clip_normalised),
        notes=notes, ci_low=c.ci_low, ci_high=c.ci_high, ci_level=opts.ci_level,
        n_bootstrap=opts.bootstrap, seed=seed, device=dev, method=c.method, model=model,
        layer=layer, per_concept=c.breakdown, per_group=c.groups, choices=c.choices if per_triplet else None,
        correct=c.correct if per_triplet else None, provenance={**prov, **(provenance or {})},
    )


@dataclass
class _Counted:
    """What the kernels gave: counts, per-triplet arrays, the interval and the breakdown."""

    n_correct: int
    n2: int
    n3: int
    choices: np.ndarray | None
    correct: np.ndarray | None
    method: str
    ci_low: float | None = None
    ci_high: float | None = None
    breakdown: ConceptBreakdown | None = None
    groups: Any = None


def _counted(X: np.ndarray, T: np.ndarray, proto: _Protocol, dev: str, memory_budget: int,
             per_triplet: bool, concept_in: tuple[Any, Any, str] | None,
             group_in: tuple[np.ndarray, str] | None = None,
             min_count: int = 1) -> _Counted:
    """Score, then the bootstrap interval and the per-concept breakdown when asked for."""
    opts = proto.options
    c = _Counted(*_score(X, T, proto.similarity, proto.ties, dev, memory_budget,
                         per_triplet, opts.bootstrap > 0 or concept_in is not None
                         or group_in is not None))
    if opts.bootstrap > 0 and len(T) > 0:
        c.ci_low, c.ci_high = _bootstrap_ci(c.correct, opts.bootstrap, opts.seed,
                                            opts.ci_level, dev)
    if concept_in is not None:
        assert c.correct is not None
        E, labels, source = concept_in
        c.breakdown = concept_breakdown(T, c.correct, E, labels, source=source,
                                        min_count=min_count, n_bootstrap=opts.bootstrap,
                                        seed=opts.seed, ci_level=opts.ci_level)
    if group_in is not None:
        from alignkit.score.groups import group_breakdown

        assert c.correct is not None
        c.groups = group_breakdown(c.correct, group_in[0], source=group_in[1],
                                   n_bootstrap=opts.bootstrap, seed=opts.seed,
                                   ci_level=opts.ci_level)
    return c


def _aligned(features: Any, triplets: Any, *, ids: Any, object_ids: Any, by_position: bool,
             subset: str, where: str, checksum: str | None) -> tuple[Any, ...]:
    """Validated features with row ``t`` = object ``t`` of the (kept) triplets.

    Returns ``(X, T, triplet info, triplet object ids, alignment, features checksum)``;
    the checksum is of the features as given (the caller's when it knows it).
    """
    from alignkit.provenance import features_checksum

    X = as_features(features)
    T, tinfo, t_ids = _triplet_array(triplets)
    if object_ids is not None:
        t_ids = np.asarray(object_ids).astype(str)
    al = align_triplets(T, X.shape[0], feature_ids=ids, object_ids=t_ids,
                        by_position=by_position, subset=subset, where=where)
    checksum = checksum or features_checksum(X)
    if al.rows is not None:
        X = X[np.maximum(al.rows, 0)]  # row t = object t; rows of absent objects are unused
    if al.keep is not None:
        T = np.ascontiguousarray(T[al.keep])
    return X, T, tinfo, t_ids, al, checksum


@dataclass(frozen=True)
class _Protocol:
    """The options of one scoring, with the preset's choices filled in."""

    options: Any
    base: Any
    preset: str | None
    similarity: str
    ties: str
    overrides: list[str]

    def provenance(self) -> dict[str, Any]:
        return {"similarity": self.similarity, "ties": self.ties, "preset": self.preset,
                "overrides": self.overrides, "bootstrap": self.options.bootstrap,
                "protocol": PROTOCOL}


def _protocol(options: Any, values: dict[str, Any]) -> _Protocol:
    """Validated options; the similarity and tie rule the preset gives where none is given."""
    from alignkit.measures import get_measure

    opts = get_measure("ooo").options(options, **values)
    base = PRESETS[opts.preset or "paper2023"]
    overrides = [
        name
        for name, value, preset_value in (
            ("similarity", opts.similarity, base.similarity),
            ("ties", opts.ties, base.ties),
            ("ceiling", opts.ceiling, base.things_ceiling),
        )
        if opts.preset is not None and value is not None and not _is_auto(value)
        and value != preset_value
    ]
    return _Protocol(opts, base, opts.preset, opts.similarity or base.similarity,
                     resolve_ties(opts.ties or base.ties, option="ties"), overrides)


def _things_triplets(T: np.ndarray, t_ids: np.ndarray | None) -> bool:
    """Whether every object the triplets use is a THINGS concept (by id)."""
    from alignkit.data.triplets import all_things_ids

    return t_ids is not None and all_things_ids(t_ids[np.unique(T)] if T.size else t_ids)


def _count_notes(n2: int, n3: int, ties: str, al: Any) -> list[str]:
    """Plain statements about ties at the top and about triplets left out."""
    notes = []
    if n2 + n3:
        notes.append(
            f"{n2} two-way and {n3} three-way exact ties at the top; the accuracy depends on "
            f"the tie rule ({ties}: {_rule_summary(ties)})"
        )
    if al.keep is not None:
        notes.append(
            f"scored the {al.info['n_triplets_kept']} of {al.info['n_triplets_given']} triplets "
            f"whose objects all have features ({al.info['n_objects_missing']} objects missing)"
        )
    return notes


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == "auto"


def _rule_summary(ties: str) -> str:
    from alignkit._kernels.ties import TIE_RULES as RULES

    return RULES[ties].summary


def _resolve_ceiling(
    ceiling: float | str | None, base: Any, preset: str | None, is_things: bool
) -> tuple[float | None, str | None, list[str]]:
    """The ceiling to normalise by, where it comes from, and a note when there is none."""
    if isinstance(ceiling, str):
        if ceiling != "auto":
            raise InputError(f"--ceiling must be a number, 'auto' or 'none'; got {ceiling!r}")
        if is_things:
            how = f"preset {preset}" if preset else "the default for THINGS triplets"
            return base.things_ceiling, f"{base.ceiling_source}; {how}", []
        return None, None, [
            "no noise ceiling: the triplets are not THINGS triplets (by their object ids), and "
            "a ceiling belongs to its data set; give --ceiling or compute one with "
            "'alignkit data ceiling'"
        ]
    if ceiling is None:
        return None, None, ["no normalised score: --ceiling none"]
    if hasattr(ceiling, "n_repeated"):  # an OddOneOutCeiling computed from repeated triplets
        if ceiling.ceiling is None:
            raise InputError(f"{ceiling.source}: no repeated triplets, so no ceiling")
        return float(ceiling.ceiling), (
            f"computed from {ceiling.source} ({ceiling.n_repeated} repeated triplets, "
            f"{ceiling.n_responses} responses)"
        ), []
    return float(ceiling), "given (--ceiling)", []


def _score(
    X: np.ndarray, T: np.ndarray, similarity: str, ties: str, dev: str, memory_budget: int,
    per_triplet: bool, need_correct: bool,
) -> tuple[int, int, int, np.ndarray | None, np.ndarray | None, str]:
    """``(n_correct, n_ties2, n_ties3, choices, correct, method)`` on the chosen device."""
    from alignkit._kernels import similarity as ksim
    from alignkit._kernels.backends import backend

    use_gram = ksim.gram_bytes(X.shape[0]) <= memory_budget
    method = "gram" if use_gram else "direct"
    n_correct, n2, n3, choices, correct = backend("odd_one_out", dev)(
        X, T, similarity, ties, use_gram=use_gram, per_triplet=per_triplet,
        need_correct=need_correct or per_triplet,
    )
    return int(n_correct), int(n2), int(n3), choices, correct, method


def _bootstrap_ci(
    correct: np.ndarray | None, n_boot: int, seed: int, ci_level: float, dev: str
) -> tuple[float, float]:
    from alignkit._kernels import bootstrap as kboot
    from alignkit._kernels.backends import backend

    assert correct is not None
    means = backend("bootstrap_means", dev)(correct, n_boot, seed)
    lo, hi = kboot.percentile_ci(means, ci_level)
    return float(lo), float(hi)
