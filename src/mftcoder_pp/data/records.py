"""The canonical training record, one JSON object per line: what every reader produces."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..execution.languages import LANGUAGES

TASK_TYPES = ("synthesis", "completion", "repair", "explanation", "translation", "chat")
REQUIRED = ("id", "task", "language", "instruction", "input", "output")


@dataclass
class Record:
    id: str
    task: str  # task type, one of TASK_TYPES; a "task" in training is (task, language)
    language: str  # one of the six programming languages
    instruction: str
    input: str
    output: str
    tests: str | None = None  # executable tests in the harness's form for `language`, if the source has them
    entry_point: str | None = None
    source: str | None = None  # file (and line) it came from
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @property
    def task_key(self) -> str:
        return f"{self.task}/{self.language}"


def validate(row: dict) -> str | None:
    """Why a canonical row is invalid (None when it is valid)."""
    for key in REQUIRED:
        if key not in row:
            return f"missing field {key!r}"
        if not isinstance(row[key], str):
            return f"field {key!r} must be a string"
    if row["language"] not in LANGUAGES:
        return f"unknown language {row['language']!r} (known: {', '.join(sorted(LANGUAGES))})"
    if row["task"] not in TASK_TYPES:
        return f"unknown task type {row['task']!r} (known: {', '.join(TASK_TYPES)})"
    if not row["output"].strip():
        return "empty output"
    return None


def from_row(row: dict) -> Record:
    known = {k: row[k] for k in ("id", "task", "language", "instruction", "input", "output", "tests", "entry_point",
                                 "source", "meta") if k in row}
    return Record(**known)
