"""Custom factories: ``package.module:factory`` and ``path/to/file.py:factory``.

The module is imported (a ``.py`` file is executed as a module) and
``factory()`` is called; it returns an ``nn.Module``, or a ``(module,
transform)`` pair whose transform becomes the preprocessing (a torchvision
preset is read into a :class:`~alignkit.extract.images.Preprocess`; any other
callable taking an RGB PIL image is used as is; without one, ImageNet
defaults). This runs the factory's code: see ``docs/security.md``. The seed
decides the weights; ``--weights`` is not used.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignkit.errors import InputError, ModelError
from alignkit.extract.sources import ModelSource, ResolvedWeights, spec_forms

if TYPE_CHECKING:
    from alignkit.extract.models import LoadedModel

_MODULE_RE = re.compile(r"^[A-Za-z_][\w.]*$")


class CustomSource(ModelSource):
    """A Python callable that returns the model (imported and called: it runs code)."""

    name = "custom"
    forms = ("package.module:factory", "path/file.py:factory")
    help = "a callable returning an nn.Module, or (module, transform); imported and called"
    runs_code = True

    def matches(self, spec: str) -> bool:
        return ":" in spec

    def _target(self, spec: str) -> tuple[str, str]:
        target, _, attr = spec.rpartition(":")
        return target, attr

    def check(self, spec: str, weights: str) -> str | None:
        target, _ = self._target(spec)
        if target.endswith(".py"):
            return None if Path(target).expanduser().is_file() else f"no such factory file {target!r}"
        if _MODULE_RE.match(spec.split(":", 1)[0]):
            return None
        return f"{spec!r}: not {spec_forms()}"

    def code_kind(self, spec: str) -> str:
        target, _ = self._target(spec)
        if target.endswith(".py"):
            return f"a Python factory ({target})"
        return f"a Python factory (module {target})"

    def seed_decides_weights(self, spec: str, weights: str) -> bool:
        return True

    def rebase(self, spec: str, base: Path) -> str:
        target, _, attr = spec.rpartition(":")
        if target.endswith(".py") and not Path(target).expanduser().is_absolute():
            return f"{os.path.abspath(base / Path(target).expanduser())}:{attr}"
        return spec

    def resolve_weights(self, spec: str, weights: str, offline: bool) -> ResolvedWeights:
        return ResolvedWeights("factory", offline=offline)

    def build(self, spec: str, weights: ResolvedWeights) -> LoadedModel:
        from torch import nn

        from alignkit.extract.images import Preprocess
        from alignkit.extract.models import LoadedModel, input_size, state_checksum

        target, attr = self._target(spec)
        try:
            if target.endswith(".py"):
                module = _exec_file(spec, Path(target))
            else:
                module = importlib.import_module(target)
        except ImportError as exc:
            raise ModelError(f"--model {spec!r}: cannot import {target!r} ({exc})") from None
        factory = getattr(module, attr, None)
        if factory is None or not callable(factory):
            raise ModelError(f"--model {spec!r}: {target!r} has no callable {attr!r}")
        result = factory()
        transform = None
        if isinstance(result, tuple) and len(result) == 2:
            result, transform = result
        if not isinstance(result, nn.Module):
            raise ModelError(
                f"--model {spec!r}: the factory returned {type(result).__name__}, not an nn.Module"
            )
        pre = Preprocess.from_transform(transform) if transform is not None else None
        tf: Any = pre or transform or Preprocess()
        return LoadedModel(result.eval(), spec, self.name, weights.id, None, tf, input_size(tf),
                           attrs={"state_checksum": state_checksum(result)})


def _exec_file(spec: str, path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"--model {spec!r}: file {path} does not exist")
    mod_name = f"_alignkit_custom_{abs(hash(path.resolve()))}"
    sp = importlib.util.spec_from_file_location(mod_name, path)
    if sp is None or sp.loader is None:
        raise ModelError(f"--model {spec!r}: cannot import {path}")
    module = importlib.util.module_from_spec(sp)
    sys.modules[mod_name] = module
    sp.loader.exec_module(module)
    return module
