"""HMD-Fusion: shared + per-language low-rank branches fused by a learned gate.

Reading of the paper (Eq. 5/6), as fixed in docs/design.md ("HMD-Fusion"). For each of the top
``top_layers`` decoder layers, with ``h`` the layer's output hidden state (B, T, H) and ``ℓ`` the
sample's programming language:

    h_shared = σ(W_s h),   h_lang = σ(W_lang[ℓ] h)          (Eq. 5; W: H → r, σ = SiLU)
    γ        = sigmoid(w^T h + b)                            (Eq. 6; "softmax over one value" read as
                                                              the two-way softmax, i.e. a sigmoid)
    out      = h + U (γ·h_shared + (1 − γ)·h_lang)           (U: r → H, zero-initialised)

Implementation choices (documented here because the paper leaves them open):
* σ is SiLU (smooth, non-saturating; GELU would do as well).
* The branches read a parameter-free RMS-normalised copy of ``h``: the raw residual stream of
  large code LLMs has outlier dimensions in the hundreds/thousands, which would saturate the gate.
* ``U`` is zero-initialised, so the wrapped model is exactly the base model at initialisation.
* Per-sample routing gathers each sample's down-projection ``W_lang[ℓ_b]`` from a stacked
  (L, H, r) weight and runs one batched matmul: compute equals a single branch, whatever L.
* Routing ids are a plain attribute on each wrapper (set by ``set_languages``), never a forward
  argument, so HF gradient checkpointing and ``generate`` need no changes. Ids of batch size b
  are ``repeat_interleave``d when the hidden state has batch b·n (``num_return_sequences`` /
  beams), and T = 1 (KV-cached decoding) needs nothing special.
* Optional decoupling loss: squared cosine similarity of h_shared and h_lang per token, averaged
  over non-padding tokens when an attention mask of matching shape was given to the routing call
  (all tokens otherwise), then averaged over the wrapped layers.

Adapter parameters are fp32 (master weights), named ``hmd_*`` beside the original layer, which is
kept as ``base_layer`` (PEFT's convention; nothing is registered inside PEFT). Apply HMD *after*
``peft.get_peft_model`` (which freezes every non-LoRA parameter it finds); PeftModel.save_pretrained
does not save HMD weights: use ``save_hmd_adapter``. ``output_hidden_states`` of wrapped layers
are the base layer's outputs (HF hooks the decoder-layer class, i.e. ``base_layer``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import find_decoder_layers

CONFIG_NAME = "hmd_adapter_config.json"
WEIGHTS_NAME = "hmd_adapter_model.safetensors"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class HMDConfig:
    languages: list[str]
    top_layers: int
    rank: int
    decoupling: bool = False
    gate_bias_init: float = 0.0

    def __post_init__(self) -> None:
        langs = self.languages
        if isinstance(langs, str) or not isinstance(langs, (list, tuple)) or len(langs) == 0:
            raise ValueError(f"HMDConfig.languages must be a non-empty list of names, got {langs!r}")
        if not all(isinstance(x, str) and x for x in langs):
            raise ValueError(f"HMDConfig.languages must hold non-empty strings, got {langs!r}")
        if len(set(langs)) != len(langs):
            raise ValueError(f"HMDConfig.languages has duplicates: {langs!r}")
        object.__setattr__(self, "languages", list(langs))  # tuples from callers → JSON-stable list
        for name in ("top_layers", "rank"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"HMDConfig.{name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.gate_bias_init, (int, float)) or not math.isfinite(self.gate_bias_init):
            raise ValueError(f"HMDConfig.gate_bias_init must be a finite number, got {self.gate_bias_init!r}")


def decoupling_loss(h_shared: torch.Tensor, h_lang: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over (non-masked) tokens of cos²(h_shared, h_lang); inputs (B, T, r), mask (B, T)."""
    cos2 = F.cosine_similarity(h_shared.float(), h_lang.float(), dim=-1, eps=1e-8).pow(2)  # (B, T)
    if mask is None:
        return cos2.mean()
    m = mask.to(cos2.dtype)
    return (cos2 * m).sum() / m.sum().clamp_min(1.0)


