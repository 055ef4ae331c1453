"""Turn (code under test, benchmark test) into a program whose verdict cannot be faked by exiting early.

Every instrumented program reports to the harness with lines `@@MFTPP:<nonce>:case:<i>:<ok|fail|error>`
(one per test case where the language allows splitting) and `@@MFTPP:<nonce>:done` after the last
test. The nonce is fresh for every run, so code written before the run cannot know it; a program that
exits early (exit(0), an atexit hook, a rewritten exit code) never prints `done`, and a program that
disables assertions still has its checks evaluated because the checks no longer use `assert`:
- python: the test's `check` is rewritten (AST): every `assert` becomes an explicit `raise`
  (immune to -O / PYTHONOPTIMIZE), each top-level statement holding an assert is one test case, and
  every value returned by the function under test must be made of builtin/standard-library types —
  an object whose `__eq__` always says yes is a failure.
- cpp: `assert` is redefined (after the code under test, so `#define NDEBUG` there has no effect)
  as a counting check; the test's `main` is renamed and called from ours.
- javascript: `console.assert` (which does not throw) is replaced by a counting check that the code
  under test cannot reassign (non-writable, non-configurable).
- java: the test's `Main` class is renamed and called from our `Main`; runs with `-ea`.
- go: a `TestMain` in its own file prints `done` only when every test passed.
- rust: `#[cfg(test)]`/`#[test]` are removed and our `main` runs each test function under
  `catch_unwind`, one case each.
"""

from __future__ import annotations

import ast
import re

from ..pyparse import parse

MARK = "@@MFTPP"


def instrument(language: str, code: str, test: str, entry_point: str | None, nonce: str) -> dict[str, str]:
    """Files (name -> text) of the program to compile/run. `code` is prompt + completion."""
    try:
        build = _BUILDERS[language]
    except KeyError:
        raise ValueError(f"no instrumentation for language {language!r}; known: {sorted(_BUILDERS)}") from None
    return build(code, test, entry_point, nonce)


# --------------------------------------------------------------------------------------- python
_PY_RUNTIME = r'''
import os as _mftpp_os, sys as _mftpp_sys
_MFTPP_STDLIB = frozenset(_mftpp_sys.stdlib_module_names) - {"unittest", "__main__"}
def _mftpp_emit(line):
    _mftpp_os.write(1, ("\n@@MFTPP:%s:" % _MFTPP_NONCE + line + "\n").encode())
import collections.abc as _mftpp_abc
_MFTPP_OVERRIDES = frozenset((
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__", "__len__", "__abs__",
    "__sub__", "__rsub__", "__add__", "__radd__", "__neg__", "__pos__", "__float__", "__int__", "__index__",
    "__round__", "__contains__", "__getattribute__", "__getattr__", "__class__", "__instancecheck__"))
def _mftpp_type_trusted(t):
    """Static (C-defined) types are trusted, and standard-library classes that really are what their
    module exports under their name. A class of the code (a namedtuple, a tuple subclass) is trusted
    only if every base is and it overrides nothing a comparison could be fooled by (__eq__,
    __bool__, __abs__, __sub__, ...)."""
    if not t.__flags__ & (1 << 9):  # Py_TPFLAGS_HEAPTYPE: every `class` statement makes one
        return True
    name = getattr(t, "__module__", None) or ""
    if name.split(".")[0] in _MFTPP_STDLIB:
        obj = _mftpp_sys.modules.get(name)
        for part in t.__qualname__.split("."):
            obj = getattr(obj, part, None)
        if obj is t:
            return True
    if type(t) is not type or any(k in _MFTPP_OVERRIDES for k in vars(t)):
        return False
    return all(_mftpp_type_trusted(base) for base in t.__mro__[1:])
def _mftpp_trusted(value):
    """Refuse values built from types defined outside the standard library (always-equal objects)."""
    stack, seen = [value], 0
    while stack and seen < 100000:
        v = stack.pop(); seen += 1
        t = type(v)
        if not _mftpp_type_trusted(t):
            raise AssertionError("the function returned an object of untrusted type %r" % t.__qualname__)
        if isinstance(v, (str, bytes, bytearray)):
            continue
        if isinstance(v, _mftpp_abc.Mapping):
            stack.extend(v.keys()); stack.extend(v.values())
        elif isinstance(v, _mftpp_abc.Collection):
            stack.extend(v)
    return value
'''


