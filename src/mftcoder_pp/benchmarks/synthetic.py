"""The synthetic suite's held-out splits as benchmarks: `synthetic-<language>` (the test split in one
language), `synthetic-transfer` (the transfer split, every language but python; the summary's
per-language block breaks it down by `Task.language`), `synthetic-transfer-dev` (the transfer
combinations kept for choosing hyper-parameters) and `synthetic-transfer-family` (whole families seen
only in python's SFT data).

They are generated from DEFAULT_SEED with the default `SuiteSettings` when first used (a few
tenths of a second, cached per process), so training data from `generate_suite(DEFAULT_SEED)` and
these benchmarks agree on which combinations are held out.

The suite itself (mftcoder_pp.synthetic) knows nothing of benchmarks: this module, in the benchmark
registry's package, turns its records into `Task`s.
"""

from __future__ import annotations

import functools
from typing import Callable

from ..synthetic.render import LANGUAGES
from ..synthetic.suite import Suite, generate_suite
from .base import Task

DEFAULT_SEED = 0
HELD_OUT = ("test", "transfer", "transfer-dev", "transfer-family")
TRANSFER_SPLITS = {"synthetic-transfer": "transfer", "synthetic-transfer-dev": "transfer-dev",
                   "synthetic-transfer-family": "transfer-family"}


@functools.lru_cache(maxsize=1)
def default_suite() -> Suite:
    return generate_suite(DEFAULT_SEED, splits=HELD_OUT)


class SyntheticBenchmark:
    completion_is_full_program = False

    def __init__(self, split: str, language: str | None = None):
        if split not in HELD_OUT or (split == "test") != (language is not None):
            raise ValueError("a synthetic benchmark is the test split of one language or a whole transfer split")
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
        self.split, self.language = split, language
        self.name = f"synthetic-{language}" if split == "test" else f"synthetic-{split}"

    @functools.cached_property
    def _tasks(self) -> list:
        return [Task(f"{r.language}/{r.meta['key']}", r.language, r.input, r.output, r.tests, r.entry_point,
                     instruction=r.instruction) for r in default_suite().records(self.split, self.language)]

    def tasks(self) -> list:  # list[Task]
        return self._tasks

    def program(self, task, completion: str) -> str:
        # Every prompt is the head of a complete program (Go's includes package and imports).
        return task.prompt + completion


def synthetic_benchmarks() -> dict[str, Callable[[], SyntheticBenchmark]]:
    """Registry entries: name -> factory (cheap: nothing is generated until tasks() is called)."""
    entries: dict[str, Callable[[], SyntheticBenchmark]] = {
        f"synthetic-{lang}": (lambda lang=lang: SyntheticBenchmark("test", lang)) for lang in LANGUAGES}
    for name, split in TRANSFER_SPLITS.items():
        entries[name] = lambda split=split: SyntheticBenchmark(split)
    return entries
