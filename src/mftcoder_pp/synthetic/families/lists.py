"""Families over lists: aggregate x predicate, map/filter compositions, scans, index arithmetic,
and two families over lists of strings. List elements are non-negative (0..30) so that -1 can mean
"none" and `%` never meets a negative operand."""

from __future__ import annotations

import random

from ..ir import BOOL, INT, LIST_INT, LIST_STR, STR, At, Decl, Each, If, Len, Push, Range, Return, Set, Var
from ..ir import lift as k
from .base import Family, Problem, phrase
from .predicates import FEW_PREDS, INT_MAPS, INT_PREDS, PRODUCT_PREDS, WORD_PREDS

XS, WS = Var("xs", LIST_INT), Var("xs", LIST_STR)
x, i, j, n, acc, r = Var("x", INT), Var("i", INT), Var("j", INT), Var("n", INT), Var("acc", INT), Var("r", LIST_INT)
w, out = Var("w", STR), Var("out", STR)
ARGS, WARGS = (("xs", LIST_INT),), (("xs", LIST_STR),)
EMPTY = (([],),)  # the empty list, as an argument tuple
VOCAB = ("apple", "sun", "tree", "sea", "cat", "stone", "axe", "bus", "moon", "ant", "rose", "sky", "map", "glass",
         "ice", "a", "be", "is", "tea", "salt", "game", "arts", "sauce", "nest", "bread", "snake", "ox", "eye")


def int_lists(lo: int = 0, hi: int = 30, max_len: int = 8, min_len: int = 0, near: tuple[int, ...] = (),
              sorted_share: float = 0.0):
    """Sampler of one list argument; values in `near` (e.g. a predicate's threshold) are favoured,
    and a share of the lists come sorted (ascending or descending) for order-sensitive families."""
    pool = list(range(lo, hi + 1)) + [v for v in near if lo <= v <= hi] * 4

    def sample(rng: random.Random) -> tuple:
        xs = [rng.choice(pool) for _ in range(rng.randint(min_len, max_len))]
        if rng.random() < sorted_share:
            xs.sort(reverse=rng.random() < 0.5)
        return (xs,)
    return sample


def filtered(base, preds):
    """Sampler whose lists often hold only elements that satisfy (or fail) some predicate, so that
    all/any answers vary and parameters can be told apart."""
    def sample(rng: random.Random) -> tuple:
        xs = base(rng)[0]
        if rng.random() < 0.6:
            pred, keep = rng.choice(preds), rng.random() < 0.5
            xs = [v for v in xs if pred.py(v) == keep]
        return (xs,)
    return sample


def planted_pairs(target: int):
    """Lists in 0..target that often contain pairs summing to target."""
    base = int_lists(0, target, 6)

    def sample(rng: random.Random) -> tuple:
        xs = base(rng)[0]
        for _ in range(rng.randint(0, 2)):
            v = rng.randint(0, target)
            xs[rng.randint(0, len(xs)):0] = [v]
            xs.insert(rng.randint(0, len(xs)), target - v)
        return (xs,)
    return sample


def word_lists(rng: random.Random) -> tuple:
    return ([rng.choice(VOCAB) for _ in range(rng.randint(0, 6))],)


def _product(values) -> int:
    out_ = 1
    for v in values:
        out_ *= v
    return out_


def _index(hits: list[int], last: bool) -> int:
    return (hits[-1] if last else hits[0]) if hits else -1


