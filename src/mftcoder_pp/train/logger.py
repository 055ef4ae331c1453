"""Training logs: `metrics.jsonl` (one JSON object per logged step), TensorBoard scalars, and a
progress line with ETA (rewritten on a terminal, a plain line every ~15 s elsewhere: progress.py).

On resume, lines past the checkpoint's step are dropped from metrics.jsonl and TensorBoard is told
to purge them, so both read like one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import flatten
from ..progress import Progress


class TrainLogger:
    def __init__(self, out: Path, enabled: bool, tensorboard: bool, total_steps: int, resume_step: int = 0,
                 progress: bool = True, label: str = "train"):
        self.enabled, self.total = enabled, total_steps
        self.path = out / "metrics.jsonl"
        self.progress = Progress(f"{label}: step", total_steps, enabled=progress and enabled, start_done=resume_step)
        self.writer = None
        if not enabled:
            return
        if resume_step and self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif self.path.exists():
            self.path.unlink()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in flatten(record, "/"):
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, record["step"])

    def step(self, step: int, loss: float, tokens_per_s: float | None = None) -> None:
        """After every optimizer step (not only logged ones): the progress line."""
        self.progress.update(step, loss=loss, **{"tok/s": round(tokens_per_s) if tokens_per_s else None})

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.progress.close()
