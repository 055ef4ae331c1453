"""Families over one ASCII string s: character class x (count, remove, all, any, first index, longest
run, replace, uppercase), rotations, repetition, Caesar shift, strided selection, word lengths,
palindromes and reversal."""

from __future__ import annotations

import random

from ..ir import (BOOL, CHAR, INT, STR, At, Chr, Code, Decl, Each, If, Len, Push, Range, Return, Set, Var, lift as k)
from .base import Family, Problem, phrase
from .lists import VOCAB
from .predicates import CHAR_CLASSES, CharClass

S, T, out = Var("s", STR), Var("t", STR), Var("out", STR)
c, i, n, acc, cur = Var("c", CHAR), Var("i", INT), Var("n", INT), Var("acc", INT), Var("cur", INT)
ARGS = (("s", STR),)
EMPTY = (("",),)
MIXED = "abcdefghijklmnopqrstuvwxyz" * 3 + "aeiou" * 2 + "0123456789" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "  "


def texts(members: str = "", max_len: int = 12, min_len: int = 0, palindromes: bool = False):
    """Sampler of one string: words, a random mix of classes, a run of one class (`members`), a string
    without that class, or a palindrome (optionally with spaces)."""
    def sample(rng: random.Random) -> tuple:
        roll = rng.random()
        if palindromes and roll < 0.5:
            half = "".join(rng.choice("abcab ") for _ in range(rng.randint(0, 4)))
            text = half + rng.choice(["", "x", " "]) + half[::-1]
            if rng.random() < 0.5:  # a palindrome only when spaces are ignored
                at = rng.randint(0, len(text))
                text = text[:at] + " " + text[at:]
            return (text,)
        if members and roll < 0.25:
            return ("".join(rng.choice(members) for _ in range(rng.randint(1, 6))),)
        if members and roll < 0.4:  # none of the class
            text = "".join(ch for ch in rng.choice(VOCAB + ("HELLO", "XYZ", "12 34")) + " " + rng.choice(MIXED)
                           if ch not in members)
            return (text,)
        if roll < 0.6:
            text = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(1, 3)))
        else:
            text = "".join(rng.choice(MIXED) for _ in range(rng.randint(min_len, max_len)))
        if members and rng.random() < 0.5:  # sprinkle a few characters of the class
            for _ in range(rng.randint(1, 3)):
                at = rng.randint(0, len(text))
                text = text[:at] + rng.choice(members) + text[at:]
        return (text[:max(max_len, 16)],)
    return sample


def sentences(rng: random.Random) -> tuple:
    return (" ".join(rng.choice(VOCAB) for _ in range(rng.randint(0, 5))),)


def _class_family(name: str, classes: tuple[str, ...], summary: str, words, returns: str, templates, body, ref,
                  lowercase_only: bool = False) -> Family:
    problems = []
    for key in classes:
        cc: CharClass = CHAR_CLASSES[key]
        problems.append(Problem(
            name, (("class", key),), words(cc), ARGS, returns, phrase(templates, cls=cc.noun, one=cc.one),
            body(cc), lambda s, cc=cc: ref(s, cc.py), texts(cc.members), EMPTY))
    return Family(name, "string", summary, tuple(problems))


ALL = tuple(CHAR_CLASSES)


