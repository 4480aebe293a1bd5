"""Model sources: the registry of every way a user can name a model.

A *model source* turns a model specification (the ``MODEL`` argument of
``alignkit extract``, a study's ``[[model]] name``, the ``spec`` of
:func:`~alignkit.extract.models.load_model`) into a network. Each source is one
small object, a :class:`ModelSource`, declared in its own module of this
package and registered here once; ``load_model``, ``--list-layers``, the
``--trust-code`` checks, the study parser and the command-line help ask the
registry, so adding a source is one new file and one entry in
:data:`_BUILTIN` (or one :func:`register_source` call from outside)::

    from alignkit.extract.sources import ModelSource, ResolvedWeights, register_source

    class Toy(ModelSource):
        name = "toy"
        prefix = "toy"
        forms = ("toy:WIDTH",)
        help = "a tiny MLP of the given width"

        def build(self, spec, weights):
            from torch import nn
            from alignkit.extract.models import LoadedModel
            width = int(self.rest(spec))
            net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 224 * 224, width), nn.ReLU(),
                                nn.Linear(width, 10))
            return LoadedModel(net.eval(), spec, self.name, weights.id)

    register_source(Toy())

Finding the source of a specification: a source with a ``prefix`` owns every
``PREFIX:...`` spec; the sources without one are asked in turn
(:meth:`ModelSource.matches`), the most recently registered first, so the
built-in catch-alls (TorchScript files, then ``module:factory``, then
torchvision names) come last.

Nothing here imports torch: sources import what they need inside
:meth:`ModelSource.resolve_weights` and :meth:`ModelSource.build`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from alignkit.errors import InputError, ModelError

if TYPE_CHECKING:
    from alignkit.extract.models import LoadedModel

__all__ = [
    "ModelSource",
    "ResolvedWeights",
    "register_source",
    "unregister_source",
    "sources",
    "get_source",
    "source_for",
    "spec_forms",
    "source_problems",
]


@dataclass(frozen=True)
class ResolvedWeights:
    """What ``--weights`` means for one model, decided before the model is built.

    Attributes:
        id: the weights id recorded with every store entry (``none``,
            ``IMAGENET1K_V1``, ``file:mine.pth``, ``factory``, ...).
        file: a local file the weights are read from (its checksum is recorded).
        offline: never download while building.
        handle: the source's own reference (torchvision: the weights enum member).
    """

    id: str
    file: Path | None = None
    offline: bool = False
    handle: Any = None


class ModelSource:
    """One way of naming and building a model.

    Subclasses set the class attributes and implement :meth:`build`; the other
    methods have defaults that fit a ``PREFIX:NAME`` source whose weights are
    ``none`` (random initialisation, decided by the seed) or its own default.

    Attributes:
        name: the source's name, recorded as the store entry's ``model.source``.
        prefix: the ``PREFIX`` of ``PREFIX:NAME`` specs this source owns, or
            None for a source recognised by :meth:`matches`.
        forms: how a user writes a spec of this source, for help and messages
            (``("timm:NAME",)``).
        help: one line saying what the source is.
        runs_code: whether building or running the model executes code that
            came with the spec (a factory, a TorchScript file); such specs need
            ``--trust-code`` for commands that only look (docs/security.md).
        layer_presets: preset name -> layer for every model of this source,
            overriding the rule of :mod:`alignkit.extract.layers` (keys are
            names of :data:`alignkit.extract.layer_presets.LAYER_PRESETS`).
    """

    name: ClassVar[str]
    prefix: ClassVar[str | None] = None
    forms: ClassVar[tuple[str, ...]]
    help: ClassVar[str]
    runs_code: ClassVar[bool] = False
    layer_presets: ClassVar[Mapping[str, str]] = {}

    def matches(self, spec: str) -> bool:
        """Whether ``spec`` is written in this source's form (no import, no file read)."""
        return self.prefix is not None and spec.startswith(f"{self.prefix}:")

    def rest(self, spec: str) -> str:
        """The part of ``spec`` after ``PREFIX:`` (the whole spec for a source without a prefix)."""
        return spec[len(self.prefix) + 1:] if self.prefix and self.matches(spec) else spec

    def check(self, spec: str, weights: str) -> str | None:
        """Why ``spec`` cannot be built, or None if it looks buildable.

        Cheap and safe: imports no model code (the study parser calls it on
        every ``[[model]]`` before any work starts).
        """
        if self.prefix is not None and not self.rest(spec).strip():
            return f"{spec!r}: no name after {self.prefix}: (expected {' or '.join(self.forms)})"
        return None

    def code_kind(self, spec: str) -> str:
        """What code ``spec`` runs, for messages (``"a Python factory (nets.py)"``).

        Only asked when :attr:`runs_code` is true.
        """
        return f"a {self.name} model"

    def seed_decides_weights(self, spec: str, weights: str) -> bool:
        """Whether ``--seed`` decides the built weights (random initialisation, a factory)."""
        return weights.strip().lower() == "none"

    def rebase(self, spec: str, base: Path) -> str:
        """``spec`` with relative file names resolved against ``base`` (a study file's folder)."""
        return spec

    def listing(self, spec: str, weights: str) -> tuple[str, str]:
        """The spec and weights ``--list-layers`` builds for ``spec`` with ``weights``.

        Weights change no layer name or shape, so by default ``DEFAULT`` is
        listed from a random-init copy (``none``) and nothing is downloaded.
        """
        return spec, "none" if weights == "DEFAULT" else weights

    def resolve_weights(self, spec: str, weights: str, offline: bool) -> ResolvedWeights:
        """Decide what ``weights`` means for ``spec``, failing fast before anything is built.

        The default accepts ``none`` and ``DEFAULT``.

        Raises:
            InputError: weights this source does not understand.
            WeightsUnavailableError: weights neither cached nor downloadable.
        """
        w = weights.strip()
        if w.lower() == "none":
            return ResolvedWeights("none", offline=offline)
        if w.upper() == "DEFAULT":
            return ResolvedWeights("DEFAULT", offline=offline)
        raise InputError(f"--weights {w!r}: {self.name} models take none or DEFAULT")

    def build(self, spec: str, weights: ResolvedWeights) -> LoadedModel:
        """Build the model in eval mode on the CPU, with its preprocessing.

        Called right after torch, Python and numpy are seeded. The returned
        :class:`~alignkit.extract.models.LoadedModel` carries the module, the
        name to record, ``source=self.name``, the weights id and file, the
        model's own preprocessing (``transform``) and input size.

        Raises:
            ModelError: the model cannot be built.
        """
        raise NotImplementedError(f"{type(self).__name__}.build")

    def __repr__(self) -> str:
        return f"<model source {self.name!r}: {', '.join(self.forms)}>"


