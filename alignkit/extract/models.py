"""Model sources: torchvision, custom factories, TorchScript, timm and open_clip.

A model specification is one of

* a torchvision classification model name (``resnet50``, ``vit_b_16``, ...);
* ``package.module:factory`` or ``path/to/file.py:factory``: a callable that
  returns an ``nn.Module``, or a ``(module, transform)`` pair;
* a TorchScript file (``.pt``/``.pth``/``.ts`` saved with ``torch.jit.save``);
* ``timm:NAME`` or ``open_clip:ARCH`` when those packages are installed.

Factories and TorchScript files run their own code: see ``docs/security.md``
and :func:`alignkit.extract.specs.runs_code`.

Every model is built right after seeding torch, Python's ``random`` and numpy
with ``seed`` (:func:`alignkit.extract.specs.seeded`), so random-init weights
(``weights="none"``) and factories give the same network for the same seed in
any process. For those the seed and a checksum of the built weights are
recorded (:meth:`LoadedModel.describe`), so a resume can tell the networks apart.

Weights for torchvision models (``weights=``): ``none`` (random
initialisation), an enum member name of the model's weights (``DEFAULT``,
``IMAGENET1K_V1``, ...), or a local state-dict/checkpoint file. Enum weights
come from the torch hub cache (``torch.hub.get_dir()/checkpoints/<file>``);
if absent they are downloaded unless ``offline``; if that fails a
:class:`~alignkit.errors.WeightsUnavailableError` names the cache file and the
alternatives.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
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
from alignkit.extract.specs import check_seed, seed_applies, seeded

__all__ = [
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
        source: ``torchvision``, ``custom``, ``torchscript``, ``timm`` or ``open_clip``.
        weights: weights id (``IMAGENET1K_V1``, ``none``, ``file:<name>``, ...).
        weights_file: the file the weights were read from, if any.
        transform: the model's own preprocessing: a :class:`Preprocess`, any
            callable taking an RGB PIL image, or ``None`` (ImageNet defaults).
        input_size: side of the square input used for the probe pass.
        presets: model-specific layer presets (``{"penultimate": "output"}``).
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


def _suggest(name: str, choices: list[str]) -> str:
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


def _apply_state_dict(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
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


def _weights_enum(name: str) -> Any:
    import torchvision.models as tvm

    try:
        return tvm.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _torchvision(name: str, weights: str, offline: bool) -> LoadedModel:
    import torchvision.models as tvm

    names = torchvision_models()
    if name not in names:
        raise ModelError(
            f"--model {name!r}: not a torchvision classification model{_suggest(name, names)} "
            "(custom models: package.module:factory or a TorchScript file)"
        )
    enum = _weights_enum(name)
    members = list(enum.__members__) if enum is not None else []
    w = weights.strip()
    if w.lower() == "none":
        transform = Preprocess.from_transform(enum.DEFAULT.transforms()) if enum else None
        return LoadedModel(tvm.get_model(name, weights=None).eval(), name, "torchvision", "none",
                           None, transform or Preprocess(), _input_size(transform))
    if w in members:
        member = enum[w]
        file = _hub_file(member, name, w, offline)  # before building: fail fast
        state = load_state_dict_file(file)
        module = tvm.get_model(name, weights=None)
        _apply_state_dict(module, state, file)
        transform = Preprocess.from_transform(member.transforms()) or member.transforms()
        return LoadedModel(module.eval(), name, "torchvision", str(member).split(".")[-1],
                           str(file), transform, _input_size(transform),
                           attrs={"weights_url": member.url})
    path = Path(w).expanduser()
    if path.suffix or os.sep in w or path.exists():
        state = load_state_dict_file(path)
        module = tvm.get_model(name, weights=None)
        _apply_state_dict(module, state, path)
        # A file named like an official checkpoint gets that checkpoint's preprocessing.
        member = next((enum[m] for m in members if enum[m].url.rsplit("/", 1)[-1] == path.name),
                      None) if enum else None
        ref = member if member is not None else (enum.DEFAULT if enum else None)
        transform = Preprocess.from_transform(ref.transforms()) if ref is not None else None
        wid = str(member).split(".")[-1] if member is not None else f"file:{path.name}"
        return LoadedModel(module.eval(), name, "torchvision", wid, str(path.resolve()),
                           transform or Preprocess(), _input_size(transform))
    opts = ", ".join(["none", *members, "a .pth/.pt file"])
    raise InputError(f"--weights {w!r}: not a weights name of {name} nor a file (expected {opts})")


def _input_size(transform: Any) -> int:
    if isinstance(transform, Preprocess) and transform.crop:
        return transform.crop
    return 224


def _hub_file(member: Any, name: str, wname: str, offline: bool) -> Path:
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


def _custom(spec: str) -> LoadedModel:
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise InputError(f"--model {spec!r}: file {path} does not exist")
            mod_name = f"_alignkit_custom_{abs(hash(path.resolve()))}"
            sp = importlib.util.spec_from_file_location(mod_name, path)
            if sp is None or sp.loader is None:
                raise ModelError(f"--model {spec!r}: cannot import {path}")
            module = importlib.util.module_from_spec(sp)
            sys.modules[mod_name] = module
            sp.loader.exec_module(module)
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
        raise ModelError(f"--model {spec!r}: the factory returned {type(result).__name__}, not an nn.Module")
    pre = Preprocess.from_transform(transform) if transform is not None else None
    tf: Any = pre or transform or Preprocess()
    return LoadedModel(result.eval(), spec, "custom", "factory", None, tf, _input_size(tf),
                       attrs={"state_checksum": state_checksum(result)})


def _torchscript(path: Path) -> LoadedModel:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelError(
            f"--model {path}: not a TorchScript file ({str(exc).splitlines()[0][:160]}); "
            "state dicts go to --weights with a model name"
        ) from None
    return LoadedModel(module.eval(), path.name, "torchscript", f"file:{path.name}",
                       str(path.resolve()), Preprocess(), 224, presets={"penultimate": "output"})


@contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
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


def _timm(name: str, weights: str, offline: bool) -> LoadedModel:
    with _hub_offline(offline):
        return _timm_load(name, weights)


def _timm_load(name: str, weights: str) -> LoadedModel:
    try:
        import timm
        from timm.data import create_transform, resolve_data_config
    except ImportError:
        raise ModelError(f"--model timm:{name}: timm is not installed (pip install timm)") from None
    if name not in timm.list_models():
        raise ModelError(f"--model timm:{name}: unknown timm model{_suggest(name, timm.list_models())}")
    w = weights.strip()
    kwargs: dict[str, Any] = {}
    file = None
    if w.lower() == "none":
        pretrained = False
    elif w.upper() == "DEFAULT":
        pretrained = True
    else:
        file = Path(w).expanduser()
        if not file.is_file():
            raise InputError(f"--weights {w}: file does not exist")
        pretrained = True
        kwargs["pretrained_cfg_overlay"] = {"file": str(file)}
    try:
        module = timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as exc:
        raise WeightsUnavailableError(
            f"timm:{name}: weights not available ({str(exc).splitlines()[0][:120]}); pass --weights "
            "PATH to a local file, or --weights none for random initialisation"
        ) from None
    cfg = resolve_data_config({}, model=module)
    transform = create_transform(**cfg)
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return LoadedModel(module.eval(), f"timm:{name}", "timm",
                       "none" if not pretrained else (f"file:{file.name}" if file else "DEFAULT"),
                       str(file.resolve()) if file else None, transform, size,
                       attrs={"timm_version": timm.__version__})


class _ClipImageEncoder(nn.Module):
    """Wraps an open_clip model so that ``forward`` is ``encode_image``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)  # type: ignore[operator]


