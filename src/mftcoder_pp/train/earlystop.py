"""Early stopping on pass@1: every N steps the current weights are written to OUT/dev/step-N/model,
greedy completions for a registered benchmark's first `limit` tasks are generated from that
directory and executed by the harness (the same files and code paths as `mftpp generate` and
`mftpp evaluate`). Training stops after `patience` measurements without improvement; the best
snapshot is kept as OUT/best.

Pick a dev benchmark you do not report as the final result (e.g. MBPP's validation-style tasks or
a synthetic language split you hold out), otherwise early stopping tunes on the test set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..evaluate import evaluate
from ..generate import generate
from .config import EarlyStopConfig
from .export import save_model_dir


class EarlyStopper:
    def __init__(self, cfg: EarlyStopConfig, out: Path, kind: str, history: dict):
        self.cfg, self.out, self.kind = cfg, out, kind
        self.history = history  # {"pass@1": {step: value}, "best": (step, value), "bad": n}; JSON, checkpointed
        self.history.setdefault("pass@1", {})
        self.history.setdefault("bad", 0)

    def due(self, step: int) -> bool:
        return bool(self.cfg.every) and step % self.cfg.every == 0

    def measure(self, step: int, model, tokenizer) -> dict:
        """pass@1 of the current weights; returns {"pass@1", "stop"}."""
        cfg, d = self.cfg, self.out / "dev" / f"step-{step:06d}"
        model_dir = d / "model"
        was_training = model.training
        model.eval()
        save_model_dir(model, tokenizer, model_dir, self.out, self.kind)
        generate(str(model_dir), cfg.benchmark, str(d), n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens,
                 limit=cfg.limit, progress=False)
        summary = evaluate(cfg.benchmark, str(d / "eval"), samples=str(d / "samples.jsonl"), k=(1,), progress=False)
        model.train(was_training)
        value = float(summary["pass@k"]["pass@1"])
        self.history["pass@1"][str(step)] = value
        best = self.history.get("best")
        if best is None or value > best[1]:
            self.history["best"], self.history["bad"] = [step, value], 0
            if (self.out / "best").exists():
                shutil.rmtree(self.out / "best")
            shutil.copytree(model_dir, self.out / "best")
        else:
            self.history["bad"] += 1
        return {"pass@1": value, "stop": self.history["bad"] >= cfg.patience}
