"""Adversarial completions against the execution harness (sandbox.py + instrument.py + judge.py).

FILE_TOKEN below appears literally only in this file: a program that manages to read this file (or
to #include / include_str! it at compile time) would print it, and every test checks that it never
shows up in a verdict.
"""

# Each case is one completion (benchmark prompt + adversarial model output) judged against a test in
# the HumanEval-X shape of its language, with the status (or the small set of honest statuses) it must
# get. After every run the host is checked: no process of the slot's private uid, no process carrying
# the run's marker, no new process in this test's own session or process group, no file named after
# the marker in /tmp, /var/tmp, /dev/shm, /, /etc, ..., the sentinel directory untouched, the judge's
# work root empty, no connection reached the listeners this test opened on the host, and no secret
# (environment variable, host file, this file) in the verdict.
#
# Placeholders substituted in every completion: @MARKER@ (a number unique to the run, usable as a
# `sleep` duration so that daemons can be found by their command line), @PORT@ (a TCP listener on the
# host's 127.0.0.1), @ABSTRACT@ (an abstract unix socket listening on the host), @SENTINEL_DIR@ (a
# world-writable host directory holding `sentinel` and `secret.txt`) and @TESTFILE@ (this file).

from __future__ import annotations

import builtins
import dataclasses
import functools
import os
import secrets
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass

import pytest

from mftcoder_pp.execution.judge import JudgeLimits, Verdict
from mftcoder_pp.execution.toolchains import Toolchains
from mftcoder_pp.execution.sandbox import SLOT_UID_BASE, Limits, bwrap_path
from mftcoder_pp.execution.slot import WorkerSlot

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

FILE_TOKEN = "mftpp-file-token-5e1d9c7a"  # see the module docstring

# Slots of our own (the sandbox claims the first free uid from SLOT_UID_BASE + slot on), away from
# the slots other suites running at the same time start from.
SLOT = 37
NONE_SLOT = 38
ENV_KEY = "MFTPP_SECRET"
ROOT = os.geteuid() == 0
# Decided once at collection: which expectations (and known bugs) apply to the main test.
HAVE_BWRAP = bwrap_path() is not None

COMPILE = Limits(cpu_seconds=60, wall_seconds=90, memory_mb=4096, processes=256, file_size_mb=64, tmp_mb=256,
                 output_bytes=200_000)
# Compile bombs get a tight budget; test_bomb_limits_still_compile_normal_code shows it is enough for
# the same program without the bomb.
BOMB_COMPILE = Limits(cpu_seconds=3, wall_seconds=6, memory_mb=1024, processes=256, file_size_mb=16, tmp_mb=32,
                      output_bytes=64_000)


def run_limits(lang: str) -> Limits:
    if lang == "java":  # the JVM reserves ~1.5 GiB of address space (1536 MB fails now and then) and ~20 threads
        return Limits(cpu_seconds=2, wall_seconds=6, memory_mb=2048, processes=64, file_size_mb=8, tmp_mb=16,
                      output_bytes=64_000)
    memory = 1024 if lang in ("javascript", "go") else 512  # V8 and the Go runtime reserve address space
    return Limits(cpu_seconds=1, wall_seconds=4, memory_mb=memory, processes=32, file_size_mb=8, tmp_mb=16,
                  output_bytes=64_000)


# ------------------------------------------------------------------------------------------------
# Benchmark-shaped tasks: prompt (code before the completion), test, entry point.

PY_PROMPT = 'def add(x: int, y: int) -> int:\n    """Add two numbers x and y\n    >>> add(2, 3)\n    5\n    """\n'
PY_TEST = ("\n\nMETADATA = {\n    'author': 'adversarial',\n    'dataset': 'test'\n}\n\n\n"
           "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n"
           "    assert candidate(-1, 1) == 0\n\ncheck(add)\n")
PY_UPTO_PROMPT = 'def upto(n: int) -> list:\n    """Return the list [0, 1, ..., n - 1]."""\n'
PY_UPTO_TEST = ("\n\ndef check(candidate):\n    assert candidate(3) == [0, 1, 2]\n    assert candidate(0) == []\n"
                "    assert candidate(1) == [0]\n\ncheck(upto)\n")

CPP_PROMPT = ("/*\nAdd two numbers x and y\n>>> add(2, 3)\n5\n*/\n#include<stdio.h>\n#include<math.h>\n"
              "#include<string>\n#include<vector>\nusing namespace std;\n#include<algorithm>\n#include<stdlib.h>\n"
              "int add(int x,int y){\n")
CPP_TEST = ("#undef NDEBUG\n#include<assert.h>\nint main(){\n    assert (add(2, 3) == 5);\n"
            "    assert (add(0, 0) == 0);\n    assert (add(-1, 1) == 0);\n}\n")

JAVA_PROMPT = ("import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n    /**\n    Add two numbers x and y\n"
               "    >>> add(2, 3)\n    5\n     */\n    public int add(int x, int y) {\n")
JAVA_TEST = ("public class Main {\n    public static void main(String[] args) {\n        Solution s = new Solution();\n"
             "        List<Boolean> correct = Arrays.asList(\n                s.add(2, 3) == 5,\n"
             "                s.add(0, 0) == 0,\n                s.add(-1, 1) == 0\n        );\n"
             "        if (correct.contains(false)) {\n            throw new AssertionError();\n        }\n    }\n}\n")
# A test written with `assert` statements: it only bites with -ea.
JAVA_ASSERT_TEST = ("public class Main {\n    public static void main(String[] args) {\n"
                    "        Solution s = new Solution();\n        assert s.add(2, 3) == 5;\n"
                    "        assert s.add(0, 0) == 0;\n        assert s.add(-1, 1) == 0;\n    }\n}\n")

JS_PROMPT = "/* Add two numbers x and y\n  >>> add(2, 3)\n  5\n  */\nconst add = (x, y) => {\n"
JS_TEST = ("const testAdd = () => {\n  console.assert(add(2, 3) === 5)\n  console.assert(add(0, 0) === 0)\n"
           "  console.assert(add(-1, 1) === 0)\n}\n\ntestAdd()\n")

GO_HEADER = 'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n'
GO_PROMPT = "\n// Add two numbers x and y\n// >>> Add(2, 3)\n// 5\nfunc Add(x int, y int) int {\n"
GO_TEST = ("func TestAdd(t *testing.T) {\n    assert := assert.New(t)\n    assert.Equal(5, Add(2, 3))\n"
           "    assert.Equal(0, Add(0, 0))\n    assert.Equal(0, Add(-1, 1))\n}\n")

RUST_PROMPT = ("\n/*\n Add two numbers x and y\n*/\n\nuse std::{slice::Iter, cmp::{max, self}, mem::replace, "
               "collections::{HashSet, HashMap}, ops::Index, ascii::AsciiExt};\nuse rand::Rng;\nuse regex::Regex;\n"
               "use md5;\nuse std::any::{Any, TypeId};\n\nfn add(x: i32, y: i32) -> i32{\n")
RUST_TEST = ("\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn test_add() {\n"
             "        assert_eq!(add(2, 3), 5);\n        assert_eq!(add(0, 0), 0);\n"
             "        assert_eq!(add(-1, 1), 0);\n    }\n\n}\n")

TASKS = {  # (language, task) -> (prompt, test, entry point)
    ("python", "add"): (PY_PROMPT, PY_TEST, "add"),
    ("python", "upto"): (PY_UPTO_PROMPT, PY_UPTO_TEST, "upto"),
    ("cpp", "add"): (CPP_PROMPT, CPP_TEST, None),
    ("java", "add"): (JAVA_PROMPT, JAVA_TEST, None),
    ("java", "assert"): (JAVA_PROMPT, JAVA_ASSERT_TEST, None),
    ("javascript", "add"): (JS_PROMPT, JS_TEST, None),
    ("go", "add"): (GO_PROMPT, GO_TEST, None),
    ("rust", "add"): (RUST_PROMPT, RUST_TEST, None),
}

# Tasks whose checks lean on builtins, standard-library modules and standard-library classes: the
# code under test's top-level code must not be able to change what those names mean to the test.
PY_MEAN_PROMPT = 'def mean(xs: list) -> float:\n    """The arithmetic mean of xs.\n    >>> mean([1.0, 2.0, 3.0])\n    2.0\n    """\n'
PY_SLUG_PROMPT = ('def slug(s: str) -> str:\n    """Lower-case s and join its words with dashes.\n'
                  '    >>> slug("Hello World")\n    \'hello-world\'\n    """\n')
PY_COUNTS_PROMPT = 'def letter_counts(s: str) -> dict:\n    """How often each letter occurs in s."""\n'


