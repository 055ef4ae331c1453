"""The scheduler (execution/scheduler.py): every job judged once, at most N programs at once, a long
program holds only its own slot, the next program is handed over before the last verdict is made,
and failures and early stops end every thread.

The slots here are fakes whose fork server answers from the test's own script (no sandbox, no
clock): a program's report is made from the nonce in its main.py, and a program can be held until
the test releases it. Nothing asserts on time; a wait that would mean a bug fails after a generous
deadline instead of hanging.
"""

from __future__ import annotations

import re
import threading
from types import SimpleNamespace

import pytest

from mftcoder_pp.execution import scheduler
from mftcoder_pp.execution.instrument import PY_RUNTIME_SOURCE
from mftcoder_pp.execution.sandbox import Outcome
from mftcoder_pp.execution.scheduler import Job, judge_all
from mftcoder_pp.execution.toolchains import Toolchains

TEST = "def check(candidate):\n    assert candidate(1) == 1\n"
DEADLINE = 60.0  # seconds; only reached when something is wrong


def job(i: int, hold: bool = False) -> Job:
    marker = "# HOLD\n" if hold else ""
    return Job(i, "python", f"{marker}def f(x):\n    return x  # job {i}\n", TEST, "f")


class Flight:
    """What all fake servers share: programs running now (and the most at once), and an event log."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.log: list[tuple[str, int]] = []
        self.release = threading.Event()

    def note(self, what: str, job_no: int) -> None:
        with self.lock:
            self.log.append((what, job_no))


class FakeServer:
    def __init__(self, flight: Flight):
        self.flight = flight
        self.source = None
        self.interrupted = threading.Event()

    def submit(self, source: str, limits, runtime=None) -> None:
        assert self.source is None, "a second program was handed over before the first one's outcome was read"
        assert runtime == PY_RUNTIME_SOURCE
        self.source = source
        with self.flight.lock:
            self.flight.running += 1
            self.flight.most = max(self.flight.most, self.flight.running)
        self.flight.note("submit", _job_no(source))

    def receive(self) -> Outcome:
        source, self.source = self.source, None
        if "# HOLD" in source:
            released = self.flight.release.wait(DEADLINE)
            assert released or self.interrupted.is_set(), "the held program was never released"
        with self.flight.lock:
            self.flight.running -= 1
        self.flight.note("receive", _job_no(source))
        if self.interrupted.is_set():
            return Outcome(None, 9, "", "", 0.0, 0.0, 0.0, sandbox_error="interrupted")
        nonce = re.search(r"_mftpp_nonce = '([0-9a-f]+)'", source).group(1)
        report = "".join(f"\n@@MFTPP:{nonce}:{line}\n" for line in ("case:0:ok", "done"))
        return Outcome(0, None, report, "", 0.001, 0.001, 10.0)

    def interrupt(self) -> None:
        self.interrupted.set()
        self.flight.release.set()


class FakeSlot:
    def __init__(self, flight: Flight):
        self.sandbox = SimpleNamespace(isolation="bwrap")
        self.server = FakeServer(flight)
        self.closed = 0

    def python_server(self, python: str) -> FakeServer:
        return self.server

    def interrupt(self) -> None:
        self.server.interrupt()

    def close(self) -> None:
        self.closed += 1


def _job_no(source: str) -> int:
    return int(re.search(r"# job (\d+)", source).group(1))


def collect(results, n: int | None = None) -> list:
    """Up to n results (all when None), on a helper thread so that a bug fails instead of hanging."""
    got: list = []
    errors: list = []

    def run():
        try:
            for item in results:
                got.append(item)
                if n is not None and len(got) == n:
                    return
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(DEADLINE)
    assert not t.is_alive(), f"only {len(got)} results arrived"
    if errors:
        raise errors[0]
    return got


def no_scheduler_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("judge-")]


def test_every_job_is_judged_once_with_at_most_one_program_per_slot():
    flight = Flight()
    slots = [FakeSlot(flight) for _ in range(3)]
    results = collect(judge_all([job(i) for i in range(60)], slots, toolchains=Toolchains(python="python3")))
    assert sorted(j.id for j, _ in results) == list(range(60))
    assert {v.status for _, v in results} == {"passed"}
    assert 1 <= flight.most <= 3
    assert [s.closed for s in slots] == [1, 1, 1]
    assert no_scheduler_threads()


def test_a_program_that_runs_long_holds_only_its_own_slot():
    flight = Flight()
    slots = [FakeSlot(flight) for _ in range(2)]
    results = judge_all([job(0, hold=True)] + [job(i) for i in range(1, 30)], slots,
                        toolchains=Toolchains(python="python3"))
    # Every other job finishes while job 0 is still held: nothing waits behind it.
    first = collect(results, 29)
    assert sorted(j.id for j, _ in first) == list(range(1, 30))
    flight.release.set()
    rest = collect(results)
    assert [j.id for j, _ in rest] == [0] and rest[0][1].status == "passed"
    assert no_scheduler_threads()


def test_the_next_program_is_handed_over_before_the_last_verdict_is_made(monkeypatch):
    flight = Flight()
    prepared = {i: threading.Event() for i in range(5)}
    real_prepare, real_verdict = scheduler.prepare, scheduler.server_verdict

    def prepare(language, code, test, entry_point):
        prepared[_job_no(code)].set()
        return real_prepare(language, code, test, entry_point)

    def verdict(program, out, limits, sandbox):
        flight.note("verdict", _job_no(program.files["main.py"]))
        return real_verdict(program, out, limits, sandbox)

    class WaitingServer(FakeServer):
        def receive(self):
            # Job n+1 is in the ready queue once the feeder has moved on to prepare job n+2.
            n = _job_no(self.source)
            if n + 2 in prepared:
                assert prepared[n + 2].wait(DEADLINE)
            return super().receive()

    monkeypatch.setattr(scheduler, "prepare", prepare)
    monkeypatch.setattr(scheduler, "server_verdict", verdict)
    slot = FakeSlot(flight)
    slot.server = WaitingServer(flight)
    collect(judge_all([job(i) for i in range(5)], [slot], toolchains=Toolchains(python="python3")))
    log = flight.log
    for n in range(3):  # receive n, then submit n+1, then the verdict of n
        assert log.index(("receive", n)) < log.index(("submit", n + 1)) < log.index(("verdict", n)), log


def test_a_test_that_cannot_be_instrumented_is_a_harness_error():
    flight = Flight()
    bad = Job("bad", "python", "def f(x):\n    return x\n", "assert True\n", "f")  # no check()
    results = collect(judge_all([bad, job(1)], [FakeSlot(flight)], toolchains=Toolchains(python="python3")))
    verdicts = {j.id: v for j, v in results}
    assert verdicts["bad"].status == "harness_error" and verdicts[1].status == "passed"


def test_a_failure_on_a_slot_thread_reaches_the_caller():
    flight = Flight()

    class Broken(FakeServer):
        def receive(self):
            raise RuntimeError("server protocol broken")

    slots = [FakeSlot(flight), FakeSlot(flight)]
    slots[0].server = Broken(flight)
    slots[1].server = Broken(flight)
    with pytest.raises(RuntimeError, match="protocol broken"):
        collect(judge_all([job(i) for i in range(10)], slots, toolchains=Toolchains(python="python3")))
    assert [s.closed for s in slots] == [1, 1]
    assert no_scheduler_threads()


def test_stopping_early_ends_every_thread_and_the_running_program():
    flight = Flight()
    slots = [FakeSlot(flight) for _ in range(2)]
    results = judge_all([job(0, hold=True)] + [job(i) for i in range(1, 40)], slots,
                        toolchains=Toolchains(python="python3"))
    assert len(collect(results, 3)) == 3
    results.close()  # the caller stops reading: the held program is interrupted, every slot closed
    assert [s.closed for s in slots] == [1, 1]
    assert any(s.server.interrupted.is_set() for s in slots)
    assert no_scheduler_threads()
