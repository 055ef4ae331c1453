"""Every registered language runs a hello-world in the sandbox, and lookups fail clearly."""

import os
import shutil
import tempfile

import pytest

from mftcoder_pp.execution.sandbox import Limits, Sandbox
from mftcoder_pp.execution.toolchains import TOOLCHAINS, Toolchains
from mftcoder_pp.languages import LANGUAGES, get_language

pytestmark = pytest.mark.sandbox

SOURCE_NAMES = {"python": "main.py", "cpp": "main.cpp", "java": "Main.java", "javascript": "main.js",
                "go": "main.go", "rust": "main.rs"}


def test_language_table_is_complete():
    assert set(LANGUAGES) == {"python", "cpp", "java", "javascript", "go", "rust"}
    assert set(SOURCE_NAMES) == set(TOOLCHAINS) == set(LANGUAGES)
    for lang in TOOLCHAINS.values():
        assert lang.hello and lang.run and lang.memory_patterns and lang.assertion_patterns


@pytest.mark.parametrize("alias,name", [("js", "javascript"), ("C++", "cpp"), ("py", "python"), ("golang", "go"),
                                        ("Rust", "rust")])
def test_aliases(alias, name):
    assert get_language(alias).name == name


def test_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown language 'cobol'.*known: cpp, go, java"):
        get_language("cobol")


@pytest.mark.parametrize("name", sorted(LANGUAGES))
def test_hello_world_runs_in_the_sandbox(name):
    lang = TOOLCHAINS[name]
    tc = Toolchains()
    sandbox = Sandbox()
    workdir = tempfile.mkdtemp(prefix="mftpp-test-")
    try:
        os.chmod(workdir, 0o755)
        src = os.path.join(workdir, SOURCE_NAMES[name])
        with open(src, "w") as fh:
            fh.write(lang.hello)
        os.chmod(src, 0o644)
        if lang.name == "go":  # a plain program, not a test binary
            argv, run = ["go", "build", "-o", "prog", "main.go"], ["./prog"]
        else:
            argv, run = (tc.compile_argv(lang) if lang.compile else None), tc.run_argv(lang)
        if argv:
            out = sandbox.run(argv, workdir, Limits(cpu_seconds=60, wall_seconds=90, memory_mb=4096, processes=256,
                                                    file_size_mb=256, tmp_mb=512),
                              writable_workdir=True, unprivileged=False, env=tc.env(lang, "compile"),
                              ro_binds=tc.ro_binds(lang, "compile"), rw_binds=tc.rw_binds(lang, "compile"))
            assert out.returncode == 0, out.stderr
            for base, dirs, files in os.walk(workdir):
                for f in dirs + files:
                    os.chmod(os.path.join(base, f), 0o755)
        out = sandbox.run(run, workdir, Limits(), env=tc.env(lang, "run"), ro_binds=tc.ro_binds(lang, "run"),
                          binds_to=tc.binds_to(lang))
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "hello"
    finally:
        sandbox.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_toolchains_report_nothing_missing():
    assert Toolchains().prepare(sorted(LANGUAGES)) == {}
