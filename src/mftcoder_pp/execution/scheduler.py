"""Judge many programs on N worker slots: at most N programs run at once (one per slot), and the
harness's own work overlaps with them.

Why a scheduler: a HumanEval sample runs for a few milliseconds, about as long as the harness takes
to instrument it and to read its verdict. Done one after the other in each worker, the slot's
program waits for the harness and the harness for the program. Here
- one feeder thread instruments programs ahead (`judge.prepare`) into a short queue shared by all
  slots, so a slot never instruments while its server is idle;
- each slot has a thread of its own, which owns the slot's sandbox and fork server from the first
  program to `close()`. As soon as the fork server answers, the thread hands it the next prepared
  program and only then turns the answer into a verdict: the server never waits for the harness,
  and still runs one program at a time;
- a slot takes a program from the shared queue only when it is free. A program that runs to its
  time limit holds only its own slot; nothing waits behind it while other slots are free.
Verdicts do not depend on this order or on the machine's speed: each program's status comes from
its own report, exit and resource accounting (judge.py), under its own limits.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .judge import JudgeLimits, Program, Verdict, prepare, run_program, server_verdict, submit
from .slot import WorkerSlot
from .toolchains import Toolchains


@dataclass(frozen=True)
class Job:
    """One program to judge; `id` is the caller's (it comes back with the verdict)."""

    id: object
    language: str
    code: str  # prompt + completion
    test: str
    entry_point: str | None


_END = object()  # in the ready queue: no more jobs
_SLOT_DONE = object()  # in the results queue: a slot thread has finished


class _Failure:
    """An exception on a scheduler thread, re-raised by the caller's thread."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def judge_all(jobs: Iterable[Job], slots: Sequence[WorkerSlot], *, toolchains: Toolchains,
              limits: JudgeLimits = JudgeLimits(), lookahead: int | None = None) -> Iterator[tuple[Job, Verdict]]:
    """(job, verdict) for every job, in the order they finish. Every slot is closed when this returns
    (or when the caller stops iterating). `lookahead`: prepared programs kept waiting (2 per slot)."""
    run = _Run(slots, toolchains, limits, lookahead or 2 * len(slots))
    return run.results(jobs)


class _Run:
    def __init__(self, slots: Sequence[WorkerSlot], toolchains: Toolchains, limits: JudgeLimits, lookahead: int):
        if not slots:
            raise ValueError("judge_all needs at least one worker slot")
        self.slots, self.toolchains, self.limits = list(slots), toolchains, limits
        self.ready: queue.Queue = queue.Queue(maxsize=lookahead)
        self.done: queue.Queue = queue.Queue()
        self.stop = threading.Event()

    def results(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Verdict]]:
        threads = [threading.Thread(target=self._feed, args=(jobs,), name="judge-feeder", daemon=True)]
        threads += [threading.Thread(target=self._serve, args=(slot,), name=f"judge-slot-{i}", daemon=True)
                    for i, slot in enumerate(self.slots)]
        for t in threads:
            t.start()
        finished = 0
        try:
            while finished < len(self.slots):
                item = self.done.get()
                if item is _SLOT_DONE:
                    finished += 1
                elif isinstance(item, _Failure):
                    raise item.exc
                else:
                    yield item
        finally:
            self._halt()
            for t in threads:
                t.join()

    def _halt(self) -> None:
        """Stop the feeder and the slots: drop what is prepared, end the programs running now (their
        slots' receive() fails at once) and tell every slot to end."""
        self.stop.set()
        for slot in self.slots:
            slot.interrupt()
        while True:
            try:
                self.ready.get_nowait()
            except queue.Empty:
                break
        self._put_end()

    def _put_end(self) -> None:
        try:
            self.ready.put_nowait(_END)
        except queue.Full:  # slots are draining the queue; the feeder puts _END when it stops
            pass

    # --------------------------------------------------------------------------------- threads

    def _feed(self, jobs: Iterable[Job]) -> None:
        try:
            for job in jobs:
                if self.stop.is_set():
                    break
                self.ready.put((job, prepare(job.language, job.code, job.test, job.entry_point)))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            self.done.put(_Failure(exc))
        finally:
            if self.stop.is_set():
                self._put_end()
            else:
                self.ready.put(_END)

    def _take(self, block: bool):
        """The next prepared job, _END, or (not blocking) None when none is ready right now."""
        try:
            item = self.ready.get(block=block)
        except queue.Empty:
            return None
        if item is _END:
            self._put_end()  # for the other slots
        return item

    def _serve(self, slot: WorkerSlot) -> None:
        """One slot's thread: judge until the jobs run out, then close the slot (its fork server goes
        from the thread that started it)."""
        running = None  # (job, program) the slot's fork server is running now
        server = None
        try:
            while not self.stop.is_set():
                if running is None:
                    item = self._take(block=True)
                else:
                    outcome = server.receive()
                    item = self._take(block=False)
                    finished, running = running, None
                    if item is not None and item is not _END and self._server_for(slot, item[1]) is server:
                        submit(server, item[1], self.limits)  # the next program runs while we judge this one
                        running, item = item, None
                    self.done.put((finished[0], server_verdict(finished[1], outcome, self.limits, slot.sandbox)))
                    if item is None:
                        continue
                if item is _END:
                    break
                job, program = item
                if isinstance(program, Verdict):  # could not be instrumented
                    self.done.put((job, program))
                    continue
                server = self._server_for(slot, program)
                if server is not None:
                    submit(server, program, self.limits)
                    running = item
                    continue
                self.done.put((job, run_program(program, sandbox=slot.sandbox, toolchains=self.toolchains,
                                                limits=self.limits)))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            self.done.put(_Failure(exc))
        finally:
            slot.close()
            self.done.put(_SLOT_DONE)

    def _server_for(self, slot: WorkerSlot, program: Program | Verdict):
        if isinstance(program, Verdict) or program.language != "python":
            return None
        return slot.python_server(self.toolchains.python)
