"""`mftpp train CONFIG`: the multitask training loop, top to bottom.

Per optimizer step: phase, task (ATDS / temperature / uniform; plain mixing: a mixed batch) and rate
→ the global batch, cut into this process's micro-batches → forward/backward with the task loss
normalised by the *global* target-token count (so gradient accumulation and DDP weight every token
equally, whatever the micro-batch it landed in) → clip → the task's optimizer steps → statistics back
to the scheduler, CoBa and the terms → early stopping → log → checkpoint → stop.

Every process draws the same task and the same global batch from identically seeded state; each
takes its own slice. DDP averages gradients over processes, so each process's loss is multiplied by
the number of processes to keep the token-sum semantics.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from ..provenance import provenance
from ..config import load_config
from ..losses.tokens import task_weights
from . import optim as O
from .batching import collator
from .checkpoint import TrainState, latest_checkpoint, restore_checkpoint, save_checkpoint
from .config import EarlyStopConfig, TrainConfig
from .earlystop import EarlyStopper, Measure
from .export import export_final
from .fastpath import build_fast_path
from .logger import TrainLogger
from .objective import Objective, dev_losses
from .setup import (build_model, check_inputs, describe, load_data, make_coba, make_optimizers, make_schedulers,
                    make_streams, plan_phases, tokenizer_for)
from .terms import Step

PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def train(config_path: str, resume: bool = False, overrides: dict | None = None, progress: bool = True,
          measure_for: Callable[[EarlyStopConfig], Measure] | None = None) -> dict:
    """`measure_for(cfg.early_stopping)`: early stopping's dev score (see earlystop.py)."""
    cfg = load_config(config_path, TrainConfig, overrides)
    measure = measure_for(cfg.early_stopping) if measure_for is not None and cfg.early_stopping.every else None
    return run(cfg, resume=resume, config_path=config_path, progress=progress, measure=measure)


def run(cfg: TrainConfig, resume: bool = False, config_path: str | None = None, progress: bool = True,
        label: str = "train", measure: Measure | None = None) -> dict:
    """`progress`: a progress line (see progress.py); `label` names the stage in it; `measure`: early
    stopping's dev score of a saved model directory (needed when early_stopping.every > 0)."""
    import sys

    from ..model.load import hf_progress_bars

    check_inputs(cfg, config_path or "train config")
    if cfg.early_stopping.every and measure is None:
        raise ValueError("early_stopping.every > 0 needs a measure of the dev score (the CLI passes pass@1)")
    with hf_progress_bars(progress and sys.stderr.isatty()):
        return _run(cfg, resume, config_path, progress, label, measure)


