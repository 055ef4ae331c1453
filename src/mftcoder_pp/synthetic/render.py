"""Render a synthetic problem into each of the six languages: prompt, reference body and test.

One `Renderer` subclass per language, all in this file, in the table `RENDERERS`; families never
contain per-language code. What each produces, in the harness's HumanEval-X forms (see
execution/instrument.py):
- prompt (`Record.input`, the text a model continues): imports where the language needs them, the
  instruction as a comment (a docstring in Python) and the signature up to its opening brace;
- body (`Record.output`, the completion): the statements and the closing brace(s) (Java closes the
  method and `class Solution`, like HumanEval-X Java);
- test: python `def check(candidate)`, C++ `int main(){ assert(...); }`, Java `public class Main`
  throwing AssertionError, Go `func TestX(t *testing.T)` with testify's assert, Rust
  `#[cfg(test)] mod tests`, JavaScript `console.assert` (lists compared through JSON.stringify).
Values are ints (i32), bools, ASCII strings without quotes or backslashes, and lists of those.
"""

from __future__ import annotations

import re

from ..languages import get_language
from .ir import (BOOL, CHAR, ELEMENT, INT, LIST_INT, LIST_STR, STR, At, Bin, Chr, Code, Decl, Each, Expr, If,
                 Len, Lit, Not, Push, Range, Return, Set, Var, While, type_of)

# Binding strength; an operand is parenthesised when it binds less tightly than its context needs.
PREC = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
ATOM = 9


def words_snake(words: tuple[str, ...]) -> str:
    return "_".join(words)


def words_camel(words: tuple[str, ...]) -> str:
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def words_pascal(words: tuple[str, ...]) -> str:
    return "".join(w[:1].upper() + w[1:] for w in words)


def check_text(value: str) -> str:
    """Strings must render identically in every language: printable ASCII, no quotes or backslashes."""
    if not re.fullmatch(r"[ -~]*", value) or any(c in value for c in "\"'\\"):
        raise ValueError(f"string {value!r} is not portable")
    return value


