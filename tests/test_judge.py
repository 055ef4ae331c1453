"""Unit tests of the verdict logic: instrument.parse_report, judge.classify, judge.excerpt, and
per-test-case counting through the whole judge (python, cpp, javascript)."""

from __future__ import annotations

import os
import shutil
import signal
from types import SimpleNamespace

import pytest

from mftcoder_pp.execution.instrument import MARK, instrument, parse_report
from mftcoder_pp.execution.judge import EXCERPT_CHARS, STATUSES, JudgeLimits, classify, excerpt, judge
from mftcoder_pp.execution.toolchains import Toolchains, toolchain
from mftcoder_pp.execution.sandbox import Limits, Outcome, Sandbox

NONCE = "0123456789abcdef0123456789abcdef"


def line(rest: str, nonce: str = NONCE) -> str:
    return f"{MARK}:{nonce}:{rest}"


# ------------------------------------------------------------------------------------ parse_report


def test_parse_report_reads_cases_in_order_and_done() -> None:
    out = "\n".join(["hello", line("case:0:ok"), line("case:1:fail"), "noise", line("case:2:error"),
                     line("case:3:ok"), line("done"), ""])
    assert parse_report(out, NONCE) == (["ok", "fail", "error", "ok"], True)


def test_parse_report_empty_and_no_done() -> None:
    assert parse_report("", NONCE) == ([], False)
    assert parse_report(line("case:0:ok") + "\n", NONCE) == (["ok"], False)
    assert parse_report(line("done"), NONCE) == ([], True)


def test_parse_report_ignores_other_nonces_and_forgeries() -> None:
    other = "f" * 32
    out = "\n".join([line("case:0:ok", other), line("done", other), line("case:0:fail"),
                     f"{MARK}:{NONCE[:-1]}:done",  # a truncated nonce
                     f"{MARK}::done", f"{MARK}:{NONCE}done"])
    assert parse_report(out, NONCE) == (["fail"], False)


def test_parse_report_needs_the_line_to_start_with_the_mark() -> None:
    out = "\n".join(["prefix " + line("done"), " " + line("case:0:ok"), line("done") + " trailing",
                     line("DONE"), line("done2")])
    assert parse_report(out, NONCE) == ([], False)


def test_parse_report_handles_crlf_and_unterminated_output() -> None:
    out = line("case:0:ok") + "\r\n" + line("case:1:ok") + "\r\n" + line("done")
    assert parse_report(out, NONCE) == (["ok", "ok"], True)
    # A report line glued to program output that did not end with a newline is not at line start.
    assert parse_report("partial" + line("done"), NONCE) == ([], False)


def test_parse_report_case_status_is_the_last_field() -> None:
    out = "\n".join([line("case:10:ok"), line("case:11:fail"), line("case:x:error")])
    assert parse_report(out, NONCE) == (["ok", "fail", "error"], False)


def test_instrumented_programs_use_the_nonce_parse_report_expects() -> None:
    files = instrument("python", "def f(x):\n    return x\n", "def check(c):\n    assert c(1) == 1\n\ncheck(f)\n",
                       "f", NONCE)
    assert f"_mftpp_nonce = {NONCE!r}" in files["main.py"]
    files = instrument("cpp", "int f(int x){ return x; }\n", "#include<assert.h>\nint main(){ assert(f(1)==1); }\n",
                       None, NONCE)
    assert NONCE in files["main.cpp"]


# ---------------------------------------------------------------------------------------- classify

RUN = Limits(cpu_seconds=2, wall_seconds=4, memory_mb=512)
BWRAP = SimpleNamespace(isolation="bwrap")
NO_BWRAP = SimpleNamespace(isolation="none")


def outcome(returncode=0, sig=None, *, stdout="", stderr="", wall_timeout=False, output_exceeded=False,
            cpu=0.1, rss=20.0) -> Outcome:
    return Outcome(returncode=returncode, signal=sig, stdout=stdout, stderr=stderr, wall_seconds=0.2,
                   cpu_seconds=cpu, max_rss_mb=rss, wall_timeout=wall_timeout, output_exceeded=output_exceeded)


def status(out: Outcome, cases=(), done=True, lang="python", sandbox=BWRAP) -> tuple[str, str]:
    result = classify(out, list(cases), done, toolchain(lang), RUN, sandbox)
    assert result[0] in STATUSES
    return result


def test_classify_passed_needs_done_and_exit_0() -> None:
    assert status(outcome(), ["ok", "ok", "ok"])[0] == "passed"
    assert status(outcome(), [], done=True, lang="java") == ("passed", "all tests passed")
    assert status(outcome(), ["ok"], done=False)[0] == "runtime_error"  # early exit(0)
    st, detail = status(outcome(returncode=1), ["ok"], done=True)
    assert st == "runtime_error" and "exited with status 1" in detail


