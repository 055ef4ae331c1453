"""Early stopping's dev score for `mftpp train`: pass@1 of a model directory on a registered benchmark,
through the same stages as `mftpp generate` and `mftpp evaluate` (greedy completions of the first
`limit` tasks, executed in the sandbox). Built here, above both training and evaluation, and handed to
the trainer as a callback, so training never imports the generation or evaluation entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .train.config import EarlyStopConfig


def dev_pass_at_1(cfg: EarlyStopConfig) -> Callable[[Path], float]:
    """measure(model_dir) -> pass@1; writes samples.jsonl and eval/ beside `model_dir`."""

    def measure(model_dir: Path) -> float:
        from .evaluate import evaluate
        from .generate import generate

        d = Path(model_dir).parent
        generate(str(model_dir), cfg.benchmark, str(d), n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens,
                 limit=cfg.limit, progress=False)
        summary = evaluate(cfg.benchmark, str(d / "eval"), samples=str(d / "samples.jsonl"), k=(1,), progress=False)
        return float(summary["pass@k"]["pass@1"])

    return measure
