"""How the harness compiles and runs each language: commands, runtime error patterns, toolchain checks.

One `Toolchain` per language of the table (mftcoder_pp/languages.py), keyed by its name;
tests/test_languages.py runs every entry's hello-world in the sandbox. `Toolchains` resolves the
executables and prepared artifacts (Rust crates, Go build cache, npm modules) once per process.
"""

from __future__ import annotations

import fcntl
import functools
import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..languages import get_language
from ..paths import cache_dir

# Debian's packaged Rust crates and Go modules (librust-*-dev, golang-github-*-dev).
DEBIAN_CARGO_REGISTRY = "/usr/share/cargo/registry"
DEBIAN_GOPATH = "/usr/share/gocode"
RUST_CRATES = {"rand": "0.8", "regex": "1", "md5": "0.7"}
NPM_PACKAGES = ("js-md5",)


@dataclass(frozen=True)
class Toolchain:
    name: str  # the language's name in the table
    compile: tuple[str, ...] | None  # argv template; {tool} placeholders are filled by Toolchains
    run: tuple[str, ...]
    memory_patterns: tuple[str, ...]  # output that means the program ran out of memory
    assertion_patterns: tuple[str, ...]  # output that means a test assertion failed
    hello: str  # a complete program printing "hello" (used by tests)


TOOLCHAINS: dict[str, Toolchain] = {tc.name: tc for tc in (
    Toolchain(
        "python", None, ("{python}", "-I", "-B", "main.py"),
        memory_patterns=("MemoryError",), assertion_patterns=("AssertionError",), hello='print("hello")\n'),
    Toolchain(
        "cpp", ("g++", "-std=c++17", "-O0", "-w", "-o", "main", "main.cpp", "-lcrypto"), ("./main",),
        memory_patterns=("std::bad_alloc",), assertion_patterns=("Assertion `",),
        hello='#include <cstdio>\nint main(){ puts("hello"); }\n'),
    Toolchain(
        "java",
        ("javac", "-J-Xmx768m", "-J-XX:+UseSerialGC", "-J-XX:TieredStopAtLevel=1", "-J-XX:CompressedClassSpaceSize=64m",
         "-J-XX:ReservedCodeCacheSize=64m", "-encoding", "UTF-8", "-nowarn", "-d", ".", "-sourcepath", ".",
         "Main.java"),
        ("java", "-ea", "-Xmx768m", "-Xss16m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
         "-XX:CompressedClassSpaceSize=64m", "-XX:ReservedCodeCacheSize=64m", "-cp", ".", "Main"),
        memory_patterns=("OutOfMemoryError", "Could not reserve enough space"),
        assertion_patterns=("AssertionError",),
        hello='public class Main { public static void main(String[] a) { System.out.println("hello"); } }\n'),
    Toolchain(
        "javascript", None, ("node", "--max-old-space-size=768", "--stack-size=4096", "main.js"),
        # Node's own C++ allocation failures (std::bad_alloc) are out of memory too. "Assertion failed"
        # is not a test failure here: console.assert is replaced by the harness, and node prints it for
        # its internal CHECKs (e.g. when a fork bomb exhausts the process limit).
        memory_patterns=("JavaScript heap out of memory", "RangeError: Array buffer allocation failed", "std::bad_alloc"),
        assertion_patterns=("AssertionError",), hello='console.log("hello")\n'),
    Toolchain(
        "go", ("go", "test", "-c", "-vet=off", "-o", "prog.test", "."), ("./prog.test", "-test.count=1"),
        memory_patterns=("out of memory", "cannot allocate memory"),
        assertion_patterns=("Error Trace:", "--- FAIL"),
        hello='package main\nimport "fmt"\nfunc main() { fmt.Println("hello") }\n'),
    Toolchain(
        "rust",
        ("{rustc}", "--edition", "2021", "-C", "opt-level=1", "-C", "debuginfo=0", "-A", "warnings", "-o", "main",
         "main.rs", "{rust_externs}"),
        ("./main",),
        memory_patterns=("memory allocation of", "out of memory"),
        assertion_patterns=("assertion `", "assertion failed"), hello='fn main() { println!("hello"); }\n'),
)}


def toolchain(language: str) -> Toolchain:
    """The toolchain of a language given by name or alias; unknown names are get_language's error."""
    return TOOLCHAINS[get_language(language).name]


class ToolchainError(RuntimeError):
    """A toolchain the evaluation needs is missing; the message says how to install it."""