class _AssertToRaise(ast.NodeTransformer):
    """`assert x, m` -> `if not x: raise AssertionError(m)`; calls to the function under test are
    wrapped in `_mftpp_trusted(...)`."""

    def __init__(self, callee_names: set[str]):
        self.callee_names = callee_names

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        self.generic_visit(node)
        args = [node.msg] if node.msg is not None else []
        exc = ast.Call(ast.Name("AssertionError", ast.Load()), args, [])
        return ast.copy_location(ast.If(ast.UnaryOp(ast.Not(), node.test), [ast.Raise(exc, None)], []), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in self.callee_names:
            return ast.copy_location(ast.Call(ast.Name("_mftpp_trusted", ast.Load()), [node], []), node)
        return node


def _python(code: str, test: str, entry_point: str | None, nonce: str) -> dict[str, str]:
    tree = parse(test)
    body, check = [], None
    check_names = ("check", "mbpp_check__")
    for stmt in tree.body:
        # Drop the benchmark's own `check(f)` call: we call check ourselves, last.
        if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id in check_names):
            if entry_point is None and stmt.value.args and isinstance(stmt.value.args[0], ast.Name):
                entry_point = stmt.value.args[0].id
            continue
        if isinstance(stmt, ast.FunctionDef) and stmt.name in check_names:
            check = stmt
        body.append(stmt)
    if check is None or entry_point is None:
        raise ValueError("python test must define check(candidate) (or mbpp_check__) and name the entry point")
    params = {a.arg for a in check.args.args}
    rewriter = _AssertToRaise(params | {entry_point})
    new_body: list[ast.stmt] = []
    n_cases = 0
    for stmt in check.body:
        stmt = rewriter.visit(stmt)
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)) or not any(isinstance(n, ast.Raise) for n in ast.walk(stmt)):
            new_body.append(stmt)  # setup: an exception here ends the run (no `done`)
            continue
        # One test case: inline try keeps names it assigns visible to the statements after it.
        new_body.append(parse(
            f"try:\n    pass\nexcept AssertionError as _mftpp_e:\n    _mftpp_emit('case:{n_cases}:fail')\n"
            f"    _mftpp_sys.stderr.write('AssertionError: %s\\n' % (_mftpp_e,))\n"
            f"except BaseException as _mftpp_e:\n    _mftpp_emit('case:{n_cases}:error')\n"
            f"    _mftpp_sys.stderr.write('%s: %s\\n' % (type(_mftpp_e).__name__, _mftpp_e))\n"
            f"else:\n    _mftpp_emit('case:{n_cases}:ok')\n").body[0])
        new_body[-1].body = [stmt]
        n_cases += 1
    check.body = new_body
    ast.fix_missing_locations(tree)
    tree.body = body
    runner = (f"\n_MFTPP_NONCE = {nonce!r}\n{_PY_RUNTIME}\n{ast.unparse(tree)}\n\n"
              f"{check.name}({entry_point})\n_mftpp_emit('done')\n")
    return {"main.py": code.rstrip("\n") + "\n\n" + runner}


# ------------------------------------------------------------------------------------------ cpp
_CPP_PREFIX = r'''
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <unistd.h>
static int mftpp_next_case = 0;
static void mftpp_report(const char *what) {
    char buf[160];
    int n = snprintf(buf, sizeof buf, "\n@@MFTPP:%s:%s\n", "NONCE", what);
    if (n > 0) { ssize_t w = write(1, buf, (size_t)n); (void)w; }
}
static void mftpp_case(bool ok) {
    char what[64];
    snprintf(what, sizeof what, "case:%d:%s", mftpp_next_case++, ok ? "ok" : "fail");
    mftpp_report(what);
}
#undef assert
#define assert(...) mftpp_case(static_cast<bool>(__VA_ARGS__))
#define main mftpp_test_main
'''

_CPP_SUFFIX = r'''
#undef main
int main() {
    mftpp_test_main();
    mftpp_report("done");
    return 0;
}
'''