class Renderer:
    """The brace-language skeleton; subclasses fill in the syntax. Python overrides statements."""

    language = ""
    ind = "    "  # one indentation level
    body_depth = 1  # indentation levels of the function body
    semi = ";"
    ops = {"and": "&&", "or": "||"}
    not_prefix = "!"
    types: dict[str, str] = {}
    naming = staticmethod(words_snake)

    @property
    def comment(self) -> str:
        """Starts the comment line that holds the instruction (the table's line comment)."""
        return get_language(self.language).line_comment + " "

    # ------------------------------------------------------------------------ expressions
    def expr(self, e: Expr, ctx: int = 0) -> str:
        text, prec = self._expr(e)
        return f"({text})" if prec < ctx else text

    def _expr(self, e: Expr) -> tuple[str, int]:
        if isinstance(e, Var):
            return e.name, ATOM
        if isinstance(e, Lit):
            return self.lit(e), ATOM
        if isinstance(e, Bin):
            return self.bin(e)
        if isinstance(e, Not):
            return f"{self.not_prefix}{self.expr(e.a, ATOM)}", 8
        if isinstance(e, Len):
            return self.length(e.seq)
        if isinstance(e, At):
            return self.at(e.seq, e.index)
        if isinstance(e, Code):
            return self.code(e.char)
        if isinstance(e, Chr):
            return self.chr(e.code)
        raise TypeError(f"cannot render {e!r}")

    def bin(self, e: Bin) -> tuple[str, int]:
        p = PREC[e.op]
        left_ctx = p + 1 if p == 4 else p  # comparisons never chain
        return f"{self.expr(e.a, left_ctx)} {self.ops.get(e.op, e.op)} {self.expr(e.b, p + 1)}", p

    def lit(self, e: Lit) -> str:
        if e.type == BOOL:
            return "true" if e.value else "false"
        if e.type == INT:
            return str(e.value)
        if e.type == CHAR:
            return f"'{check_text(e.value)}'"
        return f'"{check_text(e.value)}"'

    def length(self, seq: Var) -> tuple[str, int]:
        raise NotImplementedError

    def at(self, seq: Var, index: Expr) -> tuple[str, int]:
        return f"{seq.name}[{self.expr(index)}]", ATOM

    def code(self, c: Expr) -> tuple[str, int]:
        return f"(int) {self.expr(c, ATOM)}", 8

    def chr(self, code: Expr) -> tuple[str, int]:
        return f"(char) {self.expr(code, ATOM)}", 8

    # ------------------------------------------------------------------------- statements
    def stmts(self, body: tuple, depth: int) -> list[str]:
        return [line for s in body for line in self.stmt(s, depth)]

    def stmt(self, s, depth: int) -> list[str]:
        pad = self.ind * depth
        if isinstance(s, Decl):
            return [pad + self.decl(s) + self.semi]
        if isinstance(s, Set):
            return [pad + f"{s.name} = {self.expr(s.value)}{self.semi}"]
        if isinstance(s, Push):
            return [pad + self.push(s) + self.semi]
        if isinstance(s, Return):
            return [pad + f"return {self.expr(s.value)}{self.semi}"]
        if isinstance(s, If):
            lines = [pad + self.if_head(s.cond)] + self.stmts(s.then, depth + 1)
            if s.orelse:
                lines += [pad + "} else {"] + self.stmts(s.orelse, depth + 1)
            return lines + [pad + "}"]
        if isinstance(s, While):
            return [pad + self.while_head(s.cond)] + self.stmts(s.body, depth + 1) + [pad + "}"]
        if isinstance(s, Range):
            return [pad + self.range_head(s)] + self.stmts(s.body, depth + 1) + [pad + "}"]
        if isinstance(s, Each):
            return [pad + self.each_head(s)] + self.stmts(s.body, depth + 1) + [pad + "}"]
        raise TypeError(f"cannot render statement {s!r}")

    def if_head(self, cond: Expr) -> str:
        return f"if ({self.expr(cond)}) {{"

    def while_head(self, cond: Expr) -> str:
        return f"while ({self.expr(cond)}) {{"

    def range_head(self, s: Range) -> str:
        return f"for (int {s.var} = {self.expr(s.start)}; {s.var} < {self.expr(s.stop, 5)}; {s.var}++) {{"

    def each_head(self, s: Each) -> str:
        return f"for ({self.types[ELEMENT[s.seq.type]]} {s.var} : {s.seq.name}) {{"

    def decl(self, s: Decl) -> str:
        init = self.expr(s.init) if s.init is not None else self.empty(s.type)
        return f"{self.types[s.type]} {s.name} = {init}"

    def empty(self, type_: str) -> str:
        return '""'

    def push(self, s: Push) -> str:
        raise NotImplementedError

    # --------------------------------------------------------------------------- programs
    def name(self, words: tuple[str, ...]) -> str:
        return self.naming(words)

    def params(self, args: tuple[tuple[str, str], ...]) -> str:
        return ", ".join(f"{self.types[t]} {n}" for n, t in args)

    def prompt(self, words, args, returns, instruction: str) -> str:
        raise NotImplementedError

    def body(self, body: tuple) -> str:
        return "\n".join(self.stmts(body, self.body_depth)) + "\n}\n"

    def value(self, v: object, type_: str, expected: bool = False) -> str:
        if type_ in (LIST_INT, LIST_STR):
            return self.list_value(v, ELEMENT[type_], expected)
        return self.lit(Lit(v, type_))

    def list_value(self, v: list, element: str, expected: bool) -> str:
        raise NotImplementedError

    def call(self, fname: str, args, values) -> str:
        return f"{fname}({', '.join(self.value(x, t) for x, (_, t) in zip(values, args))})"

    def test(self, words, args, returns, cases: list[tuple[tuple, object]]) -> str:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------- python
