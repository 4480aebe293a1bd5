"""Loading a model from its specification, and what is recorded about it.

A model specification is one of the forms of the model-source registry
(:mod:`alignkit.extract.sources`): a torchvision classification model name
(``resnet50``), ``package.module:factory`` or ``path/to/file.py:factory``, a
TorchScript file, ``timm:NAME``, ``open_clip:ARCH``, or any source added with
:func:`~alignkit.extract.sources.register_source`. :func:`load_model` asks the
registry which source takes the spec, lets it resolve ``weights`` (failing
fast, before anything is built) and builds the model.

Factories and TorchScript files run their own code (their source declares
``runs_code``): see ``docs/security.md`` and
:func:`alignkit.extract.specs.runs_code`.

Every model is built right after seeding torch, Python's ``random`` and numpy
with ``seed`` (:func:`alignkit.extract.specs.seeded`), so random-init weights
(``weights="none"``) and factories give the same network for the same seed in
any process. For those the seed and a checksum of the built weights are
recorded (:meth:`LoadedModel.describe`), so a resume can tell the networks apart.

This module also holds what the sources share: reading state-dict files
(:func:`load_state_dict_file`, ``weights_only=True``), the torch hub cache
(:func:`hub_file`: enum weights come from
``torch.hub.get_dir()/checkpoints/<file>``, downloaded there if absent unless
offline, else a :class:`~alignkit.errors.WeightsUnavailableError` names the
cache file and the alternatives) and keeping the Hugging Face hub offline
(:func:`hub_offline`).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alignkit.errors import InputError, ModelError, WeightsUnavailableError
from alignkit.extract.images import Preprocess
from alignkit.extract.sources import source_for
from alignkit.extract.specs import check_seed, seeded

__all__ = [
    "ClipImageEncoder",
    "LoadedModel",
    "load_model",
    "torchvision_models",
    "load_state_dict_file",
    "state_checksum",
]


@dataclass
class LoadedModel:
    """A model ready for extraction, with what is needed to record it.

    Attributes:
        module: the network, in eval mode, on the CPU.
        name: the model's name as stored (``resnet50``, ``mypkg.nets:tiny``).
        source: the name of the model source that built it (``torchvision``,
            ``custom``, ``torchscript``, ``timm``, ``open_clip``, ...), or
            ``object`` for a module given as is.
        weights: weights id (``IMAGENET1K_V1``, ``none``, ``file:<name>``, ...).
        weights_file: the file the weights were read from, if any.
        transform: the model's own preprocessing: a :class:`Preprocess`, any
            callable taking an RGB PIL image, or ``None`` (ImageNet defaults).
        input_size: side of the square input used for the probe pass.
        presets: model-specific layer presets (``{"penultimate": "output"}``);
            :func:`load_model` adds the source's ``layer_presets``.
        attrs: further JSON-able facts to record.
        seed: the seed the weights were initialised with, for random-init
            models and factories (None where the seed plays no part).
    """

    module: nn.Module
    name: str
    source: str
    weights: str
    weights_file: str | None = None
    transform: Preprocess | Callable[..., torch.Tensor] | None = None
    input_size: int = 224
    presets: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of the model for the store's attributes."""
        out: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "weights": self.weights,
        }
        if self.weights_file is not None:
            from alignkit.provenance import sha256_file

            out["weights_file"] = self.weights_file
            out["weights_checksum"] = sha256_file(self.weights_file)
        out.update(self.attrs)
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def torchvision_models() -> list[str]:
    """Names of torchvision's image classification models."""
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def suggest(name: str, choices: list[str]) -> str:
    """``"; did you mean a, b?"`` for the choices close to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, choices, n=4, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a weights file or a training checkpoint.

    Accepts a plain state dict, or a checkpoint dict holding one under
    ``state_dict``, ``model_state_dict``, ``model``, ``net`` or ``ema``; a
    ``module.`` prefix (DataParallel) is removed. Loaded with
    ``weights_only=True``: no code in the file is run.

    Raises:
        InputError: the file is missing.
        ModelError: the file cannot be read or holds no state dict.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--weights {path}: is a folder, expected a .pth/.pt file")
    if not path.is_file():
        raise InputError(f"--weights {path}: file does not exist")
    from alignkit._torchio import torch_load

    obj = torch_load(path, f"--weights {path}", error=ModelError)
    if isinstance(obj, dict) and not _is_state_dict(obj):
        for key in ("state_dict", "model_state_dict", "model", "net", "ema", "module"):
            if key in obj and isinstance(obj[key], dict) and _is_state_dict(obj[key]):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        raise ModelError(f"--weights {path}: holds no state dict (a dict of tensors)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def state_checksum(module: nn.Module) -> str:
    """``sha256:`` of a module's state dict: names, dtypes, shapes and bytes, in name order.

    Identifies the weights of a model given as an object or built by a factory,
    so that a store entry records which weights made it.
    """
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


def _is_state_dict(obj: dict[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def apply_state_dict(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` into ``module``; every key must fit.

    Raises:
        ModelError: missing or unexpected keys (the first of each named).
    """
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing (first: {result.missing_keys[0]})")
        if result.unexpected_keys:
            parts.append(
                f"{len(result.unexpected_keys)} unexpected (first: {result.unexpected_keys[0]})"
            )
        raise ModelError(f"--weights {path}: does not fit the model: {'; '.join(parts)} keys")


