"""Compile and run one instrumented program in the sandbox and decide its status.

The verdict is computed here, outside the sandbox, from the program's report lines (see
instrument.py), its exit status, the resource accounting and its error output — never from exit
code 0 alone. Judging is three steps, which the scheduler (scheduler.py) runs on different threads
so that the harness's own work overlaps with programs running: `prepare` (instrument under a fresh
nonce), running (`run_program` in a fresh sandbox, or `submit` to the slot's Python fork server),
and the verdict (`server_verdict` for the fork server's outcomes). `judge` is the three in a row.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
from dataclasses import asdict, dataclass, field

from .instrument import PY_RUNTIME_SOURCE, instrument, parse_report
from .toolchains import Toolchains, ToolchainError, toolchain
from .pyserver import PythonServer
from .sandbox import Limits, Outcome, Sandbox

STATUSES = ("passed", "failed", "runtime_error", "compile_error", "timeout", "memory_exceeded", "output_limit",
            "harness_error")
EXCERPT_CHARS = 2000


@dataclass(frozen=True)
class JudgeLimits:
    """Separate budgets for compiling and for running."""

    compile: Limits = field(default_factory=lambda: Limits(cpu_seconds=60, wall_seconds=90, memory_mb=4096,
                                                           processes=256, file_size_mb=256, tmp_mb=512))
    run: Limits = field(default_factory=Limits)


@dataclass
class Verdict:
    status: str
    tests_passed: int
    tests_total: int
    compile_seconds: float
    run_seconds: float
    stdout: str
    stderr: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Head and tail of a long text, with the cut marked."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n...[{len(text) - limit} chars cut]...\n{text[-half:]}"


@dataclass(frozen=True)
class Program:
    """An instrumented program ready to run: its files and the nonce of its report lines."""

    language: str  # the toolchain's name
    files: dict[str, str]
    nonce: str


def prepare(language: str, code: str, test: str, entry_point: str | None) -> Program | Verdict:
    """Instrument `code` (prompt + completion) with the benchmark's `test` under a fresh nonce; a test
    that cannot be instrumented gives a `harness_error` verdict instead."""
    lang = toolchain(language)
    nonce = secrets.token_hex(16)
    try:
        files = instrument(lang.name, code, test, entry_point, nonce)
    except (ValueError, SyntaxError) as exc:
        return Verdict("harness_error", 0, 0, 0.0, 0.0, "", "", f"could not instrument the test: {exc}")
    return Program(lang.name, files, nonce)


def judge(language: str, code: str, test: str, entry_point: str | None, *, sandbox: Sandbox,
          toolchains: Toolchains, limits: JudgeLimits = JudgeLimits(), workroot: str | None = None,
          python_server: PythonServer | None = None) -> Verdict:
    """Run `code` (prompt + completion) against the benchmark's `test` and return the verdict.
    `python_server`: the worker slot's warm fork server (slot.py), which runs a Python sample in
    place of a fresh sandbox and interpreter; without it every sample gets its own."""
    program = prepare(language, code, test, entry_point)
    if isinstance(program, Verdict):
        return program
    if python_server is not None and program.language == "python":  # no work directory, no interpreter start-up
        submit(python_server, program, limits)
        return server_verdict(program, python_server.receive(), limits, sandbox)
    return run_program(program, sandbox=sandbox, toolchains=toolchains, limits=limits, workroot=workroot)


def submit(server: PythonServer, program: Program, limits: JudgeLimits) -> None:
    """Hand a Python program to a fork server; `server.receive()` then gives its outcome."""
    server.submit(program.files["main.py"], limits.run, runtime=PY_RUNTIME_SOURCE)


def server_verdict(program: Program, out: Outcome, limits: JudgeLimits, sandbox: Sandbox) -> Verdict:
    """The verdict of a program the fork server ran."""
    return _verdict(out, program.nonce, 0.0, toolchain(program.language), limits, sandbox)


def run_program(program: Program, *, sandbox: Sandbox, toolchains: Toolchains, limits: JudgeLimits = JudgeLimits(),
                workroot: str | None = None) -> Verdict:
    """Compile (where the language needs it) and run a program in a fresh sandbox of its own."""
    lang = toolchain(program.language)
    workdir = tempfile.mkdtemp(prefix="mftpp-", dir=workroot)
    try:
        os.chmod(workdir, 0o755)
        for name, text in program.files.items():
            path = os.path.join(workdir, name)
            with open(path, "w", encoding="utf-8", errors="surrogatepass") as fh:
                fh.write(text)
            os.chmod(path, 0o644)
        return _compile_and_run(lang, workdir, program.nonce, sandbox, toolchains, limits)
    except ToolchainError as exc:
        return Verdict("harness_error", 0, 0, 0.0, 0.0, "", "", str(exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _compile_and_run(lang, workdir, nonce, sandbox, toolchains, limits) -> Verdict:
    compile_seconds = 0.0
    if lang.compile:
        # Compilers run no untrusted code; they run as the calling user so that toolchains installed
        # in a private home directory stay reachable. The sandbox and limits still apply.
        out = sandbox.run(toolchains.compile_argv(lang), workdir, limits.compile, writable_workdir=True,
                          unprivileged=False, env=toolchains.env(lang, "compile"),
                          ro_binds=toolchains.ro_binds(lang, "compile"), rw_binds=toolchains.rw_binds(lang, "compile"),
                          binds_to=toolchains.binds_to(lang))
        compile_seconds = out.wall_seconds
        if out.sandbox_error:
            return Verdict("harness_error", 0, 0, compile_seconds, 0.0, "", "", out.sandbox_error)
        if out.returncode != 0:
            why = _resource_problem(out, limits.compile, sandbox, lang) or "compiler reported errors"
            return Verdict("compile_error", 0, 0, compile_seconds, 0.0, excerpt(out.stdout), excerpt(out.stderr),
                           f"compile failed: {why}")
        # The run step (another uid) must be able to read what the compiler wrote.
        for base, dirs, names in os.walk(workdir):
            for name in dirs + names:
                os.chmod(os.path.join(base, name), 0o755)
    out = sandbox.run(toolchains.run_argv(lang), workdir, limits.run, env=toolchains.env(lang, "run"),
                      ro_binds=toolchains.ro_binds(lang, "run"), binds_to=toolchains.binds_to(lang))
    return _verdict(out, nonce, compile_seconds, lang, limits, sandbox)


def _verdict(out: Outcome, nonce: str, compile_seconds: float, lang, limits: JudgeLimits, sandbox: Sandbox) -> Verdict:
    if out.sandbox_error:
        return Verdict("harness_error", 0, 0, compile_seconds, 0.0, "", "", out.sandbox_error)
    cases, done = parse_report(out.stdout, nonce)
    status, detail = classify(out, cases, done, lang, limits.run, sandbox)
    stdout = out.stdout.replace(nonce, "<nonce>")
    # Languages whose tests cannot be split report no cases: the whole test is then one case.
    passed_cases, total_cases = (cases.count("ok"), len(cases)) if cases else (int(status == "passed"), 1)
    return Verdict(status, passed_cases, total_cases, compile_seconds, out.wall_seconds, excerpt(stdout),
                   excerpt(out.stderr), detail)


def _signal_of(out: Outcome, sandbox: Sandbox) -> int | None:
    if out.signal is not None:
        return out.signal
    # bubblewrap reports a child killed by signal N as exit status 128 + N.
    if sandbox.isolation == "bwrap" and out.returncode is not None and 128 < out.returncode < 128 + 65:
        return out.returncode - 128
    return None


def _mentions(out: Outcome, patterns: tuple[str, ...]) -> bool:
    # Runtimes disagree on the stream: the Go test binary and the JVM's start-up errors use stdout.
    return any(p in out.stderr or p in out.stdout for p in patterns)


# Peak RSS at or above this share of the address-space limit counts as "at the memory limit": the
# rest of the address space is the runtime's own unresident mappings (a Python memory bomb under a
# 512 MB limit peaks at ~498 MB RSS when its allocation fails).
MEMORY_NEAR_LIMIT = 0.9


def memory_evidence(out: Outcome, limits: Limits, lang) -> bool:
    """The program's allocations failed (the runtime's out-of-memory message) or its peak RSS
    reached the memory limit. Both are measurements of the program, not of the machine's speed."""
    return _mentions(out, lang.memory_patterns) or out.max_rss_mb >= MEMORY_NEAR_LIMIT * limits.memory_mb