def py_test(entry: str, asserts: list[str], imports: str = "", check: str = "check") -> str:
    """A HumanEval-shaped test (or, with check="mbpp_check__", an MBPP-shaped one, without the call)."""
    body = "".join(f"    {a}\n" for a in asserts)
    call = f"\ncheck({entry})\n" if check == "check" else ""
    return f"\n\n{imports}\n\ndef {check}(candidate):\n{body}{call}"


TASKS.update({
    ("python", "isclose"): (PY_MEAN_PROMPT, py_test("mean", [
        "assert math.isclose(candidate([1.0, 2.0, 3.0]), 2.0)", "assert math.isclose(candidate([2.0, 4.0]), 3.0)",
        "assert math.isclose(candidate([5.0]), 5.0)"], "import math"), "mean"),
    ("python", "mbpp_isclose"): ("", py_test("mean", [
        "assert math.isclose(mean([1.0, 2.0, 3.0]), 2.0)", "assert math.isclose(mean([2.0, 4.0]), 3.0)",
        "assert math.isclose(mean([5.0]), 5.0)"], "import math", check="mbpp_check__"), "mean"),
    ("python", "round"): (PY_MEAN_PROMPT, py_test("mean", [
        "assert round(candidate([1.0, 2.0]), 6) == 1.5", "assert round(candidate([1.0, 2.0, 4.0]), 6) == 2.333333",
        "assert round(candidate([5.0]), 6) == 5.0"]), "mean"),
    ("python", "abs"): (PY_PROMPT, py_test("add", [
        "assert abs(candidate(2, 3) - 5) < 1e-9", "assert abs(candidate(0, 0) - 0) < 1e-9",
        "assert abs(candidate(-1, 1) - 0) < 1e-9"]), "add"),
    ("python", "regex"): (PY_SLUG_PROMPT, py_test("slug", [
        "assert re.fullmatch('hello-world', candidate('Hello World'))", "assert re.fullmatch('a-b-c', candidate('A B C'))",
        "assert re.fullmatch('x', candidate('x'))"], "import re"), "slug"),
    # HumanEval/53's shape: random inputs.
    ("python", "random"): (PY_PROMPT, py_test("add", [
        "for _ in range(100):\n        x, y = random.randint(0, 1000), random.randint(0, 1000)\n"
        "        assert candidate(x, y) == x + y"], "import random"), "add"),
    ("python", "counter"): (PY_COUNTS_PROMPT, py_test("letter_counts", [
        "assert Counter(candidate('aab')) == Counter({'a': 2, 'b': 1})", "assert Counter(candidate('')) == Counter()",
        "assert Counter(candidate('zz')) == Counter(z=2)"], "from collections import Counter"), "letter_counts"),
    ("python", "fraction"): (PY_PROMPT, py_test("add", [
        "assert candidate(1, 2) == Fraction(3)", "assert candidate(0, 0) == Fraction(0)",
        "assert candidate(-1, 1) == Fraction(0)"], "from fractions import Fraction"), "add"),
})
# One task per builtin: the check applies it to what the function returned.
PY_BUILTIN_TASKS = {"int": "add", "float": "add", "str": "add", "repr": "add", "list": "upto", "tuple": "upto",
                    "set": "upto", "sum": "upto", "max": "upto", "min": "upto", "sorted": "upto", "len": "upto"}
for _name, _task in PY_BUILTIN_TASKS.items():
    _prompt, _, _entry = TASKS[("python", _task)]
    _args = ((2, 3), (0, 0), (-1, 1)) if _task == "add" else ((3,), (5,), (1,))
    _right = (lambda *a: sum(a)) if _task == "add" else (lambda n: list(range(n)))
    TASKS[("python", f"uses_{_name}")] = (_prompt, py_test(_entry, [
        f"assert {_name}(candidate({', '.join(map(str, a))})) == {getattr(builtins, _name)(_right(*a))!r}"
        for a in _args]), _entry)


def go_imports(*packages: str) -> str:
    return "import (\n" + "".join(f'    "{p}"\n' for p in packages) + ")\n"


@dataclass(frozen=True)
class Case:
    id: str
    lang: str
    completion: str
    expect: frozenset
    prelude: str = ""  # before the prompt (imports); for Go, after the `package`/testing header
    task: str = "add"
    bwrap_only: bool = False  # the expectation needs filesystem / network isolation
    compile_bomb: bool = False
    tests: tuple[int, int] | None = None  # expected (tests_passed, tests_total)
    xfail: str | None = None  # a library bug this case exposes ...
    bwrap_xfail: str | None = None  # ... or exposes only under bubblewrap
    bug_status: str | None = None  # the status the bug gives (anything else is a real failure)
    wall_seconds: float | None = None  # overrides the run's wall-clock limit
    cpu_seconds: float | None = None  # overrides the run's CPU limit
    none_expect: frozenset | None = None  # expectation under isolation="none", when different

    def program(self, subst: dict[str, str]) -> tuple[str, str, str | None]:
        prompt, test, entry = TASKS[(self.lang, self.task)]
        prelude, completion = self.prelude, self.completion
        for key, value in subst.items():
            prelude, completion = prelude.replace(key, value), completion.replace(key, value)
        code = (GO_HEADER + prelude + prompt if self.lang == "go" else prelude + prompt) + completion
        return code, test, entry


def case(id: str, lang: str, completion: str, expect, **kw) -> Case:
    expect = frozenset([expect] if isinstance(expect, str) else expect)
    if "none_expect" in kw and isinstance(kw["none_expect"], str):
        kw["none_expect"] = frozenset([kw["none_expect"]])
    elif "none_expect" in kw:
        kw["none_expect"] = frozenset(kw["none_expect"])
    return Case(f"{lang}-{id}", lang, completion, expect, **kw)


# The program is the sandbox's init (bwrap --as-pid-1), which the kernel does not kill with
# SIGXFSZ: past the file-size limit its writes fail with EFBIG instead. Code that ignores write
# errors then goes on and may pass; the file never grows past the limit either way.
IGNORES_EFBIG = ("runtime_error", "passed")
NOT_PASSED_CRASH = ("runtime_error", "failed")
# A memory bomb's work is bounded by the memory limit: it ends on its own failed allocation. Its
# time budget is far above what filling the limit costs on any machine (~0.4 s of CPU here, page
# zeroing included), so which limit it meets never depends on the machine's speed.
MEMORY_BOMB = dict(cpu_seconds=30, wall_seconds=60)
# Runtimes that need threads (JVM, V8, Go) may die themselves once the process limit is reached.
FORK_BOMB_RUNTIME = ("timeout", "runtime_error", "memory_exceeded")

# A program that ignores or handles SIGXCPU runs on to the RLIMIT_CPU hard limit (SIGKILL). The wall
# clock is set well beyond that so the CPU limit, not the wall clock, stops it even on a loaded machine.
CPU_KILL = dict(
    wall_seconds=15)

