"""A tiny imperative language in which every synthetic reference body is written once.

render.py turns one body into Python, Java, Go, C++, Rust and JavaScript, so a family never
holds per-language code. The language is deliberately small and portable:
- values: int (i32 everywhere; families keep every intermediate far below 2^31), bool, str
  (ASCII), char (one ASCII character: Python/JS 1-char str, Java/C++ char, Go byte, Rust u8),
  list[int], list[str];
- `/` and `%` only ever meet non-negative operands (C-family languages truncate, Python floors);
- a variable is assigned only after a `Decl` in the body: parameters are never reassigned (Rust
  parameters are immutable), and every declared variable is used (Go refuses unused ones);
- every body ends with `Return` (Go and Java require a terminating statement).
Expressions overload + - * // % < <= > >= and & | ~ (and/or/not); equality is `.eq()`/`.ne()`,
because `==` keeps its dataclass meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

INT, BOOL, STR, CHAR, LIST_INT, LIST_STR = "int", "bool", "str", "char", "list[int]", "list[str]"
TYPES = (INT, BOOL, STR, CHAR, LIST_INT, LIST_STR)
ELEMENT = {STR: CHAR, LIST_INT: INT, LIST_STR: STR}  # what iterating/indexing a sequence yields


class Expr:
    """Operator sugar shared by every expression node."""

    def _bin(self, op: str, other: object, swap: bool = False) -> "Bin":
        other = lift(other)
        return Bin(op, other, self) if swap else Bin(op, self, other)

    def __add__(self, o): return self._bin("+", o)
    def __radd__(self, o): return self._bin("+", o, True)
    def __sub__(self, o): return self._bin("-", o)
    def __rsub__(self, o): return self._bin("-", o, True)
    def __mul__(self, o): return self._bin("*", o)
    def __rmul__(self, o): return self._bin("*", o, True)
    def __floordiv__(self, o): return self._bin("/", o)
    def __mod__(self, o): return self._bin("%", o)
    def __lt__(self, o): return self._bin("<", o)
    def __le__(self, o): return self._bin("<=", o)
    def __gt__(self, o): return self._bin(">", o)
    def __ge__(self, o): return self._bin(">=", o)
    def __and__(self, o): return self._bin("and", o)
    def __or__(self, o): return self._bin("or", o)
    def __invert__(self): return Not(self)
    def eq(self, o: object) -> "Bin": return self._bin("==", o)
    def ne(self, o: object) -> "Bin": return self._bin("!=", o)
    __hash__ = object.__hash__


@dataclass(frozen=True, eq=False)
class Var(Expr):
    name: str
    type: str


@dataclass(frozen=True, eq=False)
class Lit(Expr):
    value: Union[int, bool, str]
    type: str


@dataclass(frozen=True, eq=False)
class Bin(Expr):
    op: str  # + - * / % == != < <= > >= and or
    a: Expr
    b: Expr


@dataclass(frozen=True, eq=False)
class Not(Expr):
    a: Expr


@dataclass(frozen=True, eq=False)
class Len(Expr):
    seq: Var  # a str, list[int] or list[str] variable


@dataclass(frozen=True, eq=False)
class At(Expr):
    seq: Var
    index: Expr


@dataclass(frozen=True, eq=False)
class Code(Expr):
    """The ASCII code of a char (an int)."""
    char: Expr


@dataclass(frozen=True, eq=False)
class Chr(Expr):
    """The char with an ASCII code."""
    code: Expr


def lift(value: object) -> Expr:
    """Python constants become literals (a 1-character str is a char literal)."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool):
        return Lit(value, BOOL)
    if isinstance(value, int):
        return Lit(value, INT)
    if isinstance(value, str):
        return Lit(value, CHAR if len(value) == 1 else STR)
    raise TypeError(f"cannot use {value!r} in an expression")


def type_of(e: Expr) -> str:
    if isinstance(e, (Var, Lit)):
        return e.type
    if isinstance(e, Bin):
        return INT if e.op in "+-*/%" else BOOL
    if isinstance(e, Not):
        return BOOL
    if isinstance(e, (Len, Code)):
        return INT
    if isinstance(e, At):
        return ELEMENT[e.seq.type]
    if isinstance(e, Chr):
        return CHAR
    raise TypeError(f"not an expression: {e!r}")


# ------------------------------------------------------------------------------------ statements
@dataclass(frozen=True)
class Decl:
    name: str
    type: str
    init: Expr | None = None  # None: the empty list/string


@dataclass(frozen=True)
class Set:
    name: str
    value: Expr


@dataclass(frozen=True)
class If:
    cond: Expr
    then: tuple
    orelse: tuple = ()


@dataclass(frozen=True)
class While:
    cond: Expr
    body: tuple


@dataclass(frozen=True)
class Range:
    """for var in [start, stop), step 1; var is an int."""
    var: str
    start: Expr
    stop: Expr
    body: tuple


@dataclass(frozen=True)
class Each:
    """for var in the elements (or characters) of seq."""
    var: str
    seq: Var
    body: tuple


@dataclass(frozen=True)
class Push:
    """Append an element to a list variable, or a char/str to a str variable."""
    seq: Var
    value: Expr


@dataclass(frozen=True)
class Return:
    value: Expr


Stmt = Union[Decl, Set, If, While, Range, Each, Push, Return]


def block(*stmts: Stmt) -> tuple:
    return tuple(stmts)


def check_body(body: tuple, params: dict[str, str]) -> None:
    """Enforce the portability rules in the module docstring (raises ValueError)."""
    if not body or not isinstance(body[-1], Return):
        raise ValueError("a body must end with Return")
    declared: dict[str, str] = {}
    used: set[str] = set()

    def expr(e: Expr) -> None:
        if isinstance(e, Var):
            used.add(e.name)
        for child in vars(e).values():
            if isinstance(child, Expr):
                expr(child)

    def walk(stmts: tuple, scope: dict[str, str]) -> None:
        scope = dict(scope)
        for s in stmts:
            for value in vars(s).values():
                if isinstance(value, Expr):
                    expr(value)
            if isinstance(s, Decl):
                if s.name in scope:
                    raise ValueError(f"{s.name!r} declared twice (Java forbids shadowing)")
                scope[s.name] = declared[s.name] = s.type
            elif isinstance(s, (Set, Push)):
                name = s.name if isinstance(s, Set) else s.seq.name
                if name in params:
                    raise ValueError(f"parameter {name!r} is assigned (Rust parameters are immutable)")
                if name not in scope:
                    raise ValueError(f"{name!r} assigned before its Decl")
            if isinstance(s, (Range, Each)):
                if s.var in scope:
                    raise ValueError(f"loop variable {s.var!r} shadows another variable")
                inner = {**scope, s.var: INT if isinstance(s, Range) else ELEMENT[s.seq.type]}
                if isinstance(s, Each):  # a Range variable is read by its own loop condition
                    declared[s.var] = inner[s.var]
                walk(s.body, inner)
            elif isinstance(s, If):
                walk(s.then, scope)
                walk(s.orelse, scope)
            elif isinstance(s, While):
                walk(s.body, scope)

    walk(body, dict(params))
    unused = set(declared) - used
    if unused:
        raise ValueError(f"declared but never read: {sorted(unused)} (Go refuses unused variables)")
