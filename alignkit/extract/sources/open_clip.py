"""OpenCLIP image encoders: ``open_clip:ARCH`` (when open_clip is installed).

Weights: ``none`` (random initialisation, decided by the seed), a pretrained
tag of the architecture (``openai``, ``laion2b_s34b_b79k``, ...; from the
Hugging Face cache, never downloaded when offline) or a local checkpoint file.
The model's ``forward`` is ``encode_image``: the layer ``output`` (and the
``penultimate``, ``logits`` and ``embedding`` presets) is the unnormalised
image embedding. Preprocessing: open_clip's own for the architecture. Only
open_clip's code runs (older releases unpickle checkpoint files:
``docs/security.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignkit.errors import ModelError, WeightsUnavailableError
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


class OpenClipSource(ModelSource):
    """The image encoder of an OpenCLIP model."""

    name = "open_clip"
    prefix = "open_clip"
    forms = ("open_clip:ARCH",)
    help = ("an OpenCLIP image encoder (when open_clip is installed); --weights is a tag or a "
            "file; output and embedding are the unnormalised image embedding")
    layer_presets = {"penultimate": "output", "logits": "output", "embedding": "output"}

    def resolve_weights(self, spec: str, weights: str, offline: bool) -> ResolvedWeights:
        from alignkit.extract.models import suggest

        open_clip = _open_clip(spec)
        arch = self.rest(spec)
        names = open_clip.list_models()
        if arch not in names:
            raise ModelError(f"--model {spec}: unknown architecture{suggest(arch, names)}")
        w = weights.strip()
        if w.lower() == "none":
            return ResolvedWeights("none", offline=offline)
        file = Path(w) if Path(w).is_file() else None
        return ResolvedWeights(f"file:{file.name}" if file else w, file, offline, w)

    def build(self, spec: str, weights: ResolvedWeights) -> LoadedModel:
        from alignkit.extract.models import ClipImageEncoder, LoadedModel, hub_offline

        open_clip = _open_clip(spec)
        arch = self.rest(spec)
        try:
            with hub_offline(weights.offline):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=weights.handle)
        except Exception as exc:
            raise WeightsUnavailableError(
                f"{spec}: weights {weights.handle or 'none'!r} not available "
                f"({str(exc).splitlines()[0][:120]}); pass --weights PATH to a local file, "
                "or --weights none"
            ) from None
        size = getattr(model.visual, "image_size", 224)
        size = int(size[0] if isinstance(size, (tuple, list)) else size)
        return LoadedModel(ClipImageEncoder(model).eval(), spec, self.name, weights.id,
                           str(weights.file.resolve()) if weights.file else None, preprocess, size)