class Python(Renderer):
    language = "python"
    semi = ""
    ops = {"/": "//"}  # and/or stay as they are
    types = {INT: "int", BOOL: "bool", STR: "str", CHAR: "str", LIST_INT: "list[int]", LIST_STR: "list[str]"}

    def _expr(self, e: Expr) -> tuple[str, int]:
        if isinstance(e, Not):
            return f"not {self.expr(e.a, ATOM)}", 3
        return super()._expr(e)

    def lit(self, e: Lit) -> str:
        if e.type == BOOL:
            return "True" if e.value else "False"
        return super().lit(e)

    def length(self, seq): return f"len({seq.name})", ATOM
    def code(self, c): return f"ord({self.expr(c)})", ATOM
    def chr(self, code): return f"chr({self.expr(code)})", ATOM

    def stmt(self, s, depth: int) -> list[str]:
        pad = self.ind * depth
        if isinstance(s, If):
            lines = [pad + f"if {self.expr(s.cond)}:"] + self.stmts(s.then, depth + 1)
            if s.orelse:
                lines += [pad + "else:"] + self.stmts(s.orelse, depth + 1)
            return lines
        if isinstance(s, While):
            return [pad + f"while {self.expr(s.cond)}:"] + self.stmts(s.body, depth + 1)
        if isinstance(s, Range):
            start = "" if isinstance(s.start, Lit) and s.start.value == 0 else f"{self.expr(s.start)}, "
            return [pad + f"for {s.var} in range({start}{self.expr(s.stop)}):"] + self.stmts(s.body, depth + 1)
        if isinstance(s, Each):
            return [pad + f"for {s.var} in {s.seq.name}:"] + self.stmts(s.body, depth + 1)
        return super().stmt(s, depth)

    def decl(self, s: Decl) -> str:
        init = self.expr(s.init) if s.init is not None else ("[]" if s.type in (LIST_INT, LIST_STR) else '""')
        return f"{s.name} = {init}"

    def push(self, s: Push) -> str:
        if s.seq.type == STR:
            return f"{s.seq.name} += {self.expr(s.value)}"
        return f"{s.seq.name}.append({self.expr(s.value)})"

    def params(self, args) -> str:
        return ", ".join(f"{n}: {self.types[t]}" for n, t in args)

    def prompt(self, words, args, returns, instruction):
        return f'def {self.name(words)}({self.params(args)}) -> {self.types[returns]}:\n    """{instruction}"""\n'

    def body(self, body):
        return "\n".join(self.stmts(body, 1)) + "\n"

    def list_value(self, v, element, expected):
        return "[" + ", ".join(self.value(x, element) for x in v) + "]"

    def test(self, words, args, returns, cases):
        lines = [f"    assert {self.call('candidate', args, a)} == {self.value(r, returns, True)}" for a, r in cases]
        return "def check(candidate):\n" + "\n".join(lines) + f"\n\ncheck({self.name(words)})\n"


