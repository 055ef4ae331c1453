"""Parsing Python from many threads at once (the evaluator's thread pool instruments every test).

On CPython 3.11 an unguarded `ast.parse` fails here with "AST constructor recursion depth mismatch" in
about two runs of three: the garbage collector runs `Cyc.__del__` (Python code) in the middle of one
thread's AST conversion, the interpreter switches threads there, and another thread's conversion
overwrites the shared depth counter."""
from __future__ import annotations

import gc
import sys
from concurrent.futures import ThreadPoolExecutor

from mftcoder_pp.execution.instrument import instrument
from mftcoder_pp.pyparse import parse

SOURCE = "\n".join(f"def f{i}(x):\n    return [(a, {{b: (c, d)}}) for a in x for b in a if (b and not c)]\n"
                   for i in range(200))


class Cyc:
    def __del__(self):
        sum(range(200))  # Python code run by the collector, mid-conversion


def _at_depth(depth: int, fn):
    """Call fn with `depth` extra Python frames: the conversion's counter starts from the calling thread's
    stack depth, so threads at different depths disagree when they interleave."""
    return fn() if depth == 0 else _at_depth(depth - 1, fn)


def _stressed(fn, depths):
    old_switch, old_gc = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(50)

    def work(depth):
        for _ in range(50):
            c = Cyc()
            c.self = c  # cyclic garbage with a finaliser
        return _at_depth(depth, fn)
    try:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(work, depths))
    finally:
        sys.setswitchinterval(old_switch)
        gc.set_threshold(*old_gc)


def test_parse_from_many_threads_at_different_depths():
    counts = _stressed(lambda: len(parse(SOURCE).body), [0, 5, 10, 20, 40, 3, 7, 30] * 20)
    assert counts == [200] * 160


def test_instrument_from_many_threads():
    test = "def check(candidate):\n" + "".join(f"    assert candidate({i}) == {i}\n" for i in range(50))
    files = _stressed(lambda: instrument("python", "def f(x):\n    return x\n", test, "f", nonce="n"),
                      [0, 9, 17, 33] * 20)
    assert all(f == files[0] for f in files)
    assert files[0]["main.py"].count("case:") == 50 * 3
