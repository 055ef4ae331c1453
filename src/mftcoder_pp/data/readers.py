"""Readers: raw source files -> canonical `Record`s, or a `Problem` naming the file:line and why.

Schemas (`fmt`): canonical JSONL rows; Alpaca (instruction/input/output); MFTCoder `chat_rounds`;
prompt/completion pairs; or a `Schema` the caller builds (prepare/sources.py builds MBPP's from the
benchmark's own test form: data/ imports neither the benchmarks nor the synthetic suite, see
docs/architecture.md). Containers, chosen by file name: JSONL (`.jsonl`, `.ndjson`), JSON
(`.json`: an array of rows, or one row), Parquet (`.parquet`), each optionally gzipped (detected
from the file's magic bytes, not its name).

Bad input never takes good input down with it: JSONL is read as bytes and decoded line by line, so
a malformed line or invalid UTF-8 costs that line only. A JSON array is one document: rows before a
syntax error are kept, the rest of that file cannot be recovered (the problem says so); the same for
a gzip stream that is cut short. A UTF-8 byte-order mark (files exported on Windows start with one)
is not content. A file that cannot be read at all (missing, a directory, not Parquet, UTF-16) is a
`SourceError` naming it.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..languages import get_language
from .langdetect import detect_language
from .records import TASK_TYPES, Record, validate

ROLES = {"system": "system", "human": "human", "user": "human", "bot": "bot", "assistant": "bot"}
SNIPPET = 160
BOM = "\ufeff"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class SourceError(ValueError):
    """A source file that cannot be read at all; the message starts with the file."""


@dataclass(frozen=True)
class Problem:
    """One rejected input: where it is, a reason category (the report groups by it), the detail."""
    where: str  # "file:line" (for Parquet the row number, for a JSON array the line the row starts on)
    reason: str  # "malformed line", "invalid UTF-8", "missing field", "unknown language", "empty output", ...
    detail: str
    snippet: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}: {self.detail}"


@dataclass(frozen=True)
class Schema:
    """How the rows of one source format become canonical fields."""
    required: tuple[str, ...]  # the fields it reads (before the source's `fields` renaming is applied)
    default_task: str  # the task type when neither the source nor the row names one
    convert: Callable[..., dict]  # (row, *, name, where) -> canonical fields; raises Invalid
    keep: Callable[[dict, str], bool] | None = None  # (row, split) -> in the split (others are skipped, uncounted)


class Invalid(ValueError):
    """A row a schema cannot convert; the message says why."""


def read_source(path: str | Path, fmt: str | Schema, *, name: str, task: str | None = None, language: str | None = None,
                fields: dict[str, str] | None = None, split: str = "train", limit: int | None = None,
                display: str | None = None) -> Iterator[Record | Problem]:
    """Records (or problems) of one source, in file order.

    name: the id prefix and report label. task: the task type of every record (default: the row's
    own for canonical rows, else DEFAULT_TASK). language: the language of every record; None means
    the row's `language` field if it has one, else detected. fields: schema key -> source key.
    split: passed to the schema's `keep` (MBPP's train/validation). limit: read at most this many
    rows. display: how the file is named in problems and `Record.source` (default: the path).
    """
    if isinstance(fmt, str):
        if fmt not in SCHEMAS:
            raise ValueError(f"unknown source format {fmt!r} (known: {', '.join(FORMATS)})")
        fmt = SCHEMAS[fmt]
    if task is not None and task not in TASK_TYPES:
        raise ValueError(f"unknown task type {task!r} (known: {', '.join(TASK_TYPES)})")
    if language is not None:
        language = get_language(language).name
    path = Path(path)
    rename = {v: k for k, v in (fields or {}).items()}
    count = 0
    for where, row in _rows(path, display or str(path)):
        if limit is not None and count >= limit:
            return
        count += 1
        if isinstance(row, Problem):
            yield row
            continue
        if fmt.keep is not None and isinstance(row, dict) and not fmt.keep(row, split):
            count -= 1
            continue
        yield _to_record(row, fmt, where, name=name, task=task, language=language, rename=rename)


# ---- containers -----------------------------------------------------------------------------------

def _rows(path: Path, display: str) -> Iterator[tuple[str, dict | Problem]]:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SourceError(f"{display}: cannot read source ({exc.strerror})") from None
    with raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gz else raw
        suffix = path.name[:-3] if path.name.endswith(".gz") else path.name
        try:
            if suffix.endswith(".parquet"):
                yield from _parquet_rows(display, stream)
            elif suffix.endswith(".json"):
                yield from _json_rows(display, stream.read())
            else:  # .jsonl, .ndjson and anything else line-based
                yield from _jsonl_rows(display, stream)
        except (OSError, EOFError, zlib.error) as exc:  # a corrupt or truncated gzip stream, a read error
            # Rows before the damage were yielded and are kept; what follows cannot be found.
            why = "corrupt or truncated gzip data" if gz else "read error"
            yield display, Problem(display, "unreadable file", f"{why} ({exc}); the rest of this file cannot "
                                   "be read")


def _jsonl_rows(path: str, stream: Iterable[bytes]) -> Iterator[tuple[str, dict | Problem]]:
    for lineno, line in enumerate(stream, 1):
        where = f"{path}:{lineno}"
        if lineno == 1 and line[:2] in UTF16_BOMS:  # Windows "Unicode": every line would be invalid UTF-8
            raise SourceError(f"{path}: UTF-16 text; sources must be UTF-8 (re-save the file as UTF-8)")
        # No JSON text starts with U+FEFF: at the start of a line it is a byte-order mark (on the first
        # line of a Windows export, or on any line of files concatenated from several).
        line = line.rstrip(b"\r\n").removeprefix(BOM.encode())
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield where, Problem(where, "invalid UTF-8", f"byte {exc.start}: {exc.reason}", snip(line))
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            yield where, Problem(where, "malformed line", f"invalid JSON ({exc.msg} at column {exc.colno})",
                                 snip(text))
            continue
        yield where, row


def _json_rows(path: str, data: bytes) -> Iterator[tuple[str, dict | Problem]]:
    # surrogateescape keeps invalid bytes as lone surrogates: only the rows that hold them fail.
    if data[:2] in UTF16_BOMS:
        raise SourceError(f"{path}: UTF-16 text; sources must be UTF-8 (re-save the file as UTF-8)")
    text = data.decode("utf-8", errors="surrogateescape").removeprefix(BOM)  # line numbers are unchanged
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos < len(text) and text[pos] != "[":  # a single object
        try:
            row, _ = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            where = f"{path}:{exc.lineno}"
            yield where, Problem(where, "malformed line", f"invalid JSON ({exc.msg})", snip(text[exc.pos:]))
            return
        yield f"{path}:{text.count(chr(10), 0, pos) + 1}", row
        return
    pos, line, last = pos + 1, 1, 0
    while True:
        pos = _skip_ws(text, pos)
        if pos >= len(text) or text[pos] == "]":
            return
        line += text.count("\n", last, pos)
        last = pos
        where = f"{path}:{line}"
        try:
            row, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield where, Problem(where, "malformed line", f"invalid JSON ({exc.msg} at line {exc.lineno}); "
                                 "the rest of this JSON document cannot be read", snip(text[last:]))
            return
        yield where, row
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _parquet_rows(path: str, stream) -> Iterator[tuple[str, dict | Problem]]:
    import pyarrow as pa  # only needed for Parquet sources
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(stream.read()))
    except pa.ArrowException as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    for i, row in enumerate(table.to_pylist(), 1):
        yield f"{path}:{i}", row


# ---- schemas --------------------------------------------------------------------------------------

def _to_record(row: Any, fmt: Schema, where: str, *, name: str, task: str | None, language: str | None,
               rename: dict[str, str]) -> Record | Problem:
    if not isinstance(row, dict):
        return Problem(where, "malformed line", f"expected a JSON object, got {type(row).__name__}", snip(str(row)))
    if rename:
        row = {rename.get(k, k): v for k, v in row.items()}
    bad = _bad_unicode(row)
    if bad:
        detail = f"field {bad!r} holds invalid UTF-8 or a lone surrogate"
        return Problem(where, "invalid UTF-8", detail, snip(repr(row)))
    for key in fmt.required:
        if key == "task" and task is not None or key == "language" and language is not None:
            continue
        if row.get(key) is None:
            return Problem(where, "missing field", f"missing field {key!r}", snip(json.dumps(row, ensure_ascii=False)))
    try:
        out = fmt.convert(row, name=name, where=where)
    except Invalid as exc:
        return Problem(where, "invalid record", str(exc), snip(json.dumps(row, ensure_ascii=False)))
    out["task"] = task or out.get("task") or fmt.default_task
    snippet = snip(str(out.get("output", "")))
    if isinstance(out.get("output"), str) and not out["output"].strip():
        return Problem(where, "empty output", "the output is empty", snip(json.dumps(row, ensure_ascii=False)))
    lang = language or out.get("language")
    if isinstance(lang, str):
        try:
            lang = get_language(lang).name
        except ValueError:
            return Problem(where, "unknown language", f"language {lang!r} is not one of the six", snippet)
    elif lang is None and all(isinstance(out.get(k), str) for k in ("instruction", "input", "output")):
        lang = detect_language(out["output"], out["input"], out["instruction"])
        if lang is None:
            return Problem(where, "unknown language", "no code in python, java, go, cpp, javascript or rust "
                           "found (fence tags, heuristics and parses)", snippet)
    out["language"] = lang
    why = validate(out)
    if why is not None:
        reason = ("missing field" if why.startswith("missing") else "unknown language" if "language" in why
                  else "empty output" if why == "empty output" else "unknown task type" if "task type" in why
                  else "bad field type")
        return Problem(where, reason, why, snippet)
    meta = dict(out.get("meta") or {}) if isinstance(out.get("meta"), dict) else {}
    meta.setdefault("source", name)
    return Record(id=str(out["id"]), task=out["task"], language=out["language"], instruction=out["instruction"],
                  input=out["input"], output=out["output"], tests=_opt_str(out.get("tests")),
                  entry_point=_opt_str(out.get("entry_point")), source=where, meta=meta)


def _canonical(row: dict, *, name: str, where: str) -> dict:
    return dict(row)


def _alpaca(row: dict, *, name: str, where: str) -> dict:
    return {"id": row.get("id", f"{name}/{_line(where)}"), "task": row.get("task"), "language": row.get("language"),
            "instruction": row["instruction"], "input": row.get("input") or "", "output": row["output"],
            "tests": row.get("tests"), "entry_point": row.get("entry_point")}


def _prompt_completion(row: dict, *, name: str, where: str) -> dict:
    return {"id": row.get("id", f"{name}/{_line(where)}"), "task": row.get("task"), "language": row.get("language"),
            "instruction": row["prompt"], "input": "", "output": row["completion"]}


def _chat_rounds(row: dict, *, name: str, where: str) -> dict:
    """MFTCoder's multi-turn format -> one example: the last bot turn is the output, the human turn
    before it the instruction (after any system prompt), earlier turns the input as a transcript."""
    rounds = row["chat_rounds"]
    if not isinstance(rounds, list) or not rounds:
        raise Invalid("chat_rounds must be a non-empty list of {role, content}")
    turns = []
    for i, turn in enumerate(rounds):
        if not isinstance(turn, dict) or not isinstance(turn.get("content"), str) or turn.get("role") not in ROLES:
            raise Invalid(f"chat_rounds[{i}] must be {{role: system|human|bot, content: str}}")
        turns.append((ROLES[turn["role"]], turn["content"]))
    bots = [i for i, (role, _) in enumerate(turns) if role == "bot"]
    if not bots:
        raise Invalid("chat_rounds has no bot turn")
    humans = [i for i, (role, _) in enumerate(turns[:bots[-1]]) if role == "human"]
    if not humans:
        raise Invalid("chat_rounds has no human turn before the last bot turn")
    system = "\n".join(c for role, c in turns if role == "system").strip()
    instruction = turns[humans[-1]][1]
    history = "\n\n".join(f"{'Human' if role == 'human' else 'Bot'}: {c}"
                          for role, c in turns[:humans[-1]] if role != "system")
    return {"id": row.get("id", f"{name}/{_line(where)}"), "task": row.get("task"), "language": row.get("language"),
            "instruction": f"{system}\n\n{instruction}" if system else instruction, "input": history,
            "output": turns[bots[-1]][1]}


SCHEMAS = {
    "canonical": Schema(("id", "task", "language", "instruction", "input", "output"), "synthesis", _canonical),
    "alpaca": Schema(("instruction", "output"), "synthesis", _alpaca),
    "chat_rounds": Schema(("chat_rounds",), "chat", _chat_rounds),
    "prompt_completion": Schema(("prompt", "completion"), "chat", _prompt_completion),
}
FORMATS = tuple(SCHEMAS)


def _bad_unicode(row: dict) -> str | None:
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
        return None
    except UnicodeEncodeError:
        pass
    for key, value in row.items():
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return key
    return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _line(where: str) -> str:
    return where.rsplit(":", 1)[-1]


def snip(text: str | bytes) -> str:
    """At most SNIPPET characters of a rejected input, as valid UTF-8, for the report."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates -> '?'
    return text if len(text) <= SNIPPET else text[:SNIPPET] + "…"
