"""The canonical training record, one JSON object per line: what every reader produces."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..languages import LANGUAGES

# program: a whole program from a problem statement (MBPP), kept apart from synthesis (a function body
# continuing a signature), so that one task holds one output convention.
TASK_TYPES = ("synthesis", "program", "completion", "repair", "explanation", "translation", "chat")
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


class DataError(ValueError):
    """Unreadable or invalid prepared data; the message names the file and line."""


def read_prepared(paths: list[str]) -> list[dict]:
    """Rows of prepared JSONL files (a directory means its *.jsonl files, sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.jsonl"))
            if not found:
                raise DataError(f"{p}: no .jsonl files (run `mftpp prepare` first)")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: prepared data not found (run `mftpp prepare` first)")
    rows = []
    for f in files:
        for lineno, row in json_objects(f, DataError, what="prepared file"):
            problem = validate(row)
            if problem:
                raise DataError(f"{f}:{lineno}: {problem}")
            rows.append(row)
    return rows


def json_objects(path: str | Path, error: type[Exception], what: str = "file",
                 torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file. An unreadable file, invalid UTF-8,
    invalid JSON or a line that is not an object raises `error` naming the file (and the line). Lines are
    split on "\\n" only: JSON strings may hold U+2028 and other characters `str.splitlines` breaks on.

    torn_tail: for files this package appends to while it runs (samples, results, metrics), a last line
    that is not valid JSON is a write cut short by a kill and is skipped (its work is redone); anywhere
    else invalid JSON is still an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        if not torn_tail:
            raise error(f"{path}: not valid UTF-8 ({exc})") from None
        # a kill can also cut a multi-byte character: only the bytes of the last line may be torn
        raw = Path(path).read_bytes()
        head, _, tail = raw.rstrip(b"\n").rpartition(b"\n")
        try:
            text = head.decode("utf-8") + "\n" + tail.decode("utf-8", errors="replace")
        except UnicodeDecodeError as exc2:
            raise error(f"{path}: not valid UTF-8 ({exc2})") from None
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for lineno, line in enumerate(lines, 1):
        line = line.removeprefix("\ufeff")  # a byte-order mark (Windows exports; concatenated files) is not JSON
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if torn_tail and lineno - 1 == last:
                return
            raise error(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise error(f"{path}:{lineno}: expected a JSON object")
        yield lineno, row