def test_classify_first_failing_case_decides() -> None:
    assert status(outcome(), ["ok", "fail", "ok"]) == ("failed", "test case 1 failed")
    assert status(outcome(), ["ok", "error", "fail"]) == ("runtime_error", "test case 1 raised an error")
    assert status(outcome(), ["fail", "error"])[0] == "failed"
    # Reported case results win over what happened afterwards.
    assert status(outcome(wall_timeout=True), ["fail"], done=False)[0] == "failed"
    assert status(outcome(output_exceeded=True), ["ok", "error"], done=False)[0] == "runtime_error"


def test_classify_timeouts() -> None:
    assert status(outcome(returncode=None, sig=signal.SIGKILL, wall_timeout=True), done=False)[0] == "timeout"
    assert status(outcome(returncode=None, sig=signal.SIGXCPU), done=False)[0] == "timeout"
    assert status(outcome(returncode=None, sig=signal.SIGKILL, cpu=2.0), done=False)[0] == "timeout"
    # bubblewrap reports a child killed by SIGXCPU as exit status 128 + 24 ...
    assert status(outcome(returncode=128 + signal.SIGXCPU), done=False, sandbox=BWRAP)[0] == "timeout"
    # ... without bubblewrap that is just an exit status.
    st, detail = status(outcome(returncode=128 + signal.SIGXCPU), done=False, sandbox=NO_BWRAP)
    assert st == "runtime_error" and "exited with status 152" in detail
    # Even after all tests passed, running out of time is a timeout.
    st, detail = status(outcome(wall_timeout=True), ["ok", "ok"], done=True)
    assert st == "timeout" and "2 passing" in detail


def test_classify_output_limit_wins_over_timeout() -> None:
    out = outcome(returncode=None, sig=signal.SIGKILL, wall_timeout=True, output_exceeded=True)
    assert status(out, done=False)[0] == "output_limit"


@pytest.mark.parametrize(("lang", "stderr"), [
    ("python", "Traceback ...\nMemoryError\n"),
    ("cpp", "terminate called after throwing an instance of 'std::bad_alloc'\n"),
    ("java", "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n"),
    ("javascript", "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n"),
    ("go", "fatal error: runtime: out of memory\n"),
    ("rust", "memory allocation of 17179869184 bytes failed\n"),
])
def test_classify_memory_patterns(lang: str, stderr: str) -> None:
    assert status(outcome(returncode=1, stderr=stderr), done=False, lang=lang)[0] == "memory_exceeded"


def test_classify_memory_by_max_rss() -> None:
    assert status(outcome(returncode=None, sig=signal.SIGKILL, rss=0.95 * RUN.memory_mb), done=False)[0] == \
        "memory_exceeded"
    # A SIGKILL the harness did not send, without memory pressure: the kernel's hard CPU limit.
    assert status(outcome(returncode=None, sig=signal.SIGKILL, rss=0.5 * RUN.memory_mb), done=False)[0] == \
        "timeout"


@pytest.mark.parametrize("stopped_by", ["sigxcpu", "cpu_seconds", "wall_clock", "hard_cpu_sigkill"])
def test_classify_memory_wins_over_time_limits(stopped_by: str) -> None:
    """A memory bomb on a machine slow at zeroing pages hits a time limit first; what was measured
    (peak RSS at the limit, or failing allocations) decides, not which limit fired first."""
    stop = {"sigxcpu": dict(returncode=None, sig=signal.SIGXCPU),
            "cpu_seconds": dict(returncode=None, sig=signal.SIGKILL, cpu=RUN.cpu_seconds + 0.4),
            "wall_clock": dict(returncode=None, sig=signal.SIGKILL, wall_timeout=True),
            "hard_cpu_sigkill": dict(returncode=None, sig=signal.SIGKILL)}[stopped_by]
    at_limit = outcome(**stop, rss=0.97 * RUN.memory_mb)
    assert status(at_limit, done=False) == ("memory_exceeded", "memory_exceeded after 0 passing test case(s)")
    allocations_failing = outcome(**stop, rss=0.3 * RUN.memory_mb, stderr="Traceback ...\nMemoryError\n")
    assert status(allocations_failing, ["ok"], done=False)[0] == "memory_exceeded"
    assert status(outcome(**stop, rss=0.5 * RUN.memory_mb), done=False)[0] == "timeout"


