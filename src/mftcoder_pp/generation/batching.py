"""Batches of generation rows: one language per batch (HMD-Fusion routes a batch by language), rows
of similar prompt length together (little padding), longest first (an out-of-memory batch fails
at the start, and the ETA errs on the long side)."""

from __future__ import annotations

from typing import Hashable, Sequence


def plan_batches(languages: Sequence[str], lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Row indices grouped into batches of at most `batch_size`. Rows of equal language and length
    keep their order (so the n samples of one task stay adjacent)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    by_lang: dict[Hashable, list[int]] = {}
    for i, lang in enumerate(languages):
        by_lang.setdefault(lang, []).append(i)
    batches = []
    for rows in by_lang.values():
        rows = sorted(rows, key=lambda i: -lengths[i])
        batches += [rows[k:k + batch_size] for k in range(0, len(rows), batch_size)]
    return batches
