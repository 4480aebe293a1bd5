"""OpenCLIP image encoders: ``open_clip:ARCH[:PRETRAINED]`` (when open_clip is installed).

Weights: ``none`` (random initialisation, decided by the seed), a pretrained
tag of the architecture (``openai``, ``laion2b_s34b_b79k``, ...; from the
Hugging Face cache, never downloaded when offline) or a local checkpoint file.
The tag may be part of the spec (``open_clip:ViT-B-32:openai``, the form
open_clip's own tables use) or given as ``--weights TAG``; both at once must
agree. The recorded model name is the spec as written (with its tag) and the
weights id is the tag.
The model's ``forward`` is ``encode_image``: the layer ``output`` (and the
``penultimate``, ``logits`` and ``embedding`` presets) is the unnormalised
image embedding. Preprocessing: open_clip's own for the architecture. Only
open_clip's code runs (older releases unpickle checkpoint files:
``docs/security.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignkit.errors import InputError, ModelError, WeightsUnavailableError
from alignkit.extract.sources import ModelSource, ResolvedWeights

if TYPE_CHECKING:
    from alignkit.extract.models import LoadedModel


def _open_clip(spec: str) -> Any:
    try:
        import open_clip
    except ImportError:
        raise ModelError(
            f"--model {spec}: open_clip is not installed (pip install open_clip_torch)"
        ) from None
    return open_clip


def split_spec(rest: str) -> tuple[str, str | None]:
    """``(ARCH, PRETRAINED or None)`` of the part of a spec after ``open_clip:``.

    An ``hf-hub:ORG/REPO`` architecture is kept whole (it names its own weights).
    """
    if rest.startswith("hf-hub:"):
        return rest, None
    arch, sep, tag = rest.partition(":")
    return arch, (tag.strip() or None) if sep else None


class OpenClipSource(ModelSource):
    """The image encoder of an OpenCLIP model."""

    name = "open_clip"
    prefix = "open_clip"
    forms = ("open_clip:ARCH", "open_clip:ARCH:PRETRAINED")
    help = ("an OpenCLIP image encoder (when open_clip is installed); --weights is a tag or a "
            "file; output and embedding are the unnormalised image embedding")
    layer_presets = {"penultimate": "output", "logits": "output", "embedding": "output"}

    def check(self, spec: str, weights: str) -> str | None:
        if not split_spec(self.rest(spec))[0].strip():
            return f"{spec!r}: no architecture after open_clip: (expected {' or '.join(self.forms)})"
        return None

    def listing(self, spec: str, weights: str) -> tuple[str, str]:
        arch, tag = split_spec(self.rest(spec))
        if not arch.strip():
            return spec, weights  # resolve_weights names the problem
        if tag is not None and weights.strip() in ("DEFAULT", tag):
            return f"{self.prefix}:{arch}", "none"
        return super().listing(spec, weights)

    def resolve_weights(self, spec: str, weights: str, offline: bool) -> ResolvedWeights:
        from alignkit.extract.models import suggest

        problem = self.check(spec, weights)
        if problem:
            raise InputError(problem)
        open_clip = _open_clip(spec)
        arch, tag = split_spec(self.rest(spec))
        names = open_clip.list_models()
        if arch not in names:
            raise ModelError(f"--model {spec}: unknown architecture{suggest(arch, names)}")
        w = weights.strip()
        if tag is not None:
            if w not in ("DEFAULT", tag):
                raise InputError(f"--model {spec} names the weights {tag!r} and --weights says "
                                 f"{w!r}: give the tag once (in the spec or as --weights)")
            w = tag
        elif w.upper() == "DEFAULT":
            listed = getattr(open_clip, "list_pretrained", list)()
            tags = [t for a, t in listed if a == arch]
            raise InputError(f"--model {spec}: open_clip has no default weights; pass a tag "
                             f"(open_clip:{arch}:TAG or --weights TAG; tags of {arch}: "
                             f"{', '.join(tags) or 'none'}), a file, or --weights none")
        if w.lower() == "none":
            return ResolvedWeights("none", offline=offline)
        file = Path(w) if Path(w).is_file() else None
        return ResolvedWeights(f"file:{file.name}" if file else w, file, offline, w)

    def build(self, spec: str, weights: ResolvedWeights) -> LoadedModel:
        from alignkit.extract.models import ClipImageEncoder, LoadedModel, hub_offline

        open_clip = _open_clip(spec)
        arch, _ = split_spec(self.rest(spec))
        try:
            with hub_offline(weights.offline):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=weights.handle)
        except Exception as exc:
            if weights.file is not None:  # the user's own file: not a download to retry
                raise ModelError(f"--weights {weights.file}: {spec} cannot load it "
                                 f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})"
                                 ) from None
            raise WeightsUnavailableError(
                f"{spec}: weights {weights.handle or 'none'!r} not available "
                f"({str(exc).splitlines()[0][:120]}); pass --weights PATH to a local file, "
                "or --weights none"
            ) from None
        size = getattr(model.visual, "image_size", 224)
        size = int(size[0] if isinstance(size, (tuple, list)) else size)
        return LoadedModel(ClipImageEncoder(model).eval(), spec, self.name, weights.id,
                           str(weights.file.resolve()) if weights.file else None, preprocess, size)

