"""Run one untrusted command under resource limits, in a bubblewrap sandbox where possible.

What this protects (each item has an adversarial test in tests/test_sandbox_adversarial.py):
- CPU time (RLIMIT_CPU) and a wall-clock backstop that kills the whole process tree, including
  daemons that detach (new session / double fork): they stay in the sandbox's PID namespace, which
  dies with its init; when we run as root, every process of the slot's private uid is killed too.
- Memory (RLIMIT_AS per process), process count (RLIMIT_NPROC, enforced because each worker slot
  runs under its own unprivileged uid when we are root), file size (RLIMIT_FSIZE, and a size-capped
  tmpfs for /tmp), open files, no core dumps, and captured output (the run is killed past the cap).
- With bubblewrap: no network (new network namespace), a private /tmp, a read-only view of the
  system, new PID/IPC/UTS namespaces, a cleared environment, no access to the host's home
  directories or the harness's files, and death with the parent.

What it does not protect: the kernel itself (a kernel exploit escapes any namespace); timing side
channels; a program that reads the harness's secret marker from its own process (the verdict
needs the marker, see judge.py) — completions are judged as code written by a model, not by an
adaptive attacker with knowledge of this harness. Without bubblewrap (isolation="none") there is
no filesystem or network isolation at all: only the resource limits and process-tree killing
remain, and the evaluation summary says so.
"""

from __future__ import annotations

import fcntl
import os
import resource
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

# Each parallel worker slot runs untrusted code under its own uid when we are root, so that
# RLIMIT_NPROC counts only that slot's processes and "kill every process of this uid" is a
# complete cleanup. The range is far above ordinary system and login uids.
SLOT_UID_BASE = 61000
UID_RANGE = 4000
UID_LOCK_DIR = "/run/lock/mftcoder_pp" if os.path.isdir("/run/lock") else "/tmp/mftcoder_pp-locks"

# The whole environment a program gets (plus its toolchain's variables): nothing of the host's.
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}

# Where the sample's work directory appears inside the sandbox (its cwd).
SANDBOX_WORKDIR = "/sandbox"

# The parts of /etc that compilers and runtimes read (dynamic linker, JVM config, certificates).
ETC_ENTRIES = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
               "/etc/java-17-openjdk", "/etc/ssl", "/etc/localtime", "/etc/passwd", "/etc/group",
               "/etc/nsswitch.conf")


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed command."""

    cpu_seconds: float = 10.0
    wall_seconds: float = 20.0
    memory_mb: int = 2048  # address space per process
    processes: int = 64
    file_size_mb: int = 32
    tmp_mb: int = 64
    output_bytes: int = 1_000_000  # stdout + stderr together

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "wall_seconds", "memory_mb", "processes", "file_size_mb",
                     "tmp_mb", "output_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)!r}")


@dataclass
class Outcome:
    """What happened to one sandboxed command. Interpretation (the verdict) is the judge's job."""

    returncode: int | None  # exit status, or None when killed by a signal
    signal: int | None  # the terminating signal, if any
    stdout: str
    stderr: str
    wall_seconds: float
    cpu_seconds: float
    max_rss_mb: float  # the program's peak RSS; 0.0 when not above the harness's own (unknown, see _execute)
    wall_timeout: bool = False
    output_exceeded: bool = False
    sandbox_error: str | None = None  # the sandbox itself failed (not the program)