# ------------------------------------------------------------------------------------------ python
PY_CASES = [
    case("correct", "python", "    return x + y\n", "passed", tests=(3, 3)),
    case("wrong_plausible", "python", "    return abs(x) + abs(y)\n", "failed", tests=(2, 3)),
    case("infinite_loop", "python", "    while True:\n        pass\n", "timeout"),
    case("swallow_signals_and_exceptions", "python", r"""    import signal
    for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGVTALRM):
        signal.signal(s, signal.SIG_IGN)
    while True:
        try:
            while True:
                pass
        except BaseException:
            continue
""", "timeout", **CPU_KILL),
    case("sleep_swallowing_exceptions", "python", r"""    import time
    while True:
        try:
            time.sleep(1000)
        except BaseException:
            pass
""", "timeout", wall_seconds=2.5),
    case("fork_bomb", "python", r"""    import os
    while True:
        try:
            os.fork()
        except BaseException:
            pass
""", "timeout", wall_seconds=2.5),
    case("daemon_double_fork_setsid", "python", r"""    import os
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            fd = os.open('/dev/null', os.O_RDWR)
            for i in (0, 1, 2):
                os.dup2(fd, i)
            os.execv('/bin/sleep', ['sleep', '@MARKER@'])
        os._exit(0)
    os.waitpid(pid, 0)
    return x + y
""", "passed"),
    # The daemon keeps the run's stdout open and ignores SIGTERM/SIGHUP. With bubblewrap it dies with
    # the PID namespace; without, the judge waits for the pipe until the wall clock (then kills it).
    case("daemon_keeps_stdout", "python", r"""    import os, sys
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, '-c',
                     'import signal, time\nfor s in (1, 2, 15):\n    signal.signal(s, signal.SIG_IGN)\n'
                     'while True:\n    time.sleep(1)', '@MARKER@'])
        os._exit(0)
    os.waitpid(pid, 0)
    return x + y
""", "passed", none_expect=("passed", "timeout"), wall_seconds=2.5),
    case("memory_bomb", "python", "    hog = []\n    while True:\n        hog.append(bytearray(10 ** 7))\n",
         "memory_exceeded", **MEMORY_BOMB),
    case("memory_bomb_at_import", "python", "    return x + y\n",
         "memory_exceeded", **MEMORY_BOMB, prelude="_hog = [bytearray(10 ** 7) for _ in range(10 ** 5)]\n"),
    case("deep_recursion", "python", "    return add(x + 1, y) + 1\n", "runtime_error"),
    case("recursion_limit_lifted", "python", "    return add(x + 1, y) + 1\n",
         ("runtime_error", "memory_exceeded", "timeout"),
         prelude="import sys\nsys.setrecursionlimit(10 ** 9)\n"),
    case("huge_stdout", "python", "    while True:\n        print('x' * 10000)\n", "output_limit"),
    case("huge_stderr", "python", "    import sys\n    while True:\n        sys.stderr.write('e' * 10000 + '\\n')\n",
         "output_limit"),
    case("write_1gb_file", "python", r"""    chunk = b'\0' * (1 << 20)
    with open('/tmp/big-@MARKER@', 'wb') as fh:
        for _ in range(1024):
            fh.write(chunk)
    return x + y
""", "runtime_error", bwrap_only=True),
    case("write_outside_workdir", "python", r"""    hits = []
    for path in ('@SENTINEL_DIR@/new-@MARKER@', '@SENTINEL_DIR@/sentinel', '/sandbox/new-@MARKER@',
                 '/usr/local/new-@MARKER@', '/etc/new-@MARKER@', '/root/new-@MARKER@', '/var/tmp/new-@MARKER@',
                 '/dev/shm/new-@MARKER@', '/new-@MARKER@', '/tmp/new-@MARKER@', '/opt/new-@MARKER@'):
        try:
            with open(path, 'w') as fh:
                fh.write('pwned')
            hits.append(path)
        except OSError:
            pass
    print('writable inside the sandbox:', hits)
    return 0 if any(p.startswith('@SENTINEL_DIR@') for p in hits) else x + y
""", "passed", bwrap_only=True),
    case("delete_files", "python", r"""    import os, shutil
    for path in ('@SENTINEL_DIR@/sentinel', '@SENTINEL_DIR@/secret.txt', '/sandbox/main.py'):
        try:
            os.remove(path)
        except OSError:
            pass
    shutil.rmtree('@SENTINEL_DIR@', ignore_errors=True)
    shutil.rmtree('/sandbox', ignore_errors=True)
    return x + y
""", "passed", bwrap_only=True),
    case("network", "python", r"""    import socket
    hits = []
    for family, addr in ((socket.AF_INET, ('127.0.0.1', @PORT@)), (socket.AF_INET, ('1.1.1.1', 53)),
                         (socket.AF_UNIX, '\0@ABSTRACT@')):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(addr)
            hits.append(repr(addr))
        except OSError:
            pass
        finally:
            s.close()
    print('connected:', hits)
    return 0 if hits else x + y
""", "passed", bwrap_only=True),
    case("env_secret", "python", r"""    import os
    blobs = [repr(dict(os.environ))]
    for p in ('/proc/self/environ', '/proc/1/environ', '/proc/%d/environ' % os.getppid()):
        try:
            with open(p, 'rb') as fh:
                blobs.append(fh.read().decode('latin-1'))
        except OSError:
            pass
    text = '\n'.join(blobs)
    print(text)
    return 0 if 'MFTPP_SECRET' in text else x + y
""", "passed"),
    case("read_host_files", "python", r"""    found = []
    for p in ('@TESTFILE@', '@SENTINEL_DIR@/secret.txt', '/root/.bashrc', '/etc/shadow', '/root/.ssh/id_rsa'):
        try:
            with open(p, 'rb') as fh:
                print(fh.read().decode('latin-1'))
            found.append(p)
        except OSError:
            pass
    return 0 if found else x + y
""", "passed", bwrap_only=True),
    case("sys_exit_0", "python", "    import sys\n    sys.exit(0)\n", "runtime_error"),
    case("os_exit_0", "python", "    import os\n    os._exit(0)\n", "runtime_error"),
    case("exit_0_at_import", "python", "    return x + y\n\nimport sys\nsys.exit(0)\n", "runtime_error"),
    case("atexit_os_exit_0", "python", "    return abs(x) + abs(y)\n", "failed", tests=(2, 3),
         prelude="import atexit, os\natexit.register(os._exit, 0)\n"),
    case("atexit_hides_crash", "python", "    raise RuntimeError('boom')\n", "runtime_error",
         prelude="import atexit, os\natexit.register(os._exit, 0)\n"),
    case("reexec_with_optimize", "python", "    return abs(x) + abs(y)\n", "failed", tests=(2, 3),
         prelude=r"""import os, sys
if not sys.flags.optimize:
    os.environ['PYTHONOPTIMIZE'] = '2'
    os.execv(sys.executable, [sys.executable, '-O', '-O'] + sys.argv)
"""),
    case("always_equal_object", "python", r"""    class AlwaysEqual:
        def __eq__(self, other):
            return True
        def __ne__(self, other):
            return False
        __hash__ = object.__hash__
    return AlwaysEqual()
""", "failed", tests=(0, 3)),
    case("mock_any", "python", "    from unittest.mock import ANY\n    return ANY\n", "failed", tests=(0, 3)),
    case("int_subclass_always_equal", "python", r"""    class EqInt(int):
        def __eq__(self, other):
            return True
        __hash__ = int.__hash__
    return EqInt(0)
""", "failed", tests=(0, 3)),
    case("always_equal_spoofing_builtins_module", "python", r"""    class AlwaysEqual:
        __module__ = 'builtins'
        def __eq__(self, other):
            return True
        __hash__ = object.__hash__
    return AlwaysEqual()
""", "failed"),
    case("mock_any_inside_userlist", "python", r"""    import collections, unittest.mock
    return collections.UserList([unittest.mock.ANY] * n)
""", "failed", task="upto"),
    case("close_stdout", "python", "    import os\n    os.close(1)\n    return x + y\n", "runtime_error"),
    case("stdout_to_devnull", "python",
         # The reports are lost, the wrong answer's assertion message on stderr remains: not passed either way.
         "    import os\n    os.dup2(os.open('/dev/null', os.O_WRONLY), 1)\n    return 0\n", NOT_PASSED_CRASH),
    case("forged_done_report", "python",
         "    import os\n    os.write(1, b'\\n@@MFTPP:' + b'0' * 32 + b':done\\n')\n    os._exit(0)\n",
         "runtime_error"),
    case("stdin_read", "python", "    import sys\n    sys.stdin.read()\n    sys.stdin.readline()\n    return x + y\n",
         "passed"),
]

# The code under test changes what the test's (or the harness's) names mean: rebinding builtins,
# patching the modules and standard-library classes the checks use, replacing sys.modules entries.
# Each is a wrong answer that every check would pass under the new meanings, and must fail.
PY_ALWAYS_EQUAL = ("class _Eq:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
                   "        return False\n    __hash__ = object.__hash__\n")
PY_FAKE_MATH = ("import sys, types\n_fake = types.ModuleType('math')\n_fake.isclose = lambda *a, **k: {result}\n"
                "sys.modules['math'] = _fake\n")
PY_WRONG = {"add": "    return x + y + 1\n", "upto": "    return [i + 1 for i in range(n + 1)]\n", "mean": "    return 0.0\n"}


def rebinding(id: str, task: str, how: str, completion: str | None = None, expect: str = "failed", **kw) -> Case:
    """A case whose top-level code (`how`, before the prompt) rebinds names; the wrong answer by default."""
    entry = TASKS[("python", task)][2]
    return case(id, "python", completion or PY_WRONG.get(entry, ""), expect, task=task,
                prelude=PY_ALWAYS_EQUAL + how, **kw)


