"""Training speed: our loop (`mftcoder_pp.train.loop.run`) vs TRL's `SFTTrainer`, plain LoRA SFT.

    python benchmarks/bench_train.py [--steps 30] [--warmup 3] [--batch-size 8] [--precision bf16,fp32]
                                     [--batching length_grouped,padded] [--trl-input ids,text] [--no-trl-default]
                                     [--repeats 2] [--max-length 512] [--threads 1] [--profile] [--what-if]
                                     [--what-if-only] [--quick] [--keep DIR]

Both sides train the same thing:
  - model: the embedded default `TinyModelSpec()` (Qwen2 architecture, hidden 256, 6 layers), randomly
    initialised once (seed 0), saved to a directory and loaded from it by both sides (same weights);
  - adapter: LoRA rank 8, alpha 16, dropout 0.1 on q/k/v/o/gate/up/down (our defaults; PEFT on both
    sides); our vocabulary adapters are off so that LoRA is the only trainable part on both sides;
  - data: the synthetic suite's train split in all six languages, written as `mftpp prepare` output,
    with a scratch BPE tokenizer (as tests/conftest.py builds its workspace); examples are what our
    dataset builds: prompt = render_prompt(...) tokenized, completion = output tokens + EOS, loss on the
    completion only;
  - batches: identical. Our loop's batch order is reproduced (the same `Stream`, same seed) and TRL is fed
    exactly those examples in that order (`train_sampling_strategy="sequential"`), so step k of both
    sides sees the same 8 examples, padded to the same length;
  - TRL input (`--trl-input`): `ids` (default) gives TRL the token ids with a `completion_mask` (TRL's
    pre-tokenized format), so both sides see bit-identical sequences; `text` gives TRL the prompt /
    completion strings (completion = output + EOS), which TRL tokenizes as prompt+completion jointly:
    byte-level BPE then merges the whitespace at the prompt/completion boundary, so many sequences differ
    from ours by a token (counted and reported; tokens/s is computed on each side's own tokens);
  - optimisation: AdamW, lr 2e-4, linear warm-up over 5% of the steps then linear decay, grad clip 1.0,
    batch 8, no gradient accumulation, no gradient checkpointing (TRL's SFTConfig defaults it on: set off),
    same precision (`bf16`: CPU autocast to bfloat16 on both; `fp32`), logging every step on both;
  - our loop: mixing.strategy plain, optim.per_task false, mixing.loss token_mean, no modules.

Rows: "same batches (X)": our loop with data.batching X, and TRL fed exactly those batches (the
implementations compared on identical work); "each side's default": our loop with its default batching
(data.batching's default) and TRL with its default random sampler over the same examples (what a user
gets from each without tuning; the difference there is mostly padding).

Timing: the time between the end of warm-up step `--warmup` and the end of the last step (per-step
timestamps: our `TrainLogger.log`, called once per step, and a TRL `on_step_end` callback), as wall time
and as this process's CPU time. Runs alternate A, B, A, B (`--repeats`); the best run of each side is
reported, with the load average. On a shared host, wall time measures the neighbours as much as the
code; with one torch thread (the default, `--threads`) CPU time does not count the time other processes
hold the CPU, so tokens per CPU second is the steadier comparison (multi-threaded OpenMP regions stall
whenever one of their threads is descheduled, which also inflates CPU time through spin-waiting).
Tokens/s counts the tokens of the timed steps: target (completion) tokens, and all non-pad tokens.
`--profile` adds a torch.profiler breakdown of our step by op. `--what-if` adds runs of our loop alone
(bf16): with the SDPA attention computed in float32 (a patch in this process only: CPU's bf16
flash-attention kernels are slower than its fp32 ones) and with LoRA dropout 0 (what the dropout's
random masks cost; a config change, not a fix).

FLOP/s and MFU (same formula for both sides; only real, non-pad tokens count — padding is waste):
  per token, for each linear layer of the blocks (frozen W, in x out):  4·in·out (forward 2·in·out, input
    gradient 2·in·out; no weight gradient: frozen), except that layer 0's q/k/v need no input gradient
    (their input, the embedding, needs none): 2·in·out for those;
  per token, for each LoRA pair (A: in x r, B: r x out): 6·r·(in+out) (forward, input gradient, weight
    gradient; layer 0's q/k/v A matrices: no input gradient);
  per token, the LM head (tied to the frozen embedding, d x V): 4·d·V (both sides score every position);
  per sample of n tokens, per layer, attention scores and values over the causal triangle:
    forward 2·n(n+1)·d_attn (QK^T and AV, n(n+1)/2 query-key pairs each), backward twice that:
    6·n(n+1)·d_attn in all.
  Norms, activations, RoPE, softmax and the loss are not counted (they are not matmuls).
  Peak: the best of several 2048^3 `torch.matmul`s in the run's dtype (bf16 or fp32) with the same
  torch thread count; MFU = achieved FLOP/s / that peak.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA = {"rank": 8, "alpha": 16.0, "dropout": 0.1}
LR = 2e-4
WARMUP_FRACTION = 0.05
LANGUAGES = ("python", "javascript", "java", "cpp", "go", "rust")


# --------------------------------------------------------------------------------------- workspace


def build_workspace(root: Path, seed: int = 0) -> dict[str, Path]:
    """Prepared synthetic train records (all six languages, `mftpp prepare` layout), a scratch BPE
    tokenizer trained on them, and the randomly initialised tiny default model saved with it."""
    from mftcoder_pp.data.prompts import variant_for
    from mftcoder_pp.model.load import TinyModelSpec, build_tiny, load_tokenizer
    from mftcoder_pp.synthetic.suite import generate_suite
    from mftcoder_pp.tokenizer import build_tokenizer

    prepared = root / "prepared"
    prepared.mkdir(parents=True, exist_ok=True)
    suite = generate_suite(seed, splits=("sft",))
    for lang in LANGUAGES:
        with (prepared / f"synthesis-{lang}.jsonl").open("w") as f:
            for r in suite.records("sft", lang):
                r.meta["prompt_variant"] = variant_for(r.id, seed)
                f.write(r.to_json() + "\n")
    tok_cfg = root / "tokenizer.yaml"  # JSON is YAML
    tok_cfg.write_text(json.dumps({"out": str(root / "tokenizer"), "mode": "scratch", "data": [str(prepared)],
                                   "kind": "bpe", "vocab_size_per_language": 400, "min_frequency": 4}))
    with contextlib.redirect_stdout(io.StringIO()):
        build_tokenizer(str(tok_cfg))
    tokenizer = load_tokenizer(root / "tokenizer")
    base = root / "base"
    model = build_tiny(TinyModelSpec(), tokenizer, seed=seed)
    model.save_pretrained(str(base))
    tokenizer.save_pretrained(str(base))
    return {"root": root, "prepared": prepared, "base": base}


# ------------------------------------------------------------------------------------------ our side


def our_config(ws: dict, out: Path, *, steps: int, batch_size: int, precision: str, batching: str,
               max_length: int, seed: int = 0):
    from mftcoder_pp.config import from_dict
    from mftcoder_pp.train.config import TrainConfig

    return from_dict(TrainConfig, {
        "out": str(out), "seed": seed, "stage": "sft",
        "data": {"prepared": [str(ws["prepared"])], "max_length": max_length, "batching": batching},
        "model": {"path": str(ws["base"])},
        "adapter": {"kind": "lora", "vocabulary_adapters": False,
                    "lora": {**LORA, "target_modules": TARGET_MODULES}},
        "mixing": {"strategy": "plain", "loss": "token_mean"},
        "optim": {"max_steps": steps, "batch_size": batch_size, "grad_accum": 1, "per_task": False, "lr": LR,
                  "warmup_fraction": WARMUP_FRACTION, "clip": 1.0, "weight_decay": 0.0},
        "precision": precision, "checkpoint_every": 0, "log_every": 1, "tensorboard": False,
    })


def our_batches(cfg) -> list[list]:
    """The examples of each optimizer step of `run(cfg)`, in order: the loop's own plain-mixing stream
    (one phase, "all", every task's training examples concatenated in task order), rebuilt here."""
    from mftcoder_pp.train.batching import Stream
    from mftcoder_pp.train.setup import load_data, plan_phases, tokenizer_for

    corpus = load_data(cfg, tokenizer_for(cfg))
    (phase,) = plan_phases(cfg, corpus.tasks)
    stream = Stream([ex for t in phase.tasks for ex in corpus.train[t]], cfg.optim.batch_size, cfg.seed,
                    f"phase:{phase.name}", cfg.data.batching == "length_grouped")
    return [stream.next() for _ in range(cfg.optim.max_steps)]


@dataclass
class RunResult:
    side: str
    stamps: list[float]  # perf_counter at the end of each optimizer step
    cpu: list[float]  # process_time (CPU seconds of this process, all threads) at the same moments
    losses: list[float]  # per step, token-mean over the step's target tokens
    steps: list[dict]  # per step: targets, tokens (non-pad), padded (rows x longest), lengths
    total_wall: float  # setup + all steps (+ our export), for information
    extra: dict = field(default_factory=dict)


def step_tokens(examples) -> dict:
    """Counts for one step's examples given as (input_ids, labels) pairs, padded collation."""
    lengths = [len(ids) for ids, _ in examples]
    targets = sum(sum(1 for x in labels[1:] if x != -100) for _, labels in examples)
    return {"targets": targets, "tokens": sum(lengths), "padded": len(lengths) * max(lengths), "lengths": lengths}


def run_ours(cfg, batches: list[list]) -> RunResult:
    """`run(cfg)`, with a per-step timestamp taken when the loop logs the step (log_every 1)."""
    import mftcoder_pp.train.loop as loop

    stamps: list[float] = []
    cpu: list[float] = []

    class StampingLogger(loop.TrainLogger):
        def log(self, record):
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())
            super().log(record)

    original = loop.TrainLogger
    loop.TrainLogger = StampingLogger
    _fresh_accelerate()
    try:
        t = time.perf_counter()
        with _quiet():
            loop.run(cfg, progress=False)
        total = time.perf_counter() - t
    finally:
        loop.TrainLogger = original
    records = [json.loads(line) for line in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    steps = [step_tokens([(ex.input_ids, ex.labels) for ex in b]) for b in batches]
    logged_targets = [r["tokens"] for r in records]
    expected = [sum(s["targets"] for s in steps[:i + 1]) for i in range(len(steps))]
    if logged_targets != expected:  # the reproduced batch order is not the loop's: the counts would be wrong
        raise RuntimeError(f"reproduced batches disagree with the loop's logged target tokens: "
                           f"{logged_targets[:5]} vs {expected[:5]}")
    return RunResult("ours", stamps, cpu, [r["loss"] for r in records], steps, total)


# ------------------------------------------------------------------------------------------ TRL side


def trl_rows(batches: list[list], tokenizer, prepared: Path, mode: str) -> tuple[list[dict], dict]:
    """TRL's training rows, in our batch order. `ids`: input_ids + completion_mask (our tokens exactly);
    `text`: prompt / completion strings, rendered exactly as our dataset renders them."""
    examples = [ex for b in batches for ex in b]
    if mode == "ids":
        return [{"input_ids": list(ex.input_ids), "completion_mask": [int(x != -100) for x in ex.labels]}
                for ex in examples], {}
    from mftcoder_pp.data.prompts import build_example, language_token, render_prompt
    from mftcoder_pp.data.records import from_row
    from mftcoder_pp.train.dataset import read_prepared

    vocab = tokenizer.get_vocab()
    text_of: dict[tuple, tuple[str, str]] = {}
    for row in read_prepared([str(prepared)]):
        rec = from_row(row)
        prompt = render_prompt(rec.instruction, rec.input, rec.language, rec.meta.get("prompt_variant", 0),
                               language_prefix=language_token(rec.language) in vocab)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(rec.output, add_special_tokens=False)["input_ids"]
        ex = build_example(p_ids, r_ids, 10**9, tokenizer.eos_token_id)
        text_of[tuple(ex.input_ids)] = (prompt, rec.output + tokenizer.eos_token)
    rows = []
    for ex in examples:
        if tuple(ex.input_ids) not in text_of:
            raise RuntimeError("an example of our corpus has no record text (truncated? raise --max-length)")
        prompt, completion = text_of[tuple(ex.input_ids)]
        rows.append({"prompt": prompt, "completion": completion})
    return rows, {}


def run_trl(ws: dict, batches: list[list], *, steps: int, batch_size: int, precision: str, max_length: int,
            mode: str, out: Path, order: str = "sequential", seed: int = 0) -> RunResult:
    """TRL's SFTTrainer on our batches' examples. order "sequential": exactly our batches, in our order;
    "random": the same examples, batched by TRL's default random sampler (its own shuffle)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from mftcoder_pp.model.load import load_tokenizer

    stamps: list[float] = []
    cpu: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())

    t = time.perf_counter()
    tokenizer = load_tokenizer(ws["base"])
    rows, _ = trl_rows(batches, tokenizer, ws["prepared"], mode)
    # TRL's own collator (what SFTTrainer builds by default here), recording what each step processes
    collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)
    seen: list[dict] = []

    def collate(examples):
        seen.append(step_tokens([(e["input_ids"], e["labels"]) for e in examples]))
        return collator(examples)

    torch.manual_seed(seed)
    _fresh_accelerate()
    model = AutoModelForCausalLM.from_pretrained(str(ws["base"]), local_files_only=True)
    args = SFTConfig(
        output_dir=str(out), seed=seed, max_steps=steps, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1, learning_rate=LR, lr_scheduler_type="linear",
        warmup_steps=math.ceil(steps * WARMUP_FRACTION), weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        bf16=precision == "bf16", fp16=False, use_cpu=True, gradient_checkpointing=False,
        max_length=max_length, completion_only_loss=True, packing=False, padding_free=False,
        train_sampling_strategy=order, dataloader_num_workers=0, logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True)
    peft_config = LoraConfig(r=LORA["rank"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=TARGET_MODULES, task_type="CAUSAL_LM")
    with _quiet():
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer, peft_config=peft_config, callbacks=[Stamp()],
                             data_collator=collate)
        trainer.train()
    total = time.perf_counter() - t
    ds = trainer.train_dataset
    seqs = list(zip(ds["input_ids"], ds["labels"]))
    per_step = seen[:steps]
    if len(seen) != steps:
        raise RuntimeError(f"TRL collated {len(seen)} batches in {steps} steps")
    if order == "sequential" and per_step != [step_tokens(seqs[i * batch_size:(i + 1) * batch_size])
                                              for i in range(steps)]:
        raise RuntimeError("TRL's batches are not the rows in order")
    counted = getattr(trainer, "_total_train_tokens", None)  # TRL's own non-pad token count
    if counted is not None and counted != sum(s["tokens"] for s in per_step):
        raise RuntimeError(f"TRL processed {counted} tokens, the rows in order hold {sum(s['tokens'] for s in per_step)}")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h and "train_runtime" not in h]
    extra = {}
    if mode == "text":
        ours = [ex for b in batches for ex in b]
        extra["differ"] = sum(list(ex.input_ids) != list(ids) for ex, (ids, _) in zip(ours, seqs))
        extra["n"] = len(ours)
    return RunResult("TRL", stamps, cpu, losses, per_step, total, extra)


def _fresh_accelerate() -> None:
    """Accelerate keeps one process-wide state (mixed precision included); each run here starts its own."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@contextlib.contextmanager
def _quiet():
    """Silence library chatter (progress bars, warnings, logs) while a run trains."""
    import transformers

    old = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        transformers.logging.set_verbosity(old)


def profile_ours(cfg, batches: list[list], steps: int = 3, top: int = 12) -> None:
    """Where one of our training steps spends its time: the loop's own pieces (build_model, collator,
    forward, per_task_token_losses), under CPU autocast for bf16, profiled by torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    from mftcoder_pp.losses.tokens import per_task_token_losses
    from mftcoder_pp.train.batching import collator
    from mftcoder_pp.train.objective import forward
    from mftcoder_pp.train.setup import build_model, tokenizer_for

    tokenizer = tokenizer_for(cfg)
    with _quiet():
        model, _ = build_model(cfg, tokenizer)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    collate = collator(cfg.data.batching, tokenizer.pad_token_id, cfg.data.max_length)

    def step(batch):
        inputs = collate(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            logits = forward(model, inputs).logits
            stats = per_task_token_losses(logits, inputs.labels, inputs.token_task, 6)
            loss = stats.loss_sum.sum() / stats.token_count.sum().clamp(min=1)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches[1:1 + steps]:
            step(b)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"### Profile: {steps} of our steps ({cfg.precision}, {cfg.data.batching}), self CPU time by op\n")
    print("| op | calls | self CPU (ms) | share |")
    print("|---|---:|---:|---:|")
    for e in events[:top]:
        print(f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1000:.0f} | {e.self_cpu_time_total / total:.1%} |")
    print(f"| (all ops) | | {total / 1000:.0f} | 100% |\n", flush=True)


@contextlib.contextmanager
def fp32_attention():
    """What-if, in this process only: the SDPA attention of every model runs in float32 with autocast off
    (CPU's bf16 flash-attention kernels are slower than its fp32 ones), its output cast back."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from mftcoder_pp.model.attention import _sdpa_fp32 as forward  # what `speed.attention: fp32` runs

    had = "sdpa" in ALL_ATTENTION_FUNCTIONS._local_mapping
    old = ALL_ATTENTION_FUNCTIONS._local_mapping.get("sdpa")
    ALL_ATTENTION_FUNCTIONS["sdpa"] = forward
    try:
        yield
    finally:
        if had:
            ALL_ATTENTION_FUNCTIONS["sdpa"] = old
        else:
            del ALL_ATTENTION_FUNCTIONS["sdpa"]


def what_if(ws, work: Path, args, batching: str, precision: str = "bf16") -> None:
    """Our loop as is, with attention in fp32 (patched in this process), and with LoRA dropout 0 (a
    config change: what the dropout costs). Alternating runs; CPU seconds of the timed steps."""
    import dataclasses

    total = args.warmup + args.steps
    base = our_config(ws, work / "probe", steps=total, batch_size=args.batch_size, precision=precision,
                      batching=batching, max_length=args.max_length)
    batches = our_batches(base)
    variants = ["as is", "attention in fp32", "LoRA dropout 0"]
    runs: dict[str, list[RunResult]] = {v: [] for v in variants}
    for rep in range(args.repeats):
        for v in variants if rep % 2 == 0 else variants[::-1]:
            out = work / "whatif" / f"{v.replace(' ', '-')}-{rep}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = dataclasses.replace(base, out=str(out))
            if v == "LoRA dropout 0":
                lora = dataclasses.replace(cfg.adapter.lora, dropout=0.0)
                cfg = dataclasses.replace(cfg, adapter=dataclasses.replace(cfg.adapter, lora=lora))
            print(f"  what-if {v} run {rep + 1} (load {load()})...", file=sys.stderr, flush=True)
            with fp32_attention() if v == "attention in fp32" else contextlib.nullcontext():
                runs[v].append(run_ours(cfg, batches))
            shutil.rmtree(out, ignore_errors=True)
    best = {v: best_of(runs[v], args.warmup) for v in variants}
    print(f"## What-if: our loop, {precision}, {batching} ({args.steps} timed steps, best of {args.repeats})\n")
    print("| variant | wall s (runs) | CPU s (runs) | target tok/CPU-s | vs as is (CPU) | loss at step 1 | "
          "loss at the last step |")
    print("|---|---|---|---:|---:|---:|---:|")
    ref = best["as is"]["targets"] / best["as is"]["cpu"]
    for v in variants:
        b, losses = best[v], runs[v][-1].losses
        print(f"| {v} | {', '.join('%.1f' % w for w in b['walls'])} | {', '.join('%.1f' % c for c in b['cpus'])} | "
              f"{b['targets'] / b['cpu']:.0f} | {b['targets'] / b['cpu'] / ref:.2f}x | {losses[0]:.4f} | "
              f"{losses[-1]:.4f} |")


# -------------------------------------------------------------------------------------- FLOPs, peak


def model_shapes(base: Path) -> dict:
    """Matmul shapes of the tiny model: the block linears (name, layer, in, out), LM head, attention width."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(base), local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    linears = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and ".layers." in name:
            layer = int(name.split(".layers.")[1].split(".")[0])
            linears.append((name.rsplit(".", 1)[-1], layer, m.in_features, m.out_features))
    head = model.get_output_embeddings()
    return {"linears": linears, "d": head.in_features, "vocab": head.out_features,
            "d_attn": cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads),
            "layers": cfg.num_hidden_layers, "rank": LORA["rank"], "targets": set(TARGET_MODULES)}


def flops_per_token_and_sample(shapes: dict) -> tuple[float, float]:
    """(FLOPs per real token, FLOPs per sample per n(n+1)) of one LoRA training step; see the docstring."""
    per_token = 0.0
    r = shapes["rank"]
    for name, layer, i, o in shapes["linears"]:
        no_input_grad = layer == 0 and name in ("q_proj", "k_proj", "v_proj")
        per_token += (2 if no_input_grad else 4) * i * o
        if name in shapes["targets"]:
            per_token += 6 * r * (i + o) - (2 * r * i if no_input_grad else 0)
    per_token += 4 * shapes["d"] * shapes["vocab"]
    per_pair = 6 * shapes["d_attn"] * shapes["layers"]  # x n(n+1) per sample
    return per_token, per_pair


def step_flops(step: dict, per_token: float, per_pair: float) -> float:
    return per_token * step["tokens"] + per_pair * sum(n * (n + 1) for n in step["lengths"])


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 16) -> dict[str, float]:
    """FLOP/s of the best n^3 matmul, per wall second and per CPU second of this process."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    wall = cpu = math.inf
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        torch.matmul(a, b)
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return {"wall": 2 * n ** 3 / wall, "cpu": 2 * n ** 3 / cpu}


# ------------------------------------------------------------------------------------------ report


def timed(result: RunResult, warmup: int) -> dict:
    """Wall time and token counts of the steps after warm-up."""
    stamps, steps = result.stamps, result.steps
    if len(stamps) != len(steps) or warmup < 1:
        raise RuntimeError(f"{result.side}: {len(stamps)} step timestamps for {len(steps)} steps, warm-up {warmup}")
    window = steps[warmup:]
    wall = stamps[-1] - stamps[warmup - 1]
    per_step = [b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:])]
    return {"wall": wall, "cpu": result.cpu[-1] - result.cpu[warmup - 1], "steps": len(window), "targets": sum(s["targets"] for s in window),
            "tokens": sum(s["tokens"] for s in window), "padded": sum(s["padded"] for s in window),
            "median_step": statistics.median(per_step), "window": window}