class HMDLayer(nn.Module):
    """Wraps one decoder layer; adds the HMD-Fusion delta to its output hidden state."""

    def __init__(self, base_layer: nn.Module, hidden_size: int, cfg: HMDConfig, layer_idx: int):
        super().__init__()
        self.base_layer = base_layer
        self.hmd_cfg = cfg
        self.hmd_layer_idx = layer_idx
        p = next(base_layer.parameters(), None)
        kw = {"device": p.device if p is not None else None, "dtype": torch.float32}
        n_lang, r = len(cfg.languages), cfg.rank
        self.hmd_shared_down = nn.Linear(hidden_size, r, bias=False, **kw)
        # Stacked per-language down-projections, (L, H, r); same init bound as nn.Linear's default.
        self.hmd_lang_down = nn.Parameter(torch.empty(n_lang, hidden_size, r, **kw))
        nn.init.uniform_(self.hmd_lang_down, -1 / math.sqrt(hidden_size), 1 / math.sqrt(hidden_size))
        self.hmd_gate = nn.Linear(hidden_size, 1, bias=True, **kw)
        nn.init.zeros_(self.hmd_gate.weight)  # γ starts at sigmoid(gate_bias_init) for every token
        nn.init.constant_(self.hmd_gate.bias, float(cfg.gate_bias_init))
        self.hmd_up = nn.Linear(r, hidden_size, bias=False, **kw)
        nn.init.zeros_(self.hmd_up.weight)  # exact identity at initialisation
        # Routing state and last-forward statistics: plain attributes, not forward arguments.
        self._lang_ids: torch.Tensor | None = None  # (b,)
        self._mask: torch.Tensor | None = None  # (b, T) or None
        self._disabled = False
        self._last_decoupling: torch.Tensor | None = None
        self._gate_sum: torch.Tensor | None = None  # (L,)
        self._gate_cnt: torch.Tensor | None = None  # (L,)

    def __getattr__(self, name: str):
        # Models may read attributes of their layers (e.g. `attention_type`): forward to base_layer.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self.base_layer, name)

    def _expand(self, t: torch.Tensor, batch: int, what: str) -> torch.Tensor:
        b = t.shape[0]
        if b == batch:
            return t
        if b == 0 or batch % b:
            raise RuntimeError(f"HMD-Fusion: {what} has batch size {b}, hidden state has {batch} (not a multiple)")
        return t.repeat_interleave(batch // b, dim=0)  # generate() expands each sample n times in place

    def forward(self, *args, **kwargs):
        out = self.base_layer(*args, **kwargs)
        if self._disabled:
            return out
        h = out[0] if isinstance(out, tuple) else out  # (B, T, H); transformers 5 layers return a tensor
        h_new = h + self._delta(h)
        return (h_new, *out[1:]) if isinstance(out, tuple) else h_new

    def _delta(self, h: torch.Tensor) -> torch.Tensor:
        if self._lang_ids is None:
            raise RuntimeError(
                "HMD-Fusion: no language routing set for this forward; call "
                "set_languages(model, language_ids) or use `with language_routing(model, language_ids):`"
            )
        B, T, _ = h.shape
        ids = self._expand(self._lang_ids, B, "language_ids").to(h.device, non_blocking=True)  # (B,)
        mask = None
        if self._mask is not None:
            m = self._expand(self._mask, B, "attention_mask")
            if m.shape[1] == T:  # during cached decoding the stored prompt mask no longer matches
                mask = m.to(h.device, torch.float32)  # (B, T)
        x = h.to(self.hmd_up.weight.dtype)  # fp32 unless autocast picks the compute dtype
        x = x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype)  # (B, T, H)
        h_shared = F.silu(self.hmd_shared_down(x))  # (B, T, r)
        h_lang = F.silu(torch.bmm(x, self.hmd_lang_down[ids]))  # (B, T, H) @ (B, H, r) -> (B, T, r)
        gamma = torch.sigmoid(self.hmd_gate(x))  # (B, T, 1)
        fused = gamma * h_shared + (1 - gamma) * h_lang  # (B, T, r)
        delta = self.hmd_up(fused)  # (B, T, H)
        with torch.no_grad():  # per-language gate statistics, kept as tensors (no host sync here)
            g = gamma.detach().squeeze(-1).float()  # (B, T)
            s = (g * mask).sum(1) if mask is not None else g.sum(1)  # (B,)
            c = mask.sum(1) if mask is not None else torch.full_like(s, T)  # (B,)
            n_lang = self.hmd_lang_down.shape[0]
            self._gate_sum = torch.zeros(n_lang, device=s.device).index_add_(0, ids, s)
            self._gate_cnt = torch.zeros(n_lang, device=s.device).index_add_(0, ids, c)
        if self.hmd_cfg.decoupling:
            self._last_decoupling = decoupling_loss(h_shared, h_lang, mask)
        return delta.to(h.dtype)