class Toolchains:
    """Resolves the executables and prepared artifacts each language needs, once per process."""

    def __init__(self, python: str | None = None):
        self.python = python or _sandbox_python()

    @functools.cached_property
    def rustc(self) -> str:
        rustc = shutil.which("rustc")
        if rustc is None:
            raise ToolchainError("rustc not found: install Rust (Debian 'rustc' or rustup)")
        sysroot = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True, check=True).stdout.strip()
        return os.path.join(sysroot, "bin", "rustc")

    @functools.cached_property
    def rust_deps(self) -> str:
        """Build the crates HumanEval-X's Rust declarations `use` (rand, regex, md5) once, offline, from
        Debian's packaged sources; returns the directory holding their .rlib files."""
        root = cache_dir() / "rust-deps"
        deps = root / "target" / "release" / "deps"
        with _locked(cache_dir() / "rust-deps.lock"):
            if not (root / "ok").exists():
                if not os.path.isdir(DEBIAN_CARGO_REGISTRY):
                    raise ToolchainError(f"{DEBIAN_CARGO_REGISTRY} is missing: install Debian's librust-rand-dev, "
                                         "librust-regex-dev and librust-md5-dev")
                (root / "src").mkdir(parents=True, exist_ok=True)
                (root / ".cargo").mkdir(exist_ok=True)
                deps_toml = "".join(f'{k} = "{v}"\n' for k, v in RUST_CRATES.items())
                (root / "Cargo.toml").write_text('[package]\nname = "mftpp_rust_deps"\nversion = "0.1.0"\n'
                                                 f'edition = "2021"\n\n[dependencies]\n{deps_toml}')
                (root / "src" / "lib.rs").write_text("")
                (root / ".cargo" / "config.toml").write_text(
                    '[source.crates-io]\nreplace-with = "debian"\n\n'
                    f'[source.debian]\ndirectory = "{DEBIAN_CARGO_REGISTRY}"\n')
                res = subprocess.run(["cargo", "build", "--offline", "--release", "--quiet"], cwd=root,
                                     capture_output=True, text=True)
                if res.returncode != 0:
                    raise ToolchainError(f"building the Rust crates {sorted(RUST_CRATES)} failed:\n{res.stderr[-2000:]}")
                (root / "ok").write_text("")
        return str(deps)

    def rust_externs(self) -> list[str]:
        deps = self.rust_deps
        args = ["-L", f"dependency={deps}"]
        for crate in RUST_CRATES:
            rlibs = sorted(glob.glob(os.path.join(deps, f"lib{crate}-*.rlib")), key=os.path.getmtime)
            if not rlibs:
                raise ToolchainError(f"no built rlib for crate {crate!r} in {deps}")
            args += ["--extern", f"{crate}={rlibs[-1]}"]
        return args

    @functools.cached_property
    def go_cache(self) -> str:
        path = cache_dir() / "go-build"
        path.mkdir(exist_ok=True)
        return str(path)

    @property
    def node_path(self) -> str:
        return str(cache_dir() / "node" / "node_modules")

    def compile_argv(self, lang: Toolchain) -> list[str]:
        return self._fill(lang.compile or ())

    def run_argv(self, lang: Toolchain) -> list[str]:
        return self._fill(lang.run)

    def _fill(self, template: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for part in template:
            if part == "{rust_externs}":
                out += self.rust_externs()
            elif part == "{rustc}":
                out.append(self.rustc)
            elif part == "{python}":
                out.append(self.python)
            else:
                out.append(part)
        return out

    def env(self, lang: Toolchain, phase: str) -> dict[str, str]:
        if lang.name == "go":
            return {"GO111MODULE": "off", "GOPATH": DEBIAN_GOPATH, "GOCACHE": self.go_cache if phase == "compile" else "/tmp",
                    "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
        if lang.name == "javascript":
            return {"NODE_PATH": "/opt/mftpp-node/node_modules"}
        return {}

    def ro_binds(self, lang: Toolchain, phase: str) -> tuple[str, ...]:
        """Host paths (outside /usr) the sandbox must see for this language and phase."""
        if lang.name == "rust" and phase == "compile":
            return (os.path.dirname(os.path.dirname(self.rustc)), self.rust_deps)
        if lang.name == "python":
            prefix = os.path.dirname(os.path.dirname(os.path.realpath(self.python)))
            return () if prefix.startswith("/usr") else (prefix,)
        return ()

    def rw_binds(self, lang: Toolchain, phase: str) -> tuple[str, ...]:
        return (self.go_cache,) if lang.name == "go" and phase == "compile" else ()

    def binds_to(self, lang: Toolchain) -> dict[str, str]:
        """Host path -> sandbox path for directories mounted under another name."""
        if lang.name == "javascript" and os.path.isdir(self.node_path):
            return {os.path.dirname(self.node_path): "/opt/mftpp-node"}
        return {}

    def prepare(self, languages: list[str]) -> dict[str, str]:
        """Check (and for Rust, build) what each language needs; returns name -> problem for the missing."""
        problems = {}
        for name in languages:
            lang = toolchain(name)
            try:
                argv = self.compile_argv(lang) if lang.compile else self.run_argv(lang)
                if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
                    problems[lang.name] = f"{argv[0]} not found"
            except (ToolchainError, subprocess.CalledProcessError) as exc:
                problems[lang.name] = str(exc)
        return problems


def install_npm_packages() -> str:
    """Install the npm packages benchmarks require (js-md5 for HumanEval-X JS/162) into the cache."""
    target = cache_dir() / "node"
    target.mkdir(exist_ok=True)
    res = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(target), *NPM_PACKAGES],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise ToolchainError(f"npm install {' '.join(NPM_PACKAGES)} failed:\n{res.stderr[-2000:]}")
    return str(target / "node_modules")


def _sandbox_python() -> str:
    """The interpreter that runs Python samples: this one, or Debian's when this one lives where an
    unprivileged sandbox uid cannot read it (e.g. under /root)."""
    here = os.path.realpath(sys.executable)
    if os.geteuid() != 0 or _world_readable(here):
        return sys.executable
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate):
            return candidate
    return sys.executable


def _world_readable(path: str) -> bool:
    parts = Path(path).parts
    for i in range(2, len(parts)):
        if not os.stat(os.path.join(*parts[:i])).st_mode & 0o001:
            return False
    return bool(os.stat(path).st_mode & 0o004)


class _locked:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fh = open(self.path, "w")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()
