"""Packed windows for KerasHub causal LMs: the same packing scope bigtrain's transformer reads
(bigtrain/models/packing.py), taken by the layers of a KerasHub backbone.

Inside the scope, each decoder layer's self-attention mask (what its own
`_compute_self_attention_mask`, or Gemma's `_compute_attention_mask`, builds: causal and
padding) is narrowed to the query's own segment, and the position layers take each token's
position within its example: `RotaryEmbedding` (Llama 3, Mistral, Qwen, Gemma) and GPT-2's
learned `PositionEmbedding` through their own `positions` argument. Outside the scope (and in
a model reloaded for generation or export) the layers compute what they did before. Only the
calls of the layer instances change, as bigtrain.models.fuse does it.
"""

from __future__ import annotations

from keras import ops

from bigtrain.core.errors import ConfigError
from bigtrain.models import packing
from bigtrain.models.fuse import _set

#: the backbones whose every attention mask and position layer is covered here
FAMILIES = ("GPT2Backbone", "Llama3Backbone", "MistralBackbone", "QwenBackbone",
            "GemmaBackbone")
_MASKS = ("_compute_self_attention_mask", "_compute_attention_mask")


def _within_segments(original):
    def compute(*args, **kwargs):
        mask = original(*args, **kwargs)
        p = packing.current()
        if p is None or mask is None:
            return mask
        same = ops.equal(ops.expand_dims(p.segments, 2), ops.expand_dims(p.segments, 1))
        return ops.cast(ops.logical_and(ops.cast(mask, "bool"), same), mask.dtype)

    return compute


def _positioned(original):
    def call(inputs, start_index=0, positions=None):
        p = packing.current()
        if p is not None and positions is None:
            positions = p.positions
        return original(inputs, start_index=start_index, positions=positions)

    return call


def enable(task) -> int:
    """Make `task`'s backbone take packed windows inside a packing scope; return how many
    layers changed. A family not covered is a ConfigError naming dataset.packing."""
    from keras_hub.src.layers.modeling.position_embedding import PositionEmbedding
    from keras_hub.src.layers.modeling.rotary_embedding import RotaryEmbedding

    backbone = task.backbone
    name = type(backbone).__name__
    if name not in FAMILIES:
        raise ConfigError("dataset.packing", f"packed windows are taken by bigtrain's "
                          f"transformer and the KerasHub families "
                          f"{', '.join(f.removesuffix('Backbone') for f in FAMILIES)}; this "
                          f"preset is a {name}: use dataset.packing=false")
    changed = 0
    for layer in backbone._flatten_layers(include_self=False, recursive=True):
        if getattr(layer, "_bigtrain_packs", False):
            continue
        if isinstance(layer, (RotaryEmbedding, PositionEmbedding)):
            _set(layer, "call", _positioned(layer.call))
        else:
            method = next((m for m in _MASKS if hasattr(type(layer), m)), None)
            if method is None:
                continue
            _set(layer, method, _within_segments(getattr(layer, method)))
        _set(layer, "_bigtrain_packs", True)
        changed += 1
    return changed