def hmd_layers(model: nn.Module) -> list[HMDLayer]:
    """All HMD wrappers in ``model`` (works through PeftModel and other wrappers)."""
    return [m for m in model.modules() if isinstance(m, HMDLayer)]


def _layers(model: nn.Module) -> nn.ModuleList:
    try:
        return find_decoder_layers(model)
    except ValueError as exc:
        raise ValueError(f"HMD-Fusion: {exc}") from None


def _hidden_size(model: nn.Module) -> int:
    conf = getattr(model, "config", None)
    if conf is not None and hasattr(conf, "get_text_config"):
        conf = conf.get_text_config()
    h = getattr(conf, "hidden_size", None) or getattr(conf, "n_embd", None)
    if not isinstance(h, int):
        raise ValueError(f"HMD-Fusion: cannot read hidden_size from the config of {type(model).__name__}")
    return h


def _wrap(model: nn.Module, cfg: HMDConfig, indices: list[int]) -> nn.Module:
    layers = _layers(model)
    if any(isinstance(layer, HMDLayer) for layer in layers):
        raise ValueError(f"HMD-Fusion is already applied to {type(model).__name__}")
    bad = [i for i in indices if not 0 <= i < len(layers)]
    if bad:
        raise ValueError(f"HMD-Fusion: layer indices {bad} out of range for {type(model).__name__} "
                         f"({len(layers)} layers)")
    hidden = _hidden_size(model)
    for i in indices:
        layers[i] = HMDLayer(layers[i], hidden, cfg, i)
    return model


def apply_hmd(model: nn.Module, cfg: HMDConfig) -> nn.Module:
    """Wrap the top ``cfg.top_layers`` decoder layers (all if fewer) in place; returns ``model``."""
    n = len(_layers(model))
    return _wrap(model, cfg, list(range(max(0, n - cfg.top_layers), n)))


def remove_hmd(model: nn.Module) -> nn.Module:
    """Unwrap in place (e.g. before saving the base model with HF's save_pretrained)."""
    layers = _layers(model)
    for i, layer in enumerate(layers):
        if isinstance(layer, HMDLayer):
            layers[i] = layer.base_layer
    return model


def hmd_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(full name, parameter) of every adapter parameter, e.g. ``model.layers.2.hmd_up.weight``."""
    out = []
    for mname, mod in model.named_modules():
        if isinstance(mod, HMDLayer):
            out += [(f"{mname}.{n}", p) for n, p in mod.named_parameters() if n.startswith("hmd_")]
    return out


def set_languages(model: nn.Module, language_ids, attention_mask: torch.Tensor | None = None) -> None:
    """Route the next forwards: ``language_ids`` (B,) indexes ``cfg.languages``; None clears.

    ``attention_mask`` (B, T), optional, restricts the decoupling loss and gate statistics to
    non-padding tokens. A no-op on models without HMD.
    """
    layers = hmd_layers(model)
    if not layers:
        return
    ids = mask = None
    if language_ids is not None:
        ids = torch.as_tensor(language_ids, dtype=torch.long)
        n_lang = len(layers[0].hmd_cfg.languages)
        if ids.dim() != 1 or ids.numel() == 0:
            raise ValueError(f"language_ids must be a non-empty 1-D tensor (B,), got shape {tuple(ids.shape)}")
        if int(ids.min()) < 0 or int(ids.max()) >= n_lang:  # one sync per step beats a device assert
            raise ValueError(f"language_ids must lie in [0, {n_lang}), got {ids.tolist()}")
        if attention_mask is not None:
            if attention_mask.dim() != 2 or attention_mask.shape[0] != ids.shape[0]:
                raise ValueError(f"attention_mask must be (B={ids.shape[0]}, T), got {tuple(attention_mask.shape)}")
            mask = attention_mask
    for layer in layers:
        layer._lang_ids, layer._mask = ids, mask


@contextlib.contextmanager
def language_routing(model: nn.Module, language_ids, attention_mask: torch.Tensor | None = None) -> Iterator[nn.Module]:
    """Set routing for the block, restore the previous routing after (no-op-safe)."""
    layers = hmd_layers(model)
    prev = [(layer._lang_ids, layer._mask) for layer in layers]
    set_languages(model, language_ids, attention_mask)
    try:
        yield model
    finally:
        for layer, (ids, mask) in zip(layers, prev):
            layer._lang_ids, layer._mask = ids, mask


@contextlib.contextmanager
def disable_hmd(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, wrapped layers return exactly the base layer's output."""
    layers = hmd_layers(model)
    prev = [layer._disabled for layer in layers]
    for layer in layers:
        layer._disabled = True
    try:
        yield model
    finally:
        for layer, d in zip(layers, prev):
            layer._disabled = d


