"""Checkpoints that hold everything needed to continue, written atomically.

`TrainState` is everything a run changes besides the model's weights; `save_checkpoint` writes it
and `restore_checkpoint` puts it back, in one place, so a resumed run continues exactly where the
uninterrupted one would be.

Layout: OUT/checkpoints/step-000050/ with
  - trainable.safetensors  the trainable parameters by name (LoRA + vocabulary rows + module weights,
                           or every weight in full fine-tuning)
  - optimizers.pt          every optimizer's state (one per task, or "shared"), the objective's state
                           (the discriminator and its optimizer, the replay buffer, the focal EMA) and
                           the Python/NumPy/torch RNG states
  - state.json             step, tokens seen, data positions, sampler/ATDS/CoBa state, per-task
                           optimizer steps, early-stopping history, the resolved config
and OUT/checkpoints/latest, a one-line file naming the newest complete checkpoint.

Atomicity: a checkpoint is written into a temporary directory, fsynced, renamed into place, and only
then is `latest` replaced (os.replace). A kill at any moment leaves `latest` pointing at a complete
checkpoint; leftovers of an interrupted save are removed on the next save.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LATEST = "latest"


@dataclass
class TrainState:
    """What a run changes while it trains, besides the weights. The objects keep their own state
    (`state_dict` / `load_state_dict`); the numbers are plain."""

    streams: dict[str, Any]  # Stream per task (or per phase with plain mixing): data positions
    schedulers: dict[str, Any]  # TaskScheduler per phase: π, ATDS statistics, its RNG
    optimizers: dict[str, torch.optim.Optimizer]  # one per task, or "shared"
    objective: Any  # Objective: the terms' state (discriminator, replay buffer, focal EMA)
    coba: Any | None  # CoBa with mixing.loss coba
    step: int = 0  # optimizer steps done
    tokens_seen: int = 0
    history: dict = field(default_factory=dict)  # early stopping (JSON; the stopper writes into it)
    task_steps: dict[str, int] = field(default_factory=dict)  # steps each optimizer took (per-task warm-up)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(root: Path, model: torch.nn.Module, state: TrainState, config: dict, keep: int = 2) -> Path:
    """Write checkpoint `state.step` under root/checkpoints (with the resolved `config`, which a resume
    must match); keep the newest `keep`."""
    step = state.step
    tensors = {"optimizers": {k: o.state_dict() for k, o in state.optimizers.items()},
               "objective": state.objective.state_dict()}
    plain = {"step": step, "tokens_seen": state.tokens_seen, "history": state.history, "task_steps": state.task_steps,
             "streams": {k: s.state_dict() for k, s in state.streams.items()},
             "schedulers": {k: s.state_dict() for k, s in state.schedulers.items()},
             "coba": state.coba.state_dict() if state.coba is not None else None, "config": config}
    ckdir = root / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    for stale in ckdir.glob("*.tmp*"):  # an interrupted earlier save
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step-{step:06d}"
    tmp = ckdir / f"{name}.tmp{os.getpid()}"
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save({**tensors, "rng": rng_state()}, tmp / "optimizers.pt")
    (tmp / "state.json").write_text(json.dumps(plain, indent=1, default=_plain))
    for f in tmp.iterdir():
        _fsync(f)
    final = ckdir / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(ckdir)
    pointer = ckdir / f"{LATEST}.tmp{os.getpid()}"
    pointer.write_text(name + "\n")
    _fsync(pointer)
    os.replace(pointer, ckdir / LATEST)
    _fsync(ckdir)
    for old in sorted(p for p in ckdir.glob("step-*") if p.is_dir() and ".tmp" not in p.name)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = root / "checkpoints" / pointer.read_text().strip()
    if not (path / "state.json").is_file():
        raise ValueError(f"{pointer}: names {path.name}, which is incomplete or missing")
    return path


def restore_checkpoint(path: Path, model: torch.nn.Module, state: TrainState, config: dict) -> None:
    """Continue from checkpoint `path`: the trainable weights into `model`, everything else into
    `state`, the RNG states last. Refuses a checkpoint written under another `config`."""
    saved = json.loads((path / "state.json").read_text())
    same_config(path, saved["config"], config)
    tensors = _load_weights(path, model)
    for k, opt in state.optimizers.items():
        opt.load_state_dict(tensors["optimizers"][k])
    for k, s in saved["streams"].items():
        state.streams[k].load_state_dict(s)
    for k, s in saved["schedulers"].items():
        state.schedulers[k].load_state_dict(s)
    if state.coba is not None:
        state.coba.load_state_dict(saved["coba"])
    state.step, state.tokens_seen, state.task_steps = saved["step"], saved["tokens_seen"], saved["task_steps"]
    state.history.clear()
    state.history.update(saved["history"])
    state.objective.load_state_dict(tensors["objective"])
    set_rng_state(tensors["rng"])


def same_config(ckpt: Path, saved: dict, now: dict, path: str = "") -> None:
    """Resuming under a different config would silently splice two runs: refuse, naming the key."""
    for key in sorted(set(saved) | set(now)):
        if key == "out" and not path or key == "speed" and not path and key not in saved:
            continue  # `speed` came later: a checkpoint without it was written with its defaults' results
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            same_config(ckpt, a, b, f"{path}{key}.")
        elif a != b and not (isinstance(a, list) and isinstance(b, (list, tuple)) and list(a) == list(b)):
            raise ValueError(f"{ckpt}: was written with {path}{key}={a!r}, the config now says {b!r}; "
                             "resume with the same config or start a new `out`")


def _load_weights(path: Path, model: torch.nn.Module) -> dict:
    """Load trainable weights into `model`; return the tensors file (optimizer states, ...)."""
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    unknown = [n for n in weights if n not in params]
    if missing or unknown:
        raise ValueError(f"{path}: checkpoint does not match the model (missing {missing[:3]}, unknown "
                         f"{unknown[:3]}); was it written with another config?")
    with torch.no_grad():
        for n, t in weights.items():
            params[n].copy_(t)
    return torch.load(path / "optimizers.pt", weights_only=False)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain(obj):
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} in checkpoint state")
