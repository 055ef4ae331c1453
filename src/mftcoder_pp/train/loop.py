"""`mftpp train CONFIG`: the multitask training loop, top to bottom.

Per optimizer step: phase and rate from the step → choose the task (ATDS / temperature / uniform) or a
mixed batch (plain) → the global batch, cut into this process's micro-batches → forward/backward with
the loss normalised by the *global* target-token count (so gradient accumulation and DDP weight every
token equally, whatever the micro-batch it landed in) → clip → the task's optimizer steps → statistics
back to the scheduler → log → checkpoint → early stopping.

Every process draws the same task and the same global batch from identically seeded state; each
takes its own slice. DDP averages gradients over processes, so each process's loss is multiplied by
the number of processes to keep the token-sum semantics.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import torch

from .. import __version__
from ..config import load_config
from ..losses.balance import CoBa, per_task_token_losses
from . import optim as O
from .batching import Stream, collate_packed, collate_padded
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
from .config import TrainConfig
from .earlystop import EarlyStopper
from .export import export_final
from .logger import TrainLogger
from .mixing import TaskScheduler
from ..modules.hmd_fusion import language_routing
from .objective import HMD_LANGUAGES, Objective, token_mean
from .setup import build_model, describe, load_data, plan_phases, tokenizer_for

PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def train(config_path: str, resume: bool = False, overrides: dict | None = None, progress: bool = True) -> dict:
    cfg = load_config(config_path, TrainConfig, overrides)
    return run(cfg, resume=resume, config_path=config_path, progress=progress)


def run(cfg: TrainConfig, resume: bool = False, config_path: str | None = None, progress: bool = True,
        label: str = "train") -> dict:
    """`progress`: a progress line (see progress.py); `label` names the stage in it."""
    import sys

    from ..model.load import hf_progress_bars

    with hf_progress_bars(progress and sys.stderr.isatty()):
        return _run(cfg, resume, config_path, progress, label)


def _run(cfg: TrainConfig, resume: bool, config_path: str | None, progress: bool, label: str) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from accelerate.state import AcceleratorState

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

    tokenizer = tokenizer_for(cfg)
    corpus = load_data(cfg, tokenizer)
    model, adapter_report = build_model(cfg, tokenizer, out / "base" if acc.is_main_process else None)
    objective = Objective(cfg.modules, len(corpus.tasks), model, acc.device)  # adds HMD branches
    params = [p for p in model.parameters() if p.requires_grad]
    phases = plan_phases(cfg, corpus.tasks)
    task_index = {t: i for i, t in enumerate(corpus.tasks)}
    oc, mc = cfg.optim, cfg.mixing
    rates = (O.per_task_rates(corpus.sizes(), *oc.lr_range) if oc.per_task else {"shared": oc.lr})
    optimizers = O.build_optimizers(params, rates, weight_decay=oc.weight_decay, betas=tuple(oc.betas))
    keys = list(optimizers)
    prepared = acc.prepare(model, *optimizers.values())
    model, optimizers = prepared[0], dict(zip(keys, prepared[1:]))

    # Data order: one stream per task (task-per-step strategies) or one mixed stream per phase (plain).
    group = cfg.data.batching == "length_grouped"
    if mc.strategy == "plain":
        streams = {p.name: Stream([ex for t in p.tasks for ex in corpus.train[t]], oc.batch_size, cfg.seed,
                                  f"phase:{p.name}", group) for p in phases}
    else:
        streams = {t: Stream(corpus.train[t], oc.batch_size, cfg.seed, t, group) for t in corpus.tasks}
    schedulers = {p.name: TaskScheduler({t: len(corpus.train[t]) for t in p.tasks},
                                        "temperature" if mc.strategy == "plain" else mc.strategy,
                                        temperature=mc.temperature, alpha=mc.atds.alpha, beta=mc.atds.beta,
                                        refresh_every=mc.atds.refresh_every, ema=mc.atds.ema,
                                        min_prob=mc.atds.min_prob, velocity_sign=mc.atds.velocity_sign,
                                        seed=cfg.seed + i) for i, p in enumerate(phases)}
    coba = CoBa(corpus.tasks, window=mc.coba.window, temperature=mc.coba.temperature,
                warmup_points=mc.coba.warmup_points) if mc.loss == "coba" else None

    start_step, tokens_seen, history = 0, 0, {}
    task_steps = {k: 0 for k in optimizers}  # optimizer steps each optimizer has taken (per-task warm-up)
    if ckpt is not None:
        tensors, state = load_checkpoint(ckpt, acc.unwrap_model(model))
        for k, opt in optimizers.items():
            opt.load_state_dict(tensors["optimizers"][k])
        for k, s in state["streams"].items():
            streams[k].load_state_dict(s)
        for k, s in state["schedulers"].items():
            schedulers[k].load_state_dict(s)
        if coba is not None:
            coba.load_state_dict(state["coba"])
        _same_config(ckpt, state["config"], asdict(cfg))
        start_step, tokens_seen, history = state["step"], state["tokens_seen"], state["history"]
        task_steps = state["task_steps"]
        objective.load_state_dict(tensors["objective"])
        set_rng_state(tensors["rng"])
    elif coba is not None:  # CoBa normalises each task's losses by its loss before training
        coba.observe_validation(_dev_losses(model, acc, corpus, collate_fn(cfg, tokenizer.pad_token_id), micro_size(cfg, acc)))

    main = acc.is_main_process
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(
            {"config": asdict(cfg), "config_path": config_path, "mftcoder_pp": __version__, "tasks": corpus.tasks,
             "data": corpus.stats, "adapter": describe(adapter_report), "rates": rates,
             "phases": [asdict(p) for p in phases], "processes": acc.num_processes}, indent=1))
    logger = TrainLogger(out, main, cfg.tensorboard, oc.max_steps, start_step, progress, label)
    world, rank, accum = acc.num_processes, acc.process_index, oc.grad_accum
    micro = micro_size(cfg, acc)
    K = len(corpus.tasks)
    collate = collate_fn(cfg, tokenizer.pad_token_id)
    t_last, tok_last = time.monotonic(), tokens_seen
    t_start, tok_start = t_last, tokens_seen

    stopper = EarlyStopper(cfg.early_stopping, out, cfg.adapter.kind, history)
    model.train()
    step = start_step
    for step in range(start_step, oc.max_steps):
        phase = next(p for p in phases if p.start <= step < p.end)
        mult = O.lr_multiplier(step, oc.max_steps, oc.warmup_fraction)
        if mc.strategy == "plain":
            task, batch = None, streams[phase.name].next()
        else:
            task = schedulers[phase.name].next_task()
            batch = streams[task].next()
        # Global target-token counts, per task: known to every process without communication.
        counts = torch.zeros(K)
        for ex in batch:
            counts[ex.task] += ex.n_targets
        weights = _task_weights(mc.loss, counts, coba, corpus.tasks)
        mine = batch[rank * accum * micro:(rank + 1) * accum * micro]
        probs = _probabilities(schedulers[phase.name], corpus.tasks)  # α_i of the focal term
        step_sums = torch.zeros(4, K)  # loss, tokens, correct, entropy (this process)
        terms: dict = {}
        for i in range(accum):
            inputs = collate(mine[i * micro:(i + 1) * micro])
            sync = i == accum - 1
            with nullcontext() if sync or world == 1 else acc.no_sync(model):
                task_loss, aux, stats, terms_i = objective.micro_loss(model, inputs, step, token_mean(counts, weights),
                                                                      probs, acc.autocast,
                                                                      with_entropy=mc.strategy == "atds")
                # task: Σ_i w_i·loss_sum_i/N_i over the global batch, x world because DDP averages;
                # auxiliary terms: means per micro-batch, averaged over micro-batches and processes.
                acc.backward(task_loss * world + aux / accum)
            _accumulate(terms, terms_i, accum)
            step_sums += torch.stack([stats.loss_sum.detach().float().cpu(), stats.token_count.float().cpu(),
                                      stats.correct.float().cpu(), stats.entropy_sum.detach().float().cpu()])
        grad_norm = acc.clip_grad_norm_(params, oc.clip)
        key = task if oc.per_task else "shared"
        opt = optimizers[key]
        own = O.task_warmup(task_steps[key], oc.task_warmup_steps) if oc.per_task else 1.0
        lr = O.set_rate(opt, rates[key], mult * own)
        opt.step()
        task_steps[key] += 1
        model.zero_grad(set_to_none=True)

        step_sums = acc.reduce(step_sums.to(acc.device), "sum").cpu() if world > 1 else step_sums
        loss_sum, tok, correct, ent = step_sums
        if task is not None:
            ti = task_index[task]
            schedulers[phase.name].observe(task, float(loss_sum[ti] / tok[ti].clamp(min=1)),
                                           float(ent[ti] / tok[ti].clamp(min=1)))
            schedulers[phase.name].step_done(step + 1)
        if coba is not None and (step + 1) % mc.coba.eval_every == 0:
            coba.observe_validation(_dev_losses(model, acc, corpus, collate, micro))
        terms.update(objective.after_step(step, acc, correct / tok.clamp(min=1), tok > 0))
        tokens_seen += int(tok.sum())
        done = step + 1
        logger.step(done, float(loss_sum.sum() / tok.sum().clamp(min=1)),
                    (tokens_seen - tok_start) / max(time.monotonic() - t_start, 1e-9))

        dev = None  # early stopping: pass@1 on the dev benchmark (main process measures, all agree)
        if stopper.due(done):
            dev = [stopper.measure(done, acc.unwrap_model(model), tokenizer) if main else None]
            if world > 1:
                from accelerate.utils import broadcast_object_list
                dev = broadcast_object_list(dev)
            dev = dev[0]

        if done % cfg.log_every == 0 or done == oc.max_steps or dev is not None:
            now = time.monotonic()
            rec = {"step": done, "phase": phase.name, "task": task,
                   "loss": float(loss_sum.sum() / tok.sum().clamp(min=1)), "lr": lr, "grad_norm": float(grad_norm),
                   "tokens": tokens_seen, "tokens_per_s": (tokens_seen - tok_last) / max(now - t_last, 1e-9),
                   "task_loss": {t: float(loss_sum[i] / tok[i]) for i, t in enumerate(corpus.tasks) if tok[i] > 0},
                   "task_accuracy": {t: float(correct[i] / tok[i]) for i, t in enumerate(corpus.tasks) if tok[i] > 0},
                   "task_tokens": {t: int(tok[i]) for i, t in enumerate(corpus.tasks) if tok[i] > 0},
                   "language_loss": _by_language(corpus.tasks, loss_sum, tok)}
            if mc.strategy != "plain":
                rec["task_probability"] = schedulers[phase.name].probabilities()
            if coba is not None:
                rec["coba_weight"] = coba.weights()
            rec.update(terms)
            if dev is not None:
                rec["dev_pass@1"] = dev["pass@1"]
            logger.log(rec)
            t_last, tok_last = now, tokens_seen

        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < oc.max_steps:
            state = {"step": done, "tokens_seen": tokens_seen, "history": history, "task_steps": task_steps,
                     "streams": {k: s.state_dict() for k, s in streams.items()},
                     "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
                     "coba": coba.state_dict() if coba is not None else None, "config": asdict(cfg)}
            if main:
                save_checkpoint(out, done, acc.unwrap_model(model),
                                {"optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                                 "objective": objective.state_dict()}, state)
            acc.wait_for_everyone()
        if dev is not None and dev["stop"]:
            break
    logger.close()
    acc.wait_for_everyone()
    summary = {"steps": step + 1 if oc.max_steps > start_step else start_step, "max_steps": oc.max_steps,
               "tokens": tokens_seen, "tasks": corpus.tasks, "early_stopping": history or None}
    if main:
        summary.update(export_final(out, acc.unwrap_model(model), tokenizer, cfg.adapter.kind, merge=cfg.merge))
        (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    acc.wait_for_everyone()
    return summary


def _same_config(ckpt: Path, saved: dict, now: dict, path: str = "") -> None:
    """Resuming under a different config would silently splice two runs: refuse, naming the key."""
    for key in sorted(set(saved) | set(now)):
        if key == "out" and not path:
            continue
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            _same_config(ckpt, a, b, f"{path}{key}.")
        elif a != b and not (isinstance(a, list) and isinstance(b, (list, tuple)) and list(a) == list(b)):
            raise ValueError(f"{ckpt}: was written with {path}{key}={a!r}, the config now says {b!r}; "
                             "resume with the same config or start a new `out`")


def micro_size(cfg: TrainConfig, acc) -> int:
    world, accum = acc.num_processes, cfg.optim.grad_accum
    if cfg.optim.batch_size % (world * accum):
        raise ValueError(f"optim.batch_size {cfg.optim.batch_size} must be divisible by processes x grad_accum "
                         f"({world} x {accum})")
    return cfg.optim.batch_size // (world * accum)


def collate_fn(cfg: TrainConfig, pad: int):
    if cfg.data.batching == "packed":
        return lambda examples: collate_packed(examples, pad, cfg.data.max_length)
    return lambda examples: collate_padded(examples, pad)


def forward(model, inputs: dict, device):
    """Logits (B, T, V) for a collated batch (packed batches carry a 4D mask and position ids)."""
    extra = {"position_ids": inputs["position_ids"].to(device)} if "position_ids" in inputs else {}
    return model(input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device),
                 **extra).logits


def _probabilities(scheduler: TaskScheduler, tasks: list[str]) -> torch.Tensor:
    probs = scheduler.probabilities()
    return torch.tensor([probs.get(t, 0.0) for t in tasks])


def _accumulate(terms: dict, new: dict, accum: int) -> None:
    """Mean of the logged auxiliary terms over the step's micro-batches (gate values: the last)."""
    for key, value in new.items():
        terms[key] = terms.get(key, 0.0) + value / accum if isinstance(value, float) else value