def hmd_aux(model: nn.Module) -> dict:
    """Last forward's statistics: ``{"decoupling": tensor (with graph) or None, "gate_mean": {lang: float}}``.

    ``gate_mean`` is γ averaged over the wrapped layers and the (non-padding) tokens of the
    samples of each language; languages absent from the last batch are left out.
    """
    layers = [layer for layer in hmd_layers(model) if not layer._disabled]
    dec = [layer._last_decoupling for layer in layers if layer._last_decoupling is not None]
    decoupling = torch.stack([d.to(dec[0].device) for d in dec]).mean() if dec else None
    stats = [(layer._gate_sum, layer._gate_cnt) for layer in layers if layer._gate_sum is not None]
    gate_mean: dict[str, float] = {}
    if stats:
        dev = stats[0][0].device
        s = sum(a.to(dev) for a, _ in stats).tolist()  # one host sync for all languages
        c = sum(b.to(dev) for _, b in stats).tolist()
        langs = layers[0].hmd_cfg.languages
        gate_mean = {lang: s[i] / c[i] for i, lang in enumerate(langs) if c[i] > 0}
    return {"decoupling": decoupling, "gate_mean": gate_mean}


def save_hmd_adapter(model: nn.Module, out_dir: str | os.PathLike) -> None:
    """Write ``hmd_adapter_config.json`` and ``hmd_adapter_model.safetensors`` (adapter state only)."""
    from safetensors.torch import save_file

    layers = hmd_layers(model)
    if not layers:
        raise ValueError("save_hmd_adapter: the model has no HMD-Fusion layers")
    cfg = layers[0].hmd_cfg
    # Keys are relative to the layer index, so PEFT-wrapped and plain models share one format.
    state = {
        f"layers.{layer.hmd_layer_idx}.{n}": p.detach().to("cpu").contiguous()
        for layer in layers
        for n, p in layer.named_parameters()
        if n.startswith("hmd_")
    }
    meta = {
        **asdict(cfg),
        "layer_indices": sorted(layer.hmd_layer_idx for layer in layers),
        "num_hidden_layers": len(_layers(model)),
        "hidden_size": _hidden_size(model),
        "format_version": FORMAT_VERSION,
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, CONFIG_NAME), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    save_file(state, os.path.join(out_dir, WEIGHTS_NAME), metadata={"format": "pt"})


def load_hmd_adapter(model: nn.Module, adapter_dir: str | os.PathLike) -> nn.Module:
    """Wrap a freshly loaded base model as saved and load the adapter weights; returns ``model``."""
    from safetensors.torch import load_file

    cfg_path, w_path = os.path.join(adapter_dir, CONFIG_NAME), os.path.join(adapter_dir, WEIGHTS_NAME)
    for path in (cfg_path, w_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"HMD adapter file not found: {path}")
    with open(cfg_path, encoding="utf-8") as f:
        meta = json.load(f)
    try:
        cfg = HMDConfig(**{fl.name: meta[fl.name] for fl in fields(HMDConfig) if fl.name in meta})
        indices = [int(i) for i in meta["layer_indices"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"invalid HMD adapter config {cfg_path}: {e}") from e
    if meta.get("hidden_size") not in (None, _hidden_size(model)):
        raise ValueError(f"{cfg_path}: adapter hidden_size {meta['hidden_size']} != model's {_hidden_size(model)}")
    _wrap(model, cfg, indices)
    try:
        state = load_file(w_path)
        params = {
            f"layers.{layer.hmd_layer_idx}.{n}": p
            for layer in hmd_layers(model)
            for n, p in layer.named_parameters()
            if n.startswith("hmd_")
        }
        missing, unexpected = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
        shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(p.shape)}" for k, p in params.items()
                  if k in state and state[k].shape != p.shape]
        if missing or unexpected or shapes:
            raise ValueError(
                f"HMD adapter weights {w_path} do not match {cfg_path}: missing={missing} "
                f"unexpected={unexpected} shape mismatches={shapes}"
            )
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(state[k])
    except Exception:
        remove_hmd(model)  # leave the caller's model as it was
        raise
    return model