def _run(cfg: TrainConfig, resume: bool, config_path: str | None, progress: bool, label: str,
         measure: Measure | None) -> dict:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    # Accelerate keeps its settings in a process-wide singleton; a second run in the same process
    # (an experiment's rows, tests) may use another precision. The process group (PartialState) stays.
    AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(mixed_precision=PRECISION[cfg.precision], cpu=not torch.cuda.is_available())
    out = Path(cfg.out)
    ckpt = latest_checkpoint(out) if resume else None
    if not resume and (out / "checkpoints").exists():
        raise ValueError(f"{out}: already has checkpoints; pass --resume to continue, or choose another `out`")
    set_seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    # -- setup: data, model with every adapter, objective, optimizers, state ------------------------
    oc, mc = cfg.optim, cfg.mixing
    tokenizer = tokenizer_for(cfg)
    corpus = load_data(cfg, tokenizer)
    tasks, K = corpus.tasks, len(corpus.tasks)
    model, adapter_report = build_model(cfg, tokenizer, out / "base" if acc.is_main_process else None)
    fast = build_fast_path(cfg, model, cuda=acc.device.type == "cuda")  # target-only head, frozen prefix, attention
    objective = Objective(cfg.modules, K, model, acc.device, with_entropy=mc.strategy == "atds", fast=fast)
    params = [p for p in model.parameters() if p.requires_grad]
    phases = plan_phases(cfg, tasks)
    rates, optimizers = make_optimizers(cfg, corpus, params)
    keys = list(optimizers)
    prepared = acc.prepare(model, *optimizers.values())
    model, optimizers = prepared[0], dict(zip(keys, prepared[1:]))
    state = TrainState(make_streams(cfg, corpus, phases), make_schedulers(cfg, corpus, phases), optimizers,
                       objective, make_coba(cfg, tasks), task_steps={k: 0 for k in optimizers})
    world, rank, accum, micro = acc.num_processes, acc.process_index, oc.grad_accum, micro_size(cfg, acc)
    collate = collator(cfg.data.batching, tokenizer.pad_token_id, cfg.data.max_length)
    validate = partial(dev_losses, model, corpus.dev, tasks, collate, micro, acc.device, acc.autocast, fast)
    if ckpt is not None:
        restore_checkpoint(ckpt, acc.unwrap_model(model), state, asdict(cfg))
    elif state.coba is not None:  # CoBa normalises each task's losses by its loss before training
        state.coba.observe_validation(validate())

    main = acc.is_main_process
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(
            {"config": asdict(cfg), "config_path": config_path, "provenance": provenance(seed=cfg.seed),
             "tasks": tasks, "data": corpus.stats, "adapter": describe(adapter_report), "speed": fast.report,
             "rates": rates,
             "phases": [asdict(p) for p in phases], "processes": world}, indent=1))
    logger = TrainLogger(out, main, cfg.tensorboard, oc.max_steps, state.step, progress, label)
    stopper = EarlyStopper(cfg.early_stopping, out, cfg.adapter.kind, state.history, measure)
    gather = acc.gather if world > 1 else (lambda t: t)
    t_last, tok_last = time.monotonic(), state.tokens_seen
    t_start, tok_start = t_last, state.tokens_seen

    # -- the loop -----------------------------------------------------------------------------------
    model.train()
    start_step = step = state.step
    for step in range(start_step, oc.max_steps):
        # The step's phase, task and global batch; its rate: a pure function of the step and of how
        # many steps the task's own optimizer has taken.
        phase = next(p for p in phases if p.start <= step < p.end)
        scheduler = state.schedulers[phase.name]
        if mc.strategy == "plain":
            task, batch = None, state.streams[phase.name].next()
        else:
            task = scheduler.next_task()
            batch = state.streams[task].next()
        key = task if oc.per_task else "shared"
        opt = optimizers[key]
        own = O.task_warmup(state.task_steps[key], oc.task_warmup_steps) if oc.per_task else 1.0
        lr = O.set_rate(opt, rates[key], O.lr_multiplier(step, oc.max_steps, oc.warmup_fraction) * own)

        # Global target-token counts per task: known to every process without communication.
        counts = torch.zeros(K)  # (K,)
        for ex in batch:
            counts[ex.task] += ex.n_targets
        coba_w = torch.tensor([state.coba.weights()[t] for t in tasks]) if state.coba is not None else None
        weights = task_weights(mc.loss, counts, coba_w)  # (K,)
        probs = scheduler.probabilities()
        ctx = Step(step, torch.tensor([probs.get(t, 0.0) for t in tasks]))

        # Micro-steps over this process's slice. Task term: Σ_i w_i·loss_sum_i/N_i over the global
        # batch, x world because DDP averages; auxiliary terms: per-micro-batch means, averaged.
        mine = batch[rank * accum * micro:(rank + 1) * accum * micro]
        sums = torch.zeros(4, K)  # loss, tokens, correct, entropy (this process)
        logged: dict = {}
        for i in range(accum):
            sync = i == accum - 1
            with nullcontext() if sync or world == 1 else acc.no_sync(model):
                task_loss, aux, stats, terms = objective.micro_loss(model, collate(mine[i * micro:(i + 1) * micro]),
                                                                    ctx, weights, counts, acc.autocast)
                acc.backward(task_loss * world + aux / accum)
            _accumulate(logged, terms, accum)
            sums += stats.rows()

        grad_norm = acc.clip_grad_norm_(params, oc.clip)
        opt.step()
        state.task_steps[key] += 1
        model.zero_grad(set_to_none=True)

        # Observe: the step's statistics over every process, back to the scheduler, CoBa, the terms.
        sums = acc.reduce(sums.to(acc.device), "sum").cpu() if world > 1 else sums
        loss_sum, tok, correct, ent = sums
        if task is not None:
            ti = tasks.index(task)
            n = tok[ti].clamp(min=1)
            scheduler.observe(task, float(loss_sum[ti] / n), float(ent[ti] / n))
            scheduler.step_done(step + 1)
        if state.coba is not None and (step + 1) % mc.coba.eval_every == 0:
            state.coba.observe_validation(validate())
        logged.update(objective.after_step(step, correct / tok.clamp(min=1), tok > 0, gather))
        state.tokens_seen += int(tok.sum())
        state.step = done = step + 1
        loss = float(loss_sum.sum() / tok.sum().clamp(min=1))
        logger.step(done, loss, (state.tokens_seen - tok_start) / max(time.monotonic() - t_start, 1e-9))

        dev = None  # early stopping: the main process measures, every process gets the verdict
        if stopper.due(done):
            dev = [stopper.measure(done, acc.unwrap_model(model), tokenizer) if main else None]
            if world > 1:
                from accelerate.utils import broadcast_object_list
                dev = broadcast_object_list(dev)
            dev = dev[0]

        if done % cfg.log_every == 0 or done == oc.max_steps or dev is not None:
            now = time.monotonic()
            rec = {"step": done, "phase": phase.name, "task": task, "loss": loss, "lr": lr,
                   "grad_norm": float(grad_norm), "tokens": state.tokens_seen,
                   "tokens_per_s": (state.tokens_seen - tok_last) / max(now - t_last, 1e-9),
                   **_per_task(tasks, sums)}
            if mc.strategy != "plain":
                rec["task_probability"] = scheduler.probabilities()
            if state.coba is not None:
                rec["coba_weight"] = state.coba.weights()
            rec.update(logged)
            if dev is not None:
                rec["dev_pass@1"] = dev["pass@1"]
            logger.log(rec)
            t_last, tok_last = now, state.tokens_seen

        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < oc.max_steps:
            if main:
                save_checkpoint(out, acc.unwrap_model(model), state, asdict(cfg))
            acc.wait_for_everyone()
        if dev is not None and dev["stop"]:
            break

    logger.close()
    acc.wait_for_everyone()
    summary = {"steps": step + 1 if oc.max_steps > start_step else start_step, "max_steps": oc.max_steps,
               "tokens": state.tokens_seen, "tasks": tasks, "early_stopping": state.history or None}
    if main:
        summary.update(export_final(out, acc.unwrap_model(model), tokenizer, cfg.adapter.kind, merge=cfg.merge))
        (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    acc.wait_for_everyone()
    return summary


def micro_size(cfg: TrainConfig, acc) -> int:
    world, accum = acc.num_processes, cfg.optim.grad_accum
    if cfg.optim.batch_size % (world * accum):
        raise ValueError(f"optim.batch_size {cfg.optim.batch_size} must be divisible by processes x grad_accum "
                         f"({world} x {accum})")
    return cfg.optim.batch_size // (world * accum)


def _accumulate(logged: dict, new: dict, accum: int) -> None:
    """Mean of the logged auxiliary terms over the step's micro-batches (gate values: the last)."""
    for key, value in new.items():
        logged[key] = logged.get(key, 0.0) + value / accum if isinstance(value, float) else value


def _per_task(tasks: list[str], sums: torch.Tensor) -> dict:
    """Loss, accuracy and tokens per task and loss per language, from the step's (4, K) sums."""
    loss_sum, tok, correct, _ = sums
    seen = [(i, t) for i, t in enumerate(tasks) if tok[i] > 0]
    langs: dict[str, list[float]] = {}
    for i, t in seen:
        s = langs.setdefault(t.split("/", 1)[1], [0.0, 0.0])
        s[0] += float(loss_sum[i])
        s[1] += float(tok[i])
    return {"task_loss": {t: float(loss_sum[i] / tok[i]) for i, t in seen},
            "task_accuracy": {t: float(correct[i] / tok[i]) for i, t in seen},
            "task_tokens": {t: int(tok[i]) for i, t in seen},
            "language_loss": {lang: s / n for lang, (s, n) in langs.items()}}