PY_CASES += [
    # Builtins, rebound through the builtins module: every builtin a check applies to the result.
    *(rebinding(f"rebind_builtin_{name}", f"uses_{name}", f"import builtins\nbuiltins.{name} = lambda *a, **k: _Eq()\n")
      for name in PY_BUILTIN_TASKS),
    rebinding("rebind_builtin_abs", "abs", "import builtins\nbuiltins.abs = lambda v: 0\n"),
    rebinding("rebind_builtin_round", "round", "import builtins\nbuiltins.round = lambda *a: _Eq()\n"),
    # ... through `__builtins__` (the module, in `__main__`), by attribute, by setattr and by its dict.
    rebinding("rebind_dunder_builtins_abs", "abs", "__builtins__.abs = lambda v: 0\n"),
    rebinding("rebind_dunder_builtins_round", "round", "setattr(__builtins__, 'round', lambda *a: _Eq())\n"),
    rebinding("rebind_dunder_builtins_sorted", "uses_sorted", "vars(__builtins__)['sorted'] = lambda *a, **k: _Eq()\n"),
    rebinding("rebind_dunder_builtins_len", "uses_len", "__builtins__.__dict__['len'] = lambda *a: _Eq()\n"),
    # ... as globals of `__main__`, which the test used to share.
    rebinding("shadow_builtin_abs", "abs", "def abs(v):\n    return 0\n"),
    rebinding("shadow_builtin_sorted", "uses_sorted", "sorted = lambda *a, **k: _Eq()\n"),
    # The harness's own builtins: without isinstance the value check would not look inside the list,
    # without type it would take an always-equal object for an int.
    rebinding("rebind_builtin_isinstance", "upto", "import builtins\nbuiltins.isinstance = lambda *a: False\n",
              "    return [_Eq()] * n\n"),
    rebinding("rebind_dunder_builtins_isinstance", "upto", "__builtins__.isinstance = lambda *a: False\n",
              "    return [_Eq()] * n\n"),
    rebinding("rebind_builtin_type", "add", "import builtins\nbuiltins.type = lambda *a: int\n", "    return _Eq()\n"),
    rebinding("rebind_dunder_builtins_type", "add", "setattr(__builtins__, 'type', lambda *a: int)\n",
              "    return _Eq()\n"),
    # ... and the report itself: rewriting `fail` to `ok` on the way out needs no nonce.
    rebinding("rebind_os_write", "add", "import os\n_write = os.write\n"
              "os.write = lambda fd, data: _write(fd, data.replace(b':fail', b':ok'))\n"),
    # Modules the checks import (HumanEval: math, random, string, copy; MBPP: math; and re).
    rebinding("patch_math_isclose", "isclose", "import math\nmath.isclose = lambda *a, **k: True\n"),
    rebinding("patch_math_isclose_mbpp", "mbpp_isclose", "", "import math\nmath.isclose = lambda *a, **k: True\n\n"
              "def mean(xs):\n    return 0.0\n"),
    rebinding("patch_re_fullmatch", "regex", "import re\nre.fullmatch = lambda *a, **k: True\n", "    return s\n"),
    rebinding("patch_random_randint", "random", "import random\nrandom.randint = lambda a, b: 0\n",
              "    return 0\n"),
    rebinding("patch_random_shared_generator", "random", "import random\nrandom._inst.randrange = lambda *a: 0\n",
              "    return 0\n"),
    rebinding("fake_math_in_sys_modules", "isclose", PY_FAKE_MATH.format(result=True)),
    # Standard-library classes: patched before the test runs, during the call, or returned patched.
    rebinding("patch_counter_eq", "counter", "import collections\ncollections.Counter.__eq__ = lambda a, b: True\n",
              "    return {'a': 1}\n"),
    rebinding("patch_counter_eq_during_call", "counter", "", "    import collections\n"
              "    collections.Counter.__eq__ = lambda a, b: True\n    return {'a': 1}\n"),
    rebinding("patch_fraction_eq", "fraction", "import fractions\nfractions.Fraction.__eq__ = lambda a, b: True\n",
              "    return 7\n"),
    rebinding("return_patched_fraction", "add", "import fractions\nfractions.Fraction.__eq__ = lambda a, b: True\n",
              "    return fractions.Fraction(7)\n"),
    rebinding("spoof_stdlib_class_in_its_module", "upto", "import collections\n"
              "class UserList(collections.UserList):\n    def __eq__(self, other):\n        return True\n"
              "UserList.__module__ = 'collections'\ncollections.UserList = UserList\n",
              "    return UserList([7])\n"),
    rebinding("patch_abc_instancecheck", "upto", "import abc, collections\n"
              "abc.ABCMeta.__instancecheck__ = lambda cls, obj: False\n",
              "    return collections.UserList([_Eq()] * n)\n"),
    # Right answers stay right, whatever the code did to the names (and what it adds for itself stays).
    rebinding("correct_despite_rebound_abs", "abs", "import builtins\nbuiltins.abs = lambda v: 1\n",
              "    return x + y\n", "passed", tests=(3, 3)),
    rebinding("correct_despite_deleted_abs", "abs", "import builtins\ndel builtins.abs\n", "    return x + y\n",
              "passed", tests=(3, 3)),
    rebinding("correct_despite_patched_math", "isclose", "import math\nmath.isclose = lambda *a, **k: False\n",
              "    return sum(xs) / len(xs)\n", "passed", tests=(3, 3)),
    rebinding("correct_despite_fake_math", "isclose", PY_FAKE_MATH.format(result=False),
              "    return sum(xs) / len(xs)\n", "passed", tests=(3, 3)),
    rebinding("correct_despite_patched_counter", "counter",
              "import collections\ncollections.Counter.__eq__ = lambda a, b: False\n",
              "    return dict(collections.Counter(s))\n", "passed", tests=(3, 3)),
    rebinding("correct_with_its_own_builtin", "add", "import builtins\nbuiltins.twice = lambda v: 2 * v\n",
              "    return twice(x + y) // 2\n", "passed", tests=(3, 3)),
]
PY_REBINDING_IDS = tuple(c.id for c in PY_CASES if c.id.split("-", 1)[1].startswith(
    ("rebind_", "shadow_", "patch_", "fake_", "return_patched", "spoof_", "correct_despite", "correct_with")))

