"""Layers: lookup by name, the paper's presets, forward hooks and pooling.

Presets follow the paper's rule (see the protocol document):

* ``logits``: the last leaf module executed in a forward pass;
* ``penultimate``: the last executed leaf module that is not an activation
  (ReLU, GELU, ...), Dropout, a shape-only module (Flatten, Identity) or the
  logits layer. ResNet gives ``avgpool``, VGG16 ``classifier.3``, AlexNet
  ``classifier.4`` (the last hidden Linear before its ReLU), torchvision ViT
  ``encoder.ln`` (whose class token is kept), EfficientNet ``avgpool``,
  ConvNeXt ``classifier.0``;
* ``embedding``: no rule; only models whose source declares it (OpenCLIP:
  the image embedding, ``output``).

A model source may set any preset for its models
(:attr:`alignkit.extract.sources.ModelSource.layer_presets`; TorchScript and
OpenCLIP name ``output``).

Execution order is observed with hooks during one forward pass on a blank
input, so models that register modules in another order than they run them
are handled. The pseudo-layer ``output`` is the model's return value.

Pooling turns every captured tensor into one row per image: 4-D maps
``(N, C, H, W)`` are flattened (the paper's choice), average- or max-pooled
over space; token sequences ``(N, T, D)`` keep the class token (``cls``, first
token) or average the tokens (``mean``); 2-D outputs are kept; anything else
is flattened.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from alignkit.errors import InputError, ModelError
from alignkit.extract.layer_presets import LAYER_PRESETS, RULE_PRESETS

__all__ = [
    "PRESETS",
    "OUTPUT",
    "LayerInfo",
    "probe_layers",
    "resolve_layers",
    "pool",
    "capture",
    "StopForward",
]

#: Layer names that any model takes (see :mod:`alignkit.extract.layer_presets`).
PRESETS = tuple(LAYER_PRESETS)
OUTPUT = "output"
MAP_POOLS = ("flatten", "avg", "max")
TOKEN_POOLS = ("cls", "mean", "flatten")

_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
    nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.PReLU, nn.Softplus, nn.Softmax,
    nn.LogSoftmax, nn.Hardtanh, nn.GLU, nn.Softsign, nn.Tanhshrink,
)
_DROPOUTS: tuple[type[nn.Module], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
)
_SHAPE_ONLY: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Unflatten, nn.Identity)


def _is_skipped_for_penultimate(module: nn.Module) -> bool:
    if isinstance(module, _ACTIVATIONS + _DROPOUTS + _SHAPE_ONLY):
        return True
    name = type(module).__name__
    # Stochastic depth and activations defined outside torch.nn (torchvision, timm).
    return name in ("StochasticDepth", "DropPath", "QuickGELU", "Permute")


@dataclass(frozen=True)
class LayerInfo:
    """One module seen during a probe forward pass.

    Attributes:
        name: the module's qualified name (``""`` is never listed; see ``output``).
        type: the module's class name.
        shape: the shape of its output for one image (without the batch axis),
            or ``None`` if it did not run or returned no tensor.
        calls: how many times it ran in one forward pass.
        leaf: whether it has no child modules.
    """

    name: str
    type: str
    shape: tuple[int, ...] | None
    calls: int
    leaf: bool


class StopForward(Exception):
    """Raised by a hook once every requested layer has been captured."""


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, dict):
        for v in out.values():
            if isinstance(v, torch.Tensor):
                return v
    return None


def probe_layers(model: nn.Module, example: torch.Tensor) -> tuple[list[LayerInfo], list[str]]:
    """Run one forward pass and record every module's output shape and order.

    Args:
        model: the model, in eval mode.
        example: a batch of one input, on the model's device.

    Returns:
        ``(infos, order)``: every named module in registration order, and the
        names of the leaf modules in the order of their last execution.

    Raises:
        ModelError: the forward pass fails (e.g. the input size does not fit).
    """
    scripted = isinstance(model, torch.jit.ScriptModule)
    # TorchScript modules cannot be hooked: only their output is listed.
    named = [] if scripted else [(n, m) for n, m in model.named_modules() if n]
    shapes: dict[str, tuple[int, ...] | None] = {}
    calls: dict[str, int] = {}
    order: list[str] = []
    leaves = {n for n, m in named if not any(True for _ in m.children())}
    handles = []

    def make_hook(name: str) -> Any:
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            t = _first_tensor(out)
            shapes[name] = tuple(t.shape[1:]) if t is not None and t.dim() >= 1 else None
            if name in leaves:
                order.append(name)

        return hook

    for name, module in named:
        handles.append(module.register_forward_hook(make_hook(name)))
    try:
        with torch.inference_mode():
            out = model(example)
    except Exception as exc:
        raise ModelError(
            f"the model's forward pass fails on an input of shape {tuple(example.shape)}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    finally:
        for h in handles:
            h.remove()
    t = _first_tensor(out)
    shapes[OUTPUT] = tuple(t.shape[1:]) if t is not None else None
    last_pos = {n: i for i, n in enumerate(order)}
    exec_order = sorted(last_pos, key=last_pos.__getitem__)
    infos = [
        LayerInfo(n, type(m).__name__, shapes.get(n), calls.get(n, 0), n in leaves) for n, m in named
    ]
    infos.append(LayerInfo(OUTPUT, "output", shapes[OUTPUT], 1, False))
    return infos, exec_order


def _preset(model: nn.Module, preset: str, exec_order: list[str]) -> str:
    if preset not in RULE_PRESETS:
        from alignkit.extract.sources import sources

        having = [f for s in sources() if preset in s.layer_presets for f in s.forms]
        where = f" (models that have one: {', '.join(having)})" if having else ""
        raise ModelError(
            f"layer preset {preset!r}: this model does not define it{where}; use "
            f"{', '.join(RULE_PRESETS)} or a module name"
        )
    if isinstance(model, torch.jit.ScriptModule) or not exec_order:
        if preset == "logits":
            return OUTPUT
        raise ModelError(
            f"layer preset {preset!r} needs module hooks, which this model does not support "
            f"(TorchScript); use --layer {OUTPUT}"
        )
    modules = dict(model.named_modules())
    logits = exec_order[-1]
    if preset == "logits":
        return logits
    for name in reversed(exec_order[:-1]):
        if not _is_skipped_for_penultimate(modules[name]):
            return name
    raise ModelError("no layer before the logits qualifies for the 'penultimate' preset")


def resolve_layers(
    model: nn.Module,
    specs: Sequence[str],
    infos: list[LayerInfo],
    exec_order: list[str],
    presets: dict[str, str] | None = None,
) -> list[str]:
    """Turn layer names and presets into module names, in the order given.

    Args:
        model: the model.
        specs: module names, ``output`` or a preset (:data:`PRESETS`:
            ``penultimate``, ``logits``, ``embedding``).
        infos, exec_order: from :func:`probe_layers`.
        presets: model-specific presets (the model source's ``layer_presets``,
            e.g. CLIP's image embedding); ``embedding`` exists only there.

    Raises:
        ModelError: an unknown name (close names suggested), a module that
            never runs, or a module without a tensor output.
    """
    known = {i.name: i for i in infos}
    out: list[str] = []
    for spec in specs:
        name = spec
        if spec in PRESETS:
            name = (presets or {}).get(spec) or _preset(model, spec, exec_order)
        if name != OUTPUT and isinstance(model, torch.jit.ScriptModule):
            raise ModelError(
                f"--layer {spec!r}: TorchScript models cannot be hooked; only --layer {OUTPUT} works"
            )
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=4, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ModelError(
                f"--layer {spec!r}: no such module{hint} (alignkit extract --list-layers MODEL "
                "lists them)"
            )
        info = known[name]
        if info.calls == 0:
            raise ModelError(f"--layer {spec!r}: module {name!r} does not run in the forward pass")
        if info.shape is None:
            raise ModelError(f"--layer {spec!r}: module {name!r} returns no tensor")
        if name not in out:
            out.append(name)
    if not out:
        raise InputError("no layer requested")
    return out


def pool(t: torch.Tensor, maps: str = "flatten", tokens: str = "cls") -> torch.Tensor:
    """Reduce a layer's output to one row per image.

    Args:
        t: ``(N, ...)`` output.
        maps: pooling of 4-D maps ``(N, C, H, W)``: ``flatten``, ``avg`` or ``max``.
        tokens: pooling of 3-D token sequences ``(N, T, D)``: ``cls`` (first
            token), ``mean`` or ``flatten``.

    Returns:
        A ``(N, p)`` tensor (a view when no reduction is needed).
    """
    if t.dim() == 2:
        return t
    if t.dim() == 4:
        if maps == "avg":
            return t.mean(dim=(2, 3))
        if maps == "max":
            return t.amax(dim=(2, 3))
        if maps != "flatten":
            raise InputError(f"--pool-maps {maps!r}: expected one of {', '.join(MAP_POOLS)}")
    elif t.dim() == 3:
        if tokens == "cls":
            return t[:, 0]
        if tokens == "mean":
            return t.mean(dim=1)
        if tokens != "flatten":
            raise InputError(f"--pool-tokens {tokens!r}: expected one of {', '.join(TOKEN_POOLS)}")
    return t.reshape(t.shape[0], -1)


def pooled_dim(shape: tuple[int, ...], maps: str, tokens: str) -> int:
    """The width ``p`` that :func:`pool` gives for a per-image output ``shape``."""
    example = torch.zeros((1, *shape), device="meta")
    return int(pool(example, maps, tokens).shape[1])


@contextmanager
def capture(
    model: nn.Module,
    layers: Sequence[str],
    maps: str = "flatten",
    tokens: str = "cls",
    stop_early: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Hook ``layers`` and collect their pooled outputs on every forward pass.

    Yields a dict that each forward pass fills with ``layer -> (N, p)``
    tensors (``output`` is filled by the caller). With ``stop_early``, a hook
    raises :class:`StopForward` once all hooked layers have been captured, so
    the rest of the network is not computed; only safe when each hooked module
    runs once per forward pass.
    """
    captured: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    hooked = [n for n in layers if n != OUTPUT]
    handles = []

    def make_hook(name: str) -> Any:
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            t = _first_tensor(out)
            if t is None:
                raise ModelError(f"layer {name!r} returned no tensor")
            pooled = pool(t, maps, tokens)
            if pooled.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
                # A view of the output: a later in-place module (ReLU(inplace=True))
                # would overwrite it before it is read.
                pooled = pooled.clone()
            captured[name] = pooled
            if stop_early and len(captured) == len(hooked):
                raise StopForward

        return hook

    try:
        for name in hooked:
            handles.append(modules[name].register_forward_hook(make_hook(name)))
        yield captured
    finally:
        for h in handles:
            h.remove()
