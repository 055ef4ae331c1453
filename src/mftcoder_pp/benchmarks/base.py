"""The benchmark interface: a list of tasks, and how a completion becomes the program under test."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from importlib import resources
from typing import Iterator, Protocol


@dataclass(frozen=True)
class Task:
    task_id: str
    language: str
    prompt: str  # the text a base model continues (HumanEval style) or the prompt shown for MBPP
    reference: str  # the canonical completion, in the same form as a sample's "completion"
    test: str  # the benchmark's test, in the language's HumanEval-X form (python: defines check)
    entry_point: str | None
    instruction: str | None = None  # natural-language instruction, for instruction-tuned models


class Benchmark(Protocol):
    """Adding a benchmark = one module implementing this + one entry in the registry (__init__.py)."""

    name: str
    completion_is_full_program: bool  # MBPP: the completion is the whole solution

    def tasks(self) -> list[Task]: ...

    def program(self, task: Task, completion: str) -> str:
        """The code under test for this completion (the test is appended by the harness)."""
        ...


def read_jsonl(package_path: str) -> Iterator[dict]:
    """Rows of a JSONL (optionally .gz) file shipped under mftcoder_pp/benchmarks/data/."""
    ref = resources.files("mftcoder_pp.benchmarks").joinpath("data", package_path)
    with ref.open("rb") as raw:
        data = gzip.decompress(raw.read()) if package_path.endswith(".gz") else raw.read()
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{package_path}:{lineno}: invalid JSON ({exc})") from None