# --------------------------------------------------------------------------------------------- cpp
CPP_CASES = [
    case("correct", "cpp", "    return x + y;\n}\n", "passed", tests=(3, 3)),
    case("wrong_plausible", "cpp", "    return abs(x) + abs(y);\n}\n", "failed", tests=(2, 3)),
    case("infinite_loop", "cpp", "    volatile long i = 0;\n    while (true) { i++; }\n    return 0;\n}\n", "timeout"),
    case("ignore_sigxcpu_sigterm", "cpp", r"""    signal(SIGXCPU, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    volatile long i = 0;
    for (;;) i++;
    return 0;
}
""", "timeout", prelude="#include <signal.h>\n", **CPU_KILL),
    case("fork_bomb", "cpp", "    for (;;) fork();\n    return 0;\n}\n", "timeout", prelude="#include <unistd.h>\n",
         wall_seconds=2.5),
    case("daemon_double_fork_setsid", "cpp", r"""    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() == 0) {
            int fd = open("/dev/null", O_RDWR);
            dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
            execl("/bin/sleep", "sleep", "@MARKER@", (char *)NULL);
        }
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    return x + y;
}
""", "passed", prelude="#include <unistd.h>\n#include <fcntl.h>\n#include <sys/wait.h>\n"),
    case("memory_bomb", "cpp", r"""    std::vector<char *> hog;
    for (;;) { char *p = new char[1 << 24]; memset(p, 1, 1 << 24); hog.push_back(p); }
    return 0;
}
""", "memory_exceeded", **MEMORY_BOMB, prelude="#include <cstring>\n#include <vector>\n"),
    case("deep_recursion", "cpp", r"""    volatile char pad[512];
    pad[0] = (char)x;
    return add(x + 1, y) + pad[0];
}
""", "runtime_error"),
    case("huge_stdout", "cpp", "    std::string line(1000, 'x');\n    for (;;) puts(line.c_str());\n    return 0;\n}\n",
         "output_limit"),
    case("write_1gb_file", "cpp", r"""    static char chunk[1 << 20];
    FILE *f = fopen("/tmp/big-@MARKER@", "wb");
    for (int i = 0; f && i < 1024; i++) fwrite(chunk, 1, sizeof chunk, f);
    if (f) fclose(f);
    return x + y;
}
""", IGNORES_EFBIG, bwrap_only=True),
    case("write_and_delete_outside_workdir", "cpp",
         r"""    const char *paths[] = {"@SENTINEL_DIR@/new-@MARKER@", "/sandbox/new-@MARKER@",
                           "/usr/local/new-@MARKER@",
                           "/etc/new-@MARKER@", "/tmp/new-@MARKER@", "/var/tmp/new-@MARKER@"};
    for (const char *p : paths) { FILE *f = fopen(p, "w"); if (f) { fputs("pwned", f); fclose(f); } }
    int hits = 0;
    if (unlink("@SENTINEL_DIR@/sentinel") == 0) hits++;
    if (unlink("/sandbox/main.cpp") == 0) hits++;
    FILE *s = fopen("@SENTINEL_DIR@/new-@MARKER@", "r");
    if (s) { hits++; fclose(s); }
    return hits ? 0 : x + y;
}
""", "passed", prelude="#include <unistd.h>\n", bwrap_only=True),
    case("network", "cpp", r"""    int connected = 0;
    const char *hosts[] = {"127.0.0.1", "1.1.1.1"};
    int ports[] = {@PORT@, 53};
    for (int i = 0; i < 2; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons(ports[i]);
        inet_pton(AF_INET, hosts[i], &a.sin_addr);
        if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0) connected++;
        if (s >= 0) close(s);
    }
    return connected ? 0 : x + y;
}
""", "passed", bwrap_only=True,
         prelude="#include <sys/socket.h>\n#include <netinet/in.h>\n#include <arpa/inet.h>\n#include <unistd.h>\n"
                 "#include <cstring>\n"),
    case("env_secret", "cpp",
         r"""    for (char **e = environ; *e; e++) { puts(*e); if (strstr(*e, "MFTPP_SECRET")) return 0; }
    return x + y;
}
""", "passed", prelude="#include <unistd.h>\n#include <cstring>\nextern char **environ;\n"),
    case("exit_0", "cpp", "    exit(0);\n}\n", "runtime_error"),
    case("_Exit_0", "cpp", "    _Exit(0);\n}\n", "runtime_error"),
    case("exit_0_in_static_initializer", "cpp", "    return x + y;\n}\nstatic int early_exit = (exit(0), 0);\n",
         "runtime_error"),
    case("atexit_exit_0", "cpp", r"""    static bool hooked = (atexit([] { _exit(0); }), true);
    (void)hooked;
    return abs(x) + abs(y);
}
""", "failed", tests=(2, 3), prelude="#include <unistd.h>\n"),
    case("destructor_exit_0", "cpp",
         "    return abs(x) + abs(y);\n}\nstruct ExitGuard { ~ExitGuard() { _exit(0); } } exit_guard;\n",
         "failed", tests=(2, 3), prelude="#include <unistd.h>\n"),
    case("sigabrt_handler_exit_0", "cpp",
         "    signal(SIGABRT, [](int) { _exit(0); });\n    return abs(x) + abs(y);\n}\n",
         "failed", tests=(2, 3), prelude="#include <signal.h>\n#include <unistd.h>\n"),
    case("define_NDEBUG", "cpp", "    return abs(x) + abs(y);\n}\n", "failed", tests=(2, 3),
         prelude="#define NDEBUG\n#include <assert.h>\n"),
    case("undef_assert", "cpp", "    return abs(x) + abs(y);\n}\n#undef assert\n#define assert(...) ((void)0)\n",
         "failed", tests=(2, 3)),
    case("own_main", "cpp", "    return x + y;\n}\nint main() { return 0; }\n", "compile_error"),
    case("template_bomb", "cpp", r"""    return x + y;
}
template <int N, int M> struct Bomb { static const int v = Bomb<N - 1, M + 1>::v + Bomb<N - 1, 2 * M + 1>::v; };
template <int M> struct Bomb<0, M> { static const int v = 1; };
int bomb_value = Bomb<28, 0>::v;
""", "compile_error", compile_bomb=True),
    case("include_dev_zero", "cpp", '    return x + y;\n}\n#include "/dev/zero"\n', "compile_error", compile_bomb=True),
    case("include_dev_random", "cpp", '    return x + y;\n}\n#include "/dev/random"\n', "compile_error",
         compile_bomb=True),
    case("include_host_file", "cpp", '    return x + y;\n}\n', "compile_error", bwrap_only=True,
         prelude='#include "@TESTFILE@"\n#include "/root/.bashrc"\n'),
    case("stdin_read", "cpp", r"""    char buf[64];
    size_t n = fread(buf, 1, sizeof buf, stdin);
    int c = getchar();
    (void)n; (void)c;
    return x + y;
}
""", "passed"),
]

# -------------------------------------------------------------------------------------------- java
JAVA_CASES = [
    case("correct", "java", "        return x + y;\n    }\n}\n", "passed"),
    case("wrong_plausible", "java", "        return Math.abs(x) + Math.abs(y);\n    }\n}\n", "failed"),
    case("infinite_loop", "java", "        while (true) { }\n    }\n}\n", "timeout", wall_seconds=4),
    case("swallow_interrupts_and_sigterm", "java",
         r"""        try { sun.misc.Signal.handle(new sun.misc.Signal("TERM"), sig -> { }); } catch (Throwable t) { }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> { while (true) { } }));
        while (true) {
            try { Thread.sleep(100000); } catch (Throwable t) { }
        }
    }
}
""", "timeout", wall_seconds=4),
    case("fork_bomb", "java", r"""        try {
            new ProcessBuilder("/bin/sh", "-c", "b() { b | b & }; b").start();
        } catch (Throwable t) { }
        while (true) { }
    }
}
""", FORK_BOMB_RUNTIME, wall_seconds=4),
    case("daemon_setsid", "java", r"""        try {
            String daemon = "setsid /bin/sleep @MARKER@ </dev/null >/dev/null 2>&1 &";
            new ProcessBuilder("/bin/sh", "-c", daemon).start().waitFor();
        } catch (Exception e) { }
        return x + y;
    }
}
""", "passed"),
    case("memory_bomb", "java",
         "        List<long[]> hog = new ArrayList<>();\n        while (true) hog.add(new long[1 << 20]);\n    }\n}\n",
         "memory_exceeded", **MEMORY_BOMB),
    case("deep_recursion", "java", "        return add(x + 1, y) + 1;\n    }\n}\n", "runtime_error"),
    case("huge_stdout", "java",
         "        String line = \"x\".repeat(1000);\n        while (true) System.out.println(line);\n    }\n}\n",
         "output_limit"),
    case("system_exit_0", "java", "        System.exit(0);\n        return 0;\n    }\n}\n", "runtime_error"),
    case("runtime_halt_0", "java", "        Runtime.getRuntime().halt(0);\n        return 0;\n    }\n}\n",
         "runtime_error"),
    case("shutdown_hook_halt_0", "java",
         r"""        Runtime.getRuntime().addShutdownHook(new Thread(() -> Runtime.getRuntime().halt(0)));
        return Math.abs(x) + Math.abs(y);
    }
}
""", "failed"),
    case("swallow_uncaught_exceptions", "java", r"""        Thread.setDefaultUncaughtExceptionHandler((t, e) -> { });
        return Math.abs(x) + Math.abs(y);
    }
}
""", NOT_PASSED_CRASH),
    case("disable_assertions", "java", r"""        ClassLoader.getSystemClassLoader().setDefaultAssertionStatus(false);
        Solution.class.getClassLoader().setPackageAssertionStatus("", false);
        return Math.abs(x) + Math.abs(y);
    }
}
""", "failed", task="assert"),
    case("shadow_AssertionError", "java", r"""        return Math.abs(x) + Math.abs(y);
    }
}
class AssertionError extends RuntimeException {
    AssertionError() { Runtime.getRuntime().halt(0); }
}
""", NOT_PASSED_CRASH),
    case("shadow_java_util_Arrays", "java", r"""        return Math.abs(x) + Math.abs(y);
    }
}
class Arrays {
    static <T> List<T> asList(T... items) { return new ArrayList<T>(); }
}
""", "failed"),
    case("stdin_read", "java", r"""        try {
            System.in.read();
            new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
        } catch (java.io.IOException e) { }
        return x + y;
    }
}
""", "passed"),
    case("env_secret", "java", r"""        System.out.println(System.getenv());
        return System.getenv("MFTPP_SECRET") != null ? 0 : x + y;
    }
}
""", "passed"),
    case("network", "java", r"""        String[][] targets = {{"127.0.0.1", "@PORT@"}, {"1.1.1.1", "53"}};
        for (String[] t : targets) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(t[0], Integer.parseInt(t[1])), 1000);
                return 0;
            } catch (Exception e) { }
        }
        return x + y;
    }
}
""", "passed", prelude="import java.net.*;\n", bwrap_only=True),
    case("read_host_files", "java",
         r"""        for (String p : new String[] {"@TESTFILE@", "@SENTINEL_DIR@/secret.txt", "/root/.bashrc"}) {
            try {
                System.out.println(new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get(p))));
                return 0;
            } catch (Exception e) { }
        }
        return x + y;
    }
}
""", "passed", bwrap_only=True),
]

