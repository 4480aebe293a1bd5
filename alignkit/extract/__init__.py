"""Feature extraction: models, layers, image sets, and the extraction loop.

The public API is re-exported lazily (importing this package does not import
torch until an attribute is used)::

    from alignkit.extract import extract_features
    res = extract_features("resnet50", "images/", ["penultimate", "logits"],
                           store="features.zarr")
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "extract_features",
    "ExtractOptions",
    "ExtractionResult",
    "resolve_device",
    "load_model",
    "LoadedModel",
    "torchvision_models",
    "ImageSet",
    "Preprocess",
    "open_images",
    "from_folder",
    "from_csv",
    "from_things",
    "load_rgb",
    "probe_layers",
    "resolve_layers",
    "pool",
]

_WHERE = {
    "extract_features": "runner",
    "ExtractOptions": "runner",
    "ExtractionResult": "runner",
    "resolve_device": "runner",
    "load_model": "models",
    "LoadedModel": "models",
    "torchvision_models": "models",
    "ImageSet": "images",
    "Preprocess": "images",
    "open_images": "images",
    "from_folder": "images",
    "from_csv": "images",
    "from_things": "images",
    "load_rgb": "images",
    "probe_layers": "layers",
    "resolve_layers": "layers",
    "pool": "layers",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"alignkit.extract.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'alignkit.extract' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
