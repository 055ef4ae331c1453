"""Progress of a long stage (training steps, generated tasks, executed samples), wherever the output goes.

On a terminal: one line rewritten in place. Elsewhere (`mftpp demo > log`, CI, nohup): a plain line
at the first update, then at most every `interval` seconds (15 by default) and at the end — as
tqdm's and Accelerate's non-terminal logging do — so a log file shows where a run is and how long
it has left, without a line per step.

    stage  done/total  [fields]  elapsed 1m05s  ETA 2m10s
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

INTERVAL_SECONDS = 15.0
TTY_REFRESH_SECONDS = 0.1


def duration(seconds: float) -> str:
    """1m05s, 2h03m, 42s; '?' when unknown."""
    if seconds != seconds or seconds < 0:  # NaN: nothing done yet
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """`update(done, **fields)` after each unit of work; `close()` at the end. Disabled: does nothing."""

    def __init__(self, stage: str, total: int, *, enabled: bool = True, stream: TextIO | None = None,
                 interval: float = INTERVAL_SECONDS, start_done: int = 0,
                 clock: Callable[[], float] = time.monotonic):
        self.stage, self.total, self.interval, self.clock = stage, total, interval, clock
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and total > 0
        self.tty = self.enabled and _isatty(self.stream)
        self.start, self.start_done = clock(), start_done  # ETA from this run's rate (a resume skips work)
        self.last: float | None = None  # when a line was last written
        self.wrote_tty = False

    def line(self, done: int, fields: dict) -> str:
        elapsed = self.clock() - self.start
        rate_done = done - self.start_done
        eta = elapsed / rate_done * (self.total - done) if rate_done > 0 else float("nan")
        parts = [f"{self.stage}  {done}/{self.total}"]
        parts += [f"{k} {_fmt(v)}" for k, v in fields.items() if v is not None]
        parts += [f"elapsed {duration(elapsed)}", f"ETA {duration(eta)}"]
        return "  ".join(parts)

    def update(self, done: int, **fields) -> None:
        if not self.enabled:
            return
        now = self.clock()
        final = done >= self.total
        if self.tty:
            if final or self.last is None or now - self.last >= TTY_REFRESH_SECONDS:
                self.stream.write("\r" + self.line(done, fields) + "   ")
                self.stream.flush()
                self.last, self.wrote_tty = now, True
            return
        if final or self.last is None or now - self.last >= self.interval:
            self.stream.write(self.line(done, fields) + "\n")
            self.stream.flush()
            self.last = now

    def close(self) -> None:
        if self.wrote_tty:
            self.stream.write("\n")
            self.stream.flush()
            self.wrote_tty = False


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