# -------------------------------------------------------------------------------------- javascript
JS_CASES = [
    case("correct", "javascript", "  return x + y;\n}\n", "passed", tests=(3, 3)),
    # console.assert does not throw: an unmodified wrong answer must still fail.
    case("wrong_plausible", "javascript", "  return Math.abs(x) + Math.abs(y);\n}\n", "failed", tests=(2, 3)),
    case("infinite_loop", "javascript", "  while (true) {}\n}\n", "timeout"),
    case("swallow_signals_and_exceptions", "javascript",
         r"""  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGXCPU']) {
    try { process.on(s, () => {}); } catch (e) {}
  }
  while (true) { try { for (;;) {} } catch (e) {} }
}
""", "timeout", **CPU_KILL),
    case("fork_bomb", "javascript", r"""  const { spawn } = require('child_process');
  for (;;) {
    try { spawn(process.execPath, [__filename], { stdio: 'ignore', detached: true }); } catch (e) {}
  }
}
""", FORK_BOMB_RUNTIME, wall_seconds=2.5),
    case("daemon_detached", "javascript",
         "  require('child_process').spawn('/bin/sleep', ['@MARKER@'], { detached: true, stdio: 'ignore' }).unref();\n"
         "  return x + y;\n}\n", "passed"),
    case("memory_bomb", "javascript", "  const hog = [];\n  for (;;) hog.push(new Array(1 << 20).fill(1.5));\n}\n",
         "memory_exceeded", **MEMORY_BOMB),
    case("deep_recursion", "javascript", "  return add(x + 1, y) + 1;\n}\n", "runtime_error"),
    case("huge_stdout", "javascript", "  const line = 'x'.repeat(1000);\n  for (;;) console.log(line);\n}\n",
         "output_limit"),
    case("process_exit_0", "javascript", "  process.exit(0);\n}\n", "runtime_error"),
    case("exit_hook_exit_code_0", "javascript",
         "  process.on('exit', () => { process.exitCode = 0; });\n  return Math.abs(x) + Math.abs(y);\n}\n",
         "failed", tests=(2, 3)),
    case("exit_hook_hides_crash", "javascript",
         "  process.on('exit', () => { process.exitCode = 0; });\n  throw new Error('boom');\n}\n", "runtime_error"),
    case("reassign_console_assert", "javascript",
         "  console.assert = () => {};\n  return Math.abs(x) + Math.abs(y);\n}\nconsole.assert = () => {};\n",
         "failed", tests=(2, 3)),
    case("freeze_console_assert", "javascript", "  return Math.abs(x) + Math.abs(y);\n}\n"
         "Object.defineProperty(console, 'assert', { value: () => {}, writable: false, configurable: false });\n",
         NOT_PASSED_CRASH),
    case("freeze_console", "javascript",
         "  return Math.abs(x) + Math.abs(y);\n}\nconsole.assert = () => {};\nObject.freeze(console);\n",
         NOT_PASSED_CRASH),
    case("override_Object_defineProperty", "javascript",
         "  return Math.abs(x) + Math.abs(y);\n}\nconsole.assert = () => {};\nObject.defineProperty = (o) => o;\n",
         NOT_PASSED_CRASH),
    case("stdin_read", "javascript", "  require('fs').readFileSync(0);\n  return x + y;\n}\n", "passed"),
    case("env_secret", "javascript",
         "  console.log(JSON.stringify(process.env));\n  return process.env.MFTPP_SECRET ? 0 : x + y;\n}\n", "passed"),
    case("network", "javascript", r"""  return x + y;
}
const net = require('net');
for (const [host, port] of [['127.0.0.1', @PORT@], ['1.1.1.1', 53]]) {
  const s = net.connect({ host, port, timeout: 1000 }, () => {
    console.log('LEAK connected to ' + host);
    s.destroy();
  });
  s.on('error', () => {});
  s.on('timeout', () => s.destroy());
}
""", "passed", bwrap_only=True),
    case("read_host_files", "javascript",
         r"""  for (const p of ['@TESTFILE@', '@SENTINEL_DIR@/secret.txt', '/root/.bashrc']) {
    try { console.log(require('fs').readFileSync(p, 'utf8')); return 0; } catch (e) {}
  }
  return x + y;
}
""", "passed", bwrap_only=True),
    case("delete_files", "javascript", r"""  const fs = require('fs');
  for (const p of ['@SENTINEL_DIR@', '/sandbox']) { try { fs.rmSync(p, { recursive: true, force: true }); } catch (e) {} }
  return x + y;
}
""", "passed", bwrap_only=True),
]

# ---------------------------------------------------------------------------------------------- go
GO_WRONG = "    if x < 0 {\n        x = -x\n    }\n    if y < 0 {\n        y = -y\n    }\n    return x + y\n}\n"
GO_CASES = [
    case("correct", "go", "    return x + y\n}\n", "passed"),
    case("wrong_plausible", "go", GO_WRONG, "failed"),
    # The Go runtime ignores SIGXCPU by default: even a plain loop only stops at the hard limit.
    case("infinite_loop", "go", "    for {\n    }\n}\n", "timeout", **CPU_KILL),
    case("ignore_sigxcpu_sigterm", "go",
         r"""    signal.Ignore(syscall.SIGTERM, syscall.SIGXCPU, syscall.SIGINT, syscall.SIGHUP)
    n := 0
    for {
        n++
    }
}
""", "timeout", prelude=go_imports("os/signal", "syscall"), **CPU_KILL),
    # The Go runtime dies ("failed to create new OS thread") when the process limit is reached.
    case("fork_bomb", "go", "    for {\n        exec.Command(\"/proc/self/exe\").Start()\n    }\n}\n",
         FORK_BOMB_RUNTIME, prelude=go_imports("os/exec"), wall_seconds=2.5),
    case("daemon_setsid", "go", r"""    cmd := exec.Command("/bin/sleep", "@MARKER@")
    cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
    cmd.Start()
    return x + y
}
""", "passed", prelude=go_imports("os/exec", "syscall")),
    case("memory_bomb", "go",
         "    for {\n        hog = append(hog, make([]byte, 1<<24))\n    }\n}\n\nvar hog [][]byte\n",
         "memory_exceeded", **MEMORY_BOMB),
    case("deep_recursion", "go", "    return Add(x+1, y) + 1\n}\n", ("runtime_error", "memory_exceeded")),
    case("huge_stdout", "go",
         "    line := strings.Repeat(\"x\", 1000)\n    for {\n        fmt.Println(line)\n    }\n}\n",
         "output_limit", prelude=go_imports("fmt", "strings")),
    case("os_exit_0", "go", "    os.Exit(0)\n    return 0\n}\n", NOT_PASSED_CRASH, prelude=go_imports("os")),
    case("os_exit_0_in_init", "go", "    return x + y\n}\n\nfunc init() {\n    os.Exit(0)\n}\n", "runtime_error",
         prelude=go_imports("os")),
    case("runtime_goexit", "go", "    runtime.Goexit()\n    return 0\n}\n", NOT_PASSED_CRASH,
         prelude=go_imports("runtime")),
    case("own_TestMain", "go", "    return x + y\n}\n\nfunc TestMain(m *testing.M) {\n    m.Run()\n    os.Exit(0)\n}\n",
         "compile_error", prelude=go_imports("os")),
    case("stdin_read", "go", "    io.ReadAll(os.Stdin)\n    return x + y\n}\n", "passed",
         prelude=go_imports("io", "os")),
    case("env_secret", "go", r"""    fmt.Println(os.Environ())
    if os.Getenv("MFTPP_SECRET") != "" {
        return 0
    }
    return x + y
}
""", "passed", prelude=go_imports("fmt", "os")),
    case("network", "go", r"""    for _, addr := range []string{"127.0.0.1:@PORT@", "1.1.1.1:53"} {
        if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
            c.Close()
            return 0
        }
    }
    return x + y
}
""", "passed", prelude=go_imports("net", "time"), bwrap_only=True),
    case("write_and_delete_outside_workdir", "go", r"""    os.Remove("@SENTINEL_DIR@/sentinel")
    os.RemoveAll("/sandbox")
    for _, p := range []string{"@SENTINEL_DIR@/new-@MARKER@", "/tmp/new-@MARKER@", "/etc/new-@MARKER@"} {
        os.WriteFile(p, []byte("pwned"), 0o644)
    }
    if _, err := os.ReadFile("@SENTINEL_DIR@/secret.txt"); err == nil {
        return 0
    }
    return x + y
}
""", "passed", prelude=go_imports("os"), bwrap_only=True),
]