def test_classify_memory_rule_threshold() -> None:
    from mftcoder_pp.execution.judge import MEMORY_NEAR_LIMIT

    just_below = outcome(returncode=None, sig=signal.SIGXCPU, rss=MEMORY_NEAR_LIMIT * RUN.memory_mb - 1)
    at = outcome(returncode=None, sig=signal.SIGXCPU, rss=MEMORY_NEAR_LIMIT * RUN.memory_mb)
    assert status(just_below, done=False)[0] == "timeout"
    assert status(at, done=False)[0] == "memory_exceeded"


def test_classify_file_size_limit_is_a_runtime_error() -> None:
    assert status(outcome(returncode=None, sig=signal.SIGXFSZ), done=False) == ("runtime_error", "file size limit")
    assert status(outcome(returncode=128 + signal.SIGXFSZ), done=False, sandbox=BWRAP) == \
        ("runtime_error", "file size limit")


@pytest.mark.parametrize(("lang", "stderr"), [
    ("python", "AssertionError\n"),
    ("cpp", "main: main.cpp:9: int main(): Assertion `f(1) == 2' failed.\n"),
    ("java", "Exception in thread \"main\" java.lang.AssertionError\n"),
    ("javascript", "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal\n"),
    ("rust", "thread 'main' panicked at 'assertion failed: `(left == right)`'\n"),
])
def test_classify_assertion_patterns_in_stderr_mean_failed(lang: str, stderr: str) -> None:
    assert status(outcome(returncode=1, stderr=stderr), done=False, lang=lang) == ("failed", "a test assertion failed")


def test_classify_node_internal_check_is_not_a_test_failure() -> None:
    # What node prints when a fork bomb exhausts the process limit: its own CHECK, then bad_alloc.
    stderr = "#  Assertion failed: (options.env[i]) != nullptr\nterminate called after throwing an instance of 'std::bad_alloc'\n"
    assert status(outcome(returncode=None, sig=signal.SIGABRT, stderr=stderr), done=False,
                  lang="javascript")[0] == "memory_exceeded"


def test_classify_signals_name_the_signal() -> None:
    st, detail = status(outcome(returncode=None, sig=signal.SIGSEGV), done=False)
    assert st == "runtime_error" and "SIGSEGV" in detail
    st, detail = status(outcome(returncode=128 + signal.SIGABRT), done=False, sandbox=BWRAP)
    assert st == "runtime_error" and "SIGABRT" in detail


def test_classify_exit_before_done() -> None:
    st, detail = status(outcome(returncode=0), done=False)
    assert st == "runtime_error" and "before the tests finished" in detail
    st, detail = status(outcome(returncode=3), ["ok"], done=False)
    assert st == "runtime_error" and "status 3" in detail


# ----------------------------------------------------------------------------------------- excerpt


def test_excerpt_short_texts_are_unchanged() -> None:
    assert excerpt("") == ""
    assert excerpt("abc") == "abc"
    text = "x" * EXCERPT_CHARS
    assert excerpt(text) == text
    assert excerpt("12345", limit=5) == "12345"