def input_size(transform: Any) -> int:
    """Side of the square input a preprocessing gives (its crop), or 224."""
    if isinstance(transform, Preprocess) and transform.crop:
        return transform.crop
    return 224


def hub_file(member: Any, name: str, wname: str, offline: bool) -> Path:
    """The torch hub cache file of torchvision weights ``member``, downloaded unless offline.

    Raises:
        WeightsUnavailableError: not cached and not downloadable; names the file.
    """
    url: str = member.url
    fname = url.rsplit("/", 1)[-1]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
    if cached.is_file():
        return cached
    if not (offline or _offline_env()):
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cached), progress=sys.stderr.isatty())
            return cached
        except Exception:  # offline, proxy, disk: all end in the same advice
            cached.unlink(missing_ok=True)
    raise WeightsUnavailableError(
        f"weights {name} {wname} are not available offline: put {fname} at {cached} "
        f"(or set TORCH_HOME), or pass --weights PATH to a local file, or --weights none "
        "for random initialisation"
    )


@contextmanager
def hub_offline(offline: bool) -> Iterator[None]:
    """Keep the Hugging Face hub (timm, open_clip weights) off the network when offline."""
    offline = offline or _offline_env()
    if not offline:
        yield
        return
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"  # read when huggingface_hub is first imported
    consts = sys.modules.get("huggingface_hub.constants")
    old_const = getattr(consts, "HF_HUB_OFFLINE", None)
    if consts is not None:
        consts.HF_HUB_OFFLINE = True  # already imported: patch the cached setting
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old
        if consts is not None:
            consts.HF_HUB_OFFLINE = old_const


def _offline_env() -> bool:
    return os.environ.get("ALIGNKIT_OFFLINE", "") not in ("", "0")


class ClipImageEncoder(nn.Module):
    """Wraps an open_clip model so that ``forward`` is ``encode_image``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)  # type: ignore[operator]


def load_model(spec: str | nn.Module, weights: str = "DEFAULT", offline: bool = False,
               seed: int = 0) -> LoadedModel:
    """Build a model from a specification (see the module docstring).

    Args:
        spec: a form of a registered model source (a torchvision name,
            ``module:factory``, a TorchScript file, ``timm:NAME``,
            ``open_clip:ARCH``, ...), or an ``nn.Module`` (used as is).
        weights: what the source takes: ``none``, a weights name (``DEFAULT``,
            ``IMAGENET1K_V1``), or a local file; ignored for factories and TorchScript.
        offline: never download (also set by the ``ALIGNKIT_OFFLINE`` variable).
        seed: seeds torch, Python and numpy right before the model is built
            (0 to 2**32 - 1); decides random-init weights and a factory's.

    Raises:
        InputError: a bad seed or an empty spec.
        ModelError: unknown model, a weights file that does not fit.
        WeightsUnavailableError: named weights neither cached nor downloadable.
    """
    seed = check_seed(seed)
    if isinstance(spec, nn.Module):
        return LoadedModel(spec.eval(), type(spec).__name__, "object", "given", None, Preprocess(),
                           attrs={"state_checksum": state_checksum(spec)})
    spec = spec.strip()
    source = source_for(spec)
    resolved = source.resolve_weights(spec, weights, offline)
    with seeded(seed):
        lm = source.build(spec, resolved)
    lm.presets = {**source.layer_presets, **lm.presets}
    if source.seed_decides_weights(spec, weights):
        lm.seed = seed
        # the weights themselves: a resume must find the very same network
        lm.attrs.setdefault("state_checksum", state_checksum(lm.module))
    return lm
