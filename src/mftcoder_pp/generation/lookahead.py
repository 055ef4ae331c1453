"""Draft tokens from a row's own context, verified in the next decoding step (greedy only).

Why: a decoding step of a small model on a CPU costs a large fixed part (every weight is read once,
whatever the batch) plus a part per token, so when few rows are left (the end of a run, where rows
stuck in a repetition loop run to max_new_tokens) most of a step's cost buys nothing. A row can then
feed, after its next input token, a guess of the tokens that follow; one forward scores all of them,
and every guess that equals the model's own greedy choice is a token gained for free.

The guess is "prompt lookup" (n-gram lookup in the row's own prompt and output; Saxena, 2023): find
the previous occurrence of the row's last n tokens (n = 3, then 2, then 1) and propose what followed
it. Code repeats itself (names, indentation, and above all the loops of a model that will not stop),
so such guesses are often right.

Greedy decoding keeps exactly the tokens it would have chosen one at a time: a guess is kept only if
it is the argmax at its position, and the step's last kept position gives one more token. (The verify
forward has other shapes than a one-token step, so in floating point a near-tie can round the other
way; tested equal on a tiny float32 model, and the benchmark counts identical completions.)

How many guesses each row feeds (`plan`) is a fixed rule, not a timing: the expected tokens per unit
of cost, with each row's rate of right guesses so far (kept by the engine, one guess at a time), the
cost of a token relative to a step's fixed cost (`token_cost`) and that of a padding position
(`pad_cost`); so the outputs never depend on the machine's speed. Rows choose apart: one row in a
repetition loop can guess four tokens while the others of the step feed one.
"""

from __future__ import annotations

from typing import Sequence

MAX_NGRAM = 3


class NgramIndex:
    """Where each of a row's n-grams (n <= MAX_NGRAM) last ended, updated one token at a time."""

    def __init__(self, tokens: Sequence[int]):
        self.tokens: list[int] = []
        self._last: dict[tuple[int, ...], int] = {}  # n-gram -> end index of its latest occurrence
        self._match: list[int | None] = [None] * (MAX_NGRAM + 1)  # per n: end of the previous occurrence of the tail
        for t in tokens:
            self.add(t)

    def add(self, token: int) -> None:
        self.tokens.append(token)
        end = len(self.tokens) - 1
        for n in range(1, MAX_NGRAM + 1):
            if end + 1 < n:
                self._match[n] = None
                continue
            key = tuple(self.tokens[end + 1 - n:])
            self._match[n] = self._last.get(key)
            self._last[key] = end

    def draft(self, k: int) -> list[int]:
        """Up to k tokens that followed the latest earlier occurrence of the longest matching tail."""
        if k <= 0:
            return []
        for n in range(MAX_NGRAM, 0, -1):
            e = self._match[n]
            if e is not None:
                return self.tokens[e + 1:e + 1 + k]
        return []


def plan(drafts: Sequence[Sequence[int]], acceptance: Sequence[float], token_cost: float,
         pad_cost: float = 1.0) -> list[int]:
    """Guesses per row for the next step (0 = none): the choice that maximises expected new tokens /
    cost. Row i's j-th guess is kept if it and every guess before it are right, with probability
    acceptance[i] ** j (its rate of right guesses so far); a row feeds 1 + k_i tokens; the step is
    padded to its longest row and costs 1 + token_cost * (tokens fed + pad_cost * padding) in units of
    the step's fixed cost (pad_cost 1: padding is computed like tokens; less when the linear layers
    skip it, packed.py). For each step length the guesses are taken best first, while they pay."""
    b = len(drafts)
    best, best_k = b / (1 + token_cost * b), [0] * b
    # Every guess, best first (a row's later guesses are worth less: they come after its earlier ones).
    ranked = sorted(((acceptance[i] ** j, i, j) for i, d in enumerate(drafts) for j in range(1, len(d) + 1)),
                    key=lambda g: (-g[0], -g[1], g[2]))
    for q in range(2, 1 + max((len(d) for d in drafts), default=0) + 1):
        gained, fed, longest, ks = float(b), b, 0, [0] * b
        for value, i, j in ranked:
            if j > q - 1:
                continue
            ks[i] += 1
            gained, fed, longest = gained + value, fed + 1, max(longest, ks[i])
            if longest == q - 1:  # the step's length is q: every row is padded to it
                ratio = gained / (1 + token_cost * (fed + pad_cost * (b * q - fed)))
                if ratio > best:
                    best, best_k = ratio, list(ks)
    return best_k
