"""What a family is: a named set of concrete problems, one per parameter combination.

A `Problem` is language-independent: a function name (as words), typed arguments, English
phrasings, a reference body in the IR (ir.py) and a Python reference implementation from which
every expected test output is computed. `sample` draws one random argument tuple from the
family's input domain; `edges` are argument tuples always offered as test candidates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from ..ir import check_body


@dataclass(frozen=True)
class Problem:
    family: str
    params: tuple[tuple[str, Any], ...]  # the parameter combination, in a fixed order
    words: tuple[str, ...]  # the function name, as words (each language joins them its own way)
    args: tuple[tuple[str, str], ...]  # (name, IR type)
    returns: str
    phrasings: tuple[str, ...]  # English instructions; one is chosen per record, by seed
    body: tuple  # IR statements
    reference: Callable[..., Any]  # Python reference; may raise ValueError outside its domain
    sample: Callable[[random.Random], tuple]
    edges: tuple[tuple, ...] = ()

    def __post_init__(self) -> None:
        if len(self.phrasings) < 2:
            raise ValueError(f"{self.key}: give at least two phrasings")
        try:
            check_body(self.body, dict(self.args))
        except ValueError as exc:
            raise ValueError(f"{self.key}: {exc}") from None

    @property
    def key(self) -> str:
        """'family/param=value,...': the (family, parameters) combination the splits are made of."""
        return self.family + "/" + ",".join(f"{k}={v}" for k, v in self.params)


@dataclass(frozen=True)
class Family:
    name: str
    domain: str  # "list", "string" or "number"
    summary: str  # one line, for docs/synthetic.md
    problems: tuple[Problem, ...]

    def __post_init__(self) -> None:
        keys = [p.key for p in self.problems]
        if not keys or len(set(keys)) != len(keys):
            raise ValueError(f"family {self.name}: no problems, or two with the same parameters")
        if len({p.words for p in self.problems}) != len(keys):
            raise ValueError(f"family {self.name}: two problems share a function name")


def phrase(templates: tuple[str, ...], **fields: str) -> tuple[str, ...]:
    """Fill templates; the first letter of each sentence is capitalised."""
    out = []
    for t in templates:
        text = t.format(**fields)
        out.append(text[:1].upper() + text[1:])
    return tuple(out)
