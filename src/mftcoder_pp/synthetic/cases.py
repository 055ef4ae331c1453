"""Test cases of one problem: inputs drawn deterministically, expected outputs from the Python reference.

Besides a few random inputs and the family's edge cases, inputs are added (up to max_cases, from a
pool of candidates) until
- every sibling problem of the same family (same code shape, other parameters: "sum of elements
  > 3" vs "> 8") gives a different answer on at least one case — a model that writes the right
  family with the wrong parameter fails;
- no single expected value answers more than half of the cases — a constant function fails.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from .families import Problem
from .ir import BOOL, INT, LIST_INT, LIST_STR, STR

LIMIT = 10**6  # |int| bound for every value in a test: far from i32 overflow
Case = tuple[tuple, Any]  # (arguments, expected result)


def portable(value: Any, type_: str) -> bool:
    """Whether a value renders, and compares, the same way in all six languages."""
    if type_ == INT:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= LIMIT
    if type_ == BOOL:
        return isinstance(value, bool)
    if type_ == STR:
        return (isinstance(value, str) and value.isascii() and value.isprintable()
                and not any(c in value for c in "\"'\\"))
    if type_ in (LIST_INT, LIST_STR):
        element = INT if type_ == LIST_INT else STR
        return isinstance(value, list) and all(portable(v, element) for v in value)
    return False


def _expected(problem: Problem, args: tuple) -> tuple[bool, Any]:
    """(ok, result); not ok when the arguments are outside the problem's domain or the result is not portable.
    An empty list result is refused: Go's testify tells a nil slice from an empty one."""
    try:
        result = problem.reference(*args)
    except (ValueError, ZeroDivisionError, IndexError):
        return False, None
    ok = portable(result, problem.returns) and not (problem.returns in (LIST_INT, LIST_STR) and not result)
    return ok, result


def select_cases(problem: Problem, siblings: list[Problem], rng: random.Random, n_random: int = 4,
                 max_cases: int = 10, pool_size: int = 40) -> list[Case]:
    seen: set[str] = set()
    pool: list[Case] = []
    for args in [*problem.edges, *(problem.sample(rng) for _ in range(pool_size))]:
        if repr(args) in seen or not all(portable(a, t) for a, (_, t) in zip(args, problem.args)):
            continue
        seen.add(repr(args))
        ok, result = _expected(problem, args)
        if ok:
            pool.append((args, result))
    if not pool:
        raise ValueError(f"{problem.key}: no valid test input drawn")
    n_edges = sum(1 for args, _ in pool if args in problem.edges)
    chosen = list(range(min(len(pool), n_edges + n_random)))
    rest = [k for k in range(len(pool)) if k not in chosen]

    def majority() -> tuple[str, int, Counter]:
        counts = Counter(repr(pool[k][1]) for k in chosen)
        top, n_top = counts.most_common(1)[0]
        return top, n_top, counts

    # Sibling cover, greedy: the case that tells apart the most siblings still left; among equals,
    # one whose answer is not the commonest so far.
    left = {q.key: q for q in siblings if not any(_differs(q, pool[k]) for k in chosen)}
    told = {k: {key for key, q in left.items() if _differs(q, pool[k])} for k in rest} if left else {}
    remaining = set(left)
    while remaining and rest and len(chosen) < max_cases:
        top = majority()[0]
        best = max(rest, key=lambda k: (len(told[k] & remaining), repr(pool[k][1]) != top, -k))
        if not told[best] & remaining:
            break
        chosen.append(best)
        rest.remove(best)
        remaining -= told[best]
    # Variety: no expected value may answer more than half of the cases (a constant function must
    # fail), as far as the pool and max_cases allow; unseen values are preferred.
    while len(chosen) < max_cases:
        top, n_top, counts = majority()
        other = [k for k in rest if repr(pool[k][1]) != top]
        if 2 * n_top <= len(chosen) or not other:
            break
        best = min(other, key=lambda k: (repr(pool[k][1]) in counts, k))
        chosen.append(best)
        rest.remove(best)
    return [pool[k] for k in sorted(chosen)]


def _differs(sibling: Problem, case: Case) -> bool:
    ok, result = _expected(sibling, case[0])
    return ok and result != case[1]
