"""TorchScript files: a model saved with ``torch.jit.save``.

Any existing file given as the model, or a name ending in one of
:data:`SUFFIXES` (or holding a path separator) that does not exist (an
error). The file carries compiled code that runs in every forward pass: see
``docs/security.md``. TorchScript modules cannot be hooked, so only the layer
``output`` can be read (the ``penultimate`` and ``logits`` presets name it).
Preprocessing: ImageNet defaults; weights: those in the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from alignkit.errors import InputError, ModelError
from alignkit.extract.sources import ModelSource, ResolvedWeights

if TYPE_CHECKING:
    from alignkit.extract.models import LoadedModel

#: File name endings read as TorchScript models.
SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript")


class TorchScriptSource(ModelSource):
    """A TorchScript file (its compiled code runs in every forward pass)."""

    name = "torchscript"
    forms = ("a TorchScript file",)
    help = "a model saved with torch.jit.save; only the layer output can be read"
    runs_code = True
    layer_presets = {"penultimate": "output"}

    def matches(self, spec: str) -> bool:
        path = Path(spec).expanduser()
        if path.is_file():
            return True
        return ":" not in spec and (path.suffix.lower() in SUFFIXES or os.sep in spec)

    def check(self, spec: str, weights: str) -> str | None:
        return None if Path(spec).expanduser().exists() else f"no such model file {spec!r}"

    def code_kind(self, spec: str) -> str:
        return "a TorchScript file"

    def seed_decides_weights(self, spec: str, weights: str) -> bool:
        return False

    def resolve_weights(self, spec: str, weights: str, offline: bool) -> ResolvedWeights:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise InputError(f"--model {spec}: file does not exist")
        return ResolvedWeights(f"file:{path.name}", path, offline)

    def build(self, spec: str, weights: ResolvedWeights) -> LoadedModel:
        import warnings

        import torch

        from alignkit.extract.images import Preprocess
        from alignkit.extract.models import LoadedModel

        path = weights.file or Path(spec).expanduser()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelError(
                f"--model {path}: not a TorchScript file ({str(exc).splitlines()[0][:160]}); "
                "state dicts go to --weights with a model name"
            ) from None
        return LoadedModel(module.eval(), path.name, self.name, weights.id, str(path.resolve()),
                           Preprocess(), 224)
