"""torchvision classification models by name: ``resnet50``, ``vit_b_16``, ...

Weights (``--weights``): ``none`` (random initialisation, decided by the
seed), an enum member name of the model's weights (``DEFAULT``,
``IMAGENET1K_V1``, ...), read from the torch hub cache
(``torch.hub.get_dir()/checkpoints/<file>``) and downloaded there if absent
unless offline, or a local state-dict/checkpoint file. Preprocessing is the
weights' own (``weights.transforms()``; for ``none`` and unknown files, that of
the ``DEFAULT`` weights). Only torchvision's own code runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignkit.errors import InputError, ModelError
from alignkit.extract.sources import ModelSource, ResolvedWeights, spec_forms

if TYPE_CHECKING:
    from alignkit.extract.models import LoadedModel


def _weights_enum(name: str) -> Any:
    import torchvision.models as tvm

    try:
        return tvm.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _member_name(member: Any) -> str:
    return str(member).split(".")[-1]


class TorchvisionSource(ModelSource):
    """torchvision's image classification models (``torchvision.models.list_models``)."""

    name = "torchvision"
    forms = ("a torchvision model name",)
    help = "any torchvision classification model (torchvision.models.list_models)"

    def matches(self, spec: str) -> bool:
        return ":" not in spec

    def check(self, spec: str, weights: str) -> str | None:
        import difflib

        from alignkit.extract.models import torchvision_models

        names = torchvision_models()
        if spec in names:
            return None
        near = difflib.get_close_matches(spec, names, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        return f"unknown model {spec!r}: not a torchvision classification model{hint}"

    def resolve_weights(self, spec: str, weights: str, offline: bool) -> ResolvedWeights:
        from alignkit.extract.models import hub_file, suggest, torchvision_models

        names = torchvision_models()
        if spec not in names:
            raise ModelError(
                f"--model {spec!r}: not a torchvision classification model{suggest(spec, names)} "
                f"(other models: {spec_forms(exclude=self.name)})"
            )
        enum = _weights_enum(spec)
        members = list(enum.__members__) if enum is not None else []
        w = weights.strip()
        if w.lower() == "none":
            return ResolvedWeights("none", offline=offline)
        if w in members:
            member = enum[w]
            file = hub_file(member, spec, w, offline)  # before building: fail fast
            return ResolvedWeights(_member_name(member), file, offline, (member, True))
        path = Path(w).expanduser()
        if path.suffix or os.sep in w or path.exists():
            # A file named like an official checkpoint gets that checkpoint's id and preprocessing.
            member = next((enum[m] for m in members if enum[m].url.rsplit("/", 1)[-1] == path.name),
                          None) if enum else None
            wid = _member_name(member) if member is not None else f"file:{path.name}"
            return ResolvedWeights(wid, path, offline, (member, False))
        opts = ", ".join(["none", *members, "a .pth/.pt file"])
        raise InputError(f"--weights {w!r}: not a weights name of {spec} nor a file (expected {opts})")

    def build(self, spec: str, weights: ResolvedWeights) -> LoadedModel:
        import torchvision.models as tvm

        from alignkit.extract.images import Preprocess
        from alignkit.extract.models import (
            LoadedModel,
            apply_state_dict,
            input_size,
            load_state_dict_file,
        )

        enum = _weights_enum(spec)
        if weights.file is None:  # random initialisation
            transform = Preprocess.from_transform(enum.DEFAULT.transforms()) if enum else None
            return LoadedModel(tvm.get_model(spec, weights=None).eval(), spec, self.name, "none",
                               None, transform or Preprocess(), input_size(transform))
        state = load_state_dict_file(weights.file)  # before building: fail fast
        module = tvm.get_model(spec, weights=None)
        apply_state_dict(module, state, weights.file)
        member, from_hub = weights.handle
        if from_hub:  # an enum name, read from the torch hub cache
            transform = Preprocess.from_transform(member.transforms()) or member.transforms()
            return LoadedModel(module.eval(), spec, self.name, weights.id, str(weights.file),
                               transform, input_size(transform), attrs={"weights_url": member.url})
        ref = member if member is not None else (enum.DEFAULT if enum else None)
        transform = Preprocess.from_transform(ref.transforms()) if ref is not None else None
        return LoadedModel(module.eval(), spec, self.name, weights.id,
                           str(Path(weights.file).resolve()), transform or Preprocess(),
                           input_size(transform))