def class_families() -> tuple[Family, ...]:
    return (
        _class_family("count_class", ALL, "count the characters of a class", lambda cc: ("count",) + cc.words, INT,
                      ("return the number of {cls} in s.", "count how many {cls} the string s contains.",
                       "given a string s, return how many of its characters are {cls}."),
                      lambda cc: (Decl("acc", INT, k(0)), Each("c", S, (If(cc.ir(c), (Set("acc", acc + 1),)),)),
                                  Return(acc)),
                      lambda s, f: sum(1 for ch in s if f(ch))),
        _class_family("remove_class", ALL, "remove the characters of a class", lambda cc: ("remove",) + cc.words, STR,
                      ("return s with all {cls} removed.", "delete every {one} from the string s and return the rest.",
                       "given a string s, return the string made of its characters that are not {cls}, in order."),
                      lambda cc: (Decl("out", STR, k("")), Each("c", S, (If(~cc.ir(c), (Push(out, c),)),)),
                                  Return(out)),
                      lambda s, f: "".join(ch for ch in s if not f(ch))),
        _class_family("all_class", ("vowel", "consonant", "digit", "lower", "upper", "space"),
                      "are all characters in a class", lambda cc: ("all",) + cc.words, BOOL,
                      ("return whether all characters of s are {cls} (true for an empty string).",
                       "check that the string s consists only of {cls}; an empty string passes.",
                       "given a string s, decide whether all of its characters are {cls}."),
                      lambda cc: (Each("c", S, (If(~cc.ir(c), (Return(k(False)),)),)), Return(k(True))),
                      lambda s, f: all(f(ch) for ch in s)),
        _class_family("any_class", ("vowel", "digit", "upper", "space", "e"), "is some character in a class",
                      lambda cc: ("has",) + cc.words, BOOL,
                      ("return whether s contains at least one {one}.",
                       "check if the string s has any {one} in it.",
                       "given a string s, decide whether one or more of its characters are {cls}."),
                      lambda cc: (Each("c", S, (If(cc.ir(c), (Return(k(True)),)),)), Return(k(False))),
                      lambda s, f: any(f(ch) for ch in s)),
        _class_family("first_index_class", ("vowel", "digit", "space", "upper", "t"),
                      "index of the first character of a class", lambda cc: ("first", "index") + cc.words, INT,
                      ("return the index of the first {one} in s, or -1 if there is none.",
                       "find the position of the first {one} of the string s; return -1 if s has none.",
                       "given a string s, return the smallest i such that s[i] is one of the {cls} (-1 if no such i)."),
                      lambda cc: (Range("i", k(0), Len(S), (If(cc.ir(At(S, i)), (Return(i),)),)), Return(k(-1))),
                      lambda s, f: next((t for t, ch in enumerate(s) if f(ch)), -1)),
        _class_family("longest_run_class", ("vowel", "consonant", "digit", "space", "lower"),
                      "length of the longest run of a class", lambda cc: ("longest", "run") + cc.words, INT,
                      ("return the length of the longest run of consecutive {cls} in s.",
                       "find the longest stretch of adjacent characters of s that are all {cls} and return its "
                       "length (0 if there is none).",
                       "given a string s, return the maximum number of {cls} that appear next to each other."),
                      lambda cc: (Decl("acc", INT, k(0)), Decl("cur", INT, k(0)),
                                  Each("c", S, (If(cc.ir(c), (Set("cur", cur + 1), If(cur > acc, (Set("acc", cur),))),
                                                   (Set("cur", k(0)),)),)), Return(acc)),
                      _longest_run),
        _class_family("upper_class", ("vowel", "consonant", "lower", "e"), "uppercase the letters of a class",
                      lambda cc: ("upper",) + cc.words, STR,
                      ("return s with every one of its {cls} turned into uppercase.",
                       "convert each {one} of the string s to uppercase and leave the other characters alone.",
                       "given a string s, return a copy in which the {cls} are capitalised."),
                      lambda cc: (Decl("out", STR, k("")),
                                  Each("c", S, (If(cc.ir(c), (Push(out, Chr(Code(c) - 32)),), (Push(out, c),)),)),
                                  Return(out)),
                      lambda s, f: "".join(ch.upper() if f(ch) else ch for ch in s)),
    )


def _longest_run(s: str, f) -> int:
    best = run = 0
    for ch in s:
        run = run + 1 if f(ch) else 0
        best = max(best, run)
    return best


REPLACEMENTS = (("vowel", "*"), ("space", "_"), ("digit", "#"), ("consonant", "-"), ("upper", "?"))