# ------------------------------------------------------------------------ aggregate x predicate
# name: (function-name words, return type, phrasings, body(pred IR), reference(xs, pred))
AGGREGATES = {
    "sum_where": (("sum",), INT, (
        "return the sum of the {np_of}.",
        "add up the elements of xs that {are} and return the total (0 if there are none).",
        "given a list of integers xs, compute the sum of its {np}."),
        lambda p: (Decl("acc", INT, k(0)), Each("x", XS, (If(p(x), (Set("acc", acc + x),)),)), Return(acc)),
        lambda xs, p: sum(v for v in xs if p(v))),
    "count_where": (("count",), INT, (
        "return how many elements of xs {are}.",
        "count the {np} in the list xs.",
        "given a list of integers xs, return the number of {np}."),
        lambda p: (Decl("acc", INT, k(0)), Each("x", XS, (If(p(x), (Set("acc", acc + 1),)),)), Return(acc)),
        lambda xs, p: sum(1 for v in xs if p(v))),
    "max_where": (("max",), INT, (
        "return the largest of the {np_of}, or -1 if there is none.",
        "find the maximum element of xs that {is}; return -1 when no element {is}.",
        "given a list of non-negative integers xs, return its greatest {np1} (-1 if there is no such element)."),
        lambda p: (Decl("acc", INT, k(-1)), Each("x", XS, (If(p(x) & (x > acc), (Set("acc", x),)),)), Return(acc)),
        lambda xs, p: max((v for v in xs if p(v)), default=-1)),
    "min_where": (("min",), INT, (
        "return the smallest of the {np_of}, or -1 if there is none.",
        "find the minimum element of xs that {is}; return -1 when no element {is}.",
        "given a list of non-negative integers xs, return its least {np1} (-1 if there is no such element)."),
        lambda p: (Decl("acc", INT, k(-1)),
                   Each("x", XS, (If(p(x) & (acc.eq(-1) | (x < acc)), (Set("acc", x),)),)), Return(acc)),
        lambda xs, p: min((v for v in xs if p(v)), default=-1)),
    "product_where": (("product",), INT, (
        "return the product of the {np_of} (1 if there are none).",
        "multiply together the elements of xs that {are} and return the result; an empty product is 1.",
        "given a list of small integers xs, compute the product of its {np}."),
        lambda p: (Decl("acc", INT, k(1)), Each("x", XS, (If(p(x), (Set("acc", acc * x),)),)), Return(acc)),
        lambda xs, p: _product(v for v in xs if p(v))),
    "any_where": (("any",), BOOL, (
        "return whether at least one element of xs {is}.",
        "check if the list xs contains an element that {is}.",
        "given a list of integers xs, decide whether some element {is}."),
        lambda p: (Each("x", XS, (If(p(x), (Return(k(True)),)),)), Return(k(False))),
        lambda xs, p: any(p(v) for v in xs)),
    "all_where": (("all",), BOOL, (
        "return whether every element of xs {is} (true for an empty list).",
        "check that all elements of the list xs are {adj}; an empty list passes.",
        "given a list of integers xs, decide whether each of its elements {is}."),
        lambda p: (Each("x", XS, (If(~p(x), (Return(k(False)),)),)), Return(k(True))),
        lambda xs, p: all(p(v) for v in xs)),
    "first_index_where": (("first", "index"), INT, (
        "return the index of the first element of xs that {is}, or -1 if there is none.",
        "find the position of the first {np1} in xs; return -1 if there is no such element.",
        "given a list of integers xs, return the smallest index i such that xs[i] {is} (-1 if none)."),
        lambda p: (Range("i", k(0), Len(XS), (If(p(At(XS, i)), (Return(i),)),)), Return(k(-1))),
        lambda xs, p: _index([t for t, v in enumerate(xs) if p(v)], last=False)),
    "last_index_where": (("last", "index"), INT, (
        "return the index of the last element of xs that {is}, or -1 if there is none.",
        "find the position of the last {np1} in xs; return -1 if there is no such element.",
        "given a list of integers xs, return the largest index i such that xs[i] {is} (-1 if none)."),
        lambda p: (Decl("acc", INT, k(-1)), Range("i", k(0), Len(XS), (If(p(At(XS, i)), (Set("acc", i),)),)),
                   Return(acc)),
        lambda xs, p: _index([t for t, v in enumerate(xs) if p(v)], last=True)),
    "filter_where": (("keep",), LIST_INT, (
        "return a new list of the {np_of}, in their original order.",
        "keep only the elements of xs that {are} and return them as a new list.",
        "given a list of integers xs, filter it so that only the {np} remain (keep their order)."),
        lambda p: (Decl("r", LIST_INT), Each("x", XS, (If(p(x), (Push(r, x),)),)), Return(r)),
        lambda xs, p: [v for v in xs if p(v)]),
}


def aggregate_family(name: str) -> Family:
    words, returns, templates, body, ref = AGGREGATES[name]
    product = name == "product_where"
    problems = []
    for key in PRODUCT_PREDS if product else INT_PREDS:
        p = INT_PREDS[key]
        sample = int_lists(0, 9, 6, near=p.near) if product else int_lists(near=p.near)
        if returns == BOOL:
            sample = filtered(int_lists(near=p.near, max_len=5), list(INT_PREDS.values()))
        problems.append(Problem(name, (("pred", key),), words + p.words, ARGS, returns,
                                phrase(templates, **p.fields()), body(p.ir),
                                lambda xs, p=p, ref=ref: ref(xs, p.py), sample, () if returns == LIST_INT else EMPTY))
    return Family(name, "list", AGGREGATE_SUMMARIES[name], tuple(problems))


