"""Hugging Face ``transformers`` image models: ``hf:NAME_OR_FOLDER`` (when transformers is installed).

``NAME`` is a hub id (``openai/clip-vit-base-patch16``, ``facebook/dinov2-base``,
``google/siglip-base-patch16-224``); ``FOLDER`` a local folder written with
``save_pretrained`` (``config.json`` and the weights, and
``preprocessor_config.json`` for the image processor).

Weights: ``DEFAULT`` (the pretrained weights: the folder's own, else from the
Hugging Face cache, downloaded there by huggingface_hub when online), ``none``
(random initialisation from the config, decided by the seed) or a local
weights file (``.safetensors``, ``.bin``, ``.pth``) or ``save_pretrained``
folder. Offline (``--offline``, ``ALIGNKIT_OFFLINE=1``) only the cache is read.

The network is wrapped so that ``forward(pixel_values)`` returns one tensor,
the layer ``output``, chosen by ``config.model_type``:

* ``clip``, ``siglip``, ``siglip2`` (the full dual encoder):
  ``get_image_features``, the (projected, unnormalised) image embedding;
* ``clip_vision_model``: ``image_embeds`` of ``CLIPVisionModelWithProjection``
  (``pooler_output`` of a folder saved from ``CLIPVisionModel``, which has no
  projection);
* ``siglip_vision_model``, ``siglip2_vision_model``: ``pooler_output`` (the
  attention-pooling head: what ``get_image_features`` returns);
* ``dinov2``, ``dinov2_with_registers``, ``vit``, ``deit``: the class token of
  the final layer-normed ``last_hidden_state`` (ViT's tanh ``pooler`` is not used);
* ``beit``, ``data2vec-vision``: ``pooler_output``, the model's own pooler: the
  layer-normed mean of the patch tokens (``use_mean_pooling``, the default),
  else the class token;
* ``convnext``, ``convnextv2``: ``pooler_output`` (layer-normed global average);
* a ``*ForImageClassification`` checkpoint: the ``logits``; the features the
  head reads are the module ``head_input``;
* any other model type: ``AutoModel``'s ``pooler_output``, else its
  ``last_hidden_state`` (pooled by ``--pool-tokens`` / ``--pool-maps``); a
  warning says so and the entry records it (``model.hf_embedding``).

Presets (per model): ``embedding`` and ``penultimate`` are ``output``, except
for classifiers: ``logits`` is ``output``, ``embedding`` and ``penultimate``
are ``head_input``.

Preprocessing is the model's own ``AutoImageProcessor``: each RGB image becomes
``processor(images=img, return_tensors="pt")["pixel_values"][0]`` (SigLIP2's
NaFlex processor: the patches, their mask and grid shape packed in one tensor,
:func:`pack_patches`, which the wrapper unpacks; an image batch ``(N, 3, H, W)``
given as is is cut into patches the processor's way). The
processor's class and settings and the transformers version are recorded.
No remote code is ever run (``trust_remote_code`` stays off).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignkit.errors import InputError, ModelError, WeightsUnavailableError
from alignkit.extract.sources import ModelSource, ResolvedWeights

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from alignkit.extract.models import LoadedModel

#: model_type -> how the image embedding is read (see the module docstring).
FAMILIES: dict[str, str] = {
    "clip": "image_features",
    "siglip": "image_features",
    "siglip2": "image_features",
    "clip_vision_model": "image_embeds",
    "siglip_vision_model": "pooler",
    "siglip2_vision_model": "pooler",
    "dinov2": "cls",
    "dinov2_with_registers": "cls",
    "vit": "cls",
    "deit": "cls",
    "beit": "pooler",
    "data2vec-vision": "pooler",
    "convnext": "pooler",
    "convnextv2": "pooler",
}

_WHAT = {
    "image_features": "get_image_features (projected, unnormalised image embedding)",
    "image_embeds": "image_embeds (projected, unnormalised image embedding)",
    "pooler": "pooler_output",
    "cls": "class token of the final layer-normed last_hidden_state",
    "logits": "logits of the classification head",
    "auto": "pooler_output, else last_hidden_state (no explicit handling of this model type)",
}

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _transformers(spec: str) -> Any:
    try:
        import transformers
    except ImportError:
        raise ModelError(
            f"--model {spec}: transformers is not installed (pip install transformers)"
        ) from None
    return transformers


@contextmanager
def _quiet(tf: Any, offline: bool) -> Iterator[None]:
    """Offline if asked; without transformers' warnings and loading progress bars."""
    from alignkit.extract.models import hub_offline

    log = tf.utils.logging
    bars, level = log.is_progress_bar_enabled(), log.get_verbosity()
    log.disable_progress_bar()
    log.set_verbosity_error()
    try:
        with hub_offline(offline), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.set_verbosity(level)
        if bars:
            log.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def _unavailable(spec: str, name: str, why: str, weights: str = "") -> WeightsUnavailableError:
    tail = ("(--weights none still needs the model's config)" if weights.lower() == "none"
            else "or pass --weights none for random initialisation")
    return WeightsUnavailableError(
        f"{spec}: {name!r} is not available ({why}); it can come from the hub (downloaded when "
        f"online), from a local folder (hf:/path/to/folder, written with save_pretrained) or "
        f"from the Hugging Face cache (HF_HOME); {tail}"
    )


