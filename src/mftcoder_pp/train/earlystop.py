"""Early stopping on a dev score: every N steps the current weights are written to
OUT/dev/step-N/model and scored by a `measure(model_dir) -> float` callback (higher is better);
training stops after `patience` measurements without improvement, and the best snapshot is kept as
OUT/best.

The callback comes from the caller: the CLI and the experiment runner pass pass@1 of greedy
completions on a registered benchmark, generated and executed by the same stages as `mftpp generate`
and `mftpp evaluate` (mftcoder_pp.devscore). Training itself does not know how a model is judged.

Pick a dev benchmark you do not report as the final result (e.g. MBPP's validation-style tasks or
a synthetic language split you hold out), otherwise early stopping tunes on the test set.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from .config import EarlyStopConfig
from .export import save_model_dir

Measure = Callable[[Path], float]  # a saved model directory -> its dev score; may write beside it


class EarlyStopper:
    def __init__(self, cfg: EarlyStopConfig, out: Path, kind: str, history: dict, measure: Measure | None):
        """`measure` may be None only when early stopping is off (`cfg.every` 0)."""
        self.cfg, self.out, self.kind, self.measure_fn = cfg, out, kind, measure
        self.history = history  # {"pass@1": {step: value}, "best": (step, value), "bad": n}; JSON, checkpointed
        self.history.setdefault("pass@1", {})
        self.history.setdefault("bad", 0)

    def due(self, step: int) -> bool:
        return bool(self.cfg.every) and step % self.cfg.every == 0

    def measure(self, step: int, model, tokenizer) -> dict:
        """The dev score of the current weights; returns {"pass@1", "stop"}."""
        model_dir = self.out / "dev" / f"step-{step:06d}" / "model"
        was_training = model.training
        model.eval()
        save_model_dir(model, tokenizer, model_dir, self.out, self.kind)
        value = float(self.measure_fn(model_dir))
        model.train(was_training)
        self.history["pass@1"][str(step)] = value
        best = self.history.get("best")
        if best is None or value > best[1]:
            self.history["best"], self.history["bad"] = [step, value], 0
            if (self.out / "best").exists():
                shutil.rmtree(self.out / "best")
            shutil.copytree(model_dir, self.out / "best")
        else:
            self.history["bad"] += 1
        return {"pass@1": value, "stop": self.history["bad"] >= self.cfg.patience}