AGGREGATE_SUMMARIES = {
    "sum_where": "sum of the elements satisfying a predicate",
    "count_where": "number of elements satisfying a predicate",
    "max_where": "largest element satisfying a predicate (-1: none)",
    "min_where": "smallest element satisfying a predicate (-1: none)",
    "product_where": "product of the elements satisfying a predicate (single-digit inputs)",
    "any_where": "does some element satisfy a predicate", "all_where": "do all elements satisfy a predicate",
    "first_index_where": "index of the first element satisfying a predicate (-1: none)",
    "last_index_where": "index of the last element satisfying a predicate (-1: none)",
    "filter_where": "the elements satisfying a predicate, in order"}


# ------------------------------------------------------------------------------- compositions
def sum_map_where() -> Family:
    problems = []
    for mkey, m in INT_MAPS.items():
        for pkey in FEW_PREDS:
            if (mkey, pkey) == ("mod:3", "div:3"):  # always 0
                continue
            p = INT_PREDS[pkey]
            f = p.fields()
            problems.append(Problem(
                "sum_map_where", (("map", mkey), ("pred", pkey)), ("sum",) + m.words + ("where",) + p.words, ARGS, INT,
                phrase(("{a}, and return the sum of the results.",
                        "return the sum of the results when you {b}.",
                        "given a list of integers xs, {c} and return their sum (0 if there are none)."),
                       a=m.apply(f"every element of xs that {f['is']}"), b=m.apply(f"each {f['np1']} in xs"),
                       c=m.apply(f"its {f['np']}")),
                (Decl("acc", INT, k(0)), Each("x", XS, (If(p.ir(x), (Set("acc", acc + m.ir(x)),)),)), Return(acc)),
                lambda xs, m=m, p=p: sum(m.py(v) for v in xs if p.py(v)), int_lists(near=p.near), EMPTY))
    return Family("sum_map_where", "list", "sum of a map (square, double, +k, *k, mod k, half) over the elements "
                  "satisfying a predicate", tuple(problems))


def map_list() -> Family:
    problems = tuple(Problem(
        "map_list", (("map", mkey),), ("map",) + m.words, ARGS, LIST_INT,
        phrase(("{a} and return the results as a new list, in order.",
                "return a new list in which you {a}.",
                "given a list of integers xs, build the list you get when you {a}."),
               a=m.apply("each element of xs")),
        (Decl("r", LIST_INT), Each("x", XS, (Push(r, m.ir(x)),)), Return(r)),
        lambda xs, m=m: [m.py(v) for v in xs], int_lists(min_len=1)) for mkey, m in INT_MAPS.items())
    return Family("map_list", "list", "apply a map (square, double, +k, *k, mod k, half) to every element", problems)


def scan() -> Family:
    specs = {
        "sum": ("sums", "the sum", (Set("acc", acc + x),), 0),
        "max": ("maxima", "the largest", (If(x > acc, (Set("acc", x),)),), -1),
        "min": ("minima", "the smallest", (If(acc.eq(-1) | (x < acc), (Set("acc", x),)),), -1),
    }
    refs = {"sum": lambda a, b: a + b, "max": max, "min": min}

    def reference(xs, op):
        res, cur = [], None
        for v in xs:
            cur = v if cur is None else refs[op](cur, v)
            res.append(cur)
        return res

    problems = tuple(Problem(
        "scan", (("op", op),), ("running",) + (op,), ARGS, LIST_INT,
        phrase(("return the list of running {noun} of xs: element i is {what} of xs[0..i].",
                "compute the prefix {noun} of xs (the i-th output is {what} of the first i+1 elements).",
                "given a non-empty list of non-negative integers xs, return a list whose i-th entry is {what} "
                "among xs[0] through xs[i]."), noun=noun, what=what),
        (Decl("acc", INT, k(init)), Decl("r", LIST_INT), Each("x", XS, step + (Push(r, acc),)), Return(r)),
        lambda xs, op=op: reference(xs, op), int_lists(min_len=1)) for op, (noun, what, step, init) in specs.items())
    return Family("scan", "list", "running sum / maximum / minimum", problems)