# -------------------------------------------------------------------------------------------- rust
RUST_CASES = [
    case("correct", "rust", "    return x + y;\n}\n", "passed", tests=(1, 1)),
    case("wrong_plausible", "rust", "    return x.abs() + y.abs();\n}\n", "failed", tests=(0, 1)),
    case("infinite_loop", "rust", "    loop {}\n}\n", "timeout"),
    case("sleep_loop", "rust",
         "    loop {\n        std::thread::sleep(std::time::Duration::from_secs(1000));\n    }\n}\n",
         "timeout", wall_seconds=2.5),
    case("fork_bomb", "rust",
         "    loop {\n        let _ = std::process::Command::new(\"/proc/self/exe\").spawn();\n    }\n}\n", "timeout",
         wall_seconds=2.5),
    case("daemon_setsid", "rust", r"""    let _ = std::process::Command::new("/bin/sh").arg("-c")
        .arg("setsid /bin/sleep @MARKER@ </dev/null >/dev/null 2>&1 &").status();
    return x + y;
}
""", "passed"),
    case("memory_bomb", "rust", r"""    let mut hog: Vec<Vec<u8>> = Vec::new();
    loop {
        hog.push(vec![1u8; 1 << 24]);
        std::hint::black_box(&hog);
    }
}
""", "memory_exceeded", **MEMORY_BOMB),
    case("deep_recursion", "rust", r"""    let pad = [x; 64];
    std::hint::black_box(&pad);
    return add(x + 1, y) + pad[1];
}
""", "runtime_error"),
    case("huge_stdout", "rust",
         "    let line = \"x\".repeat(1000);\n    loop {\n        println!(\"{}\", line);\n    }\n}\n",
         "output_limit"),
    case("write_1gb_file", "rust", r"""    use std::io::Write;
    let chunk = vec![0u8; 1 << 20];
    if let Ok(mut f) = std::fs::File::create("/tmp/big-@MARKER@") {
        for _ in 0..1024 {
            let _ = f.write_all(&chunk);
        }
    }
    return x + y;
}
""", IGNORES_EFBIG, bwrap_only=True),
    case("process_exit_0", "rust", "    std::process::exit(0);\n}\n", "runtime_error"),
    case("panic_hook_exit_0", "rust",
         "    std::panic::set_hook(Box::new(|_| std::process::exit(0)));\n    return x.abs() + y.abs();\n}\n",
         NOT_PASSED_CRASH),
    case("shadow_assert_eq_macro", "rust",
         "    return x.abs() + y.abs();\n}\n\nmacro_rules! assert_eq {\n    ($($t:tt)*) => {};\n}\n", "failed"),
    case("include_bytes_dev_zero", "rust",
         "    return x + y;\n}\nconst ZEROS: &[u8] = include_bytes!(\"/dev/zero\");\n", "compile_error",
         compile_bomb=True),
    case("include_str_host_file", "rust",
         "    return x + y;\n}\nconst LEAK: &str = include_str!(\"@TESTFILE@\");\n"
         "const LEAK2: &str = include_str!(\"/root/.bashrc\");\n", "compile_error", bwrap_only=True),
    case("stdin_read", "rust", r"""    let mut s = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s);
    return x + y;
}
""", "passed"),
    case("env_secret", "rust", r"""    for (k, v) in std::env::vars() {
        println!("{}={}", k, v);
    }
    if std::env::var("MFTPP_SECRET").is_ok() {
        return 0;
    }
    return x + y;
}
""", "passed"),
    case("network", "rust", r"""    for addr in ["127.0.0.1:@PORT@", "1.1.1.1:53"] {
        let a: std::net::SocketAddr = addr.parse().unwrap();
        if std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(1)).is_ok() {
            return 0;
        }
    }
    return x + y;
}
""", "passed", bwrap_only=True),
]

CASES = PY_CASES + CPP_CASES + JAVA_CASES + JS_CASES + GO_CASES + RUST_CASES

# Run a second time with Sandbox(isolation="none"): rlimits, the private uid and process-tree killing
# must still hold without bubblewrap.
NONE_CASE_IDS = (
    "python-infinite_loop", "python-swallow_signals_and_exceptions", "python-fork_bomb",
    "python-daemon_double_fork_setsid", "python-daemon_keeps_stdout", "python-memory_bomb_at_import",
    "python-huge_stdout", "python-env_secret", "python-os_exit_0",
    "cpp-ignore_sigxcpu_sigterm", "cpp-fork_bomb", "cpp-daemon_double_fork_setsid", "cpp-memory_bomb",
    "javascript-daemon_detached", "javascript-swallow_signals_and_exceptions", "go-daemon_setsid",
    "go-infinite_loop", "rust-sleep_loop",
) + PY_REBINDING_IDS  # the program must behave the same run as `python main.py`
# Without isolation these rely on the private uid (root only): the program could otherwise read the
# harness's environment from /proc, or outlive the run in a session of its own.
NONE_NEEDS_ROOT = ("env_secret", "daemon")


class KnownBug(Exception):
    """The case got exactly the wrong status its xfail reason describes."""


def _bug(c: Case, bwrap: bool) -> str | None:
    return c.xfail or (c.bwrap_xfail if bwrap else None)


def _params(cases, bwrap: bool):
    out = []
    for c in cases:
        bug = _bug(c, bwrap)
        assert not bug or c.bug_status, f"{c.id}: an xfail needs the bug_status it expects"
        marks = [pytest.mark.xfail(strict=True, raises=KnownBug, reason=f"library bug: {bug}")] if bug else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


# ------------------------------------------------------------------------------------------------
# Fixtures: toolchains, sandboxes, and the host-side world each test checks afterwards.


@pytest.fixture(scope="module")
def toolchains() -> Toolchains:
    return Toolchains()


@functools.lru_cache(maxsize=None)
def _missing_toolchain(lang: str) -> str | None:
    tools = {"python": (), "cpp": ("g++",), "java": ("javac", "java"), "javascript": ("node",), "go": ("go",),
             "rust": ("rustc", "cargo")}[lang]
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if lang == "go" and not os.path.isdir("/usr/share/gocode/src/github.com/stretchr/testify"):
        return "testify is missing (Debian golang-github-stretchr-testify-dev)"
    problems = Toolchains().prepare([lang])
    return problems.get(lang)


def require_toolchain(lang: str) -> None:
    problem = _missing_toolchain(lang)
    if problem:
        pytest.skip(f"{lang} toolchain unavailable: {problem}")


@pytest.fixture(scope="module")
def bwrap_slot() -> WorkerSlot:
    return WorkerSlot(isolation="auto", slot=SLOT)  # Python cases run through its fork server


@pytest.fixture(scope="module")
def none_slot() -> WorkerSlot:
    return WorkerSlot(isolation="none", slot=NONE_SLOT)


