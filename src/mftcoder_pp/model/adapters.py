"""What trains, applied in one place before anything counts parameters: LoRA through PEFT, or every
weight; vocabulary adapters; frozen position embeddings; HMD-Fusion's branches.

Vocabulary adapters (paper 3.5): the language prefix tokens' embedding rows train while every other
row stays frozen. With LoRA this is PEFT's `trainable_token_indices` (only those rows are trainable
and saved with the adapter); with full fine-tuning every row trains anyway.
Frozen positional embeddings: models with learned absolute position embeddings (GPT-2's `wpe`,
OPT's `embed_positions`, ...) keep them frozen; RoPE models (Qwen2, Llama) have none — reported as
such, nothing is faked.
HMD-Fusion (modules/hmd_fusion.py) wraps the top decoder layers after PEFT: `get_peft_model` freezes
every parameter it does not own, the branches included, had they been there first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..modules.hmd_fusion import HMDConfig, apply_hmd
from ..modules.layers import find_decoder_layers

POSITION_EMBEDDING_NAMES = ("wpe", "embed_positions", "position_embeddings")


@dataclass
class AdapterReport:
    kind: str
    trainable_params: int
    total_params: int
    vocabulary_adapter_tokens: list[int]
    frozen_position_embeddings: list[str]  # module names; empty for RoPE models
    note: str = ""


def position_embedding_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Embedding) and n.rsplit(".", 1)[-1] in POSITION_EMBEDDING_NAMES]


def apply_adapters(model, kind: str, *, lora_rank: int, lora_alpha: float, lora_dropout: float,
                   target_modules: list[str], new_token_ids: list[int], freeze_position_embeddings: bool,
                   gradient_checkpointing: bool, hmd: HMDConfig | None, lora_layers: int | list[int] | None = None):
    """Returns (model, AdapterReport). `new_token_ids`: rows trained as vocabulary adapters; `hmd`:
    HMD-Fusion's branches on the top layers (None: none); `lora_layers`: which decoder layers get LoRA
    (None: all; k: the top k; a list: those indices). The report counts everything that trains."""
    new_token_ids = sorted(set(new_token_ids or []))
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    frozen = []
    if kind == "lora":
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        missing = [t for t in (target_modules or []) if t not in names]
        if missing:
            raise ValueError(f"adapter.lora.target_modules: {missing} not found in {type(model).__name__} "
                             f"(its linear layers: {sorted(_linear_names(model))})")
        layer_kw = lora_layer_selection(model, lora_layers)
        cfg = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=target_modules,
                         task_type="CAUSAL_LM", trainable_token_indices=new_token_ids or None, **layer_kw)
        if gradient_checkpointing:
            model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
        model = get_peft_model(model, cfg)
        frozen = [n for n, _ in position_embedding_modules(model)]  # PEFT freezes the base already
    elif kind == "full":
        for name, module in position_embedding_modules(model):
            if freeze_position_embeddings:
                module.weight.requires_grad_(False)
                frozen.append(name)
    else:
        raise ValueError(f"adapter.kind: unknown {kind!r} (lora, full)")
    if hmd is not None:
        apply_hmd(model, hmd)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    note = "" if frozen else "no learned position embeddings (rotary positions): nothing to freeze"
    return model, AdapterReport(kind, trainable, total, new_token_ids, frozen, note)


def lora_layer_selection(model, layers: int | list[int] | None) -> dict:
    """PEFT's layers_to_transform/layers_pattern for `adapter.lora.layers` ({} for all layers)."""
    if layers is None:
        return {}
    stack = find_decoder_layers(model)
    n = len(stack)
    if isinstance(layers, int):
        if layers > n:
            raise ValueError(f"adapter.lora.layers: {layers} top layers asked for, {type(model).__name__} has {n}")
        indices = list(range(n - layers, n))
    else:
        bad = [i for i in layers if i >= n]
        if bad:
            raise ValueError(f"adapter.lora.layers: indices {bad} out of range ({type(model).__name__} has {n} "
                             f"layers, 0..{n - 1})")
        indices = sorted(set(layers))
    name = next(k.rsplit(".", 1)[-1] for k, m in model.named_modules() if m is stack)
    return {"layers_to_transform": indices, "layers_pattern": name}


def _linear_names(model) -> set[str]:
    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
