"""A warm Python fork server inside one bubblewrap sandbox per worker slot, for Python samples.

Starting a sandbox and a fresh interpreter costs ~35 ms per sample, more than a whole HumanEval
test. Here one sandbox per worker runs a small server (as the namespace's init) that never runs
untrusted code itself: for each sample it forks a child, which sets the rlimits, gets a fresh
work directory and runs the program as `__main__` (exit status, atexit hooks and tracebacks as
with `python main.py`). Between samples the server kills every other process in the namespace and
empties /tmp. Isolation differs from one-sandbox-per-sample only in that samples of a worker reuse
the namespaces and the uid one after another (never at the same time); the server makes itself
non-dumpable so a sample cannot read or write its memory.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time

from .sandbox import Limits, Outcome, Sandbox, kill_uid

SERVER_SOURCE = r'''
import ctypes, json, os, resource, selectors, signal, sys, time
if os.getpid() != 1:  # kill_others() below kills every process it can see: only ever in our own PID namespace
    sys.exit("the python fork server must run as the init of its own PID namespace")
ctypes.CDLL(None).prctl(4, 0)  # PR_SET_DUMPABLE 0: /proc/1/mem and /proc/1/fd are closed to samples
import atexit, builtins, threading, traceback
# Warm the modules benchmark solutions and tests import most, once: every forked sample finds them
# loaded (each child still has its own copy-on-write copy of their state).
import bisect, collections, copy, decimal, fractions, functools, hashlib, heapq, itertools, math, operator
import random, re, statistics, string, typing
IN, OUT = sys.stdin.buffer, sys.stdout.buffer

def wipe(path):
    for name in os.listdir(path):
        p = os.path.join(path, name)
        if os.path.isdir(p) and not os.path.islink(p):
            wipe(p); os.rmdir(p)
        else:
            os.unlink(p)

def kill_others():
    me = os.getpid()
    for _ in range(20):
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
        alive = False
        for p in pids:
            try:
                with open("/proc/%d/stat" % p) as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in "ZX":
                alive = True
                try: os.kill(p, signal.SIGKILL)
                except OSError: pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0: break
            except ChildProcessError:
                break
        if not alive:
            return
        time.sleep(0.002)

def child(req, src, w_out, w_err, runtime):
    os.setsid()
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0); os.dup2(w_out, 1); os.dup2(w_err, 2)
    for fd in [int(f) for f in os.listdir("/proc/self/fd") if int(f) > 2]:  # not closerange(3, 65536): 64k syscalls
        try: os.close(fd)
        except OSError: pass
    cpu = req["cpu"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (req["mem"], req["mem"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize"], req["fsize"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (req["nproc"], req["nproc"]))
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    # As in a fresh interpreter: stdout block-buffered to a pipe, stderr line-buffered.
    sys.stdin = open(0, "r", closefd=False); sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
    os.chdir("/tmp/run")
    sys.argv = ["main.py"]
    code = 0
    main = {"__name__": "__main__", "__file__": "/tmp/run/main.py", "__builtins__": builtins}
    if runtime is not None:  # main.py's bootstrap takes it (and checks it is its own runtime's)
        main["_mftpp_precompiled"] = runtime
    try:
        exec(compile(src, "/tmp/run/main.py", "exec"), main)
    except SystemExit as e:
        if e.code is None: code = 0
        elif isinstance(e.code, int): code = e.code
        else: print(e.code, file=sys.stderr); code = 1
    except BaseException:
        traceback.print_exc(); code = 1
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush(); sys.stderr.flush()
    except BaseException:
        code = code or 1
    os._exit(code & 0xFF)

def serve():
    runtime = None  # (text, code object): the instrumented programs' runtime, compiled once
    while True:
        line = IN.readline()
        if not line:
            return
        req = json.loads(line)
        if "runtime_len" in req:  # harness code (never a sample's): compiled here, not run
            text = IN.read(req["runtime_len"]).decode("utf-8", "surrogatepass")
            runtime = (text, compile(text, "/tmp/run/main.py", "exec"))
        src = IN.read(req["len"]).decode("utf-8", "surrogatepass")
        wipe("/tmp"); os.mkdir("/tmp/run")
        with open("/tmp/run/main.py", "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(src)
        r_out, w_out = os.pipe(); r_err, w_err = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try: child(req, src, w_out, w_err, runtime if req.get("precompiled") else None)
            finally: os._exit(127)
        os.close(w_out); os.close(w_err)
        bufs = {r_out: bytearray(), r_err: bytearray()}
        sel = selectors.DefaultSelector()
        for fd in bufs: sel.register(fd, selectors.EVENT_READ)
        pidfd = os.pidfd_open(pid); sel.register(pidfd, selectors.EVENT_READ)
        deadline = start + req["wall"]; stop = deadline
        status = usage = None; total = 0; wall_timeout = exceeded = False
        while True:
            remaining = stop - time.monotonic()
            if remaining <= 0:
                wall_timeout = status is None; break
            for key, _ in sel.select(remaining):
                if key.fd == pidfd:
                    _, status, usage = os.wait4(pid, 0); sel.unregister(pidfd)
                    stop = min(deadline, time.monotonic() + 0.2); continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd); continue
                bufs[key.fd] += chunk; total += len(chunk)
                if total > req["cap"]: exceeded = True
            if exceeded or (status is not None and not sel.get_map()):
                break
        if status is None:
            try: os.killpg(pid, signal.SIGKILL)
            except OSError: pass
            _, status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - start
        kill_others()
        sel.close(); os.close(pidfd); os.close(r_out); os.close(r_err)
        rc = os.waitstatus_to_exitcode(status)
        out, err = bytes(bufs[r_out]), bytes(bufs[r_err])
        if exceeded:
            out, err = out[:req["cap"]], err[:max(0, req["cap"] - len(out))]
        resp = {"rc": rc, "out": out.decode("utf-8", "replace"), "err": err.decode("utf-8", "replace"),
                "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024,
                "wall_timeout": wall_timeout, "exceeded": exceeded}
        OUT.write(json.dumps(resp).encode() + b"\n"); OUT.flush()

serve()
'''


class PythonServer:
    """Client of the fork server of one worker slot; restarts it if it dies.

    `run()` is `submit()` then `receive()`. The two halves let a worker slot hand the server its next
    program as soon as the previous answer is in, and judge that answer while the next program runs:
    the server still runs one program at a time."""

    def __init__(self, sandbox: Sandbox, python: str, tmp_mb: int = 64):
        if sandbox.isolation != "bwrap":
            raise RuntimeError("the Python fork server needs bubblewrap")
        self.sandbox, self.python, self.tmp_mb = sandbox, python, tmp_mb
        self.proc: subprocess.Popen | None = None
        self._runtime: str | None = None  # the runtime text this server process has compiled
        self._pending: tuple[Limits, float, str | None] | None = None  # submitted, not yet received

    def _start(self) -> None:
        workdir = "/"  # the server needs no host directory: samples get /tmp/run on the tmpfs
        prefix = os.path.dirname(os.path.dirname(os.path.realpath(self.python)))
        argv = self.sandbox.bwrap_argv([self.python, "-I", "-S", "-B", "-c", SERVER_SOURCE], workdir,
                                       Limits(tmp_mb=self.tmp_mb), bind_workdir=False,
                                       ro_binds=() if prefix.startswith("/usr") else (prefix,))
        ids = {"user": self.sandbox.uid, "group": self.sandbox.uid, "extra_groups": []} if self.sandbox.uid else {}
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True, env={}, **ids)
        self._runtime = None

    def run(self, source: str, limits: Limits, runtime: str | None = None) -> Outcome:
        self.submit(source, limits, runtime)
        return self.receive()

    def submit(self, source: str, limits: Limits, runtime: str | None = None) -> None:
        """Send one program (main.py's text). `runtime`: the text of its runtime literal, which the
        server compiles once and passes to the program's bootstrap (instrument.py)."""
        if self._pending is not None:
            raise RuntimeError("receive() the previous program's outcome first")
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        data = source.encode("utf-8", "surrogatepass")
        req = {"len": len(data), "cpu": max(1, int(limits.cpu_seconds + 0.999)), "mem": limits.memory_mb << 20,
               "fsize": limits.file_size_mb << 20, "nproc": limits.processes, "wall": limits.wall_seconds,
               "cap": limits.output_bytes, "precompiled": runtime is not None}
        head = b""
        if runtime is not None and runtime != self._runtime:
            head = runtime.encode("utf-8", "surrogatepass")
            req["runtime_len"] = len(head)
        start, error = time.monotonic(), None
        try:
            self.proc.stdin.write(json.dumps(req).encode() + b"\n" + head + data)
            self.proc.stdin.flush()
            self._runtime = runtime if runtime is not None else self._runtime
        except OSError as exc:  # BrokenPipeError included: reported by receive()
            error = f"python fork server failed: {exc}"
        self._pending = (limits, start, error)

    def receive(self) -> Outcome:
        """The outcome of the program submitted last."""
        if self._pending is None:
            raise RuntimeError("nothing was submitted")
        limits, start, error = self._pending
        self._pending = None
        if error is None:
            try:
                line = _readline(self.proc, limits.wall_seconds + 10)
            except (OSError, TimeoutError) as exc:
                error = f"python fork server failed: {exc}"
        if error is not None:
            self.close(graceful=False)
            return Outcome(None, None, "", "", time.monotonic() - start, 0.0, 0.0, sandbox_error=error)
        resp = json.loads(line)
        rc = resp["rc"]
        return Outcome(returncode=rc if rc >= 0 else None, signal=-rc if rc < 0 else None, stdout=resp["out"],
                       stderr=resp["err"], wall_seconds=resp["wall"], cpu_seconds=resp["cpu"],
                       max_rss_mb=resp["rss"], wall_timeout=resp["wall_timeout"], output_exceeded=resp["exceeded"])

    def interrupt(self) -> None:
        """Kill the server from another thread; the owner's receive() fails and its close() cleans up."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self, graceful: bool = True) -> None:
        if self.proc is not None:
            # End of input ends an idle server's loop: it exits, bubblewrap reaps it and exits too, so
            # the CPU time of every sample it ran reaches our own child accounting (getrusage). A server
            # with a program in flight, or that does not go within a second, is killed.
            if graceful and self._pending is None:
                try:
                    self.proc.stdin.close()
                    self.proc.wait(timeout=1.0)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            self.proc = None
            self._pending = None
            if self.sandbox.uid is not None:
                kill_uid(self.sandbox.uid)


def _readline(proc: subprocess.Popen, timeout: float) -> bytes:
    """One response line, or TimeoutError past `timeout` (the server enforces the real limits)."""
    fd = proc.stdout.fileno()
    buf = bytearray()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise TimeoutError("no answer from the python fork server")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise OSError("the python fork server exited")
            buf += chunk
    return bytes(buf)