def load() -> str:
    return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())


def revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return f"{rev}{' + uncommitted changes under src/' if dirty else ''}" if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> str:
    import peft
    import transformers
    import trl

    return f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, peft {peft.__version__}"


def header(args, title: str) -> None:
    print(f"# {title}\n")
    print(f"host: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {platform.platform()}; "
          f"torch threads {torch.get_num_threads()}; load average (1/5/15 min) at start {load()}; "
          f"{versions()}; mftcoder_pp at {revision()}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30, help="timed optimizer steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3, help="optimizer steps run first and excluded from timing")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--precision", default="bf16,fp32", help="comma list of bf16, fp32")
    ap.add_argument("--batching", default="length_grouped,padded",
                    help="our batch orders to compare on (TRL is fed the same batches): length_grouped, padded")
    ap.add_argument("--trl-input", default="ids", help="comma list: ids (identical tokens), text (prompt/completion)")
    ap.add_argument("--no-trl-default", dest="trl_default", action="store_false",
                    help="skip the row that runs each side with its default batch order (ours: data.batching's "
                         "default; TRL: its random sampler over the same examples)")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs per side (A, B, A, B, ...)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared host an OpenMP region stalls whenever one of its "
                         "threads is descheduled; 0 keeps torch's default)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile our step by op (torch.profiler), per precision, on the first --batching")
    ap.add_argument("--what-if", action="store_true",
                    help="also run our loop with attention in fp32 (patched in this process) and with LoRA dropout "
                         "0, bf16, on the first --batching")
    ap.add_argument("--what-if-only", action="store_true", help="only the --what-if runs")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 steps after 1 warm-up, bf16, one repeat")
    ap.add_argument("--keep", default=None, help="keep the workspace and run outputs in this directory")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.repeats = 4, 1, 1
        args.precision, args.batching, args.trl_input, args.trl_default = "bf16", "length_grouped", "ids", False
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warmup < 1 or args.steps < 2:
        ap.error("--warmup >= 1 and --steps >= 2")

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        header(args, "Training speed: our loop vs TRL SFTTrainer (LoRA SFT, tiny model, CPU)")
        t = time.perf_counter()
        ws = build_workspace(work / "ws")
        shapes = model_shapes(ws["base"])
        per_token, per_pair = flops_per_token_and_sample(shapes)
        total_steps = args.warmup + args.steps
        print(f"workspace built in {time.perf_counter() - t:.1f} s: vocabulary {shapes['vocab']}, "
              f"{len(shapes['linears']) // shapes['layers']} linears x {shapes['layers']} layers; "
              f"{total_steps} optimizer steps per run ({args.warmup} warm-up, {args.steps} timed), batch "
              f"{args.batch_size}, max_length {args.max_length}; runs per side {args.repeats}, alternating\n",
              flush=True)
        from mftcoder_pp.train.config import DataConfig

        default_batching = DataConfig.__dataclass_fields__["batching"].default
        precisions = args.precision.split(",")
        comparisons = []  # (precision, our batching, TRL sampler, TRL input, label)
        for i, precision in enumerate(precisions):
            for j, batching in enumerate(args.batching.split(",")):
                for mode in args.trl_input.split(","):
                    if mode == "text" and (i or j):
                        continue  # one text-input comparison is enough (tokenization does not depend on the rest)
                    comparisons.append((precision, batching, "sequential", mode, f"same batches ({batching})"))
            if args.trl_default and not i:
                comparisons.append((precision, default_batching, "random", "ids",
                                    f"each side's default: ours {default_batching}, TRL random sampler"))
        peaks = {p: matmul_peak(torch.bfloat16 if p == "bf16" else torch.float32) for p in precisions}
        if args.profile:
            for precision in precisions:
                cfg0 = our_config(ws, work / "probe", steps=total_steps, batch_size=args.batch_size,
                                  precision=precision, batching=args.batching.split(",")[0],
                                  max_length=args.max_length)
                profile_ours(cfg0, our_batches(cfg0))
        rows = []
        for precision, batching, sampler, mode, label in ([] if args.what_if_only else comparisons):
            cfg0 = our_config(ws, work / "probe", steps=total_steps, batch_size=args.batch_size,
                              precision=precision, batching=batching, max_length=args.max_length)
            batches = our_batches(cfg0)
            runs: dict[str, list[RunResult]] = {"ours": [], "TRL": []}
            order = ("ours", "TRL")
            for rep in range(args.repeats):
                for side in order if rep % 2 == 0 else order[::-1]:
                    out = work / "runs" / f"{precision}-{batching}-{sampler}-{mode}-{side}-{rep}"
                    shutil.rmtree(out, ignore_errors=True)
                    print(f"  {precision}, {label}, TRL input {mode}: {side} run {rep + 1} (load {load()})...",
                          file=sys.stderr, flush=True)
                    if side == "ours":
                        cfg = our_config(ws, out, steps=total_steps, batch_size=args.batch_size,
                                         precision=precision, batching=batching, max_length=args.max_length)
                        r = run_ours(cfg, batches)
                    else:
                        r = run_trl(ws, batches, steps=total_steps, batch_size=args.batch_size, precision=precision,
                                    max_length=args.max_length, mode=mode, out=out, order=sampler)
                    runs[side].append(r)
                    tm = timed(r, args.warmup)
                    print(f"    {tm['wall']:.1f} s wall, {tm['cpu']:.1f} s CPU, "
                          f"{tm['targets'] / tm['wall']:.0f} target tok/s", file=sys.stderr, flush=True)
            rows.append((precision, label, mode, runs))
            if not args.keep:
                shutil.rmtree(work / "runs", ignore_errors=True)
        if rows:
            print_train_table(rows, args, peaks, per_token, per_pair)
        if args.what_if or args.what_if_only:
            print()
            what_if(ws, work, args, args.batching.split(",")[0])
        print(f"\nload average at end: {load()}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def best_of(runs: list[RunResult], warmup: int) -> dict:
    """Best wall time and best CPU time over a side's runs (each may come from a different run)."""
    tms = [timed(r, warmup) for r in runs]
    b = dict(min(tms, key=lambda x: x["wall"]))
    b["cpu"] = min(x["cpu"] for x in tms)
    b["walls"], b["cpus"] = [x["wall"] for x in tms], [x["cpu"] for x in tms]
    return b


def print_train_table(rows, args, peaks, per_token, per_pair) -> None:
    print(f"## Throughput, best of {args.repeats} alternating runs per side ({args.steps} timed steps each)\n")
    print("wall: elapsed time of the timed steps; CPU: CPU seconds this process used in them (all threads). "
          "Tokens per wall second is what a user waits for; tokens per CPU second is what the work costs, and "
          "is not inflated when other processes take the CPU (with one torch thread it is the better measure "
          "on a shared host).\n")
    print("| precision | batches | TRL input | side | wall s (runs) | CPU s (runs) | target tok/s | "
          "non-pad tok/s | target tok/CPU-s | non-pad tok/CPU-s | padding | model GFLOP/CPU-s | MFU (CPU) | "
          "MFU (wall) |")
    print("|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for precision, batching, mode, runs in rows:
        best = {}
        for side, rs in runs.items():
            b = best[side] = best_of(rs, args.warmup)
            flops = sum(step_flops(s, per_token, per_pair) for s in b["window"])
            note = ""
            if side == "TRL" and mode == "text":
                e = rs[-1].extra
                note = f" ({e['differ']}/{e['n']} sequences tokenized differently from ours)"
            print(f"| {precision} | {batching} | {mode}{note} | {side} | "
                  f"{', '.join('%.1f' % w for w in b['walls'])} | {', '.join('%.1f' % c for c in b['cpus'])} | "
                  f"{b['targets'] / b['wall']:.0f} | {b['tokens'] / b['wall']:.0f} | "
                  f"{b['targets'] / b['cpu']:.0f} | {b['tokens'] / b['cpu']:.0f} | "
                  f"{1 - b['tokens'] / b['padded']:.1%} | {flops / b['cpu'] / 1e9:.1f} | "
                  f"{flops / b['cpu'] / peaks[precision]['cpu']:.1%} | {flops / b['wall'] / peaks[precision]['wall']:.1%} |")
        ratios.append((precision, batching, mode, best, runs))
    print("\n## Ratio ours / TRL (> 1: ours is faster; target >= 1.3x)\n")
    print("| precision | batches | TRL input | target tok/s (wall) | non-pad tok/s (wall) | target tok/CPU-s | "
          "non-pad tok/CPU-s | loss at step 1, ours / TRL | loss at the last step, ours / TRL |")
    print("|---|---|---|---:|---:|---:|---:|---|---|")
    for precision, batching, mode, best, runs in ratios:
        o, t = best["ours"], best["TRL"]
        lo, lt = runs["ours"][-1].losses, runs["TRL"][-1].losses
        print(f"| {precision} | {batching} | {mode} | "
              f"{(o['targets'] / o['wall']) / (t['targets'] / t['wall']):.2f}x | "
              f"{(o['tokens'] / o['wall']) / (t['tokens'] / t['wall']):.2f}x | "
              f"{(o['targets'] / o['cpu']) / (t['targets'] / t['cpu']):.2f}x | "
              f"{(o['tokens'] / o['cpu']) / (t['tokens'] / t['cpu']):.2f}x | "
              f"{lo[0]:.4f} / {lt[0]:.4f} | {lo[-1]:.4f} / {lt[-1]:.4f} |")
    print(f"\nmatmul peak (best of 16 2048^3 torch.matmul, {torch.get_num_threads()} torch threads), per CPU second / "
          "per wall second: " + "; ".join(f"{p} {v['cpu'] / 1e9:.0f} / {v['wall'] / 1e9:.0f} GFLOP/s"
                                          for p, v in peaks.items()))
    print(f"model FLOPs: {per_token / 1e6:.2f} MFLOP per real token (block linears, LoRA, LM head) + "
          f"{per_pair:.0f} x n(n+1) per sample of n tokens (attention); padding is not counted")


if __name__ == "__main__":
    sys.exit(main())