def _cpp(code: str, test: str, entry_point: str | None, nonce: str) -> dict[str, str]:
    # The test's own `#include <assert.h>` would bring back the aborting assert: we include it first.
    test = re.sub(r"^\s*#\s*include\s*[<\"](assert\.h|cassert)[>\"].*$", "", test, flags=re.M)
    test = re.sub(r"^\s*#\s*(undef|define)\s+NDEBUG\b.*$", "", test, flags=re.M)
    prefix = _CPP_PREFIX.replace('"NONCE"', f'"{nonce}"')
    return {"main.cpp": f"{code}\n{prefix}\n{test}\n{_CPP_SUFFIX}"}


# ----------------------------------------------------------------------------------- javascript
def _javascript(code: str, test: str, entry_point: str | None, nonce: str) -> dict[str, str]:
    # main.js installs the hook, then loads the code + test: nothing untrusted runs before the
    # hook has locked console.assert, console itself and the report function.
    hook = ("'use strict';\n"
            "const w = require('fs').writeSync;\n"
            f"const emit = (s) => w(1, '\\n{MARK}:{nonce}:' + s + '\\n');\n"
            "let i = 0;\n"
            "const check = (c, ...m) => { emit('case:' + (i++) + ':' + (c ? 'ok' : 'fail')); };\n"
            "const lock = (o, k, v) => Object.defineProperty(o, k, { value: v, writable: false, configurable: false });\n"
            "lock(globalThis, 'console', globalThis.console);\n"
            "lock(console, 'assert', check);\n"
            "lock(globalThis, '__mftpp_done', () => emit('done'));\n"
            "require('./solution.js');\n")
    return {"main.js": hook, "solution.js": f"{code}\n{test}\n;__mftpp_done();\n"}


# ----------------------------------------------------------------------------------------- java
# Names a Java test uses from java.lang / java.util: imported one by one in the test's own file,
# so that a class of the same name declared by the code under test cannot shadow them.
_JAVA_SINGLE_IMPORTS = {
    **{n: "java.lang" for n in ("String", "Integer", "Long", "Double", "Float", "Boolean", "Character", "Math",
                               "Object", "System", "AssertionError", "StringBuilder", "Exception", "Short", "Byte",
                               "RuntimeException", "Iterable", "Comparable", "Number")},
    **{n: "java.util" for n in ("Arrays", "List", "ArrayList", "LinkedList", "Map", "HashMap", "TreeMap",
                               "LinkedHashMap", "Set", "HashSet", "TreeSet", "Collections", "Objects", "Optional",
                               "Iterator", "Deque", "ArrayDeque", "Stack", "Queue", "PriorityQueue", "Random")},
}


def _java(code: str, test: str, entry_point: str | None, nonce: str) -> dict[str, str]:
    renamed, count = re.subn(r"\bpublic\s+class\s+Main\b", "class MftppTestMain", test)
    if count != 1:
        raise ValueError("java test must declare exactly one `public class Main`")
    on_demand = "".join(m + "\n" for m in re.findall(r"^\s*import\s+(?:static\s+)?[\w.]+(?:\.\*)?\s*;", code, re.M))
    single = "".join(f"import {pkg}.{name};\n" for name, pkg in sorted(_JAVA_SINGLE_IMPORTS.items())
                     if re.search(rf"\b{name}\b", renamed))
    runner = ("public class Main {\n"
              "    public static void main(String[] args) throws Throwable {\n"
              "        MftppTestMain.main(args);\n"
              "        System.out.flush();\n"
              f"        System.out.print(\"\\n{MARK}:{nonce}:done\\n\");\n"
              "        System.out.flush();\n"
              "    }\n}\n")
    runner_imports = "import java.lang.String;\nimport java.lang.System;\nimport java.lang.Throwable;\n"
    return {"Solution.java": code, "MftppTestMain.java": f"{on_demand}{single}\n{renamed}\n",
            "Main.java": runner_imports + runner}


# ------------------------------------------------------------------------------------------- go
def _go(code: str, test: str, entry_point: str | None, nonce: str) -> dict[str, str]:
    runner = ("package main\n\nimport (\n\tmftppos \"os\"\n\tmftpptesting \"testing\"\n)\n\n"
              "func TestMain(m *mftpptesting.M) {\n\tcode := m.Run()\n\tif code == 0 {\n"
              f"\t\tmftppos.Stdout.WriteString(\"\\n{MARK}:{nonce}:done\\n\")\n"
              "\t}\n\tmftppos.Exit(code)\n}\n")
    return {"main_test.go": f"{code}\n{test}\n", "zz_mftpp_test.go": runner}


