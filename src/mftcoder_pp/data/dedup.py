"""Exact and near-duplicate detection.

Exact: equal SHA-256 of the normalised (input, output). Near: MinHash signatures over token
shingles (k consecutive code tokens), banded LSH to find candidate pairs, then the *exact* Jaccard
similarity of the two shingle sets decides (so LSH only affects speed and recall, never precision).
Both are greedy in input order: the first of a group is kept, later ones point to it.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from typing import Sequence

import numpy as np

_PRIME = (1 << 61) - 1  # Mersenne prime for the universal hash family (a*x + b) mod p
_BASE = 1_000_003  # multiplier of the shingle polynomial hash


def content_key(input: str, output: str) -> str:
    return hashlib.sha256(input.encode("utf-8") + b"\0" + output.encode("utf-8")).hexdigest()


def exact_duplicates(keys: Sequence[str]) -> dict[int, int]:
    """{index of a duplicate: index of the first item with the same key}."""
    first: dict[str, int] = {}
    dups = {}
    for i, key in enumerate(keys):
        if key in first:
            dups[i] = first[key]
        else:
            first[key] = i
    return dups


def shingles(tokens: Sequence[str], k: int, cache: dict[str, int] | None = None) -> np.ndarray:
    """Sorted unique 32-bit hashes of the k-token windows (one window when there are fewer than k
    tokens): a polynomial hash over per-token CRC32s, vectorised, deterministic across runs."""
    if not tokens:
        return np.zeros(0, dtype=np.uint64)
    cache = {} if cache is None else cache
    ids = np.fromiter((cache.get(t) or cache.setdefault(t, zlib.crc32(t.encode("utf-8")) | 1) for t in tokens),
                      dtype=np.uint64, count=len(tokens))
    k = min(k, len(ids))
    n = len(ids) - k + 1
    h = np.zeros(n, dtype=np.uint64)
    for j in range(k):  # h = sum_j ids[i + j] * B^(k-1-j)  (mod 2^64, wrapping on purpose)
        h = h * np.uint64(_BASE) + ids[j:j + n]
    return np.unique(_fmix64(h) >> np.uint64(32))


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser: every input bit affects every output bit (the polynomial alone
    leaves windows that differ only in their last token close together)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising the false-positive plus false-negative
    probability mass around `threshold` (the S-curve 1 - (1 - s^r)^b), by numerical integration."""
    xs = np.linspace(0.0, 1.0, 201)
    best, best_err = (1, num_perm), math.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - xs ** r) ** b
            fp = _integral(np.where(xs < threshold, p, 0.0), xs)
            fn = _integral(np.where(xs >= threshold, 1.0 - p, 0.0), xs)
            if fp + fn < best_err:
                best, best_err = (b, r), fp + fn
    return best


def _integral(y: np.ndarray, x: np.ndarray) -> float:
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2)  # trapezoid rule (numpy-version independent)


class MinHasher:
    def __init__(self, num_perm: int = 128, seed: int = 0):
        rng = np.random.default_rng(seed)
        # a, b < 2^31 and x < 2^32 keep a*x + b below 2^64: exact in uint64.
        self.a = rng.integers(1, 1 << 31, size=(num_perm, 1), dtype=np.uint64)
        self.b = rng.integers(0, 1 << 31, size=(num_perm, 1), dtype=np.uint64)
        self.num_perm = num_perm

    def signature(self, x: np.ndarray) -> np.ndarray:
        """MinHash of a set of 32-bit hashes (uint64 array)."""
        if x.size == 0:
            return np.full(self.num_perm, _PRIME, dtype=np.uint64)
        return ((self.a * x[None, :] + self.b) % np.uint64(_PRIME)).min(axis=1)  # (num_perm,)


def near_duplicates(token_lists: Sequence[Sequence[str]], threshold: float = 0.85, num_perm: int = 128,
                    shingle: int = 5, seed: int = 0) -> dict[int, tuple[int, float]]:
    """{index of a near duplicate: (index of the kept item it matches, Jaccard)}; items compared
    only with kept ones, in order."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    bands, rows = lsh_params(threshold, num_perm)
    hasher = MinHasher(num_perm, seed)
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    sets: dict[int, np.ndarray] = {}
    dups: dict[int, tuple[int, float]] = {}
    cache: dict[str, int] = {}
    for i, tokens in enumerate(token_lists):
        sh = shingles(tokens, shingle, cache)
        if not len(sh):
            continue
        sig = hasher.signature(sh)
        keys = [sig[j * rows:(j + 1) * rows].tobytes() for j in range(bands)]
        seen: set[int] = set()
        match = None
        for j, key in enumerate(keys):
            for cand in buckets[j].get(key, ()):
                if cand in seen:
                    continue
                seen.add(cand)
                sim = jaccard(sh, sets[cand])
                if sim >= threshold:
                    match = (cand, sim)
                    break
            if match:
                break
        if match:
            dups[i] = match
            continue
        sets[i] = sh
        for j, key in enumerate(keys):
            buckets[j].setdefault(key, []).append(i)
    return dups
