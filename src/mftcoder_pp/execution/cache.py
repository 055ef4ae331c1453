"""A verdict cache: the same program under the same test, limits and sandbox is judged once.

Rows and seeds of an experiment often write the same completion for a task (greedy decoding of
similar models): the program under test is then byte-identical, and so is its verdict — the harness
is deterministic for every program that does not sit on a time limit. Keyed by a SHA-256 over
everything the verdict depends on (language, program, test, entry point, limits, isolation, the
interpreter and this package's version), stored one small JSON file per key. A cached verdict of a
program near its time limit is reused as it was measured the first time, so two rows with the same
program always get the same status (never one `passed` and one `timeout`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

VERSION = 1


def verdict_key(language: str, program: str, test: str, entry_point: str | None, settings: dict) -> str:
    payload = json.dumps([VERSION, language, program, test, entry_point, settings], sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class VerdictCache:
    """get/put of verdict dicts (Verdict.to_dict()) under a directory; safe across threads and processes
    (a write is a rename of a complete file)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            verdict = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return verdict

    def put(self, key: str, verdict: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{id(verdict)}.tmp")
        tmp.write_text(json.dumps(verdict), encoding="utf-8")
        os.replace(tmp, path)