# ----------------------------------------------------------------------------------------- rust
def strip_rust_comments(text: str) -> str:
    """Remove // and (nested) /* */ comments, leaving string and char literals alone."""
    out, i, n = [], 0, len(text)
    while i < n:
        two = text[i:i + 2]
        if two == "//":
            while i < n and text[i] != "\n":
                i += 1
        elif two == "/*":
            depth, i = 1, i + 2
            while i < n and depth:
                if text[i:i + 2] == "/*":
                    depth, i = depth + 1, i + 2
                elif text[i:i + 2] == "*/":
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text[i] == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:i + 4])
            out.append(m.group(0))
            i += len(m.group(0))
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _rust(code: str, test: str, entry_point: str | None, nonce: str) -> dict[str, str]:
    # Comments first: HumanEval-X Rust/32's whole test is commented out, Rust/50 has a comment
    # between #[test] and its fn. A test without #[test] functions passes vacuously, as in libtest.
    test = strip_rust_comments(test)
    # By path, so that a `macro_rules! assert_eq` in the code under test cannot replace them.
    test = re.sub(r"(?<![\w:])(assert|assert_eq|assert_ne)!", r"::std::\1!", test)
    names = re.findall(r"#\s*\[\s*test\s*\]\s*(?:pub\s+)?fn\s+(\w+)", test)
    if not re.search(r"\bmod\s+tests\s*\{", test):
        test += "\nmod tests {\n    use super::*;\n}\n"
    body = re.sub(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", "", test)
    body = re.sub(r"#\s*\[\s*test\s*\]", "", body)
    m = re.search(r"\bmod\s+tests\s*\{", body)
    if m is None:
        raise ValueError("rust test must define `mod tests { ... }`")
    calls = "".join(
        f"        let r = std::panic::catch_unwind(|| {{ {n}(); }});\n"
        f"        super::mftpp_emit(&format!(\"case:{i}:{{}}\", super::mftpp_verdict(&r)));\n"
        for i, n in enumerate(names))
    runner = f"\n    pub fn mftpp_run() {{\n{calls}    }}\n"
    body = body[: m.end()] + runner + body[m.end():]
    main = (
        "\nfn mftpp_emit(s: &str) {\n    use std::io::Write;\n"
        f"    let line = format!(\"\\n{MARK}:{nonce}:{{}}\\n\", s);\n"
        "    let _ = std::io::stdout().write_all(line.as_bytes());\n    let _ = std::io::stdout().flush();\n}\n"
        "fn mftpp_verdict(r: &std::thread::Result<()>) -> &'static str {\n"
        "    match r {\n        Ok(()) => \"ok\",\n"
        "        Err(e) => {\n"
        "            let msg = e.downcast_ref::<String>().map(|s| s.as_str())\n"
        "                .or_else(|| e.downcast_ref::<&str>().copied()).unwrap_or(\"\");\n"
        "            if msg.starts_with(\"assertion\") { \"fail\" } else { \"error\" }\n"
        "        }\n    }\n}\n"
        "fn main() {\n    tests::mftpp_run();\n    mftpp_emit(\"done\");\n}\n")
    return {"main.rs": f"#![allow(warnings)]\n{code}\n{body}\n{main}"}


_BUILDERS = {"python": _python, "cpp": _cpp, "javascript": _javascript, "java": _java, "go": _go, "rust": _rust}


def parse_report(stdout: str, nonce: str) -> tuple[list[str], bool]:
    """The per-case results (in order) and whether `done` was reached, from the program's stdout."""
    prefix = f"{MARK}:{nonce}:"
    cases: list[str] = []
    done = False
    for line in stdout.splitlines():
        if not line.startswith(prefix):
            continue
        rest = line[len(prefix):]
        if rest == "done":
            done = True
        elif rest.startswith("case:"):
            cases.append(rest.rsplit(":", 1)[-1])
    return cases, done