def test_excerpt_keeps_head_and_tail_and_counts_the_cut() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(10_000))
    out = excerpt(text, limit=100)
    head, middle, tail = out.split("\n")
    assert head == text[:50] and tail == text[-50:]
    assert middle == f"...[{10_000 - 100} chars cut]..."
    assert len(excerpt("y" * 5000)) < 5000
    assert excerpt("y" * 5000).startswith("y" * (EXCERPT_CHARS // 2))


def test_excerpt_odd_limit() -> None:
    out = excerpt("abcdefghij", limit=5)
    assert out.startswith("ab\n") and out.endswith("\nij") and "[5 chars cut]" in out


# ------------------------------------------------------------------------ per-test-case counting

COUNT_LIMITS = JudgeLimits(run=Limits(cpu_seconds=2, wall_seconds=10, memory_mb=1024, processes=32))

PY_CODE = "def add(x, y):\n    return abs(x) + abs(y)\n"
PY_TEST = ("def check(candidate):\n    values = [1, 2]\n    assert candidate(2, 3) == 5\n"
           "    assert candidate(-1, 1) == 0\n    assert candidate(0, 0) == 0\n\ncheck(add)\n")
CPP_CODE = "#include<stdlib.h>\nint add(int x,int y){\n    return abs(x) + abs(y);\n}\n"
CPP_TEST = ("#undef NDEBUG\n#include<assert.h>\nint main(){\n    assert (add(2, 3) == 5);\n"
            "    assert (add(-1, 1) == 0);\n    assert (add(0, 0) == 0);\n}\n")
JS_CODE = "const add = (x, y) => {\n  return Math.abs(x) + Math.abs(y);\n}\n"
JS_TEST = ("const testAdd = () => {\n  console.assert(add(2, 3) === 5)\n  console.assert(add(-1, 1) === 0)\n"
           "  console.assert(add(0, 0) === 0)\n}\n\ntestAdd()\n")


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(slot=39)


@pytest.mark.parametrize(("lang", "code", "test", "entry", "tool"), [
    ("python", PY_CODE, PY_TEST, "add", None),
    ("cpp", CPP_CODE, CPP_TEST, None, "g++"),
    ("javascript", JS_CODE, JS_TEST, None, "node"),
], ids=["python", "cpp", "javascript"])
def test_one_failing_case_of_three(lang, code, test, entry, tool, sandbox) -> None:
    if tool and shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    verdict = judge(lang, code, test, entry, sandbox=sandbox, toolchains=Toolchains(), limits=COUNT_LIMITS)
    assert verdict.status == "failed", verdict
    assert (verdict.tests_passed, verdict.tests_total) == (2, 3), verdict
    assert verdict.detail == "test case 1 failed"
    assert "<nonce>" in verdict.stdout and not verdict.passed


@pytest.mark.parametrize(("lang", "code", "test", "entry", "tool"), [
    ("python", PY_CODE.replace("abs(x) + abs(y)", "x + y"), PY_TEST, "add", None),
    ("cpp", CPP_CODE.replace("abs(x) + abs(y)", "x + y"), CPP_TEST, None, "g++"),
    ("javascript", JS_CODE.replace("Math.abs(x) + Math.abs(y)", "x + y"), JS_TEST, None, "node"),
], ids=["python", "cpp", "javascript"])
def test_all_three_cases_pass(lang, code, test, entry, tool, sandbox) -> None:
    if tool and shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    verdict = judge(lang, code, test, entry, sandbox=sandbox, toolchains=Toolchains(), limits=COUNT_LIMITS)
    assert verdict.status == "passed", verdict
    assert (verdict.tests_passed, verdict.tests_total) == (3, 3)
    assert verdict.to_dict()["passed"] is True


def test_python_cases_are_top_level_statements_with_asserts() -> None:
    """A loop of asserts is one case; setup statements are not cases; later cases still run after a failure."""
    test = ("def check(candidate):\n    data = [(1, 1), (2, 2)]\n    for a, b in data:\n"
            "        assert candidate(a) == b\n    assert candidate(3) == 4\n"
            "    assert candidate(5) == 5\n\ncheck(ident)\n")
    verdict = judge("python", "def ident(x):\n    return x\n", test, "ident", sandbox=Sandbox(slot=39),
                    toolchains=Toolchains(), limits=COUNT_LIMITS)
    assert (verdict.status, verdict.tests_passed, verdict.tests_total) == ("failed", 2, 3)
    assert verdict.detail == "test case 1 failed"


@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_a_big_harness_process_does_not_make_small_programs_look_out_of_memory(tmp_path, isolation):
    """Linux keeps a forked child's inherited RSS as its peak across exec: a program started by a
    process holding 600 MB (a training run that then evaluates) must not report that as its own."""
    from mftcoder_pp.execution.sandbox import Limits, Sandbox

    import tempfile

    ballast = bytearray(600 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page: resident
    with tempfile.TemporaryDirectory() as work:  # reachable by the sandbox's private uid
        os.chmod(work, 0o777)
        out = Sandbox(isolation=isolation).run(["/bin/true"], work, Limits(memory_mb=512))
    assert out.returncode == 0 and out.max_rss_mb < 0.9 * 512
    del ballast


def test_python_tests_are_instrumented_once_per_task() -> None:
    import ast

    from mftcoder_pp.execution.instrument import PY_RUNTIME_SOURCE, _python_test

    test = "def check(candidate):\n    assert candidate(3) == 3\n    assert candidate(4) == 4\n\ncheck(f)\n"
    _python_test.cache_clear()
    programs = [instrument("python", f"def f(x):\n    return x  # sample {i}\n", test, "f", f"{i:032x}")["main.py"]
                for i in range(10)]
    info = _python_test.cache_info()
    assert (info.misses, info.hits) == (1, 9)
    def literals(program: str) -> dict:
        return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(program).body
                if isinstance(node, ast.Assign)}

    first = literals(programs[0])
    for i, program in enumerate(programs):
        values = literals(program)
        # Everything but the code and the nonce is the same; the runtime is the text the fork server compiles.
        assert values["_mftpp_runtime"] == PY_RUNTIME_SOURCE
        assert values["_mftpp_nonce"] == f"{i:032x}" and f"# sample {i}" in values["_mftpp_code"]
        assert values["_mftpp_test"] == first["_mftpp_test"] and values["_mftpp_args"] == first["_mftpp_args"]