def bwrap_path() -> str | None:
    """The bubblewrap binary, if it is installed and can create namespaces here."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    try:
        probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if probe.returncode == 0 else None


class Sandbox:
    """Runs commands in a sandbox. One instance per worker slot (slot picks the private uid); the
    slot's Python fork server, if any, is the slot's (slot.py), not the sandbox's."""

    def __init__(self, isolation: str = "auto", slot: int = 0, extra_ro_binds: tuple[str, ...] = ()):
        if isolation not in ("auto", "bwrap", "none"):
            raise ValueError(f"isolation must be 'auto', 'bwrap' or 'none', got {isolation!r}")
        self.bwrap = None if isolation == "none" else bwrap_path()
        if isolation == "bwrap" and self.bwrap is None:
            raise RuntimeError("isolation='bwrap' was requested but bubblewrap is missing or cannot "
                               "create namespaces here (install Debian's 'bubblewrap')")
        self.isolation = "bwrap" if self.bwrap else "none"
        self._uid_lock = None
        self.uid = self._claim_uid(SLOT_UID_BASE + slot) if os.geteuid() == 0 else None
        self.extra_ro_binds = tuple(p for p in extra_ro_binds if os.path.exists(p))

    def _claim_uid(self, first: int) -> int:
        """A private uid no other sandbox on this machine is using (in this or another process):
        killing "every process of my uid" must never reach another evaluation's programs."""
        os.makedirs(UID_LOCK_DIR, mode=0o700, exist_ok=True)
        for uid in range(first, first + UID_RANGE):
            fh = open(os.path.join(UID_LOCK_DIR, f"uid-{uid}.lock"), "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            self._uid_lock = fh  # held for the sandbox's lifetime; the OS releases it on exit
            return uid
        raise RuntimeError(f"no free sandbox uid in [{first}, {first + UID_RANGE})")

    def close(self) -> None:
        if self._uid_lock is not None:
            self._uid_lock.close()
            self._uid_lock = None

    def describe(self) -> dict:
        return {"isolation": self.isolation, "private_uid": self.uid is not None,
                "reduced_isolation": self.isolation != "bwrap"}

    def run(self, argv: list[str], workdir: str, limits: Limits, *, writable_workdir: bool = False,
            unprivileged: bool = True, env: dict[str, str] | None = None,
            ro_binds: tuple[str, ...] = (), rw_binds: tuple[str, ...] = (),
            binds_to: dict[str, str] | None = None) -> Outcome:
        """Run argv with cwd=workdir (seen as SANDBOX_WORKDIR inside the sandbox).

        `unprivileged=False` runs as the calling user (used for compilers, which may live in a
        directory an unprivileged uid cannot reach, and which execute no untrusted code).
        """
        as_uid = self.uid if unprivileged else None
        if self.bwrap:
            cmd = self.bwrap_argv(argv, workdir, limits, writable_workdir=writable_workdir, env=env,
                                  ro_binds=ro_binds, rw_binds=rw_binds, binds_to=binds_to)
            cwd, popen_env = "/", {}
        else:
            cmd, cwd, popen_env = list(argv), workdir, {**BASE_ENV, **(env or {})}
        return _execute(cmd, cwd, popen_env, limits, as_uid)

    def bwrap_argv(self, argv: list[str], workdir: str, limits: Limits, *, writable_workdir: bool = False,
                   bind_workdir: bool = True, env: dict[str, str] | None = None, ro_binds: tuple[str, ...] = (),
                   rw_binds: tuple[str, ...] = (), binds_to: dict[str, str] | None = None) -> list[str]:
        """The bubblewrap command line that runs argv (public for the Python fork server)."""
        return self._bwrap_argv(argv, workdir if bind_workdir else None, limits, writable_workdir,
                                {**BASE_ENV, **(env or {})}, ro_binds, rw_binds, binds_to or {})

    def _bwrap_argv(self, argv, workdir, limits, writable_workdir, env, ro_binds, rw_binds, binds_to) -> list[str]:
        # --as-pid-1: the program itself is the namespace's init, so bwrap reaps it and its CPU
        # time and peak memory reach our wait4 (with bwrap's own init in between they are lost).
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1",
                "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
                "--size", str(limits.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        for name in ("bin", "lib", "lib64", "lib32", "sbin"):
            path = "/" + name
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for path in ETC_ENTRIES:  # only what toolchains need from /etc, not the host's secrets
            if os.path.lexists(path):
                args += ["--ro-bind", path, path]
        for path in (*self.extra_ro_binds, *ro_binds):
            if os.path.exists(path) and not path.startswith("/usr/"):
                args += ["--ro-bind", path, path]
        for path in rw_binds:
            args += ["--bind", path, path]
        for src, dest in binds_to.items():
            args += ["--ro-bind", src, dest]
        if workdir is not None:
            args += ["--bind" if writable_workdir else "--ro-bind", workdir, SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
        args += ["--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return args + ["--", *argv]


def _preexec(limits: Limits):
    """Runs in the child between fork and exec: the rlimits, inherited by the whole tree."""
    def apply() -> None:
        cpu = max(1, int(limits.cpu_seconds + 0.999))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        mem = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        fsize = limits.file_size_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    return apply


def kill_uid(uid: int) -> None:
    """Kill every process owned by `uid` (needs root). A forked child takes the uid and kill(-1)s:
    that reaches exactly the processes of this uid, wherever they are in the process tree."""
    for _ in range(50):
        if not _uid_has_processes(uid):  # the common case: nothing left, no fork needed
            return
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:
                pass
            os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.01)


def _uid_has_processes(uid: int) -> bool:
    """Whether a live process of `uid` exists. Zombies do not count: they are already dead and
    cannot be killed, only reaped by their parent (which may take init a while)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    state = fh.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                return True
    return False


def _resident_mb() -> float:
    """This process's current resident set size."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _execute(cmd: list[str], cwd: str, env: dict[str, str], limits: Limits, as_uid: int | None) -> Outcome:
    start = time.monotonic()
    # A forked child starts with this process's resident pages, and Linux keeps that high-water mark
    # across exec: a program started from a big process (a training run that then evaluates) reports
    # at least the parent's RSS as its peak. A peak not above that is the parent's, not the program's.
    inherited_mb = _resident_mb()
    ids = {"user": as_uid, "group": as_uid, "extra_groups": []} if as_uid is not None else {}
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_preexec(limits),
                                close_fds=True, **ids)
    except (OSError, subprocess.SubprocessError) as exc:
        return Outcome(None, None, "", "", 0.0, 0.0, 0.0, sandbox_error=f"could not start {cmd[0]!r}: {exc}")

    out, err, wall_timeout, exceeded, reaped = _collect(proc, start + limits.wall_seconds, limits.output_bytes)
    if reaped is None:  # still running: wall clock or output cap
        _kill_tree(proc.pid)
        reaped = os.wait4(proc.pid, 0)
    _, status, usage = reaped
    proc.returncode = 0  # reaped by wait4 above; keeps Popen from waiting again
    wall = time.monotonic() - start
    # Anything left (a detached daemon when there is no PID namespace) dies now.
    _kill_tree(proc.pid)
    if as_uid is not None:
        kill_uid(as_uid)
    rc = os.waitstatus_to_exitcode(status)
    return Outcome(
        returncode=rc if rc >= 0 else None,
        signal=-rc if rc < 0 else None,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024 if usage.ru_maxrss / 1024 > inherited_mb + 8 else 0.0,
        wall_timeout=wall_timeout,
        output_exceeded=exceeded,
    )


# After the program exits, how long its pipes may stay open (held by a leftover daemon that is
# about to be killed) before we stop reading.
EXIT_GRACE_SECONDS = 0.2


def _collect(proc: subprocess.Popen, deadline: float, cap: int):
    """Read stdout/stderr until the process has exited and both pipes are closed (or the grace
    period after the exit has passed), the deadline passes, or together they exceed `cap`.
    Returns (stdout, stderr, wall_timeout, exceeded, wait4 result or None)."""
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pidfd = os.pidfd_open(proc.pid)  # readable when the process exits: no polling
    sel.register(pidfd, selectors.EVENT_READ)
    total, wall_timeout, exceeded, reaped = 0, False, False, None
    stop_at = deadline
    try:
        while True:
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                wall_timeout = reaped is None
                break
            for key, _ in sel.select(timeout=remaining):
                if key.fd == pidfd:
                    reaped = os.wait4(proc.pid, 0)
                    sel.unregister(pidfd)
                    stop_at = min(deadline, time.monotonic() + EXIT_GRACE_SECONDS)
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                bufs[key.fd] += chunk
                total += len(chunk)
                if total > cap:
                    exceeded = True
            if exceeded or (reaped and not sel.get_map()):
                break
    finally:
        sel.close()
        os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
    out, err = bytes(bufs[out_fd]), bytes(bufs[err_fd])
    if exceeded:
        out, err = out[:cap], err[: max(0, cap - len(out))]
    return out, err, wall_timeout, exceeded, reaped


def _kill_tree(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