def _task_weights(loss: str, counts: torch.Tensor, coba: CoBa | None, tasks: list[str]) -> torch.Tensor:
    """w_i in Σ_i w_i·loss_sum_i/N_i: token_mean → N_i/N (every token equal); data_balanced → 1/K_present
    (each present task's token mean counts equally); coba → CoBa's ω_i over present tasks."""
    present = counts > 0
    if loss == "token_mean":
        return counts / counts.sum()
    if loss == "data_balanced":
        return present.float() / present.sum()
    w = torch.tensor([coba.weights()[t] for t in tasks]) * present
    return w / w.sum()


@torch.no_grad()
def _dev_losses(model, acc, corpus, collate, micro) -> dict[str, float]:
    """Per-task token-mean loss on the held-out dev examples (CoBa's validation signal)."""
    model.eval()
    result = {}
    for ti, t in enumerate(corpus.tasks):
        total = n = 0.0
        exs = corpus.dev[t]
        for s in range(0, len(exs), max(micro, 1)):
            inputs = collate(exs[s:s + micro])
            langs = torch.tensor([HMD_LANGUAGES.index(lang) for lang in inputs["languages"]]) if "languages" in inputs else None
            with acc.autocast(), language_routing(model, langs):  # a no-op without HMD-Fusion
                logits = forward(model, inputs, acc.device)
            st = per_task_token_losses(logits, inputs["labels"].to(acc.device), inputs["token_task"].to(acc.device),
                                       len(corpus.tasks), with_entropy=False)
            total += float(st.loss_sum[ti])
            n += float(st.token_count[ti])
        result[t] = total / max(n, 1)
    model.train()
    return result


def _by_language(tasks: list[str], loss_sum: torch.Tensor, tok: torch.Tensor) -> dict[str, float]:
    langs: dict[str, list[float]] = {}
    for i, t in enumerate(tasks):
        if tok[i] > 0:
            lang = t.split("/", 1)[1]
            langs.setdefault(lang, [0.0, 0.0])
            langs[lang][0] += float(loss_sum[i])
            langs[lang][1] += float(tok[i])
    return {lang: s / n for lang, (s, n) in langs.items()}