class HFImageTransform:
    """An RGB PIL image -> the ``(3, H, W)`` float tensor the model's image processor gives."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, img: Image.Image) -> torch.Tensor:
        out = self.processor(images=img, return_tensors="pt")
        if "spatial_shapes" not in out:
            return out["pixel_values"][0]
        return pack_patches(out["pixel_values"][0], out["pixel_attention_mask"][0],
                            out["spatial_shapes"][0])

    def settings(self) -> dict[str, Any]:
        """The processor's class and the settings that decide its output (JSON-able)."""
        d = self.processor.to_dict()
        keys = ("size", "crop_size", "max_num_patches", "patch_size", "do_resize", "do_center_crop", "crop_pct", "do_rescale",
                "rescale_factor", "do_normalize", "image_mean", "image_std", "resample",
                "do_convert_rgb", "do_pad")
        out: dict[str, Any] = {"class": type(self.processor).__name__}
        for k in keys:
            if k in d and d[k] is not None:
                v = d[k]
                out[k] = list(v) if isinstance(v, tuple) else int(v) if isinstance(v, IntEnum) else v
        return out

    def __repr__(self) -> str:  # recorded in the entry's provenance: keep it deterministic
        s = self.settings()
        cls = s.pop("class")
        return f"HFImageTransform({cls}, {', '.join(f'{k}={v!r}' for k, v in sorted(s.items()))})"


