"""Which row decodes in which slot: the bookkeeping of continuous batching, with no tensors in it.

The decoder has `slots` places, each holding one row (a prompt being completed) and its KV cache.
A row that finishes frees its slot, and the next waiting row takes it before the next decoding step,
so no step is spent on rows that have stopped and no row waits for the longest row of a batch (the
idea of Orca's iteration-level scheduling and vLLM's continuous batching; written from their papers).

Rows wait longest prompt first, so rows admitted together have similar lengths (little padding in
their batched prefill), the longest prompts start while the queue is full, and rows with equal prompts
(the n samples of a task) stay adjacent and can share one prefill.

The decoder runs the model on the occupied slots as one batch, so they must be 0..active-1: when
nothing is left to admit, `compact` moves rows from the highest slots into the holes below them and
says which moves to make (the caller copies their caches).
"""

from __future__ import annotations

from typing import Sequence


class Scheduler:
    def __init__(self, prompt_lengths: Sequence[int], slots: int):
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        # Longest first; equal lengths keep their order (sorted() is stable).
        self.waiting = sorted(range(len(prompt_lengths)), key=lambda i: -prompt_lengths[i])
        self.slot_row: list[int | None] = [None] * slots
        self.step = 0  # decoding steps so far (for `trace`)
        self.trace: list[tuple[str, int, int, int]] = []  # (event, step, slot, row): admit, finish, move

    @property
    def active(self) -> int:
        """Number of occupied slots (they are 0..active-1 after `compact`)."""
        return sum(r is not None for r in self.slot_row)

    @property
    def done(self) -> bool:
        return not self.waiting and self.active == 0

    def admit(self) -> list[tuple[int, int]]:
        """(slot, row) for every free slot that takes the next waiting row, lowest slot first."""
        out = []
        for s, r in enumerate(self.slot_row):
            if r is None and self.waiting:
                row = self.waiting.pop(0)
                self.slot_row[s] = row
                out.append((s, row))
                self.trace.append(("admit", self.step, s, row))
        return out

    def finish(self, slot: int) -> None:
        self.trace.append(("finish", self.step, slot, self.slot_row[slot]))
        self.slot_row[slot] = None

    def compact(self) -> list[tuple[int, int]]:
        """(from slot, to slot) moves that make the occupied slots 0..active-1; applied here."""
        moves = []
        hi = len(self.slot_row) - 1
        for lo in range(len(self.slot_row)):
            if self.slot_row[lo] is not None:
                continue
            while hi > lo and self.slot_row[hi] is None:
                hi -= 1
            if hi <= lo:
                break
            self.slot_row[lo], self.slot_row[hi] = self.slot_row[hi], None
            moves.append((hi, lo))
            self.trace.append(("move", self.step, lo, self.slot_row[lo]))
        return moves