_SOURCES: dict[str, ModelSource] = {}
#: Sources without a prefix, in the order they are asked.
_UNPREFIXED: list[ModelSource] = []


def register_source(source: ModelSource, *, replace: bool = False) -> ModelSource:
    """Add a model source to the registry (see the module docstring for the lookup order).

    Args:
        source: the source (an instance).
        replace: replace a registered source of the same name.

    Returns:
        ``source``, so that ``register_source(MySource())`` can be kept.

    Raises:
        InputError: the name or prefix is taken, or a declared field is malformed.
    """
    problems = source_problems(source)
    if problems:
        raise InputError(f"model source {getattr(source, 'name', source)!r}: {'; '.join(problems)}")
    old = _SOURCES.get(source.name)
    if old is not None and not replace:
        raise InputError(f"model source {source.name!r} is already registered")
    if source.prefix is not None:
        for other in _SOURCES.values():
            if other.prefix == source.prefix and other.name != source.name:
                raise InputError(f"model source {source.name!r}: prefix {source.prefix!r} is "
                                 f"taken by {other.name!r}")
    if old is not None:
        unregister_source(old.name)
    _SOURCES[source.name] = source
    if source.prefix is None:
        _UNPREFIXED.insert(0, source)
    return source


def unregister_source(name: str) -> ModelSource:
    """Remove a registered source and return it.

    Raises:
        InputError: no source of that name.
    """
    source = get_source(name)
    del _SOURCES[name]
    if source in _UNPREFIXED:
        _UNPREFIXED.remove(source)
    return source


