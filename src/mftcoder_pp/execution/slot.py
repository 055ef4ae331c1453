"""One worker slot of an evaluation: the sandbox its samples run in (the slot number picks the
private uid) and, for Python, the slot's warm fork server (pyserver.py).

A `Sandbox` runs one command at a time and keeps nothing between commands. The fork server is a
long-lived process inside one sandbox that runs the slot's Python samples one after another, so it
belongs to whoever runs a worker's samples: this slot. evaluate.py makes one per worker and the
scheduler (scheduler.py) gives each its own thread; the server starts with the slot's first Python
sample and stops at close(), called from that same thread (bubblewrap's --die-with-parent ties the
server to the thread that started it).
"""

from __future__ import annotations

from ..languages import get_language
from .judge import JudgeLimits, Verdict, judge
from .pyserver import PythonServer
from .sandbox import Sandbox
from .toolchains import Toolchains


class WorkerSlot:
    def __init__(self, isolation: str = "auto", slot: int = 0, python_fork_server: bool = True,
                 extra_ro_binds: tuple[str, ...] = ()):
        self.sandbox = Sandbox(isolation, slot=slot, extra_ro_binds=extra_ro_binds)
        # The server needs bubblewrap's PID namespace (it kills every other process it can see).
        self.python_fork_server = python_fork_server and self.sandbox.isolation == "bwrap"
        self._python_server: PythonServer | None = None

    def python_server(self, python: str) -> PythonServer | None:
        """This slot's warm Python fork server, or None when it is off or unavailable."""
        if not self.python_fork_server:
            return None
        if self._python_server is None:
            self._python_server = PythonServer(self.sandbox, python)
        return self._python_server

    def judge(self, language: str, code: str, test: str, entry_point: str | None, *, toolchains: Toolchains,
              limits: JudgeLimits = JudgeLimits(), workroot: str | None = None) -> Verdict:
        """judge.judge() in this slot's sandbox; Python samples go through the fork server when it is on."""
        server = self.python_server(toolchains.python) if get_language(language).name == "python" else None
        return judge(language, code, test, entry_point, sandbox=self.sandbox, toolchains=toolchains, limits=limits,
                     workroot=workroot, python_server=server)

    def interrupt(self) -> None:
        """End the program the fork server is running now, from any thread (the slot's own thread then
        sees its receive() fail, and closes the slot)."""
        if self._python_server is not None:
            self._python_server.interrupt()

    def close(self) -> None:
        if self._python_server is not None:
            self._python_server.close()
            self._python_server = None
        self.sandbox.close()

    def describe(self) -> dict:
        return {**self.sandbox.describe(), "python_fork_server": self.python_fork_server}
