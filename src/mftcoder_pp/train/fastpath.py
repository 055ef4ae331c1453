"""Which of the `speed` settings a run can use, decided once before the first step and reported.

Each fast path computes what the plain forward does, up to float rounding (docs/train_speed.md):
  - the target-only LM head (losses/target_head.py) on the final hidden states (model/trunk.py);
  - the frozen prefix (model/prefix.py) when the bottom layers do not train, with its per-example cache;
  - float32 attention inside bf16/fp16 autocast (model/attention.py);
  - LoRA dropout masks from `torch.rand` (model/dropout.py): the same distribution, other draws.
A path the model or the configuration rules out is switched off with the reason in `report`, which the
loop writes to train_config.json: a run never silently trains differently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.attention import attention_in_fp32
from ..model.dropout import use_fast_lora_dropout
from ..model.prefix import FrozenPrefix, PrefixCache, lowest_trained_layer, prefix_blocker, prefix_fingerprint
from ..model.trunk import Trunk
from .config import TrainConfig


@dataclass
class FastPath:
    trunk: Trunk | None  # None: full logits
    prefix: FrozenPrefix | None
    chunk: int
    lowest_trained: int  # index of the lowest decoder layer that trains
    report: dict = field(default_factory=dict)


def build_fast_path(cfg: TrainConfig, model, cuda: bool) -> FastPath:
    """`model`: the model with every adapter applied, before Accelerate wraps it."""
    sp, report = cfg.speed, {}
    trunk = Trunk(model) if sp.target_head else None
    if trunk is not None and not trunk.ok:
        report["target_head"] = f"off: {trunk.reason}"
        trunk = None
    else:
        report["target_head"] = "on" if trunk is not None else "off (speed.target_head: false)"

    k = lowest_trained_layer(model)
    report["lowest_trained_layer"] = k
    prefix, why = None, prefix_blocker(model, k)
    if not sp.frozen_prefix:
        why = "speed.frozen_prefix: false"
    elif why is None and cfg.data.batching == "packed":
        why = "data.batching packed (several examples per row)"
    elif why is None and cfg.modules.tiar.enabled and not _real_state(model, k, cfg.modules.tiar.layer):
        why = f"modules.tiar.layer {cfg.modules.tiar.layer} reads a hidden state below layer {k}"
    if why is None:
        cache = None
        if sp.prefix_cache:
            context = f"{cfg.precision}|attention={attention_dtype(cfg, cuda)}"
            fingerprint = prefix_fingerprint(model, k, context) if sp.prefix_cache_dir else ""
            cache = PrefixCache(sp.prefix_cache_mb << 20, sp.prefix_cache_dir, fingerprint)
        prefix = FrozenPrefix(model, k, cache)
        report["frozen_prefix"] = f"layers 0..{k - 1}, cache " + (
            "off" if cache is None else f"in memory ({sp.prefix_cache_mb} MB)" +
            (f" and on disk ({sp.prefix_cache_dir})" if sp.prefix_cache_dir else ""))
    else:
        report["frozen_prefix"] = f"off: {why}"

    attention = attention_dtype(cfg, cuda)
    changed = attention_in_fp32(model) if attention == "fp32" else 0
    report["attention"] = f"{attention} ({changed} sdpa modules in float32)" if attention == "fp32" else attention
    if sp.lora_dropout == "fast":
        report["lora_dropout"] = f"fast ({use_fast_lora_dropout(model)} modules)"
    return FastPath(trunk, prefix, sp.head_chunk, k, report)


def attention_dtype(cfg: TrainConfig, cuda: bool) -> str:
    """The attention precision actually used: fp32 or the run's (autocast) dtype."""
    if cfg.precision == "fp32":
        return "fp32 (run in fp32)"
    if cfg.speed.attention == "auto":
        return "autocast" if cuda else "fp32"
    return cfg.speed.attention


def _real_state(model, k: int, index: int) -> bool:
    from ..modules.layers import find_decoder_layers

    n = len(find_decoder_layers(model)) + 1
    return (index if index >= 0 else n + index) >= k