def replace_class() -> Family:
    problems = []
    for key, ch in REPLACEMENTS:
        cc = CHAR_CLASSES[key]
        problems.append(Problem(
            "replace_class", (("class", key), ("with", ch)), ("replace",) + cc.words, ARGS, STR,
            phrase(("return s with every {one} replaced by '{ch}'.",
                    "replace each of the {cls} in the string s with the character '{ch}'.",
                    "given a string s, return a copy where all {cls} become '{ch}'."), one=cc.one, cls=cc.noun, ch=ch),
            (Decl("out", STR, k("")), Each("c", S, (If(cc.ir(c), (Push(out, k(ch)),), (Push(out, c),)),)), Return(out)),
            lambda s, cc=cc, ch=ch: "".join(ch if cc.py(x) else x for x in s), texts(cc.members), EMPTY))
    return Family("replace_class", "string", "replace the characters of a class by a symbol", tuple(problems))


def rotate_string() -> Family:
    problems = []
    for direction in ("left", "right"):
        for steps in (1, 2):
            index = (i + steps) % n if direction == "left" else (i + n - k(steps) % n) % n
            problems.append(Problem(
                "rotate_string", (("dir", direction), ("k", steps)), ("rotate", "string", direction, str(steps)),
                ARGS, STR,
                phrase(("rotate the string s {d} by {k} character(s) and return the result.",
                        "return s rotated cyclically {k} place(s) to the {d}.",
                        "given a string s, move its characters {k} position(s) to the {d}, wrapping around."),
                       d=direction, k=str(steps)),
                (Decl("n", INT, Len(S)), Decl("out", STR, k("")), Range("i", k(0), n, (Push(out, At(S, index)),)),
                 Return(out)),
                lambda s, d=direction, t=steps: "".join(
                    s[(q + t) % len(s)] if d == "left" else s[(q - t) % len(s)] for q in range(len(s))),
                texts(), EMPTY))
    return Family("rotate_string", "string", "rotate a string left/right by k", tuple(problems))


def repeat_chars() -> Family:
    return Family("repeat_chars", "string", "repeat every character k times", tuple(Problem(
        "repeat_chars", (("k", times),), ("repeat", "chars", str(times)), ARGS, STR,
        phrase(("return s with every character repeated {k} times in a row.",
                "write each character of the string s {k} times and return the result.",
                "given a string s, return the string where each character of s appears {k} times consecutively."),
               k=str(times)),
        (Decl("out", STR, k("")), Each("c", S, (Range("i", k(0), k(times), (Push(out, c),)),)), Return(out)),
        lambda s, t=times: "".join(ch * t for ch in s), texts(max_len=8), EMPTY) for times in (2, 3)))


def caesar() -> Family:
    return Family("caesar", "string", "shift lowercase letters k places in the alphabet", tuple(Problem(
        "caesar", (("k", shift),), ("caesar", "shift", str(shift)), ARGS, STR,
        phrase(("shift every lowercase letter of s forward by {k} in the alphabet (z wraps to a) and leave other "
                "characters unchanged.",
                "return the Caesar encryption of s with shift {k}: only lowercase letters change.",
                "given a string s, replace each lowercase letter by the letter {k} places after it, cyclically."),
               k=str(shift)),
        (Decl("out", STR, k("")),
         Each("c", S, (If((c >= "a") & (c <= "z"), (Push(out, Chr((Code(c) - 97 + shift) % 26 + 97)),),
                          (Push(out, c),)),)), Return(out)),
        lambda s, t=shift: "".join(chr((ord(x) - 97 + t) % 26 + 97) if "a" <= x <= "z" else x for x in s),
        texts(), EMPTY) for shift in (1, 3, 13)))


def every_kth_char() -> Family:
    return Family("every_kth_char", "string", "characters at indices divisible by k", tuple(Problem(
        "every_kth_char", (("k", step),), ("take", "every", str(step), "chars"), ARGS, STR,
        phrase(("return the characters of s at indices 0, {k}, {k2}, ... as a string.",
                "keep one character out of every {k} in s, starting with the first.",
                "given a string s, return the string of its characters whose index is divisible by {k}."),
               k=str(step), k2=str(2 * step)),
        (Decl("out", STR, k("")), Range("i", k(0), Len(S), (If((i % step).eq(0), (Push(out, At(S, i)),)),)),
         Return(out)),
        lambda s, t=step: s[::t], texts(), EMPTY) for step in (2, 3)))


