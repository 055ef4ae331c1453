"""Progress lines: plain lines at most every interval when the output is not a terminal, a rewritten
line on a terminal; a fake clock makes both deterministic."""

from __future__ import annotations

import io

from mftcoder_pp.progress import Progress, duration


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_first_every_interval_and_last():
    clock, out = Clock(), io.StringIO()
    bar = Progress("train: step", 100, stream=out, interval=15.0, clock=clock)
    for step in range(1, 101):
        clock.now += 1.0  # one second per step
        bar.update(step, loss=2.0 / step)
    bar.close()
    lines = out.getvalue().splitlines()
    # step 1, then every 15 s (16, 31, 46, 61, 76, 91), then the last step.
    assert [ln.split()[2] for ln in lines] == ["1/100", "16/100", "31/100", "46/100", "61/100", "76/100",
                                                "91/100", "100/100"]
    assert "\r" not in out.getvalue()
    assert lines[1] == "train: step  16/100  loss 0.125  elapsed 16s  ETA 1m24s"
    assert lines[-1].endswith("elapsed 1m40s  ETA 0s")


def test_terminal_line_is_rewritten_and_ends_with_a_newline():
    clock, out = Clock(), TTY()
    bar = Progress("generate: tasks", 3, stream=out, clock=clock)
    for done in (1, 2, 3):
        clock.now += 1.0
        bar.update(done)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1


def test_disabled_or_empty_prints_nothing_and_eta_uses_this_runs_rate():
    out = io.StringIO()
    Progress("x", 10, stream=out, enabled=False).update(5)
    Progress("x", 0, stream=out).update(0)
    assert out.getvalue() == ""
    clock = Clock()
    bar = Progress("train: step", 100, stream=out, clock=clock, start_done=90)  # resumed at step 90
    clock.now += 10.0
    bar.update(95)
    assert out.getvalue().strip().endswith("elapsed 10s  ETA 10s")


def test_duration():
    assert [duration(s) for s in (0, 59.4, 65, 3599, 7380, float("nan"), -1)] == \
        ["0s", "59s", "1m05s", "59m59s", "2h03m", "?", "?"]
