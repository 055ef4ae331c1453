"""Checkpoints that hold everything needed to continue, written atomically.

Layout: OUT/checkpoints/step-000050/ with
  - trainable.safetensors  the trainable parameters by name (LoRA + vocabulary rows + module weights,
                           or every weight in full fine-tuning)
  - optimizers.pt          every optimizer's state (one per task, or "shared"), and any module state
                           that holds tensors (the discriminator and its optimizer, ...)
  - state.json             step, data positions, sampler/ATDS/CoBa state, RNG states, early-stopping
                           history, the resolved config
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
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LATEST = "latest"


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


def save_checkpoint(root: Path, step: int, model: torch.nn.Module, tensors: dict, state: dict, keep: int = 2) -> Path:
    """Write checkpoint `step` under root/checkpoints; keep the newest `keep`."""
    ckdir = root / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    for stale in ckdir.glob("*.tmp*"):  # an interrupted earlier save
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step-{step:06d}"
    tmp = ckdir / f"{name}.tmp{os.getpid()}"
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save({**tensors, "rng": rng_state()}, tmp / "optimizers.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=1, default=_plain))
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


def load_checkpoint(path: Path, model: torch.nn.Module) -> tuple[dict, dict]:
    """Load trainable weights into `model`; return (tensors incl. optimizer states, state)."""
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
    tensors = torch.load(path / "optimizers.pt", weights_only=False)
    state = json.loads((path / "state.json").read_text())
    return tensors, state


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