def words_longer() -> Family:
    return Family("words_longer", "string", "count words longer than k", tuple(Problem(
        "words_longer", (("k", size),), ("count", "words", "longer", "than", str(size)), ARGS, INT,
        phrase(("the string s holds words separated by single spaces; return how many of them have more than {k} "
                "letters.",
                "count the words of s (split on spaces) whose length is greater than {k}.",
                "given a sentence s of space-separated words, return the number of words longer than {k} characters."),
               k=str(size)),
        (Decl("acc", INT, k(0)), Decl("cur", INT, k(0)),
         Each("c", S, (If(c.eq(" "), (If(cur > size, (Set("acc", acc + 1),)), Set("cur", k(0))),
                          (Set("cur", cur + 1),)),)),
         If(cur > size, (Set("acc", acc + 1),)), Return(acc)),
        lambda s, t=size: sum(1 for word in s.split(" ") if len(word) > t), sentences, EMPTY) for size in (2, 3, 4)))


def palindrome() -> Family:
    def check(t: Var) -> tuple:
        mismatch = At(t, i).ne(At(t, n - 1 - i))
        return (Decl("n", INT, Len(t)), Range("i", k(0), n // 2, (If(mismatch, (Return(k(False)),)),)), Return(k(True)))
    bodies = {"nothing": check(S),
              "spaces": (Decl("t", STR, k("")), Each("c", S, (If(c.ne(" "), (Push(T, c),)),))) + check(T)}
    return Family("palindrome", "string", "is the string a palindrome (optionally ignoring spaces)", tuple(Problem(
        "palindrome", (("ignore", ignore),),
        ("is", "palindrome") + (("ignoring", "spaces") if ignore == "spaces" else ()),
        ARGS, BOOL,
        phrase(("return whether s reads the same forwards and backwards{x}.",
                "check if the string s is a palindrome{x}.",
                "given a string s, decide whether it equals its own reverse{x}."),
               x=" when spaces are ignored" if ignore == "spaces" else ""),
        body, (lambda s: s == s[::-1]) if ignore == "nothing" else (lambda s: _no_spaces(s) == _no_spaces(s)[::-1]),
        texts(palindromes=True), EMPTY) for ignore, body in bodies.items()))


def _no_spaces(s: str) -> str:
    return s.replace(" ", "")


def reverse_string() -> Family:
    problems = []
    for drop in ("none", "space", "digit", "vowel"):
        cc = CHAR_CLASSES.get(drop)
        push = (Push(out, At(S, n - 1 - i)),) if cc is None else (
            Decl("c", CHAR, At(S, n - 1 - i)), If(~cc.ir(c), (Push(out, c),)))
        problems.append(Problem(
            "reverse_string", (("drop", drop),), ("reverse",) + (() if cc is None else ("without",) + cc.words),
            ARGS, STR,
            phrase(("return s reversed{x}.", "reverse the string s{x} and return the result.",
                    "given a string s, return its characters in the opposite order{x}."),
                   x="" if cc is None else f", leaving out the {cc.noun}"),
            (Decl("n", INT, Len(S)), Decl("out", STR, k("")), Range("i", k(0), n, push), Return(out)),
            (lambda s: s[::-1]) if cc is None else (lambda s, cc=cc: "".join(x for x in reversed(s) if not cc.py(x))),
            texts(cc.members if cc else ""), EMPTY))
    return Family("reverse_string", "string", "reverse a string, optionally dropping a class", tuple(problems))


FAMILIES = (*class_families(), replace_class(), rotate_string(), repeat_chars(), caesar(), every_kth_char(),
            words_longer(), palindrome(), reverse_string())
