"""Names of the layer presets, importable without torch.

A preset is a layer name a user can type for any model (``--layer
penultimate``); :func:`alignkit.extract.layers.resolve_layers` turns it into a
module name, by the paper's rule over the execution order or by the model
source's own choice (:attr:`alignkit.extract.sources.ModelSource.layer_presets`).
"""

from __future__ import annotations

__all__ = ["LAYER_PRESETS", "RULE_PRESETS"]

#: Every preset name, with what it means.
LAYER_PRESETS: dict[str, str] = {
    "penultimate": "the last executed leaf module before the logits that is not an "
                   "activation, Dropout or shape-only module",
    "logits": "the last executed leaf module",
    "embedding": "the model's own image embedding (only for sources that declare one)",
}

#: Presets that the execution-order rule defines for every hookable model.
RULE_PRESETS: tuple[str, ...] = ("penultimate", "logits")
