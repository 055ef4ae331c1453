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
import functools
import re
import symtable

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
# The program (main.py) holds three raw string literals, each text verbatim on its own lines — the
# runtime below (first, so that its text and line numbers are the same in every program), the code
# under test (prompt + completion) and the instrumented test — the nonce and the runtime's arguments,
# and one bootstrap line. Everything is compiled under main.py's own name with the line numbers the
# text has in main.py, so every traceback, however it is printed, shows the right source lines.
# Because the runtime's text never changes, the Python fork server compiles it once and hands the
# code object to each sample (`_mftpp_precompiled`); the bootstrap uses it only if it was compiled
# from exactly this program's runtime text, and compiles the text itself otherwise.
#
# Order of events: the bootstrap runs the runtime in a private namespace whose `__builtins__` is a
# copy of the builtins dict taken before anything else ran. The runtime imports the modules the test
# imports and records them (their dicts and the dicts of the classes they define), binds the
# primitives it needs, and only then executes the code under test in `__main__`'s globals. The test
# then runs in the private namespace: its names resolve to the copied builtins, its imports to the
# recorded modules (not to sys.modules), and the recorded dicts are put back as they were after the
# code's top-level code, before every test case and after every call of the function under test.
# The runtime text must not contain three single quotes in a row, nor the report's case marker.
_PY_RUNTIME = r"""
__name__ = "__main__"  # what the test's classes and functions report as their module, as before
import os as _mftpp_os, sys as _mftpp_sys, itertools as _mftpp_it, operator as _mftpp_op
import abc as _mftpp_abcmod, _collections_abc as _mftpp_abc
_MFTPP_NONCE, _MFTPP_ARGS = _MFTPP_MAIN.pop("_mftpp_nonce"), _MFTPP_MAIN.pop("_mftpp_args")
_MFTPP_CODE, _MFTPP_TEST = _MFTPP_MAIN.pop("_mftpp_code"), _MFTPP_MAIN.pop("_mftpp_test")
del _MFTPP_MAIN["_mftpp_runtime"]
# Primitives the runtime uses once the code under test has run, bound while they are still pristine.
_mftpp_write, _mftpp_is, _mftpp_repeat = _mftpp_os.write, _mftpp_op.is_, _mftpp_it.repeat
_mftpp_import_real, _MFTPP_MODULE_TYPE = __import__, type(_mftpp_os)
_mftpp_setattr, _mftpp_delattr = type.__setattr__, type.__delattr__
_MFTPP_MISSING = object()
_MFTPP_STDLIB = frozenset(_mftpp_sys.stdlib_module_names) - {"unittest", "__main__"}
_MFTPP_OVERRIDES = frozenset((
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__", "__len__", "__abs__",
    "__sub__", "__rsub__", "__add__", "__radd__", "__neg__", "__pos__", "__float__", "__int__", "__index__",
    "__round__", "__contains__", "__getattribute__", "__getattr__", "__class__", "__instancecheck__"))
# What a standard-library class may hold under those names: functions of the library, C slots, None.
_MFTPP_PLAIN_METHODS = (type(lambda: None), type(object.__eq__), type(str.join), staticmethod, classmethod,
                        property, type(None))

def _mftpp_emit(line):
    _mftpp_write(1, ("\n@@MFTPP:%s:" % _MFTPP_NONCE + line + "\n").encode())

def _mftpp_load(imports):
    # name -> module, for every module the test imports and their packages. Failures are left to the
    # test's own import, which then raises at the same point as it would without this.
    modules = {}
    for name, names in imports:
        try:
            _mftpp_import_real(name, None, None, names, 0)
        except Exception:
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            dotted = ".".join(parts[:i])
            if dotted in _mftpp_sys.modules:
                modules[dotted] = _mftpp_sys.modules[dotted]
        for n in names:
            sub = getattr(modules.get(name), n, None)
            if isinstance(sub, _MFTPP_MODULE_TYPE):
                modules[name + "." + n] = sub
    return modules

def _mftpp_mutable(t):
    # Py_TPFLAGS_HEAPTYPE set and Py_TPFLAGS_IMMUTABLETYPE clear: a class whose dict code can change.
    return t.__flags__ & (1 << 9) and not t.__flags__ & (1 << 8)

def _mftpp_record(owner, kind):
    live = vars(owner)
    return [owner, kind, live, tuple(live), tuple(live.values())]

def _mftpp_records(modules):
    # The modules' dicts; those of every class they hold, of its bases and of its metaclass; and the
    # dicts of the objects they hold of such classes (random's shared generator).
    records, seen = [], set()
    for module in modules:
        records.append(_mftpp_record(module, "builtins" if module is _MFTPP_BUILTINS else "module"))
        for value in list(vars(module).values()):
            classes = value.__mro__ + type(value).__mro__ if isinstance(value, type) else type(value).__mro__[:1]
            for cls in classes:
                if _mftpp_mutable(cls) and id(cls) not in seen:
                    seen.add(id(cls))
                    records.append(_mftpp_record(cls, "class"))
            if not isinstance(value, type) and _mftpp_mutable(type(value)) and id(value) not in seen:
                seen.add(id(value))
                try:
                    records.append(_mftpp_record(value, "instance"))
                except Exception:  # no __dict__
                    pass
    return records

def _mftpp_unchanged(record):
    _, _, live, keys, values = record
    return len(live) == len(keys) and all(map(_mftpp_is, values, map(live.get, keys, _mftpp_repeat(_MFTPP_MISSING))))

def _mftpp_drops(kind, owner, key, value):
    # Which names added since the record go: those that shadow something. A class's would shadow
    # what it inherits, a module's a builtin inside its functions, an object's a method of its
    # class. New builtins shadow nothing; submodules imported since are kept.
    if kind == "class":
        return True
    if kind == "module":
        return key in _MFTPP_BUILTINS_COPY and not isinstance(value, _MFTPP_MODULE_TYPE)
    if kind == "instance":
        return any(key in vars(cls) for cls in type(owner).__mro__)
    return False

def _mftpp_reverts(kind, saved, current):
    # Which changed names are put back: all of them, but for an object only its methods — the rest
    # is its state (random's generator keeps some), which is the program's.
    return kind != "instance" or callable(saved) or callable(current)

def _mftpp_put_back(record):
    owner, kind, live, keys, values = record
    saved = dict(zip(keys, values))
    for key in [k for k in live if k not in saved and _mftpp_drops(kind, owner, k, live[k])]:
        if kind == "class":
            _mftpp_delattr(owner, key)
        else:
            del live[key]
    for key, value in saved.items():
        current = live.get(key, _MFTPP_MISSING)
        if current is not value and _mftpp_reverts(kind, value, current):
            if kind == "class":
                _mftpp_setattr(owner, key, value)
            else:
                live[key] = value
    record[3], record[4] = tuple(live), tuple(live.values())  # what stays is the new reference

def _mftpp_restore(records):
    for record in records:
        if not _mftpp_unchanged(record):
            _mftpp_put_back(record)

def _mftpp_reset():
    # Before the test's own code and before each of its cases, everything as it was before the code ran.
    _mftpp_restore(_MFTPP_TEST_RECORDS)
    _mftpp_restore(_MFTPP_WORLD_RECORDS)

def _mftpp_import(name, globals=None, locals=None, fromlist=(), level=0):
    # The test's imports get the recorded module objects, whatever the code put in sys.modules.
    if level == 0:
        module = _MFTPP_TEST_MODULES.get(name if fromlist else name.partition(".")[0])
        if module is not None:
            return module
    return _mftpp_import_real(name, globals, locals, fromlist, level)

def _mftpp_patched(t):
    # A standard-library class whose comparison methods the code replaced (lambdas, its functions,
    # callable objects): only what the library itself puts there is accepted.
    for cls in t.__mro__:
        if not _mftpp_mutable(cls):
            continue
        for key, value in vars(cls).items():
            if key in _MFTPP_OVERRIDES and (not isinstance(value, _MFTPP_PLAIN_METHODS)
                                            or getattr(value, "__globals__", None) is _MFTPP_MAIN):
                return True
    return False

def _mftpp_type_trusted(t):
    # Static (C-defined) types are trusted, and standard-library classes that really are what their
    # module exported under their name before the code ran, with comparison methods of the library.
    # A class of the code (a namedtuple, a tuple subclass) is trusted only if every base is and it
    # overrides nothing a comparison could be fooled by (__eq__, __bool__, __abs__, __sub__, ...).
    if not t.__flags__ & (1 << 9):  # Py_TPFLAGS_HEAPTYPE: every `class` statement makes one
        return True
    name = getattr(t, "__module__", None) or ""
    if name.split(".")[0] in _MFTPP_STDLIB:
        obj = _MFTPP_MODULES_BEFORE.get(name) or _mftpp_sys.modules.get(name)
        for part in t.__qualname__.split("."):
            obj = getattr(obj, part, None)
        if obj is t:
            return not _mftpp_patched(t)
    if type(t) is not type or any(k in _MFTPP_OVERRIDES for k in vars(t)):
        return False
    return all(_mftpp_type_trusted(base) for base in t.__mro__[1:])

def _mftpp_trusted(value):
    # Every call of the function under test ends here: first undo what the call changed in the
    # recorded modules, then refuse values built from untrusted types (always-equal objects).
    _mftpp_restore(_MFTPP_TEST_RECORDS)
    stack, seen, trusted, world_checked = [value], 0, set(), False
    while stack and seen < 100000:
        v = stack.pop(); seen += 1
        t = type(v)
        if t not in trusted:
            if not _mftpp_type_trusted(t):
                raise AssertionError("the function returned an object of untrusted type %r" % t.__qualname__)
            trusted.add(t)
        # The built-in containers are walked with their own C iterators, which no subclass overrides.
        if isinstance(v, (str, bytes, bytearray)):
            continue
        if isinstance(v, dict):
            stack.extend(dict.keys(v)); stack.extend(dict.values(v))
        elif isinstance(v, (list, tuple, set, frozenset)):
            for base in (list, tuple, set, frozenset):
                if isinstance(v, base):
                    stack.extend(base.__iter__(v)); break
        else:
            if not world_checked:  # the abc machinery, as it was
                _mftpp_restore(_MFTPP_WORLD_RECORDS); world_checked = True
            if isinstance(v, _mftpp_abc.Mapping):
                stack.extend(v.keys()); stack.extend(v.values())
            elif isinstance(v, _mftpp_abc.Collection):
                stack.extend(v)
    return value

def _mftpp_compile(text, offset, filename):
    # The line numbers the text has in main.py (`offset` lines above it), or its own under `filename`.
    return compile("\n" * offset + text, filename, "exec", dont_inherit=True)

def _mftpp_candidate(main):
    entry = _MFTPP_ARGS["entry"]
    if entry in main:
        return main[entry]
    if entry in _MFTPP_BUILTINS_COPY:  # an MBPP function named like a builtin that the code leaves alone
        return _MFTPP_BUILTINS_COPY[entry]
    raise NameError("name %r is not defined" % entry)

def _mftpp_main():
    main, args = _MFTPP_MAIN, _MFTPP_ARGS
    main_file = main.get("__file__") or "main.py"
    code = _mftpp_compile(_MFTPP_CODE, args["code_offset"], main_file if args["code_offset"] >= 0 else "<code>")
    test = _mftpp_compile(_MFTPP_TEST, args["test_offset"], main_file if args["test_offset"] >= 0 else "<test>")
    exec(code, main)  # the code under test, as `__main__`; an exception here ends the run (no `done`)
    _mftpp_reset()
    ns = globals()
    for name in args["free"]:  # the test's names that the code defines (the entry point, helpers)
        if name in main and (name == args["entry"] or name not in _MFTPP_BUILTINS_COPY):
            ns[name] = main[name]
    exec(test, ns)
    ns[args["check"]](_mftpp_candidate(main))
    _mftpp_emit("done")

_MFTPP_BUILTINS = _mftpp_sys.modules["builtins"]
_MFTPP_BUILTINS_COPY = __builtins__  # the private copy the bootstrap made, before anything else ran
_MFTPP_BUILTINS_COPY["__import__"] = _mftpp_import
_MFTPP_TEST_MODULES = _mftpp_load(_MFTPP_ARGS["imports"])
_MFTPP_MODULES_BEFORE = dict(_mftpp_sys.modules)
_MFTPP_TEST_RECORDS = _mftpp_records([m for n, m in _MFTPP_TEST_MODULES.items() if n not in ("sys", "builtins")])
_MFTPP_WORLD_RECORDS = _mftpp_records([_MFTPP_BUILTINS, _mftpp_abcmod, _mftpp_abc])
_mftpp_main()
"""


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