# ------------------------------------------------------------------------------------------ java
class Java(Renderer):
    language = "java"
    body_depth = 2
    types = {INT: "int", BOOL: "boolean", STR: "String", CHAR: "char", LIST_INT: "List<Integer>",
             LIST_STR: "List<String>"}
    naming = staticmethod(words_camel)

    def length(self, seq):
        return f"{seq.name}.{'length' if seq.type == STR else 'size'}()", ATOM

    def at(self, seq, index):
        return f"{seq.name}.{'charAt' if seq.type == STR else 'get'}({self.expr(index)})", ATOM

    def bin(self, e):
        text, prec = super().bin(e)
        # Integer == Integer compares references: unbox when both sides are list elements.
        if e.op in ("==", "!=") and all(isinstance(x, At) and x.seq.type == LIST_INT for x in (e.a, e.b)):
            text = "(int) " + text
        return text, prec

    def each_head(self, s):
        seq = f"{s.seq.name}.toCharArray()" if s.seq.type == STR else s.seq.name
        return f"for ({self.types[ELEMENT[s.seq.type]]} {s.var} : {seq}) {{"

    def empty(self, type_):
        return "new ArrayList<>()" if type_ in (LIST_INT, LIST_STR) else '""'

    def push(self, s):
        op = "{0} += {1}" if s.seq.type == STR else "{0}.add({1})"
        return op.format(s.seq.name, self.expr(s.value))

    def prompt(self, words, args, returns, instruction):
        return (f"import java.util.*;\n\nclass Solution {{\n    {self.comment}{instruction}\n"
                f"    public {self.types[returns]} {self.name(words)}({self.params(args)}) {{\n")

    def body(self, body):
        return "\n".join(self.stmts(body, 2)) + "\n    }\n}\n"

    def list_value(self, v, element, expected):
        items = f"Arrays.asList({', '.join(self.value(x, element) for x in v)})"
        return items if expected else f"new ArrayList<>({items})"

    def test(self, words, args, returns, cases):
        lines = []
        for a, r in cases:
            got, want = self.call(f"s.{self.name(words)}", args, a), self.value(r, returns, True)
            cond = f"{got} == {want}" if returns in (INT, BOOL) else f"{got}.equals({want})"
            lines.append(f"        if (!({cond})) throw new AssertionError();")
        return ("public class Main {\n    public static void main(String[] args) {\n"
                "        Solution s = new Solution();\n" + "\n".join(lines) + "\n    }\n}\n")


# ------------------------------------------------------------------------------------------- cpp
class Cpp(Renderer):
    language = "cpp"
    types = {INT: "int", BOOL: "bool", STR: "string", CHAR: "char", LIST_INT: "vector<int>",
             LIST_STR: "vector<string>"}

    def length(self, seq):
        return f"(int) {seq.name}.size()", 8

    def decl(self, s):
        if s.type in (LIST_INT, LIST_STR) and s.init is None:
            return f"{self.types[s.type]} {s.name}"
        return super().decl(s)

    def push(self, s):
        op = "{0} += {1}" if s.seq.type == STR else "{0}.push_back({1})"
        return op.format(s.seq.name, self.expr(s.value))

    def prompt(self, words, args, returns, instruction):
        return ("#include <vector>\n#include <string>\n#include <algorithm>\nusing namespace std;\n\n"
                f"{self.comment}{instruction}\n{self.types[returns]} {self.name(words)}({self.params(args)}) {{\n")

    def list_value(self, v, element, expected):
        items = "{" + ", ".join(self.value(x, element) for x in v) + "}"
        # Parentheses keep the commas inside one macro argument of assert.
        return f"{self.types[LIST_INT if element == INT else LIST_STR]}({items})" if expected else items

    def test(self, words, args, returns, cases):
        lines = [f"    assert ({self.call(self.name(words), args, a)} == {self.value(r, returns, True)});"
                 for a, r in cases]
        return "#undef NDEBUG\n#include<assert.h>\nint main(){\n" + "\n".join(lines) + "\n}\n"


