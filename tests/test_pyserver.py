"""The warm Python fork server: one sample cannot see or touch the next, or the server itself."""

import pytest

from mftcoder_pp.execution.judge import JudgeLimits, judge
from mftcoder_pp.execution.toolchains import Toolchains
from mftcoder_pp.execution.sandbox import Limits, Sandbox
from mftcoder_pp.execution.slot import WorkerSlot

pytestmark = [pytest.mark.sandbox,
              pytest.mark.skipif(Sandbox().isolation != "bwrap", reason="the fork server needs bubblewrap")]
LIMITS = Limits(cpu_seconds=2, wall_seconds=5)


@pytest.fixture
def server():
    slot = WorkerSlot()
    srv = slot.python_server(Toolchains().python)
    yield srv
    slot.close()


def test_consecutive_samples_do_not_share_files_or_processes(server):
    first = server.run(
        "import os\nopen('/tmp/left-behind', 'w').write('x')\n"
        "if os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(60)\nprint('started')\n", LIMITS)
    assert first.stdout.strip() == "started"
    second = server.run("import os\nprint(os.path.exists('/tmp/left-behind'))\n"
                        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n", LIMITS)
    exists, pids = second.stdout.splitlines()
    assert exists == "False"
    assert len(eval(pids)) == 2  # the server (pid 1) and this sample: the daemon is gone


def test_samples_cannot_read_or_kill_the_server(server):
    out = server.run("import os, signal\nfor p in ('/proc/1/mem', '/proc/1/environ', '/proc/1/fd/1'):\n"
                     "    try:\n        open(p, 'rb').read(1)\n        print('read', p)\n"
                     "    except OSError:\n        pass\nos.kill(1, signal.SIGKILL)\nprint('done')\n", LIMITS)
    assert out.stdout.strip() == "done"
    assert server.run("print(42)\n", LIMITS).stdout.strip() == "42"


def test_exit_semantics_match_a_fresh_interpreter(server):
    assert server.run("import sys\nsys.exit(3)\n", LIMITS).returncode == 3
    assert server.run("raise SystemExit('bye')\n", LIMITS).returncode == 1
    crash = server.run("1/0\n", LIMITS)
    assert crash.returncode == 1 and "ZeroDivisionError" in crash.stderr
    hooked = server.run("import atexit, os\natexit.register(lambda: os._exit(7))\n", LIMITS)
    assert hooked.returncode == 7
    assert server.run("print(__name__, __file__)\n", LIMITS).stdout.split()[0] == "__main__"


def test_server_and_fresh_sandbox_agree_on_statuses():
    cases = {
        "passed": "    return a + b\n",
        "failed": "    return a - b\n",
        "runtime_error": "    import sys\n    sys.exit(0)\n",
        "timeout": "    while True:\n        pass\n",
    }
    test = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(0, 0) == 0\n"
    prompt = "def add(a, b):\n"
    tc = Toolchains()
    for fork_server in (True, False):
        slot = WorkerSlot(python_fork_server=fork_server)
        try:
            for expected, body in cases.items():
                v = slot.judge("python", prompt + body, test, "add", toolchains=tc, limits=JudgeLimits(run=LIMITS))
                assert v.status == expected, (fork_server, expected, v)
                # the plain judge, without the slot's server, agrees too
                assert judge("python", prompt + body, test, "add", sandbox=slot.sandbox, toolchains=tc,
                             limits=JudgeLimits(run=LIMITS)).status == expected
        finally:
            slot.close()


def test_server_refuses_to_run_outside_its_own_pid_namespace():
    import subprocess
    import sys

    from mftcoder_pp.execution.pyserver import SERVER_SOURCE

    # Empty stdin: even without the guard the server would exit at once, before any cleanup.
    res = subprocess.run([sys.executable, "-c", SERVER_SOURCE], input=b"", capture_output=True, timeout=60)
    assert res.returncode != 0 and b"own PID namespace" in res.stderr


def _program(code: str, nonce: str = "0123456789abcdef0123456789abcdef") -> str:
    from mftcoder_pp.execution.instrument import instrument

    return instrument("python", code, "def check(candidate):\n    assert candidate(2) == 4\n", "f", nonce)["main.py"]


def test_the_runtime_compiled_by_the_server_is_the_programs_own(server):
    from mftcoder_pp.execution.instrument import PY_RUNTIME_SOURCE

    source = _program("def f(x):\n    return x * 2\n")
    plain = server.run(source, LIMITS)
    warm = [server.run(source, LIMITS, runtime=PY_RUNTIME_SOURCE) for _ in range(2)]  # sent once, then reused
    assert plain.returncode == 0 and "case:0:ok" in plain.stdout and plain.stdout.rstrip().endswith(":done")
    assert [(o.returncode, o.stdout, o.stderr) for o in warm] == [(plain.returncode, plain.stdout, plain.stderr)] * 2
    # Tracebacks point at the same lines of main.py either way.
    crash = _program("def f(x):\n    return 1 / 0\n")
    assert server.run(crash, LIMITS).stderr == server.run(crash, LIMITS, runtime=PY_RUNTIME_SOURCE).stderr


def test_a_runtime_that_is_not_the_programs_own_is_not_used(server):
    from mftcoder_pp.execution.instrument import PY_RUNTIME_SOURCE

    other = PY_RUNTIME_SOURCE + "raise SystemExit(99)\n"  # what a stale or wrong runtime would run
    out = server.run(_program("def f(x):\n    return x * 2\n"), LIMITS, runtime=other)
    assert out.returncode == 0 and out.stdout.rstrip().endswith(":done")


def test_closing_the_server_accounts_for_the_cpu_its_samples_used():
    import resource

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    slot = WorkerSlot()
    srv = slot.python_server(Toolchains().python)
    before = children_cpu()
    # The sample spins until it has used 0.3 s of its own CPU and prints what it used: the harness must
    # account at least that (a relation between two CPU-time readings, not a speed).
    out = srv.run("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3:\n    pass\n"
                  "print(time.process_time())\n", LIMITS)
    assert out.cpu_seconds >= float(out.stdout.split()[-1]) - 0.01
    slot.close()  # the server exits on end of input and is reaped with its samples' CPU time
    assert children_cpu() - before >= out.cpu_seconds - 0.01
