"""Resumable example streams and collation into model inputs.

A `Stream` walks a list of examples epoch by epoch in a seeded order; its position (epoch, batch)
is its whole state, so a resumed run continues with exactly the batches it would have seen.
`length_grouped` sorts chunks of the shuffled order by length before cutting batches (little
padding, batch order still random); `padded`/`packed` keep the shuffled order.

Collation turns examples into a `Batch` (tensors named and shaped in one place, not a dict of strings):
  - `collate_padded`: one example per row, right padding.
  - `collate_packed`: examples share rows (first-fit decreasing); a block-diagonal causal mask keeps
    them isolated (no attention across sample boundaries) and positions restart at each sample, so
    the loss equals the padded one up to float rounding (tested).
Which is faster is measured by benchmarks/bench_batching.py (docs/train.md has the numbers).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from typing import Callable, Sequence

import torch

from ..data.prompts import IGNORE_INDEX
from .dataset import TrainExample

GROUP_CHUNK = 32  # batches per length-sorted chunk


class Stream:
    def __init__(self, examples: Sequence[TrainExample], batch_size: int, seed: int, name: str,
                 group_by_length: bool):
        if not examples:
            raise ValueError(f"stream {name!r} has no examples")
        self.examples, self.batch_size, self.seed, self.name = examples, batch_size, seed, name
        self.group_by_length = group_by_length
        self.epoch, self.position = 0, 0
        self._batches: list[list[int]] | None = None

    def _epoch_batches(self) -> list[list[int]]:
        rng = random.Random(f"{self.seed}:{self.name}:{self.epoch}")
        order = list(range(len(self.examples)))
        rng.shuffle(order)
        if len(order) < self.batch_size:  # tiny tasks: repeat to fill a batch
            order = (order * (self.batch_size // len(order) + 1))[:self.batch_size]
        usable = len(order) - len(order) % self.batch_size  # drop the ragged tail (it starts the next epoch)
        order = order[:usable]
        if self.group_by_length:
            chunk = self.batch_size * GROUP_CHUNK
            order = [i for s in range(0, len(order), chunk)
                     for i in sorted(order[s:s + chunk], key=lambda i: len(self.examples[i]))]
        batches = [order[s:s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        if self.group_by_length:
            rng.shuffle(batches)
        return batches

    def next(self) -> list[TrainExample]:
        if self._batches is None:
            self._batches = self._epoch_batches()
        if self.position >= len(self._batches):
            self.epoch, self.position = self.epoch + 1, 0
            self._batches = self._epoch_batches()
        batch = self._batches[self.position]
        self.position += 1
        return [self.examples[i] for i in batch]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self._batches = state["epoch"], state["position"], None


@dataclass
class Batch:
    """Model inputs and loss targets of one (micro-)batch. Labels are unshifted (the loss shifts)."""

    input_ids: torch.Tensor  # (B, T)
    labels: torch.Tensor  # (B, T), IGNORE_INDEX where there is no loss (prompt, padding)
    attention_mask: torch.Tensor  # (B, T) 1 = token; packed rows: (B, 1, T, T) bool, True = may attend
    token_task: torch.Tensor  # (B, T) task id of each token, -1 on padding
    position_ids: torch.Tensor | None = None  # (B, T), packed rows: positions restart at each sample
    task_ids: torch.Tensor | None = None  # (B,) one example per row: its task id
    languages: list[str] | None = None  # one example per row: its programming language

    def to(self, device) -> "Batch":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The keyword arguments of the model's forward."""
        extra = {} if self.position_ids is None else {"position_ids": self.position_ids}
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, **extra}

    @property
    def response_mask(self) -> torch.Tensor:
        """(B, T) bool: the target tokens (unshifted)."""
        return self.labels != IGNORE_INDEX

    @property
    def prompt_mask(self) -> torch.Tensor:
        """(B, T) bool: non-padding tokens without a target (one example per row: its prompt)."""
        return self.attention_mask.bool() & (self.labels == IGNORE_INDEX)


def collator(batching: str, pad_id: int, max_length: int) -> Callable[[Sequence[TrainExample]], Batch]:
    """The collate function of `data.batching`: packed rows, or one example per row."""
    if batching == "packed":
        return lambda examples: collate_packed(examples, pad_id, max_length)
    return lambda examples: collate_padded(examples, pad_id)


def collate_padded(examples: Sequence[TrainExample], pad_id: int) -> Batch:
    B, T = len(examples), max(map(len, examples))
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    token_task = torch.full((B, T), -1, dtype=torch.long)
    for i, ex in enumerate(examples):
        n = len(ex)
        input_ids[i, :n] = torch.tensor(ex.input_ids)
        labels[i, :n] = torch.tensor(ex.labels)
        attention_mask[i, :n] = 1
        token_task[i, :n] = ex.task
    return Batch(input_ids, labels, attention_mask, token_task, task_ids=torch.tensor([ex.task for ex in examples]),
                 languages=[ex.language for ex in examples])


def collate_packed(examples: Sequence[TrainExample], pad_id: int, max_length: int) -> Batch:
    """Rows of isolated samples: a (B, 1, T, T) boolean mask (True = may attend) and restarting positions."""
    rows: list[list[TrainExample]] = []
    room: list[int] = []
    for ex in sorted(examples, key=len, reverse=True):  # first-fit decreasing
        for r, free in enumerate(room):
            if len(ex) <= free:
                rows[r].append(ex)
                room[r] -= len(ex)
                break
        else:
            rows.append([ex])
            room.append(max_length - len(ex))
    B, T = len(rows), max(max_length - free for free in room)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((B, T), dtype=torch.long)
    token_task = torch.full((B, T), -1, dtype=torch.long)
    mask = torch.zeros((B, 1, T, T), dtype=torch.bool)
    for r, row in enumerate(rows):
        s = 0
        for ex in row:
            n = len(ex)
            input_ids[r, s:s + n] = torch.tensor(ex.input_ids)
            labels[r, s:s + n] = torch.tensor(ex.labels)
            labels[r, s] = IGNORE_INDEX  # the previous sample's last token must not predict this one's first
            position_ids[r, s:s + n] = torch.arange(n)
            token_task[r, s:s + n] = ex.task
            mask[r, 0, s:s + n, s:s + n] = torch.ones(n, n, dtype=torch.bool).tril_()
            s += n
        if s < T:  # padding attends to itself only (keeps softmax rows finite)
            mask[r, 0, s:, s:] = torch.eye(T - s, dtype=torch.bool)
    return Batch(input_ids, labels, mask, token_task, position_ids=position_ids)
