"""Decontamination: drop training examples that overlap an evaluation benchmark's task.

Texts are split with the simple code tokenizer (whitespace and formatting do not matter) into
n-grams of n tokens (default 10). Each benchmark task contributes three texts: its prompt, its
reference solution and its test. Two refinements keep ordinary code from being flagged:

- Boilerplate: an n-gram found in more than `boilerplate_tasks` tasks of one benchmark (test
  harness code, `#include` blocks, `public static void main(String[] args)`, the MBPP prompt
  template) is template text, not task content, and is ignored.
- Overlap: an example is contaminated by a benchmark text when it contains at least `min_overlap`
  of that text's remaining n-grams (default 0.5), or at least `min_shared` of them outright
  (default 20: a long pasted passage). A single common idiom shared with a reference is neither.

Texts shorter than n tokens have no n-grams and cannot be matched (e.g. a one-line reference);
the report states n so this limit is visible.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from .codetokens import code_tokens


@dataclass(frozen=True)
class BenchmarkText:
    benchmark: str
    task_id: str
    field: str  # prompt | reference | test
    text: str


@dataclass(frozen=True)
class Match:
    benchmark: str
    task_id: str
    field: str
    shared: int  # n-grams of the benchmark text found in the example
    overlap: float  # shared / n-grams of the benchmark text
    also: tuple[str, ...] = ()  # other benchmarks' tasks with the very same text

    def describe(self) -> str:
        more = f" (same text in {', '.join(self.also)})" if self.also else ""
        return (f"{self.benchmark} {self.task_id} ({self.field}): {self.shared} n-grams shared, "
                f"{self.overlap:.0%} of its n-grams{more}")


def ngrams(tokens: Sequence[str], n: int) -> set[int]:
    return {hash(tuple(tokens[i:i + n])) for i in range(len(tokens) - n + 1)}


class ContaminationIndex:
    def __init__(self, texts: Iterable[BenchmarkText], n: int = 10, boilerplate_tasks: int = 3,
                 min_overlap: float = 0.5, min_shared: int = 20):
        if n < 1:
            raise ValueError(f"n-gram size must be >= 1, got {n}")
        self.n, self.min_overlap, self.min_shared = n, min_overlap, min_shared
        texts = list(texts)
        unique: dict[str, set[int]] = {}  # the same prompt often appears in several benchmarks
        for t in texts:
            if t.text not in unique:
                unique[t.text] = ngrams(code_tokens(t.text), n)
        per_task: dict[tuple[str, str], set[int]] = defaultdict(set)  # (benchmark, task) -> its n-grams
        for t in texts:
            per_task[(t.benchmark, t.task_id)] |= unique[t.text]
        tasks_per_gram: dict[str, Counter] = defaultdict(Counter)  # benchmark -> n-gram -> tasks holding it
        for (bench, _), g in per_task.items():
            tasks_per_gram[bench].update(g)
        self.boilerplate = {h for counts in tasks_per_gram.values() for h, c in counts.items() if c > boilerplate_tasks}
        # One entry per distinct text; `owners` lists every (benchmark, task, field) that holds it.
        self.owners: list[list[BenchmarkText]] = []
        self.sizes: list[int] = []
        self.index: dict[int, list[int]] = defaultdict(list)
        text_id: dict[str, int] = {}
        for t in texts:
            if t.text in text_id:
                self.owners[text_id[t.text]].append(t)
                continue
            g = unique[t.text] - self.boilerplate
            if not g:
                continue
            tid = text_id[t.text] = len(self.owners)
            self.owners.append([t])
            self.sizes.append(len(g))
            for h in g:
                self.index[h].append(tid)

    def match(self, text: str, exclude: frozenset[str] = frozenset()) -> Match | None:
        """The benchmark text this example overlaps most, if the overlap counts as contamination.
        Texts held only by benchmarks in `exclude` are not considered."""
        hits: dict[int, int] = defaultdict(int)
        for h in ngrams(code_tokens(text), self.n):
            for tid in self.index.get(h, ()):
                hits[tid] += 1
        best = None
        for tid, shared in hits.items():
            if exclude and all(o.benchmark in exclude for o in self.owners[tid]):
                continue
            overlap = shared / self.sizes[tid]
            if overlap >= self.min_overlap or shared >= self.min_shared:
                key = (overlap, shared)
                if best is None or key > best[0]:
                    best = (key, tid)
        if best is None:
            return None
        (overlap, shared), tid = best
        t = self.owners[tid][0]
        also = tuple(f"{o.benchmark} {o.task_id}" for o in self.owners[tid][1:])
        return Match(t.benchmark, t.task_id, t.field, shared, overlap, also)