# -------------------------------------------------------------------------------------------- go
class Go(Renderer):
    language = "go"
    ind = "\t"
    semi = ""
    types = {INT: "int", BOOL: "bool", STR: "string", CHAR: "byte", LIST_INT: "[]int", LIST_STR: "[]string"}
    naming = staticmethod(words_pascal)

    def length(self, seq): return f"len({seq.name})", ATOM
    def code(self, c): return f"int({self.expr(c)})", ATOM
    def chr(self, code): return f"byte({self.expr(code)})", ATOM
    def if_head(self, cond): return f"if {self.expr(cond)} {{"
    def while_head(self, cond): return f"for {self.expr(cond)} {{"

    def range_head(self, s):
        return f"for {s.var} := {self.expr(s.start)}; {s.var} < {self.expr(s.stop, 5)}; {s.var}++ {{"

    def each_head(self, s):
        seq = f"[]byte({s.seq.name})" if s.seq.type == STR else s.seq.name
        return f"for _, {s.var} := range {seq} {{"

    def decl(self, s):
        if s.type == CHAR:  # a rune literal would make it a rune
            return f"var {s.name} byte = {self.expr(s.init)}"
        init = self.expr(s.init) if s.init is not None else self.empty(s.type)
        return f"{s.name} := {init}"

    def empty(self, type_):
        return f"{self.types[type_]}{{}}" if type_ in (LIST_INT, LIST_STR) else '""'

    def push(self, s):
        if s.seq.type != STR:
            return f"{s.seq.name} = append({s.seq.name}, {self.expr(s.value)})"
        value = self.expr(s.value)
        return f"{s.seq.name} += " + (f"string({value})" if type_of(s.value) == CHAR else value)

    def params(self, args):
        return ", ".join(f"{n} {self.types[t]}" for n, t in args)

    def prompt(self, words, args, returns, instruction):
        return ('package main\n\nimport (\n\t"testing"\n\t"github.com/stretchr/testify/assert"\n)\n\n'
                f"{self.comment}{instruction}\nfunc {self.name(words)}({self.params(args)}) {self.types[returns]} {{\n")

    def list_value(self, v, element, expected):
        items = ", ".join(self.value(x, element) for x in v)
        return f"{self.types[LIST_INT if element == INT else LIST_STR]}{{{items}}}"

    def test(self, words, args, returns, cases):
        lines = [f"\tassert.Equal({self.value(r, returns, True)}, {self.call(self.name(words), args, a)})"
                 for a, r in cases]
        return (f"func Test{self.name(words)}(t *testing.T) {{\n\tassert := assert.New(t)\n"
                + "\n".join(lines) + "\n}\n")


# ------------------------------------------------------------------------------------------ rust
class Rust(Renderer):
    language = "rust"
    types = {INT: "i32", BOOL: "bool", STR: "String", CHAR: "u8", LIST_INT: "Vec<i32>", LIST_STR: "Vec<String>"}

    def lit(self, e):
        if e.type == CHAR:
            return f"b'{check_text(e.value)}'"
        if e.type == STR:
            return f'String::from("{check_text(e.value)}")' if e.value else "String::new()"
        return super().lit(e)

    # Casts bind tighter than arithmetic but are parenthesised as receivers and before `<`
    # (`a as i32 < b` parses as a generic type).
    def length(self, seq): return f"{seq.name}.len() as i32", 8
    def code(self, c): return f"{self.expr(c, ATOM)} as i32", 8
    def chr(self, code): return f"{self.expr(code, ATOM)} as u8", 8

    def bin(self, e):
        text, prec = super().bin(e)
        if e.op in ("<", "<=") and isinstance(e.a, (Len, Code, Chr)):
            left = self.expr(e.a)
            text = f"({left})" + text[len(left):]
        return text, prec
    def if_head(self, cond): return f"if {self.expr(cond)} {{"
    def while_head(self, cond): return f"while {self.expr(cond)} {{"
    def range_head(self, s): return f"for {s.var} in {self.expr(s.start)}..{self.expr(s.stop)} {{"

    def at(self, seq, index):
        i = self.expr(index) if isinstance(index, Lit) else f"{self.expr(index, ATOM)} as usize"
        return f"{seq.name}{'.as_bytes()' if seq.type == STR else ''}[{i}]", ATOM

    def each_head(self, s):
        if s.seq.type == STR:
            return f"for {s.var} in {s.seq.name}.bytes() {{"
        return f"for {'&' if s.seq.type == LIST_INT else ''}{s.var} in {s.seq.name}.iter() {{"

    def decl(self, s):
        init = self.expr(s.init) if s.init is not None else self.empty(s.type)
        return f"let mut {s.name}: {self.types[s.type]} = {init}"

    def empty(self, type_):
        return "Vec::new()" if type_ in (LIST_INT, LIST_STR) else "String::new()"

    def push(self, s):
        value, vtype = self.expr(s.value, ATOM), type_of(s.value)
        if s.seq.type == LIST_STR:
            return f"{s.seq.name}.push({value}.clone())"
        if s.seq.type == STR:
            return f"{s.seq.name}.push({value} as char)" if vtype == CHAR else f"{s.seq.name}.push_str(&{value})"
        return f"{s.seq.name}.push({self.expr(s.value)})"

    def params(self, args):
        return ", ".join(f"{n}: {self.types[t]}" for n, t in args)

    def prompt(self, words, args, returns, instruction):
        return f"{self.comment}{instruction}\nfn {self.name(words)}({self.params(args)}) -> {self.types[returns]} {{\n"

    def value(self, v, type_, expected=False):
        if type_ == STR and not expected:
            return f'"{check_text(v)}".to_string()'
        if type_ == STR:
            return f'"{check_text(v)}"'
        return super().value(v, type_, expected)

    def list_value(self, v, element, expected):
        return "vec![" + ", ".join(self.value(x, element) for x in v) + "]"

    def test(self, words, args, returns, cases):
        lines = [f"        assert_eq!({self.call(self.name(words), args, a)}, {self.value(r, returns, True)});"
                 for a, r in cases]
        return ("#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n"
                f"    fn test_{self.name(words)}() {{\n" + "\n".join(lines) + "\n    }\n}\n")