_RELS = {"gt": ("greater", "greater than"), "lt": ("smaller", "less than"), "eq": ("equal", "equal to"),
         "ne": ("different", "different from")}


def adjacent_count() -> Family:
    problems = []
    for rel, (word, text) in _RELS.items():
        cur, prev = At(XS, i), At(XS, i - 1)
        cond = {"gt": cur > prev, "lt": cur < prev, "eq": cur.eq(prev), "ne": cur.ne(prev)}[rel]
        test = {"gt": lambda a, b: a > b, "lt": lambda a, b: a < b, "eq": lambda a, b: a == b,
                "ne": lambda a, b: a != b}[rel]
        problems.append(Problem(
            "adjacent_count", (("rel", rel),), ("count", word, "than", "previous") if rel in ("gt", "lt")
            else ("count", word, "to", "previous"), ARGS, INT,
            phrase(("return how many elements of xs are {t} the element just before them.",
                    "count the indices i >= 1 such that xs[i] is {t} xs[i-1].",
                    "given a list of integers xs, count the positions where an element is {t} its predecessor."),
                   t=text),
            (Decl("acc", INT, k(0)), Range("i", k(1), Len(XS), (If(cond, (Set("acc", acc + 1),)),)), Return(acc)),
            lambda xs, test=test: sum(1 for t in range(1, len(xs)) if test(xs[t], xs[t - 1])),
            int_lists(0, 9, 8, sorted_share=0.2), EMPTY))
    return Family("adjacent_count", "list", "count adjacent pairs in a relation (>, <, ==, !=)", tuple(problems))


def is_sorted() -> Family:
    modes = {"nondecreasing": ("non-decreasing", lambda a, b: a <= b),
             "increasing": ("strictly increasing", lambda a, b: a < b),
             "nonincreasing": ("non-increasing", lambda a, b: a >= b),
             "decreasing": ("strictly decreasing", lambda a, b: a > b)}
    problems = []
    for mode, (text, ok) in modes.items():
        prev, cur = At(XS, i - 1), At(XS, i)
        cond = {"nondecreasing": prev <= cur, "increasing": prev < cur, "nonincreasing": prev >= cur,
                "decreasing": prev > cur}[mode]
        problems.append(Problem(
            "is_sorted", (("order", mode),), ("is", mode), ARGS, BOOL,
            phrase(("return whether xs is in {t} order.", "check that the list xs is {t} (true for lists of "
                    "fewer than two elements).", "given a list of integers xs, decide whether it is sorted in {t} "
                    "order."), t=text),
            (Range("i", k(1), Len(XS), (If(~cond, (Return(k(False)),)),)), Return(k(True))),
            lambda xs, ok=ok: all(ok(xs[t - 1], xs[t]) for t in range(1, len(xs))),
            int_lists(0, 9, 6, sorted_share=0.6), EMPTY))
    return Family("is_sorted", "list", "is the list sorted (non-/strictly increasing/decreasing)", tuple(problems))


def rotate_list() -> Family:
    problems = []
    for direction in ("left", "right"):
        for steps in (1, 2, 3):
            index = (i + steps) % n if direction == "left" else (i + n - k(steps) % n) % n
            problems.append(Problem(
                "rotate_list", (("dir", direction), ("k", steps)), ("rotate", direction, str(steps)), ARGS, LIST_INT,
                phrase(("rotate xs {d} by {s} position(s) and return the new list.",
                        "return a copy of xs rotated {s} step(s) to the {d}.",
                        "given a non-empty list of integers xs, shift its elements cyclically {s} place(s) to the "
                        "{d}."), d=direction, s=str(steps)),
                (Decl("n", INT, Len(XS)), Decl("r", LIST_INT), Range("i", k(0), n, (Push(r, At(XS, index)),)),
                 Return(r)),
                lambda xs, d=direction, s=steps: [xs[(t + s) % len(xs)] if d == "left" else xs[(t - s) % len(xs)]
                                                  for t in range(len(xs))],
                int_lists(min_len=1, max_len=6)))
    return Family("rotate_list", "list", "rotate left/right by k", tuple(problems))


