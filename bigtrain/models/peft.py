"""LoRA adapters of a KerasHub causal LM written in PEFT's format (adapter_model.safetensors
and adapter_config.json), so the base stays shared and transformers + PEFT (or vLLM's LoRA
serving) apply the adapter to the base's own weights.

Keras's LoRA on an attention projection (an EinsumDense of kernel [in, heads, head_dim], or
[heads, in, head_dim] in Gemma) keeps a down-projection per head (A: [in, heads, r]) and one
up-projection shared by the heads (B: [r, head_dim]); its update of head h is A[:, h] @ B.
As one matrix from `in` to heads x head_dim that is an adapter of rank heads x r with a
block-diagonal B, which is what is written: exact, with `rank_pattern` and `alpha_pattern`
giving each module its rank and a scale of lora_alpha / rank as Keras has it. The adapted
layers' biases, which train beside the adapters, are written too (`bias: lora_only`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from bigtrain.core.errors import ConfigError

#: adapted KerasHub layers (by path) and the Transformers module each one is, with the
#: layout of its kernel: in_head ([in, heads, head_dim]) or head_in ([heads, in, head_dim])
_MODULES = [
    (re.compile(r"transformer_layer_(\d+)/self_attention/(query|key|value)$"), "in_head"),
    (re.compile(r"decoder_block_(\d+)/attention/(query|key|value)$"), "head_in"),
]
_PROJ = {"query": "q_proj", "key": "k_proj", "value": "v_proj"}
FAMILIES = ("Llama3Backbone", "MistralBackbone", "QwenBackbone", "GemmaBackbone")


def _module_of(path: str) -> tuple[str, str] | None:
    for pattern, layout in _MODULES:
        m = pattern.search(path)
        if m:
            return f"model.layers.{m.group(1)}.self_attn.{_PROJ[m.group(2)]}", layout
    return None


def factors(layer, layout: str) -> tuple[np.ndarray, np.ndarray, int, float]:
    """(lora_A [R, in], lora_B [out, R], R, scale) of a Keras LoRA layer, exactly:
    update = scale * lora_B @ lora_A, R = heads x rank."""
    a = np.asarray(layer.lora_kernel_a, np.float32)
    b = np.asarray(layer.lora_kernel_b, np.float32)  # [r, head_dim]
    r = int(layer.lora_rank)
    if layout == "head_in":
        a = a.transpose(1, 0, 2)  # [in, heads, r]
    n_in, heads, _ = a.shape
    head_dim = b.shape[1]
    # rows (head, rank); contiguous: safetensors writes an array's buffer as it lies
    lora_a = np.ascontiguousarray(a.transpose(1, 2, 0).reshape(heads * r, n_in))
    lora_b = np.zeros((heads * head_dim, heads * r), np.float32)
    for h in range(heads):
        lora_b[h * head_dim:(h + 1) * head_dim, h * r:(h + 1) * r] = b.T
    scale = float(layer.lora_alpha) / r
    return lora_a, lora_b, heads * r, scale


def save_adapter(backbone, directory: Path, base: str, train_layers: list[str]) -> list[str]:
    """Write the backbone's LoRA adapters into `directory` in PEFT's format; return the
    Transformers modules adapted. Refused by name: a family whose Transformers names are not
    known here, layers trained in full beside the adapters, adapters on other layers."""
    from safetensors.numpy import save_file

    name = type(backbone).__name__
    if name not in FAMILIES:
        raise ConfigError("--format", f"adapter: PEFT adapters are written for "
                          f"{', '.join(f.removesuffix('Backbone') for f in FAMILIES)}; this "
                          f"run's model is a {name}: use --format hf (adapters merged)")
    if train_layers:
        raise ConfigError("--format", f"adapter: this run trained {', '.join(train_layers)} in "
                          "full (model.train_layers), which an adapter file does not hold: use "
                          "--format hf (everything merged)")
    tensors: dict[str, np.ndarray] = {}
    ranks: dict[str, int] = {}
    scales: dict[str, float] = {}
    adapted = [lyr for lyr in backbone._flatten_layers(include_self=False)
               if getattr(lyr, "lora_enabled", False)]
    if not adapted:
        raise ConfigError("--format", "adapter: this run has no LoRA adapters "
                          "(model.lora_rank=0): use --format hf")
    for layer in adapted:
        found = _module_of(layer.path)
        if found is None:
            raise ConfigError("--format", f"adapter: {layer.path} has an adapter, and PEFT "
                              "names are known here for the attention's query, key and value "
                              "projections only: use --format hf (adapters merged)")
        module, layout = found
        lora_a, lora_b, rank, scale = factors(layer, layout)
        prefix = f"base_model.model.{module}"
        tensors[f"{prefix}.lora_A.weight"] = lora_a
        tensors[f"{prefix}.lora_B.weight"] = lora_b
        if getattr(layer, "bias", None) is not None:
            tensors[f"{prefix}.bias"] = np.asarray(layer.bias, np.float32).reshape(-1)
        ranks[module] = rank
        scales[module] = scale
    common = max(set(ranks.values()), key=list(ranks.values()).count)
    scale = next(iter(scales.values()))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    targets = sorted({m.rsplit(".", 1)[1] for m in ranks})
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base,
        "r": common, "lora_alpha": scale * common, "target_modules": targets,
        # each module's rank and alpha (alpha / rank = Keras's scale), by its full name
        "rank_pattern": {m: r for m, r in ranks.items() if r != common},
        "alpha_pattern": {m: scales[m] * r for m, r in ranks.items()
                          if scales[m] * r != scale * common},
        "lora_dropout": 0.0, "bias": "lora_only", "fan_in_fan_out": False,
        "inference_mode": True, "use_rslora": False, "modules_to_save": None,
        "init_lora_weights": True,
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n",
                                                   encoding="utf-8")
    return sorted(ranks)

