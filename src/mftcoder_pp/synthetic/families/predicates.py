"""The parameter vocabularies families are composed from: integer predicates, integer maps,
character classes and word predicates — each with its IR form, its Python form and its English."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..ir import Expr, Len, At, Lit, INT


@dataclass(frozen=True)
class IntPred:
    key: str  # parameter value, e.g. "gt:8"
    words: tuple[str, ...]  # for function names
    adj: str  # "even", "greater than 8"
    before: bool  # the adjective precedes the noun ("even elements", "elements greater than 8")
    ir: Callable[[Expr], Expr]
    py: Callable[[int], bool]
    near: tuple[int, ...] = ()  # values worth having in test inputs

    def np(self, thing: str) -> str:
        return f"{self.adj} {thing}" if self.before else f"{thing} {self.adj}"

    def np_of(self, thing: str, owner: str, verb: str) -> str:
        """"even elements of xs" / "elements of xs that are greater than 8"."""
        return f"{self.adj} {thing} of {owner}" if self.before else f"{thing} of {owner} that {verb} {self.adj}"

    def fields(self, thing: str = "elements", one: str = "element", owner: str = "xs") -> dict[str, str]:
        return {"np": self.np(thing), "np1": self.np(one), "adj": self.adj, "are": "are " + self.adj,
                "is": "is " + self.adj, "np_of": self.np_of(thing, owner, "are"),
                "np1_of": self.np_of(one, owner, "is")}


def _gt(k: int) -> IntPred:
    return IntPred(f"gt:{k}", ("greater", "than", str(k)), f"greater than {k}", False, lambda x: x > k,
                   lambda x: x > k, (k, k + 1))


def _lt(k: int) -> IntPred:
    return IntPred(f"lt:{k}", ("less", "than", str(k)), f"less than {k}", False, lambda x: x < k,
                   lambda x: x < k, (k - 1, k))


def _div(k: int) -> IntPred:
    return IntPred(f"div:{k}", ("divisible", "by", str(k)), f"divisible by {k}", False,
                   lambda x: (x % k).eq(0), lambda x: x % k == 0, (k, 2 * k, k + 1))


def _between(a: int, b: int) -> IntPred:
    return IntPred(f"between:{a}-{b}", ("between", str(a), "and", str(b)), f"between {a} and {b} inclusive", False,
                   lambda x: (x >= a) & (x <= b), lambda x: a <= x <= b, (a - 1, a, b, b + 1))


EVEN = IntPred("even", ("even",), "even", True, lambda x: (x % 2).eq(0), lambda x: x % 2 == 0)
ODD = IntPred("odd", ("odd",), "odd", True, lambda x: (x % 2).ne(0), lambda x: x % 2 != 0)
INT_PREDS = {p.key: p for p in (EVEN, ODD, _gt(3), _gt(8), _gt(12), _lt(5), _lt(10), _div(3), _div(4), _div(5),
                                _between(2, 6), _between(10, 20))}
# Kept small for products, whose inputs are single digits.
PRODUCT_PREDS = ("even", "odd", "gt:3", "lt:5", "div:3", "between:2-6")
FEW_PREDS = ("even", "odd", "gt:8", "div:3")


@dataclass(frozen=True)
class IntMap:
    key: str
    words: tuple[str, ...]
    verb: str  # "square {}", where {} is the thing
    ir: Callable[[Expr], Expr]
    py: Callable[[int], int]

    def apply(self, thing: str) -> str:
        return self.verb.format(thing)


INT_MAPS = {m.key: m for m in (
    IntMap("square", ("squares",), "square {}", lambda x: x * x, lambda x: x * x),
    IntMap("double", ("doubles",), "double {}", lambda x: 2 * x, lambda x: 2 * x),
    IntMap("plus:1", ("plus", "1"), "add 1 to {}", lambda x: x + 1, lambda x: x + 1),
    IntMap("plus:5", ("plus", "5"), "add 5 to {}", lambda x: x + 5, lambda x: x + 5),
    IntMap("times:3", ("times", "3"), "multiply {} by 3", lambda x: 3 * x, lambda x: 3 * x),
    IntMap("mod:3", ("mod", "3"), "reduce {} modulo 3", lambda x: x % 3, lambda x: x % 3),
    IntMap("mod:4", ("mod", "4"), "reduce {} modulo 4", lambda x: x % 4, lambda x: x % 4),
    IntMap("half", ("halves",), "halve {} (rounding down)", lambda x: x // 2, lambda x: x // 2),
)}


@dataclass(frozen=True)
class CharClass:
    key: str
    words: tuple[str, ...]
    noun: str  # plural: "vowels"
    one: str  # singular: "vowel"
    ir: Callable[[Expr], Expr]
    py: Callable[[str], bool]
    members: str  # characters of the class that inputs draw from


def _is_vowel(c: Expr) -> Expr:
    return c.eq("a") | c.eq("e") | c.eq("i") | c.eq("o") | c.eq("u")


def _letter(ch: str) -> CharClass:
    return CharClass(ch, ("letter", ch), f"'{ch}' characters", f"'{ch}' character", lambda c: c.eq(ch),
                     lambda c: c == ch, ch)


VOWEL = CharClass("vowel", ("vowels",), "vowels", "vowel", _is_vowel, lambda c: c in "aeiou", "aeiou")
CONSONANT = CharClass("consonant", ("consonants",), "consonants", "consonant",
                      lambda c: (c >= "a") & (c <= "z") & ~_is_vowel(c),
                      lambda c: "a" <= c <= "z" and c not in "aeiou", "bcdfghjklmnpqrstvwxyz")
LOWER = CharClass("lower", ("lowercase",), "lowercase letters", "lowercase letter", lambda c: (c >= "a") & (c <= "z"),
                  lambda c: "a" <= c <= "z", "abcdefghijklmnopqrstuvwxyz")
CHAR_CLASSES = {c.key: c for c in (
    VOWEL, CONSONANT, LOWER,
    CharClass("digit", ("digits",), "digits", "digit", lambda c: (c >= "0") & (c <= "9"), lambda c: "0" <= c <= "9",
              "0123456789"),
    CharClass("space", ("spaces",), "spaces", "space", lambda c: c.eq(" "), lambda c: c == " ", " "),
    CharClass("upper", ("uppercase",), "uppercase letters", "uppercase letter", lambda c: (c >= "A") & (c <= "Z"),
              lambda c: "A" <= c <= "Z", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    _letter("e"), _letter("t"),
)}


@dataclass(frozen=True)
class WordPred:
    key: str
    words: tuple[str, ...]
    np: str  # "words longer than 3 characters"
    ir: Callable[[Expr], Expr]
    py: Callable[[str], bool]


def _len_gt(k: int) -> WordPred:
    return WordPred(f"len_gt:{k}", ("longer", "than", str(k)), f"strings longer than {k} characters",
                    lambda w: Len(w) > k, lambda w: len(w) > k)


def _len_eq(k: int) -> WordPred:
    return WordPred(f"len_eq:{k}", ("of", "length", str(k)), f"strings of exactly {k} characters",
                    lambda w: Len(w).eq(k), lambda w: len(w) == k)


def _starts(ch: str) -> WordPred:
    return WordPred(f"starts:{ch}", ("starting", "with", ch), f"strings that start with '{ch}'",
                    lambda w: (Len(w) > 0) & At(w, Lit(0, INT)).eq(ch), lambda w: w[:1] == ch)


def _ends(ch: str) -> WordPred:
    return WordPred(f"ends:{ch}", ("ending", "with", ch), f"strings that end with '{ch}'",
                    lambda w: (Len(w) > 0) & At(w, Len(w) - 1).eq(ch), lambda w: w[-1:] == ch)


WORD_PREDS = {p.key: p for p in (_len_gt(2), _len_gt(4), _len_eq(3), _starts("a"), _starts("s"), _ends("e"),
                                 _ends("s"))}