def _open_clip(arch: str, weights: str, offline: bool) -> LoadedModel:
    with _hub_offline(offline):
        return _open_clip_load(arch, weights)


def _open_clip_load(arch: str, weights: str) -> LoadedModel:
    try:
        import open_clip
    except ImportError:
        raise ModelError(
            f"--model open_clip:{arch}: open_clip is not installed (pip install open_clip_torch)"
        ) from None
    if arch not in open_clip.list_models():
        raise ModelError(f"--model open_clip:{arch}: unknown architecture{_suggest(arch, open_clip.list_models())}")
    w = weights.strip()
    pretrained = None if w.lower() == "none" else w
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
    except Exception as exc:
        raise WeightsUnavailableError(
            f"open_clip:{arch}: weights {w!r} not available ({str(exc).splitlines()[0][:120]}); "
            "pass --weights PATH to a local file, or --weights none"
        ) from None
    size = getattr(model.visual, "image_size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    file = Path(w) if pretrained and Path(w).is_file() else None
    return LoadedModel(_ClipImageEncoder(model).eval(), f"open_clip:{arch}", "open_clip",
                       "none" if pretrained is None else (f"file:{file.name}" if file else w),
                       str(file.resolve()) if file else None, preprocess, size,
                       presets={"penultimate": "output", "logits": "output"})


def load_model(spec: str | nn.Module, weights: str = "DEFAULT", offline: bool = False,
               seed: int = 0) -> LoadedModel:
    """Build a model from a specification (see the module docstring).

    Args:
        spec: a model name, ``module:factory``, a TorchScript file, ``timm:NAME``,
            ``open_clip:ARCH``, or an ``nn.Module`` (used as is).
        weights: ``none``, a weights enum name (``DEFAULT``, ``IMAGENET1K_V1``),
            or a local file; ignored for factories and TorchScript.
        offline: never download (also set by the ``ALIGNKIT_OFFLINE`` variable).
        seed: seeds torch, Python and numpy right before the model is built
            (0 to 2**32 - 1); decides random-init weights and a factory's.

    Raises:
        InputError: a bad seed.
        ModelError: unknown model or layer, a weights file that does not fit.
        WeightsUnavailableError: named weights neither cached nor downloadable.
    """
    seed = check_seed(seed)
    if isinstance(spec, nn.Module):
        return LoadedModel(spec.eval(), type(spec).__name__, "object", "given", None, Preprocess(),
                           attrs={"state_checksum": state_checksum(spec)})
    spec = spec.strip()
    if not spec:
        raise InputError("--model: empty model name")
    with seeded(seed):
        lm = _build(spec, weights, offline)
    if seed_applies(spec, weights) and lm.source != "torchscript":
        lm.seed = seed
        # the weights themselves: a resume must find the very same network
        lm.attrs.setdefault("state_checksum", state_checksum(lm.module))
    return lm


def _build(spec: str, weights: str, offline: bool) -> LoadedModel:
    if spec.startswith("timm:"):
        return _timm(spec[5:], weights, offline)
    if spec.startswith("open_clip:"):
        return _open_clip(spec[10:], weights, offline)
    path = Path(spec).expanduser()
    if path.is_file():
        return _torchscript(path)
    if ":" in spec:
        return _custom(spec)
    if path.suffix in (".pt", ".pth", ".ts", ".jit") or os.sep in spec:
        raise InputError(f"--model {spec}: file does not exist")
    return _torchvision(spec, weights, offline)