def _test_imports(tree: ast.Module) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names) of every absolute import in the test, wherever it is: the runtime imports and
    records these before the code under test runs."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module, tuple(a.name for a in node.names if a.name != "*")))
    return sorted(found)


def _free_names(test: str) -> list[str]:
    """Global names the test reads but never binds: the entry point, helpers of the prompt
    (HumanEval/32's `poly`), classes of the code (MBPP/367's `Node`) — and builtins."""
    top = symtable.symtable(test, "<test>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    used, tables = set(), [top]
    while tables:
        table = tables.pop()
        for sym in table.get_symbols():
            if table is top and sym.is_referenced() or table is not top and sym.is_global():
                used.add(sym.get_name())
            if table is not top and sym.is_declared_global() and sym.is_assigned():
                bound.add(sym.get_name())
        tables.extend(table.get_children())
    return sorted(used - bound)


def _python(code: str, test: str, entry_point: str | None, nonce: str) -> dict[str, str]:
    test_text, args = _python_test(test, entry_point)
    return {"main.py": _py_program(code, test_text, nonce, dict(args))}


@functools.lru_cache(maxsize=512)
def _python_test(test: str, entry_point: str | None) -> tuple[str, dict]:
    """The instrumented test and the runtime's arguments. They depend on the test and the entry point
    only, so the samples of one task (and every re-run) share one AST rewrite. Callers copy the dict."""
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
    args = {"entry": entry_point, "check": check.name, "imports": _test_imports(tree), "free": _free_names(test)}
    _split_cases(check, _AssertToRaise({a.arg for a in check.args.args} | {entry_point}))
    tree.body = body
    return ast.unparse(tree), args


def _split_cases(check: ast.FunctionDef, rewriter: _AssertToRaise) -> None:
    """Each top-level statement of `check` that holds an assert becomes one test case."""
    new_body: list[ast.stmt] = []
    n_cases = 0
    for stmt in check.body:
        stmt = rewriter.visit(stmt)
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)) or not any(isinstance(n, ast.Raise) for n in ast.walk(stmt)):
            new_body.append(stmt)  # setup: an exception here ends the run (no `done`)
            continue
        # One test case: inline try keeps names it assigns visible to the statements after it. It
        # starts from the recorded modules and builtins as they were before the code ran.
        new_body.append(parse(
            f"try:\n    pass\nexcept AssertionError as _mftpp_e:\n    _mftpp_emit('case:{n_cases}:fail')\n"
            f"    _mftpp_sys.stderr.write('AssertionError: %s\\n' % (_mftpp_e,))\n"
            f"except BaseException as _mftpp_e:\n    _mftpp_emit('case:{n_cases}:error')\n"
            f"    _mftpp_sys.stderr.write('%s: %s\\n' % (type(_mftpp_e).__name__, _mftpp_e))\n"
            f"else:\n    _mftpp_emit('case:{n_cases}:ok')\n").body[0])
        new_body[-1].body = [parse("_mftpp_reset()").body[0], stmt]
        n_cases += 1
    check.body = new_body
    ast.fix_missing_locations(check)