def pack_patches(pixels: torch.Tensor, mask: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """One image of a NaFlex processor (SigLIP2) as one float tensor, for the batch loader.

    ``pixels`` ``(P, D)`` patches, ``mask`` ``(P,)``, ``shape`` ``(2,)`` patch rows and
    columns -> ``(P + 1, D + 1)``: the mask is the last column, the shape the last row.
    """
    import torch

    out = torch.zeros((pixels.shape[0] + 1, pixels.shape[1] + 1), dtype=torch.float32)
    out[:-1, :-1] = pixels
    out[:-1, -1] = mask.to(torch.float32)
    out[-1, :2] = shape.to(torch.float32)
    return out


def _naflex_inputs(x: torch.Tensor, patch: int) -> dict[str, torch.Tensor]:
    """SigLIP2 inputs from packed patches ``(N, P + 1, D + 1)`` or images ``(N, 3, H, W)``."""
    import torch

    if x.dim() == 3:
        return {"pixel_values": x[:, :-1, :-1], "pixel_attention_mask": x[:, :-1, -1].to(torch.int32),
                "spatial_shapes": x[:, -1, :2].round().to(torch.int64)}
    n, c, h, w = x.shape  # as the processor cuts patches: rows, columns, then pixels, channels
    rows, cols = h // patch, w // patch
    x = x[:, :, :rows * patch, :cols * patch].reshape(n, c, rows, patch, cols, patch)
    pixels = x.permute(0, 2, 4, 3, 5, 1).reshape(n, rows * cols, patch * patch * c)
    return {"pixel_values": pixels,
            "pixel_attention_mask": torch.ones((n, rows * cols), dtype=torch.int32, device=x.device),
            "spatial_shapes": torch.tensor([[rows, cols]] * n, device=x.device)}


def _input_size(processor: Any, config: Any) -> int:
    d = processor.to_dict() if processor is not None else {}
    if isinstance(d.get("max_num_patches"), int) and isinstance(d.get("patch_size"), int):
        return int(d["patch_size"] * int(d["max_num_patches"] ** 0.5))
    for key in (("crop_size",) if d.get("do_center_crop") else ()) + ("size",):
        v = d.get(key)
        if isinstance(v, dict):
            for k in ("height", "shortest_edge", "width", "longest_edge"):
                if isinstance(v.get(k), int):
                    return int(v[k])
        elif isinstance(v, int):
            return v
    size = getattr(getattr(config, "vision_config", config), "image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _wrapper_class() -> Any:
    from torch import nn

    class HFImageEmbedding(nn.Module):
        """A transformers model whose ``forward(pixel_values)`` returns one tensor (see the module doc)."""

        def __init__(self, model: nn.Module, kind: str) -> None:
            super().__init__()
            self.model = model
            self.kind = kind
            config = getattr(model.config, "vision_config", model.config)
            # SigLIP2 (NaFlex) takes patch sequences with a mask and their grid shape.
            naflex = config.model_type == "siglip2_vision_model"
            self.naflex = int(config.patch_size) if naflex else 0
            head = getattr(model, "classifier", None) if kind == "logits" else None
            if isinstance(head, nn.Module):
                # What the classification head reads, as a module of its own.
                self.head_input = nn.Identity()
                head.register_forward_pre_hook(self._head_input)

        def _head_input(self, _m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            return (self.head_input(args[0]), *args[1:])

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            inputs = {"pixel_values": pixel_values}
            if self.naflex:
                inputs = _naflex_inputs(pixel_values, self.naflex)
            if self.kind == "image_features":
                out = self.model.get_image_features(**inputs)
                return out if _is_tensor(out) else out.pooler_output
            out = self.model(**inputs, return_dict=True)
            if self.kind == "image_embeds":
                return out.image_embeds
            if self.kind == "logits":
                return out.logits
            if self.kind == "cls":
                return out.last_hidden_state[:, 0]
            pooled = getattr(out, "pooler_output", None)
            if pooled is not None or self.kind == "pooler":
                return pooled
            return out.last_hidden_state

        def extra_repr(self) -> str:
            return f"kind={self.kind!r}"

    return HFImageEmbedding


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


class HFSource(ModelSource):
    """An image model of Hugging Face transformers, from the hub, the cache or a local folder."""

    name = "hf"
    prefix = "hf"
    forms = ("hf:NAME_OR_FOLDER",)
    help = ("a Hugging Face transformers image model (hub id or save_pretrained folder; when "
            "transformers is installed); output and embedding are its image embedding")
    layer_presets = {"embedding": "output", "penultimate": "output"}

    def check(self, spec: str, weights: str) -> str | None:
        if not self.rest(spec).strip():
            return f"{spec!r}: no name after hf: (expected hf:NAME or hf:/path/to/folder)"
        return None

    def rebase(self, spec: str, base: Path) -> str:
        rest = self.rest(spec)
        target = Path(rest).expanduser()
        if not target.is_absolute() and (base / target).is_dir():
            return f"hf:{(base / target).resolve()}"
        return spec

    def _where(self, spec: str) -> tuple[str, Path | None]:
        rest = self.rest(spec).strip()
        if not rest:
            raise InputError(self.check(spec, "") or spec)
        folder = Path(rest).expanduser()
        if folder.is_dir():
            return rest, folder
        if folder.exists():
            raise ModelError(f"--model {spec}: {rest!r} is a file, not a folder (expected a hub "
                             "id or a save_pretrained folder; a weights file goes to --weights)")
        if rest.startswith((".", "/", "~")) or rest.count("/") > 1 or "\\" in rest:
            raise ModelError(f"--model {spec}: no such folder {rest!r} (expected a hub id "
                             "such as facebook/dinov2-base or a save_pretrained folder)")
        return rest, None

    def _config(self, spec: str, offline: bool, weights: str = "") -> Any:
        tf = _transformers(spec)
        rest, folder = self._where(spec)
        if folder is not None and not (folder / "config.json").is_file():
            raise ModelError(f"--model {spec}: {folder} holds no config.json (write the model "
                             "there with save_pretrained)")
        try:
            with _quiet(tf, offline):
                return tf.AutoConfig.from_pretrained(str(folder) if folder else rest)
        except Exception as exc:
            if folder is not None:
                raise ModelError(f"--model {spec}: cannot read {folder / 'config.json'} "
                                 f"({_first_line(exc)})") from None
            raise _unavailable(spec, rest, _first_line(exc), weights) from None

    def resolve_weights(self, spec: str, weights: str, offline: bool) -> ResolvedWeights:
        config = self._config(spec, offline, weights.strip())  # fails fast: no config, nothing to build
        rest, folder = self._where(spec)
        w = weights.strip()
        if w.lower() == "none":
            return ResolvedWeights("none", offline=offline, handle=config)
        if w.upper() == "DEFAULT":
            file = next((folder / f for f in _WEIGHT_FILES if (folder / f).is_file()), None) \
                if folder else None
            return ResolvedWeights("DEFAULT", file, offline, config)
        path = Path(w).expanduser()
        if path.is_dir():
            file = next((path / f for f in _WEIGHT_FILES if (path / f).is_file()), None)
            if file is None:
                raise InputError(f"--weights {w}: the folder holds none of {', '.join(_WEIGHT_FILES)}")
            return ResolvedWeights(f"folder:{path.name}", file, offline, config)
        if not path.is_file():
            raise InputError(f"--weights {w}: expected none, DEFAULT, or a weights file or "
                             "folder (no such file)")
        return ResolvedWeights(f"file:{path.name}", path, offline, config)

    def _classes(self, tf: Any, config: Any) -> tuple[Any, str]:
        mt = config.model_type
        arch = (getattr(config, "architectures", None) or [None])[0]
        if arch and arch.endswith("ForImageClassification") and hasattr(tf, arch):
            return getattr(tf, arch), "logits"
        if mt == "clip_vision_model":
            if arch == "CLIPVisionModel":
                return tf.CLIPVisionModel, "pooler"
            return tf.CLIPVisionModelWithProjection, "image_embeds"
        if mt in FAMILIES:
            return tf.AutoModel, FAMILIES[mt]
        return tf.AutoModel, "auto"

    def build(self, spec: str, weights: ResolvedWeights) -> LoadedModel:
        from alignkit.extract.models import LoadedModel

        tf = _transformers(spec)
        rest, folder = self._where(spec)
        where = str(folder) if folder is not None else rest
        config = weights.handle if weights.handle is not None else self._config(spec,
                                                                                weights.offline)
        cls, kind = self._classes(tf, config)
        try:
            with _quiet(tf, weights.offline):
                if weights.id == "DEFAULT":
                    model = cls.from_pretrained(where)
                elif weights.id.startswith("folder:") and weights.file is not None:
                    model = cls.from_pretrained(str(weights.file.parent), config=config)
                elif weights.id.startswith("file:") and weights.file is not None:
                    model = _from_file(cls, config, weights.file)
                elif hasattr(cls, "from_config"):
                    model = cls.from_config(config)
                else:
                    model = cls(config)
        except ModelError:
            raise
        except Exception as exc:
            if weights.id == "DEFAULT" and folder is None:
                raise _unavailable(spec, rest, _first_line(exc)) from None
            raise ModelError(f"--model {spec}: cannot build the model ({_first_line(exc)})") from None
        if kind == "auto":
            warnings.warn(f"{spec}: model type {config.model_type!r} has no explicit handling; "
                          f"its output is {_WHAT['auto']}", stacklevel=2)
        # float32 throughout (transformers may keep a checkpoint's float16 / bfloat16)
        net = _wrapper_class()(model.float().eval(), kind).eval()
        if kind == "logits":
            head = "head_input" if hasattr(net, "head_input") else "output"
            presets = {"logits": "output", "penultimate": head, "embedding": head}
        else:
            presets = {"embedding": "output", "penultimate": "output"}

        processor = None
        try:
            with _quiet(tf, weights.offline):
                processor = tf.AutoImageProcessor.from_pretrained(where)
        except Exception as exc:
            size = _input_size(None, config)
            warnings.warn(f"{spec}: no image processor ({_first_line(exc)}); using alignkit's "
                          f"ImageNet preprocessing at the model's image size {size}", stacklevel=2)
        transform: Any = None
        if processor is not None:
            transform = HFImageTransform(processor)
        else:  # the ImageNet recipe (resize 256/224 of the crop) at the config's image size
            from alignkit.extract.images import Preprocess

            size = _input_size(None, config)
            transform = Preprocess(resize=round(size * 256 / 224), crop=size)
        attrs: dict[str, Any] = {
            "transformers_version": tf.__version__,
            "hf_model_type": config.model_type,
            "hf_class": type(model).__name__,
            "hf_embedding": _WHAT[kind],
            "hf_processor": transform.settings() if processor is not None else None,
        }
        file = weights.file
        if weights.id == "DEFAULT" and file is None:
            file = _cached_weights(rest)
        return LoadedModel(net, spec, self.name, weights.id,
                           str(file.resolve()) if file is not None else None, transform,
                           _input_size(processor, config), presets=presets, attrs=attrs)


def _from_file(cls: Any, config: Any, path: Path) -> Any:
    """The model of ``config`` with the state dict in ``path``; every key must fit.

    Loaded through transformers, which also maps the checkpoint's key names onto the
    current modules.
    """
    state = _read_weights(path)
    try:
        model, info = cls.from_pretrained(None, config=config, state_dict=state,
                                          output_loading_info=True)
    except Exception as exc:  # shapes that differ
        raise ModelError(f"--weights {path}: does not fit the model ({_first_line(exc)})") from None
    missing, unexpected = info.get("missing_keys") or [], info.get("unexpected_keys") or []
    mismatched = info.get("mismatched_keys") or []
    if missing or unexpected or mismatched:
        parts = [f"{len(v)} {what} (first: {sorted(v)[0]})" for what, v in
                 (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched))
                 if v]
        raise ModelError(f"--weights {path}: does not fit the model: {'; '.join(parts)} keys")
    return model


def _read_weights(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise ModelError(f"--weights {path}: cannot read ({_first_line(exc)})") from None
    from alignkit.extract.models import load_state_dict_file

    return load_state_dict_file(path)


def _cached_weights(repo: str) -> Path | None:
    """The cached weights file of hub model ``repo`` (for its checksum), if it is there."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for fname in _WEIGHT_FILES:
        try:
            got = try_to_load_from_cache(repo, fname)
        except Exception:
            return None
        if isinstance(got, str):
            return Path(got)
    return None
