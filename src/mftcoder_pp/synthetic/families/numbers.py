"""Families over one non-negative integer n: digits in a base, divisors, gcd/lcm with a constant,
Collatz-like step counts, sums/counts over 1..n, properties (prime, square, ...), recurrences.
Inputs stay small enough that every intermediate value fits comfortably in an i32."""

from __future__ import annotations

import math
import random

from ..ir import BOOL, INT, Decl, If, Range, Return, Set, Var, While, lift as k
from .base import Family, Problem, phrase
from .predicates import FEW_PREDS, INT_PREDS

N = Var("n", INT)
m, acc, d, a, b, t = (Var(name, INT) for name in ("m", "acc", "d", "a", "b", "t"))
ARGS = (("n", INT),)
BASE_NAMES = {2: "binary", 3: "base 3", 8: "octal", 10: "decimal"}


def ints(lo: int, hi: int, near: tuple[int, ...] = ()):
    pool = list(range(lo, hi + 1))

    def sample(rng: random.Random) -> tuple:
        return (rng.choice(near) if near and rng.random() < 0.3 else rng.choice(pool),)
    return sample


def digits(n: int, base: int) -> list[int]:
    out = []
    while n > 0:
        out.append(n % base)
        n //= base
    return out  # least significant first


def digit_sum() -> Family:
    return Family("digit_sum", "number", "sum of the digits of n in base b", tuple(Problem(
        "digit_sum", (("base", base),), ("digit", "sum", "base", str(base)), ARGS, INT,
        phrase(("return the sum of the digits of n written in {name}.",
                "add up the base-{b} digits of the non-negative integer n.",
                "given n >= 0, write it in base {b} and return the sum of its digits."), name=BASE_NAMES[base],
               b=str(base)),
        (Decl("m", INT, N), Decl("acc", INT, k(0)), While(m > 0, (Set("acc", acc + m % base), Set("m", m // base))),
         Return(acc)),
        lambda n, base=base: sum(digits(n, base)), ints(0, 2000), ((0,),)) for base in BASE_NAMES))


def digit_count() -> Family:
    return Family("digit_count", "number", "number of digits of n in base b", tuple(Problem(
        "digit_count", (("base", base),), ("count", "digits", "base", str(base)), ARGS, INT,
        phrase(("return how many digits n has when written in {name} (0 has one digit).",
                "count the base-{b} digits of the non-negative integer n; 0 counts as one digit.",
                "given n >= 0, return the length of its base-{b} representation."), name=BASE_NAMES[base],
               b=str(base)),
        (Decl("m", INT, N), Decl("acc", INT, k(1)), While(m >= base, (Set("m", m // base), Set("acc", acc + 1))),
         Return(acc)),
        lambda n, base=base: max(1, len(digits(n, base))), ints(0, 5000, (base - 1, base, base * base)), ((0,),))
        for base in BASE_NAMES))


def count_digit() -> Family:
    def sample_for(digit):
        def sample(rng):
            ds = [rng.choice([digit, digit, rng.randint(0, 9)]) for _ in range(rng.randint(1, 5))]
            return (int("".join(map(str, ds))) or 1,)
        return sample
    return Family("count_digit", "number", "occurrences of a decimal digit in n", tuple(Problem(
        "count_digit", (("digit", dig),), ("count", "digit", str(dig)), ARGS, INT,
        phrase(("return how many times the digit {d} appears in the decimal form of n (n >= 1).",
                "count the digits of the positive integer n that are equal to {d}.",
                "given a positive integer n, return the number of its decimal digits equal to {d}."), d=str(dig)),
        (Decl("m", INT, N), Decl("acc", INT, k(0)),
         While(m > 0, (If((m % 10).eq(dig), (Set("acc", acc + 1),)), Set("m", m // 10))), Return(acc)),
        lambda n, dig=dig: str(n).count(str(dig)), sample_for(dig)) for dig in (0, 1, 3, 7)))


def reverse_digits() -> Family:
    return Family("reverse_digits", "number", "the number whose base-b digits are those of n reversed", tuple(Problem(
        "reverse_digits", (("base", base),), ("reverse", "digits", "base", str(base)), ARGS, INT,
        phrase(("return the number whose {name} digits are the digits of n in reverse order.",
                "reverse the base-{b} digits of the positive integer n and return the resulting number.",
                "given n >= 1, read its base-{b} representation backwards and return that value."),
               name=BASE_NAMES[base], b=str(base)),
        (Decl("m", INT, N), Decl("acc", INT, k(0)),
         While(m > 0, (Set("acc", acc * base + m % base), Set("m", m // base))),
         Return(acc)),
        lambda n, base=base: sum(dd * base ** e for e, dd in enumerate(reversed(digits(n, base)))), ints(1, 999))
        for base in (2, 8, 10)))


def digit_power_sum() -> Family:
    return Family("digit_power_sum", "number", "sum of the p-th powers of the decimal digits", tuple(Problem(
        "digit_power_sum", (("power", power),), ("digit", "power", str(power), "sum"), ARGS, INT,
        phrase(("return the sum of the {p} powers of the decimal digits of n.",
                "raise each decimal digit of the non-negative integer n to the power {e} and add the results.",
                "given n >= 0, compute the sum over its digits d of d to the power {e}."),
               p={2: "second", 3: "third"}[power],
               e=str(power)),
        (Decl("m", INT, N), Decl("acc", INT, k(0)),
         While(m > 0, (Decl("d", INT, m % 10), Set("acc", acc + (d * d if power == 2 else d * d * d)),
                       Set("m", m // 10))), Return(acc)),
        lambda n, power=power: sum(dd ** power for dd in digits(n, 10)), ints(0, 9999), ((0,),)) for power in (2, 3)))


def gcd_with() -> Family:
    return Family("gcd_with", "number", "gcd of n and a constant", tuple(Problem(
        "gcd_with", (("k", c),), ("gcd", "with", str(c)), ARGS, INT,
        phrase(("return the greatest common divisor of n and {c}.",
                "compute gcd(n, {c}) for the non-negative integer n.",
                "given n >= 0, return the largest integer that divides both n and {c}."), c=str(c)),
        (Decl("a", INT, N), Decl("b", INT, k(c)), While(b.ne(0), (Decl("t", INT, a % b), Set("a", b), Set("b", t))),
         Return(a)),
        lambda n, c=c: math.gcd(n, c), ints(0, 300, (c, 2 * c, c // 2, c + 1)), ((0,),)) for c in (6, 8, 12, 18, 20)))


def lcm_with() -> Family:
    return Family("lcm_with", "number", "lcm of n and a constant", tuple(Problem(
        "lcm_with", (("k", c),), ("lcm", "with", str(c)), ARGS, INT,
        phrase(("return the least common multiple of n and {c}.",
                "compute lcm(n, {c}) for the positive integer n.",
                "given n >= 1, return the smallest positive integer divisible by both n and {c}."), c=str(c)),
        (Decl("a", INT, N), Decl("b", INT, k(c)), While(b.ne(0), (Decl("t", INT, a % b), Set("a", b), Set("b", t))),
         Return(N // a * c)),
        lambda n, c=c: n * c // math.gcd(n, c), ints(1, 100, (c, 2 * c, c // 2))) for c in (4, 6, 9, 10)))


def collatz_steps() -> Family:
    def ref(n, limit):
        steps = 0
        while n > limit:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            steps += 1
        return steps
    return Family("collatz_steps", "number", "Collatz steps until n drops to a bound", tuple(Problem(
        "collatz_steps", (("bound", bound),), ("collatz", "steps", "to", str(bound)), ARGS, INT,
        phrase(("return the number of Collatz steps (halve n if it is even, otherwise replace it by 3n+1) "
                "needed until n is at most {t}.",
                "starting from the positive integer n, repeatedly apply n -> n/2 for even n and n -> 3n+1 for odd n; "
                "count the steps until n <= {t}.",
                "given n >= 1, count how many Collatz steps it takes to reach a value no greater than {t}."),
               t=str(bound)),
        (Decl("m", INT, N), Decl("acc", INT, k(0)),
         While(m > bound, (If((m % 2).eq(0), (Set("m", m // 2),), (Set("m", 3 * m + 1),)), Set("acc", acc + 1))),
         Return(acc)),
        lambda n, bound=bound: ref(n, bound), ints(1, 60, (bound, bound + 1)), ((1,),)) for bound in (1, 4, 10)))


def reduce_steps() -> Family:
    def ref(n, div):
        steps = 0
        while n > 1:
            n = n // div if n % div == 0 else n + 1
            steps += 1
        return steps
    return Family("reduce_steps", "number", "steps to reach 1 by dividing by d or adding 1", tuple(Problem(
        "reduce_steps", (("div", div),), ("steps", "to", "one", "by", str(div)), ARGS, INT,
        phrase(("return how many steps it takes to bring n down to 1, where a step divides n by {d} when n is "
                "divisible by {d} and adds 1 otherwise.",
                "starting from the positive integer n, repeatedly replace n by n/{d} if {d} divides n, else by n+1; "
                "count the steps until n == 1.",
                "given n >= 1, count the steps of the process (n divisible by {d}: divide by {d}; otherwise: add 1) "
                "until n becomes 1."), d=str(div)),
        (Decl("m", INT, N), Decl("acc", INT, k(0)),
         While(m > 1, (If((m % div).eq(0), (Set("m", m // div),), (Set("m", m + 1),)), Set("acc", acc + 1))),
         Return(acc)),
        lambda n, div=div: ref(n, div), ints(1, 300), ((1,),)) for div in (2, 3, 5)))


def smallest_divisor_above() -> Family:
    def ref(n, low):
        for dd in range(low + 1, n + 1):
            if n % dd == 0:
                return dd
        raise ValueError("n must exceed the bound")
    return Family("smallest_divisor_above", "number", "smallest divisor of n greater than a bound", tuple(Problem(
        "smallest_divisor_above", (("bound", low),), ("smallest", "divisor", "above", str(low)), ARGS, INT,
        phrase(("return the smallest divisor of n that is greater than {b} (n > {b}).",
                "find the least integer d > {b} that divides n; n is always greater than {b}.",
                "given an integer n > {b}, return its smallest divisor exceeding {b}."), b=str(low)),
        (Decl("d", INT, k(low + 1)), While((N % d).ne(0), (Set("d", d + 1),)), Return(d)),
        lambda n, low=low: ref(n, low), ints(low + 1, 300, (49, 77, 91, 121, 97, 101))) for low in (1, 2, 3, 5)))


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % dd for dd in range(2, math.isqrt(n) + 1))


PROPERTIES = {
    "prime": ("a prime number", ("is", "prime"), _is_prime,
              (If(N < 2, (Return(k(False)),)), Decl("d", INT, k(2)),
               While(d * d <= N, (If((N % d).eq(0), (Return(k(False)),)), Set("d", d + 1))), Return(k(True)))),
    "composite": ("composite (greater than 1 and not prime)", ("is", "composite"),
                  lambda n: n >= 2 and not _is_prime(n),
                  (Decl("d", INT, k(2)), While(d * d <= N, (If((N % d).eq(0), (Return(k(True)),)), Set("d", d + 1))),
                   Return(k(False)))),
    "square": ("a perfect square", ("is", "perfect", "square"), lambda n: math.isqrt(n) ** 2 == n,
               (Decl("d", INT, k(0)), While(d * d < N, (Set("d", d + 1),)), Return((d * d).eq(N)))),
    "power_of_two": ("a power of two", ("is", "power", "of", "two"), lambda n: n > 0 and n & (n - 1) == 0,
                     (Decl("m", INT, N), While((m > 0) & (m % 2).eq(0), (Set("m", m // 2),)), Return(m.eq(1)))),
}


def number_property() -> Family:
    return Family("number_property", "number", "is n prime / composite / a square / a power of two", tuple(Problem(
        "number_property", (("property", key),), words, ARGS, BOOL,
        phrase(("return whether the non-negative integer n is {t}.", "check if n is {t}.",
                "given n >= 0, decide whether it is {t}."), t=text),
        body, lambda n, f=f: f(n), ints(0, 200, (0, 1, 2, 4, 9, 16, 25, 32, 49, 64, 97, 121, 128)), ((0,), (1,)))
        for key, (text, words, f, body) in PROPERTIES.items()))


def _divisor_family(name: str, what: str) -> Family:
    problems = []
    for key in FEW_PREDS:
        p = INT_PREDS[key]
        step = Set("acc", acc + 1) if what == "count" else Set("acc", acc + d)
        problems.append(Problem(
            name, (("pred", key),), (what, "divisors") + p.words, ARGS, INT,
            phrase(("return the {w} of the divisors of n that {are} (n >= 1).",
                    "{w2} the {np} among the positive divisors of n.",
                    "given a positive integer n, return the {w} of its {np_div}."),
                   w="number" if what == "count" else "sum", w2="count" if what == "count" else "add up",
                   np_div=p.np("divisors"), **p.fields("divisors", "divisor")),
            (Decl("acc", INT, k(0)), Range("d", k(1), N + 1, (If((N % d).eq(0) & p.ir(d), (step,)),)), Return(acc)),
            (lambda n, p=p: sum(1 for v in range(1, n + 1) if n % v == 0 and p.py(v))) if what == "count"
            else (lambda n, p=p: sum(v for v in range(1, n + 1) if n % v == 0 and p.py(v))),
            ints(1, 150, (12, 24, 36, 48, 60, 72, 96, 120)), ((1,),)))
    return Family(name, "number", f"{what} of the divisors of n satisfying a predicate", tuple(problems))


RANGE_PREDS = ("even", "odd", "div:3", "div:5", "gt:8")


def _range_family(name: str, what: str) -> Family:
    problems = []
    for key in RANGE_PREDS:
        p = INT_PREDS[key]
        step = Set("acc", acc + 1) if what == "count" else Set("acc", acc + d)
        problems.append(Problem(
            name, (("pred", key),), (what, "up", "to", "n") + p.words, ARGS, INT,
            phrase(("return the {w} of the integers from 1 to n (inclusive) that {are}.",
                    "{w2} the {np} in the range 1..n, n included.",
                    "given n >= 0, return the {w} of all {np_int} between 1 and n inclusive."),
                   w="number" if what == "count" else "sum", w2="count" if what == "count" else "add up",
                   np_int=p.np("integers"), **p.fields("integers", "integer")),
            (Decl("acc", INT, k(0)), Range("d", k(1), N + 1, (If(p.ir(d), (step,)),)), Return(acc)),
            (lambda n, p=p: sum(1 for v in range(1, n + 1) if p.py(v))) if what == "count"
            else (lambda n, p=p: sum(v for v in range(1, n + 1) if p.py(v))),
            ints(0, 80), ((0,),)))
    return Family(name, "number", f"{what} of the integers 1..n satisfying a predicate", tuple(problems))


def last_digit_power() -> Family:
    return Family("last_digit_power", "number", "last decimal digit of n to a fixed power", tuple(Problem(
        "last_digit_power", (("power", power),), ("last", "digit", "of", "power", str(power)), ARGS, INT,
        phrase(("return the last decimal digit of n raised to the power {p}.",
                "compute (n to the power {p}) modulo 10 without overflowing.",
                "given n >= 0, return the units digit of n^{p}."), p=str(power)),
        (Decl("acc", INT, k(1)), Range("d", k(0), k(power), (Set("acc", acc * (N % 10) % 10),)), Return(acc)),
        lambda n, power=power: pow(n, power, 10), ints(0, 500), ((0,),))
        for power in (2, 3, 4, 5)))  # 7 would equal 3: last digits of powers repeat with period 4


def linear_recurrence() -> Family:
    def ref(n, c):
        x0, x1 = 0, 1
        for _ in range(n):
            x0, x1 = x1, x1 + c * x0
        return x0
    return Family("linear_recurrence", "number", "n-th term of a(i) = a(i-1) + c*a(i-2), a(0)=0, a(1)=1",
                  tuple(Problem(
                      "linear_recurrence", (("c", c),), ("recurrence", "term", "c", str(c)), ARGS, INT,
                      phrase(("return a(n) for the sequence a(0) = 0, a(1) = 1, a(i) = a(i-1) + {c}*a(i-2).",
                              "compute the n-th term (counting from 0) of the sequence 0, 1, ... where each term is "
                              "the previous term plus {c} times the one before it.",
                              "given 0 <= n <= 14, return term n of the recurrence a(i) = a(i-1) + {c}*a(i-2) with "
                              "a(0) = 0 and a(1) = 1."), c=str(c)),
                      (Decl("a", INT, k(0)), Decl("b", INT, k(1)),
                       Range("d", k(0), N, (Decl("t", INT, b + c * a), Set("a", b), Set("b", t))), Return(a)),
                      lambda n, c=c: ref(n, c), ints(0, 14), ((0,), (1,))) for c in (1, 2, 3)))


FAMILIES = (digit_sum(), digit_count(), count_digit(), reverse_digits(), digit_power_sum(), gcd_with(), lcm_with(),
            collatz_steps(), reduce_steps(), smallest_divisor_above(), number_property(),
            _divisor_family("divisor_count", "count"), _divisor_family("divisor_sum", "sum"),
            _range_family("range_count", "count"), _range_family("range_sum", "sum"), last_digit_power(),
            linear_recurrence())