def _resource_problem(out: Outcome, limits: Limits, sandbox: Sandbox, lang) -> str | None:
    """Which limit stopped the program, if any. Memory is decided before time: filling the address
    space costs CPU (page zeroing is system time), so on a slow machine a memory bomb can hit the
    CPU limit or the wall clock first. A program stopped by a time limit while at the memory limit,
    or after its allocations failed, is `memory_exceeded` on every machine."""
    sig = _signal_of(out, sandbox)
    if out.output_exceeded:
        return "output_limit"
    if memory_evidence(out, limits, lang):
        return "memory_exceeded"
    if out.wall_timeout or sig == signal.SIGXCPU or out.cpu_seconds >= limits.cpu_seconds:
        return "timeout"
    if sig == signal.SIGXFSZ:
        return "file size limit"
    # A SIGKILL we did not send is the kernel enforcing the hard CPU limit (programs that ignore
    # or handle SIGXCPU — the Go runtime does — get it one second after the soft limit).
    if sig == signal.SIGKILL:
        return "timeout"
    return None


def classify(out: Outcome, cases: list[str], done: bool, lang, limits: Limits, sandbox: Sandbox) -> tuple[str, str]:
    """Status as if the program had stopped at its first failing check (the usual semantics), plus why."""
    for i, case in enumerate(cases):
        if case == "fail":
            return "failed", f"test case {i} failed"
        if case == "error":
            if _mentions(out, lang.memory_patterns):
                return "memory_exceeded", f"test case {i} ran out of memory"
            return "runtime_error", f"test case {i} raised an error"
    problem = _resource_problem(out, limits, sandbox, lang)
    if done and problem is None and out.returncode == 0:
        return "passed", f"{len(cases)} test case(s) passed" if cases else "all tests passed"
    if problem in ("output_limit", "timeout", "memory_exceeded"):
        return problem, f"{problem} after {len(cases)} passing test case(s)"
    if problem:
        return "runtime_error", problem
    if _mentions(out, lang.assertion_patterns):
        return "failed", "a test assertion failed"
    if done:
        return "runtime_error", f"tests finished but the program then exited with status {out.returncode}"
    sig = _signal_of(out, sandbox)
    if sig is not None:
        return "runtime_error", f"killed by signal {signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig}"
    return "runtime_error", f"exited with status {out.returncode} before the tests finished"
