"""Attention probabilities of selected decoder layers during an ordinary forward, for DAGG.

Getting attention weights cheaply (transformers 5): sdpa/flash kernels do not return attention
probabilities, and ``output_attentions=True`` needs ``attn_implementation="eager"`` for the whole
model. Every HF decoder in v5 dispatches its attention kernel through
``ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, ...)`` with the post-RoPE
(and post q/k-norm) query/key states. :func:`capture_attention` therefore gives ONLY the selected
layers' attention modules a private shallow copy of the config whose implementation name is a
registered pass-through function: it calls the model's own kernel unchanged (logits are bit-identical)
and just keeps references to (query, key, mask). The probabilities ``softmax(QKᵀ·scale + mask)`` are
recomputed lazily, in float32, when a loss asks for them, under activation checkpointing so the
(B, heads, T, T) tensor is not kept for the backward. Because nothing extra runs inside the decoder
layer, this is also safe with (non-reentrant) gradient checkpointing. Forward hooks on the selected
decoder layers keep their output hidden states (with graph). Works through PEFT wrappers. A model
whose attention does not dispatch this way gets a clear error naming its class.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .layers import find_decoder_layers

CAPTURE_IMPL = "mftpp_dagg_capture"
_STATE_ATTR = "_mftpp_dagg_capture"
_FLASH = ("flash_attention_2", "flash_attention_3", "flash_attention_4")


def attention_profile(
    attn: torch.Tensor, query_mask: torch.Tensor, key_mask: torch.Tensor | None = None, eps: float = 1e-12
) -> torch.Tensor:
    """Mean over heads and selected queries of the attention rows -> a distribution over keys.

    attn (B, heads, Tq, Tk), query_mask (B, Tq), key_mask (B, Tk) -> (B, Tk), each row summing to 1
    over the valid keys (all-zero for a sample with no selected query).
    """
    qm = query_mask.to(attn.device, attn.dtype)  # (B, Tq)
    prof = torch.einsum("bhqk,bq->bk", attn, qm)  # (B, Tk)
    if key_mask is not None:
        prof = prof * key_mask.to(attn.device, attn.dtype)
    return prof / prof.sum(dim=-1, keepdim=True).clamp_min(eps)


@dataclass
class _AttnRecord:
    query: torch.Tensor  # (B, heads, Tq, D), post-RoPE, with graph
    key: torch.Tensor  # (B, kv_heads, Tk, D)
    mask: Any  # None | (B, Tk) | (B or 1, 1 or heads, Tq, Tk) bool/float
    scaling: float
    impl: str
    kwargs: dict[str, Any]
    weights: torch.Tensor | None  # (B, heads, Tq, Tk) when the original kernel returned them (eager)


def _capture_attention_forward(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """Registered attention "implementation": run the original kernel, keep references to q/k/mask."""
    orig_fn, impl, cap, idx = module.__dict__[_STATE_ATTR]
    out, weights = orig_fn(module, query, key, value, attention_mask, **kwargs)
    if cap.recording and idx not in cap._records:  # first call wins (checkpoint recompute calls again)
        scaling = kwargs.get("scaling")
        if scaling is None:
            scaling = getattr(module, "scaling", query.shape[-1] ** -0.5)
        extra = {k: kwargs[k] for k in ("softcap", "sliding_window", "is_causal", "position_bias") if k in kwargs}
        cap._records[idx] = _AttnRecord(query, key, attention_mask, float(scaling), impl, extra, weights)
    return out, weights


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(CAPTURE_IMPL, _capture_attention_forward)


def _model_name(model: nn.Module) -> str:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = type(base).__name__
    return name if base is model else f"{name} (wrapped by {type(model).__name__})"


def _find_attention(layer: nn.Module, model: nn.Module) -> nn.Module:
    for mod in layer.modules():
        cfg = getattr(mod, "config", None)
        if "attention" in type(mod).__name__.lower() and cfg is not None and hasattr(cfg, "_attn_implementation"):
            return mod
    raise TypeError(
        f"DAGG cannot capture attention weights of {_model_name(model)}: its layer {type(layer).__name__} has no "
        "attention module dispatching through transformers' AttentionInterface (config._attn_implementation)"
    )


def _original_kernel(attn: nn.Module, impl: str | None, model: nn.Module) -> Callable:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if impl == CAPTURE_IMPL:
        raise RuntimeError("DAGG: capture_attention is already active on this model (nested capture)")
    if impl == "flex_attention":
        raise TypeError(f"DAGG cannot capture attention weights of {_model_name(model)} with flex_attention "
                        "(block masks); use sdpa, eager or flash attention")
    if impl in (None, "eager"):
        fn = getattr(sys.modules.get(type(attn).__module__), "eager_attention_forward", None)
        if fn is None:
            raise TypeError(f"DAGG cannot capture attention weights of {_model_name(model)}: no eager kernel found")
        return fn
    return ALL_ATTENTION_FUNCTIONS[impl]


class AttentionCapture:
    """What :func:`capture_attention` collected for the selected layers during one forward."""

    def __init__(self, model: nn.Module, layers: list[int]):
        self.model_name = _model_name(model)
        self.layers = layers  # absolute indices, in the order requested
        self.hidden_states: dict[int, torch.Tensor] = {}  # layer -> output (B, T, H), with graph
        self._records: dict[int, _AttnRecord] = {}
        self.recording = True

    def _record(self, idx: int) -> _AttnRecord:
        if idx not in self._records:
            raise RuntimeError(
                f"DAGG: no attention was captured for layer {idx} of {self.model_name}: run the model's forward "
                "inside `capture_attention(...)`; if you did, this model's attention does not dispatch through "
                "transformers' AttentionInterface and its weights cannot be captured"
            )
        return self._records[idx]

    def hidden(self, idx: int) -> torch.Tensor:
        if idx not in self.hidden_states:
            raise RuntimeError(f"DAGG: no hidden state was captured for layer {idx} of {self.model_name}")
        return self.hidden_states[idx]

    def attention_weights(self, idx: int) -> torch.Tensor:
        """Full attention probabilities (B, heads, Tq, Tk), float32, with graph (memory: O(B·h·T²))."""
        rec = self._record(idx)
        if rec.weights is not None:
            return rec.weights.float()
        return _probs_from_qk(rec.query, rec.key, rec)

    def profiles(self, idx: int, query_masks: Sequence[torch.Tensor], key_mask: torch.Tensor,
                 use_checkpoint: bool = True) -> list[torch.Tensor]:
        """:func:`attention_profile` of layer ``idx`` for each query mask (B, T) -> list of (B, T).

        With ``use_checkpoint`` the (B, heads, T, T) probabilities are recomputed in the backward
        instead of being stored (when they were not returned by an eager kernel anyway).
        """
        rec = self._record(idx)
        qms = torch.stack([m.to(rec.query.device, torch.float32) for m in query_masks])  # (M, B, T)
        km = key_mask.to(rec.query.device)

        def run(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            probs = _probs_from_qk(q, k, rec)  # (B, h, T, T)
            return torch.stack([attention_profile(probs, qm, km) for qm in qms])  # (M, B, T)

        if rec.weights is not None:
            w = rec.weights.float()
            out = torch.stack([attention_profile(w, qm, km) for qm in qms])
        elif use_checkpoint and torch.is_grad_enabled() and (rec.query.requires_grad or rec.key.requires_grad):
            out = checkpoint(run, rec.query, rec.key, use_reentrant=False)
        else:
            out = run(rec.query, rec.key)
        return list(out.unbind(0))


def _probs_from_qk(query: torch.Tensor, key: torch.Tensor, rec: _AttnRecord) -> torch.Tensor:
    """softmax(QKᵀ·scale + mask) in float32, reproducing what the original kernel attended to."""
    with torch.autocast(device_type=query.device.type, enabled=False):  # float32 even under bf16 autocast
        return _probs_fp32(query, key, rec)


def _probs_fp32(query: torch.Tensor, key: torch.Tensor, rec: _AttnRecord) -> torch.Tensor:
    q = query.float()  # (B, h, Tq, D)
    k = key.float()  # (B, kv, Tk, D)
    if k.shape[1] != q.shape[1]:  # grouped-query attention: repeat kv heads
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = torch.matmul(q, k.transpose(-1, -2)) * rec.scaling  # (B, h, Tq, Tk)
    softcap = rec.kwargs.get("softcap")
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    if rec.kwargs.get("position_bias") is not None:
        scores = scores + rec.kwargs["position_bias"].float()
    tq, tk = scores.shape[-2:]
    neg = torch.finfo(torch.float32).min
    mask = rec.mask
    allowed = None  # bool, broadcastable to (B, h, Tq, Tk)
    if mask is None or mask.dim() == 2:
        causal = rec.kwargs.get("is_causal", True) is not False and tq > 1
        if causal:
            qpos = torch.arange(tq, device=q.device)[:, None] + (tk - tq)
            kpos = torch.arange(tk, device=q.device)[None, :]
            allowed = kpos <= qpos
            window = rec.kwargs.get("sliding_window")
            if window and rec.impl in _FLASH:
                allowed = allowed & (kpos > qpos - window)
            allowed = allowed[None, None]
        if mask is not None:  # (B, Tk) padding mask (flash attention)
            pad = mask.bool()[:, None, None, :]
            allowed = pad if allowed is None else allowed & pad
    elif mask.dtype == torch.bool:
        allowed = mask
    elif torch.is_tensor(mask) and mask.is_floating_point():
        scores = scores + mask.float().clamp_min(neg)
    else:
        raise TypeError(f"DAGG: unsupported attention mask {type(mask).__name__} for capture")
    if allowed is not None:
        scores = scores.masked_fill(~allowed, neg)
    return torch.softmax(scores, dim=-1)


@contextlib.contextmanager
def capture_attention(model: nn.Module, layer_indices: Sequence[int]) -> Iterator[AttentionCapture]:
    """Capture the attention (q/k, lazily turned into probabilities) and output hidden states of the
    selected decoder layers (negative = from the top) during ONE forward run inside the block (the
    first call per layer is kept, so gradient-checkpoint recomputation cannot overwrite it; use one
    capture per micro-batch). Everything is restored on exit; the records stay usable afterwards."""
    _register()
    try:  # HMD-Fusion's wrapped layers are found as they are: their output includes its delta
        layers = find_decoder_layers(model)
    except ValueError as exc:
        raise TypeError(f"DAGG cannot find the decoder layers of {_model_name(model)}: {exc}") from None
    n = len(layers)
    resolved: list[int] = []
    for i in layer_indices:
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"DAGG layer {i} out of range for {n} layers")
        if j not in resolved:
            resolved.append(j)
    cap = AttentionCapture(model, resolved)
    installed: list[tuple[nn.Module, Any]] = []
    hooks = []
    try:
        for j in resolved:
            attn = _find_attention(layers[j], model)
            impl = attn.config._attn_implementation
            orig = _original_kernel(attn, impl, model)
            cfg = copy.copy(attn.config)
            cfg.__dict__["_attn_implementation_internal"] = CAPTURE_IMPL  # this module only; no sub-config recursion
            installed.append((attn, attn.config))
            attn.config = cfg
            attn.__dict__[_STATE_ATTR] = (orig, impl, cap, j)

            def hook(module, args, output, j=j):
                if cap.recording and j not in cap.hidden_states:
                    cap.hidden_states[j] = output[0] if isinstance(output, (tuple, list)) else output

            hooks.append(layers[j].register_forward_hook(hook))
        yield cap
    finally:
        cap.recording = False
        for h in hooks:
            h.remove()
        for attn, cfg in installed:
            attn.config = cfg
            attn.__dict__.pop(_STATE_ATTR, None)