def _py_program(code: str, test: str, nonce: str, args: dict) -> str:
    """main.py: the runtime, the nonce and arguments, the code and the test as verbatim literals, then
    the bootstrap line."""
    lines = list(_PY_RUNTIME_LINES)
    lines += [f"_mftpp_nonce = {nonce!r}", ""]  # the second line is the arguments, filled in below
    for name, text in (("_mftpp_code", code.removeprefix("\ufeff")), ("_mftpp_test", test)):
        args[name.removeprefix("_mftpp_") + "_offset"] = _py_literal(lines, name, text)
    lines[len(_PY_RUNTIME_LINES) + 1] = f"_mftpp_args = {args!r}"  # a repr is one line
    lines.append(_PY_BOOTSTRAP)
    return "\n".join(lines) + "\n"


def _py_literal(lines: list[str], name: str, text: str) -> int:
    """Append `name = r'''<text>'''` to main.py's lines; return how many lines of main.py come before
    the text's value (it starts with the newline after the quotes), or -1 when the text holds both
    kinds of triple quotes and is embedded escaped, on one line, instead."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # what Python's reading of main.py does too
    quote = next((q for q in ("'''", '"""') if q not in text), None)
    if quote is None:
        lines.append(f"{name} = {text!r}")
        return -1
    offset = len(lines)
    lines.extend(f"{name} = r{quote}\n{text}\n{quote}".split("\n"))
    return offset


# The runtime as main.py embeds it: the value of its literal (what the bootstrap compiles) and the
# literal's lines, the same in every program.
PY_RUNTIME_SOURCE = "\n" + _PY_RUNTIME.strip() + "\n"
_PY_RUNTIME_LINES: list[str] = []
if _py_literal(_PY_RUNTIME_LINES, "_mftpp_runtime", PY_RUNTIME_SOURCE[1:-1]) != 0:
    raise AssertionError("the runtime must be embedded verbatim, at the top of main.py")
_PY_BOOTSTRAP = (
    'exec((lambda p: p[1] if p is not None and p[0] == _mftpp_runtime else compile(_mftpp_runtime, __file__, "exec"))'
    '(globals().pop("_mftpp_precompiled", None)), '
    '{"__builtins__": vars(__import__("builtins")).copy(), "_MFTPP_MAIN": globals()})')



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