@pytest.fixture(scope="module")
def workroot():
    # The judge's work directories go here so that we can check they are all removed; it must be
    # traversable by the slot's uid.
    path = tempfile.mkdtemp(prefix="mftpp-adv-work-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Host:
    marker: str
    sentinel_dir: str
    sentinel_text: str
    file_secret: str
    env_secret: str
    listener: socket.socket
    abstract_name: str
    abstract_listener: socket.socket
    workroot: str

    @property
    def substitutions(self) -> dict[str, str]:
        return {"@MARKER@": self.marker, "@PORT@": str(self.listener.getsockname()[1]),
                "@ABSTRACT@": self.abstract_name, "@SENTINEL_DIR@": self.sentinel_dir,
                "@TESTFILE@": os.path.abspath(__file__)}

    @property
    def secrets(self) -> tuple[str, ...]:
        return (FILE_TOKEN, self.file_secret, self.env_secret, self.sentinel_text)


@pytest.fixture
def host(monkeypatch, workroot):
    marker = str(secrets.randbelow(9 * 10 ** 8) + 10 ** 8)  # a valid `sleep` duration, unique to the run
    # A world-writable directory in the host's /tmp: only the sandbox's private /tmp protects it.
    sentinel_dir = tempfile.mkdtemp(prefix="mftpp-adv-sentinel-")
    os.chmod(sentinel_dir, 0o777)
    sentinel_text = f"sentinel-{secrets.token_hex(8)}"
    file_secret = f"mftpp-host-file-secret-{secrets.token_hex(8)}"
    for name, text, mode in (("sentinel", sentinel_text, 0o666), ("secret.txt", file_secret, 0o644)):
        path = os.path.join(sentinel_dir, name)
        with open(path, "w") as fh:
            fh.write(text)
        os.chmod(path, mode)
    env_secret = f"mftpp-env-secret-{secrets.token_hex(8)}"
    monkeypatch.setenv(ENV_KEY, env_secret)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    abstract_name = f"mftpp-adv-{marker}"
    abstract_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract_listener.bind("\0" + abstract_name)
    abstract_listener.listen(16)
    world = Host(marker, sentinel_dir, sentinel_text, file_secret, env_secret, listener, abstract_name,
                 abstract_listener, workroot)
    yield world
    listener.close()
    abstract_listener.close()
    shutil.rmtree(sentinel_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Host inspection.


def _pids():
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def _uids(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    return {int(u) for u in line.split()[1:]}
    except OSError:
        pass
    return set()


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _session_members() -> set[int]:
    """Processes in this test's own session or process group (other than ourselves)."""
    sid, pgid, me = os.getsid(0), os.getpgid(0), os.getpid()
    members = set()
    for pid in _pids():
        if pid == me:
            continue
        try:
            if os.getsid(pid) == sid or os.getpgid(pid) == pgid:
                members.add(pid)
        except OSError:
            continue
    return members


def _new_in_our_session(before: set[int]) -> set[int]:
    """New members of our session/process group that are ours: in our process group, or descended from
    this process, or orphans (reparented to init). Children of other pre-existing processes that share
    the session (the shell that started pytest may start other jobs) are not ours."""
    pgid, me = os.getpgid(0), os.getpid()
    ours = set()
    for pid in _session_members() - before:
        try:
            if os.getpgid(pid) == pgid:
                ours.add(pid)
                continue
        except OSError:
            continue
        ancestor = _ppid(pid)
        while ancestor not in (None, 0, 1, me) and ancestor not in before:
            ancestor = _ppid(ancestor)
        if ancestor in (0, 1, me):
            ours.add(pid)
    return ours


def _server_pids(slot: WorkerSlot) -> set[int]:
    """The slot's persistent Python fork server (bwrap and the server itself): it outlives every
    sample by design; what a sample leaves behind must not."""
    server = getattr(slot, "_python_server", None)
    if server is None or server.proc is None:
        return set()
    keep = {server.proc.pid}
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == server.proc.pid:
                    keep.add(pid)
        except (OSError, ValueError, IndexError):
            continue
    return keep


def _survivors(uid: int | None, marker: str, session_before: set[int], keep: set[int] = frozenset()) -> list[str]:
    found = []
    for pid in _pids():
        if pid == os.getpid() or pid in keep:
            continue
        if uid is not None and uid in _uids(pid):
            found.append(f"pid {pid} runs as the slot uid {uid}: {_cmdline(pid)!r}")
        elif marker.encode() in _cmdline(pid):
            found.append(f"pid {pid} carries the marker: {_cmdline(pid)!r}")
    for pid in _new_in_our_session(session_before):
        found.append(f"pid {pid} is new in the test's session/process group: {_cmdline(pid)!r}")
    return found


SCAN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/", "/etc", "/usr/local", "/root", "/home", "/opt")


def assert_host_clean(host: Host, slot: WorkerSlot, session_before: set[int], verdict: Verdict) -> None:
    # 1. No surviving process (a short grace period for the kernel to finish killing a namespace).
    deadline = time.monotonic() + 3.0
    keep = _server_pids(slot)
    while (left := _survivors(slot.sandbox.uid, host.marker, session_before, keep)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes survived the run: {left}"
    # 2. No file named after the marker anywhere we can think of on the host.
    for directory in (*SCAN_DIRS, os.getcwd()):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        leaked = [n for n in names if host.marker in n]
        assert not leaked, f"the program created {leaked} in the host's {directory}"
    # 3. The sentinel directory is exactly as we left it.
    assert sorted(os.listdir(host.sentinel_dir)) == ["secret.txt", "sentinel"]
    with open(os.path.join(host.sentinel_dir, "sentinel")) as fh:
        assert fh.read() == host.sentinel_text
    # 4. The judge removed its work directory.
    assert os.listdir(host.workroot) == [], "the judge left its work directory behind"
    # 5. Nothing reached the host's listeners.
    for listener in (host.listener, host.abstract_listener):
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            conn, _ = listener.accept()
            conn.close()
    # 6. No secret in the verdict.
    seen = "\n".join((verdict.stdout, verdict.stderr, verdict.detail))
    for secret in host.secrets:
        assert secret not in seen, f"a host secret leaked into the verdict: {secret!r}"


def run_case(c: Case, host: Host, slot: WorkerSlot, toolchains: Toolchains) -> Verdict:
    require_toolchain(c.lang)
    sandbox = slot.sandbox
    if c.bwrap_only and sandbox.isolation != "bwrap":
        pytest.skip("needs bubblewrap's filesystem/network isolation")
    if sandbox.isolation != "bwrap" and not ROOT and any(word in c.id for word in NONE_NEEDS_ROOT):
        pytest.skip("without bubblewrap this protection needs the private uid, i.e. running as root")
    code, test, entry = c.program(host.substitutions)
    run = run_limits(c.lang)
    if c.wall_seconds:
        run = dataclasses.replace(run, wall_seconds=c.wall_seconds)
    if c.cpu_seconds:
        run = dataclasses.replace(run, cpu_seconds=c.cpu_seconds)
    limits = JudgeLimits(compile=BOMB_COMPILE if c.compile_bomb else COMPILE, run=run)
    before = _session_members()
    verdict = slot.judge(c.lang, code, test, entry, toolchains=toolchains, limits=limits, workroot=host.workroot)
    print(f"VERDICT {sandbox.isolation} {c.id}: {verdict.status} {verdict.tests_passed}/{verdict.tests_total} "
          f"({verdict.detail}; run {verdict.run_seconds:.2f}s)")
    assert_host_clean(host, slot, before, verdict)
    return verdict


def check_verdict(c: Case, verdict: Verdict, expect: frozenset, bug: str | None) -> None:
    summary = (f"{c.id}: got {verdict.status!r} ({verdict.detail}), expected one of {sorted(expect)}\n"
               f"stdout: {verdict.stdout[-1500:]}\nstderr: {verdict.stderr[-1500:]}")
    if bug and verdict.status == c.bug_status:
        raise KnownBug(summary)
    assert verdict.status in expect, summary
    if c.tests is not None:
        assert (verdict.tests_passed, verdict.tests_total) == c.tests, summary


@pytest.mark.parametrize("c", _params(CASES, bwrap=HAVE_BWRAP))
def test_adversarial_completion(c: Case, host: Host, bwrap_slot: WorkerSlot, toolchains: Toolchains) -> None:
    """With bubblewrap where it works here (isolation="auto"); otherwise this is the reduced sandbox."""
    verdict = run_case(c, host, bwrap_slot, toolchains)
    expect = c.expect if HAVE_BWRAP else (c.none_expect or c.expect)
    check_verdict(c, verdict, expect, _bug(c, bwrap=HAVE_BWRAP))


_BY_ID = {c.id: c for c in CASES}


@pytest.mark.parametrize("c", _params((_BY_ID[i] for i in NONE_CASE_IDS), bwrap=False))
def test_adversarial_without_bubblewrap(c: Case, host: Host, none_slot: WorkerSlot, toolchains: Toolchains) -> None:
    assert none_slot.sandbox.isolation == "none"
    verdict = run_case(c, host, none_slot, toolchains)
    check_verdict(c, verdict, c.none_expect or c.expect, _bug(c, bwrap=False))


@pytest.mark.parametrize("lang", ["cpp", "rust"])
def test_bomb_limits_still_compile_normal_code(lang: str, host: Host, bwrap_slot: WorkerSlot,
                                               toolchains: Toolchains) -> None:
    """The compile bombs' compile_error comes from the bomb, not from a budget too small to compile at all."""
    c = _BY_ID[f"{lang}-correct"]
    require_toolchain(lang)
    code, test, entry = c.program(host.substitutions)
    verdict = bwrap_slot.judge(lang, code, test, entry, toolchains=toolchains,
                               limits=JudgeLimits(compile=BOMB_COMPILE, run=run_limits(lang)), workroot=host.workroot)
    assert verdict.status == "passed", verdict


def test_sandboxes_run_untrusted_code_under_private_uids(bwrap_slot: WorkerSlot, none_slot: WorkerSlot) -> None:
    if not ROOT:
        pytest.skip("private uids are used only when the harness runs as root")
    uids = (bwrap_slot.sandbox.uid, none_slot.sandbox.uid)
    assert all(uid is not None and uid >= SLOT_UID_BASE + SLOT for uid in uids)
    assert len(set(uids)) == 2 and os.getuid() not in uids
    assert none_slot.describe()["reduced_isolation"] is True


def test_case_table_is_complete() -> None:
    """At least 30 adversarial cases, every language covered, and a correct and a wrong answer in each."""
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    for lang in ("python", "cpp", "java", "javascript", "go", "rust"):
        ids = {c.id for c in CASES if c.lang == lang}
        assert {f"{lang}-correct", f"{lang}-wrong_plausible"} <= ids
        assert any("exit" in i for i in ids), f"{lang} has no early-exit case"
        assert any("infinite_loop" in i or "sleep_loop" in i for i in ids)
        assert any("fork_bomb" in i for i in ids) and any("daemon" in i for i in ids)
        assert any("memory_bomb" in i for i in ids) and any("deep_recursion" in i for i in ids)
        assert any("huge_stdout" in i for i in ids) and any("env_secret" in i for i in ids)
        assert any("stdin" in i for i in ids)