def every_kth() -> Family:
    problems = tuple(Problem(
        "every_kth", (("k", step),), ("take", "every", str(step)), ARGS, LIST_INT,
        phrase(("return the elements of xs at indices 0, {k}, {k2}, ... as a new list.",
                "keep one element out of every {k} in xs, starting with the first, and return them as a list.",
                "given a list of integers xs, return the elements whose index is divisible by {k}."),
               k=str(step), k2=str(2 * step)),
        (Decl("r", LIST_INT), Range("i", k(0), Len(XS), (If((i % step).eq(0), (Push(r, At(XS, i)),)),)), Return(r)),
        lambda xs, s=step: xs[::s], int_lists(min_len=1)) for step in (2, 3, 4))
    return Family("every_kth", "list", "elements at indices divisible by k", problems)


def sum_at_positions() -> Family:
    problems = tuple(Problem(
        "sum_at_positions", (("k", step), ("r", rem)), ("sum", "at", str(rem), "mod", str(step)), ARGS, INT,
        phrase(("return the sum of the elements of xs at indices {r}, {r1}, {r2}, ...",
                "add up the elements of xs whose index leaves remainder {r} when divided by {k}.",
                "given a list of integers xs, sum xs[i] over the indices i with i % {k} == {r}."),
               k=str(step), r=str(rem), r1=str(rem + step), r2=str(rem + 2 * step)),
        (Decl("acc", INT, k(0)), Range("i", k(0), Len(XS), (If((i % step).eq(rem), (Set("acc", acc + At(XS, i)),)),)),
         Return(acc)),
        lambda xs, s=step, m=rem: sum(xs[m::s]), int_lists(), EMPTY)
        for step, rem in ((2, 0), (2, 1), (3, 0), (3, 1), (3, 2)))
    return Family("sum_at_positions", "list", "sum of the elements at indices i with i % k == r", problems)


def pair_sum_count() -> Family:
    problems = tuple(Problem(
        "pair_sum_count", (("target", t),), ("count", "pairs", "summing", "to", str(t)), ARGS, INT,
        phrase(("return the number of pairs of positions i < j with xs[i] + xs[j] == {t}.",
                "count how many pairs of elements of xs (at different positions) add up to {t}.",
                "given a list of integers xs, count the index pairs i < j whose elements sum to {t}."), t=str(t)),
        (Decl("acc", INT, k(0)), Range("i", k(0), Len(XS), (Range("j", i + 1, Len(XS), (
            If((At(XS, i) + At(XS, j)).eq(t), (Set("acc", acc + 1),)),)),)), Return(acc)),
        lambda xs, t=t: sum(1 for a in range(len(xs)) for b in range(a + 1, len(xs)) if xs[a] + xs[b] == t),
        planted_pairs(t), EMPTY) for t in (10, 15, 20))
    return Family("pair_sum_count", "list", "count pairs summing to a target", problems)


# --------------------------------------------------------------------------------- list of str
def count_words_where() -> Family:
    problems = tuple(Problem(
        "count_strings", (("pred", key),), ("count", "strings") + p.words, WARGS, INT,
        phrase(("return the count of {np} in the list xs.", "count the {np} in the list xs.",
                "given a list of strings xs, return the number of {np}."), np=p.np),
        (Decl("acc", INT, k(0)), Each("w", WS, (If(p.ir(w), (Set("acc", acc + 1),)),)), Return(acc)),
        lambda xs, p=p: sum(1 for s in xs if p.py(s)), word_lists, EMPTY) for key, p in WORD_PREDS.items())
    return Family("count_strings", "list", "count the strings of a list satisfying a predicate", problems)


def join_where() -> Family:
    problems = tuple(Problem(
        "join_strings", (("pred", key),), ("join", "strings") + p.words, WARGS, STR,
        phrase(("concatenate, in order, the {np} in xs and return the result.",
                "return the concatenation of all {np} in the list xs (an empty string if there are none).",
                "given a list of strings xs, glue together its {np}, keeping their order."), np=p.np),
        (Decl("out", STR, k("")), Each("w", WS, (If(p.ir(w), (Push(out, w),)),)), Return(out)),
        lambda xs, p=p: "".join(s for s in xs if p.py(s)), word_lists, EMPTY) for key, p in WORD_PREDS.items())
    return Family("join_strings", "list", "concatenate the strings of a list satisfying a predicate", problems)


FAMILIES = (*(aggregate_family(name) for name in AGGREGATES), sum_map_where(), map_list(), scan(), adjacent_count(),
            is_sorted(), rotate_list(), every_kth(), sum_at_positions(), pair_sum_count(), count_words_where(),
            join_where())