# ------------------------------------------------------------------------------------ javascript
class JavaScript(Renderer):
    language = "javascript"
    ind = "  "
    ops = {"and": "&&", "or": "||", "==": "===", "!=": "!=="}
    naming = staticmethod(words_camel)

    def bin(self, e):
        if e.op == "/":  # integer division of non-negative numbers
            return f"Math.floor({self.expr(e.a, 6)} / {self.expr(e.b, 7)})", ATOM
        return super().bin(e)

    def length(self, seq): return f"{seq.name}.length", ATOM
    def code(self, c): return f"{self.expr(c, ATOM)}.charCodeAt(0)", ATOM
    def chr(self, code): return f"String.fromCharCode({self.expr(code)})", ATOM

    def range_head(self, s):
        return f"for (let {s.var} = {self.expr(s.start)}; {s.var} < {self.expr(s.stop, 5)}; {s.var}++) {{"

    def each_head(self, s): return f"for (const {s.var} of {s.seq.name}) {{"

    def decl(self, s):
        init = self.expr(s.init) if s.init is not None else ("[]" if s.type in (LIST_INT, LIST_STR) else '""')
        return f"let {s.name} = {init}"

    def push(self, s):
        op = "{0} += {1}" if s.seq.type == STR else "{0}.push({1})"
        return op.format(s.seq.name, self.expr(s.value))

    def params(self, args):
        return ", ".join(n for n, _ in args)

    def prompt(self, words, args, returns, instruction):
        return f"{self.comment}{instruction}\nconst {self.name(words)} = ({self.params(args)}) => {{\n"

    def list_value(self, v, element, expected):
        return "[" + ", ".join(self.value(x, element) for x in v) + "]"

    def test(self, words, args, returns, cases):
        lines = []
        for a, r in cases:
            got, want = self.call(self.name(words), args, a), self.value(r, returns, True)
            if returns in (LIST_INT, LIST_STR):
                got, want = f"JSON.stringify({got})", f"JSON.stringify({want})"
            lines.append(f"  console.assert({got} === {want})")
        test_name = "test" + words_pascal(words)
        return f"const {test_name} = () => {{\n" + "\n".join(lines) + f"\n}}\n\n{test_name}()\n"


RENDERERS: dict[str, Renderer] = {r.language: r for r in (Python(), JavaScript(), Java(), Cpp(), Go(), Rust())}
LANGUAGES = tuple(RENDERERS)  # python, javascript, java, cpp, go, rust: high- to low-resource