def sources() -> tuple[ModelSource, ...]:
    """Every registered source, in registration order."""
    return tuple(_SOURCES.values())


def get_source(name: str) -> ModelSource:
    """The registered source called ``name``.

    Raises:
        InputError: no source of that name (the message lists them).
    """
    try:
        return _SOURCES[name]
    except KeyError:
        raise InputError(f"unknown model source {name!r} (known: {', '.join(_SOURCES)})") from None


def source_for(spec: str) -> ModelSource:
    """The source that builds model ``spec``; decided without importing or reading it.

    Raises:
        InputError: an empty spec.
        ModelError: no source takes ``spec`` (the message lists the forms).
    """
    spec = spec.strip()
    if not spec:
        raise InputError("--model: empty model name")
    head = spec.split(":", 1)[0] if ":" in spec else None
    for source in _SOURCES.values():
        if source.prefix is not None and source.prefix == head:
            return source
    for source in _UNPREFIXED:
        if source.matches(spec):
            return source
    raise ModelError(f"--model {spec!r}: not a model specification (expected {spec_forms()})")


def spec_forms(exclude: str | None = None) -> str:
    """Every registered form, for help and messages: ``"a, b or c"``.

    Args:
        exclude: leave out the forms of this source.
    """
    forms = [f for s in _SOURCES.values() if s.name != exclude for f in s.forms]
    if len(forms) < 2:
        return "".join(forms)
    return f"{', '.join(forms[:-1])} or {forms[-1]}"


def source_problems(source: Any) -> list[str]:
    """What is missing or malformed in a source's declaration (empty when it is complete)."""
    from alignkit.extract.layer_presets import LAYER_PRESETS as PRESETS

    out: list[str] = []
    name = getattr(source, "name", None)
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        out.append(f"name must be a word, got {name!r}")
    prefix = getattr(source, "prefix", None)
    if prefix is not None and (not isinstance(prefix, str) or not prefix
                               or any(c in prefix for c in ":/\\. ")):
        out.append(f"prefix must be None or a word without ':', '/', '.', got {prefix!r}")
    forms = getattr(source, "forms", None)
    if not isinstance(forms, tuple) or not forms or not all(isinstance(f, str) and f for f in forms):
        out.append("forms must be a non-empty tuple of strings")
    elif isinstance(prefix, str) and not all(f.startswith(f"{prefix}:") for f in forms):
        out.append(f"every form must start with {prefix}:")
    text = getattr(source, "help", None)
    if not isinstance(text, str) or not text.strip() or "\n" in text:
        out.append("help must be one non-empty line")
    if not isinstance(getattr(source, "runs_code", None), bool):
        out.append("runs_code must be True or False")
    presets = getattr(source, "layer_presets", None)
    if not isinstance(presets, Mapping):
        out.append("layer_presets must be a mapping")
    else:
        unknown = [k for k in presets if k not in PRESETS]
        if unknown:
            out.append(f"layer_presets: unknown preset(s) {', '.join(map(repr, unknown))} "
                       f"(known: {', '.join(PRESETS)})")
        if not all(isinstance(v, str) and v for v in presets.values()):
            out.append("layer_presets must map to layer names")
    if type(source).build is ModelSource.build:
        out.append("build is not implemented")
    return out


def _register_builtin() -> None:
    from alignkit.extract.sources.custom import CustomSource
    from alignkit.extract.sources.hf import HFSource
    from alignkit.extract.sources.hub import HubSource
    from alignkit.extract.sources.open_clip import OpenClipSource
    from alignkit.extract.sources.timm import TimmSource
    from alignkit.extract.sources.torchscript import TorchScriptSource
    from alignkit.extract.sources.torchvision import TorchvisionSource

    # Unprefixed sources are asked newest first: torchscript, custom, torchvision.
    for source in (TorchvisionSource(), CustomSource(), TorchScriptSource(), HubSource(),
                   TimmSource(), OpenClipSource()):
        register_source(source)
    register_source(HFSource())


_register_builtin()
