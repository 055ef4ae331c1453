"""The benchmark registry: every benchmark loads with the expected tasks, programs assemble right."""

import pytest

from mftcoder_pp.benchmarks import KNOWN_ISSUES, REGISTRY, get_benchmark
from mftcoder_pp.benchmarks.humaneval_x import go_fix_imports
from mftcoder_pp.benchmarks.mbpp import entry_point_of

EXPECTED = {"humaneval": 164, "mbpp": 500, "mbpp-sanitized": 257,
            **{f"humaneval-x-{c}": 164 for c in ("python", "cpp", "java", "js", "go", "rust")},
            **{f"humanevalpack-{c}": 164 for c in ("python", "cpp", "java", "js", "go", "rust")},
            **{f"synthetic-{c}": 59 for c in ("python", "cpp", "java", "javascript", "go", "rust")},
            "synthetic-transfer": 373, "synthetic-transfer-dev": 93, "synthetic-transfer-family": 180}


def test_registry_names():
    assert set(REGISTRY) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_loads(name):
    bench = get_benchmark(name)
    tasks = bench.tasks()
    assert len(tasks) == EXPECTED[name]
    assert len({t.task_id for t in tasks}) == len(tasks)
    for t in tasks:
        assert t.prompt and t.reference and t.test
    for task_id in KNOWN_ISSUES.get(name, {}):
        assert task_id in {t.task_id for t in tasks}


def test_unknown_benchmark_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown benchmark 'humaneval-x-cobol'; known: humaneval"):
        get_benchmark("humaneval-x-cobol")


def test_mbpp_ids_are_the_test_split():
    ids = [int(t.task_id.split("/")[1]) for t in get_benchmark("mbpp").tasks()]
    assert ids == list(range(11, 511))


def test_mbpp_entry_point_prefers_the_function_the_reference_defines():
    # Mbpp/126 defines `sum`, shadowing the builtin.
    assert entry_point_of(["assert sum(10,15) == 6"], "def sum(a,b):\n    return 0\n") == "sum"
    assert entry_point_of(["assert set(f(1)) == {1}"], "def f(x):\n    return [x]\n") == "f"


def test_mbpp_check_function_does_not_collide_with_solutions_named_check():
    task = {t.task_id: t for t in get_benchmark("mbpp").tasks()}["Mbpp/56"]
    assert "def check(" in task.reference and "def check(" not in task.test


def test_go_imports_are_fixed_like_goimports():
    specs = ['"testing"', '"github.com/stretchr/testify/assert"', '"strings"', '"math"']
    body = "func F(t *testing.T) { assert := assert.New(t); x := strconv.Itoa(1); _ = math.Abs(1) }\n// strings.Split"
    assert go_fix_imports(specs, body) == ['"testing"', '"github.com/stretchr/testify/assert"', '"math"', '"strconv"']


def test_go_program_has_one_package_clause_and_import_block():
    bench = get_benchmark("humaneval-x-go")
    task = {t.task_id: t for t in bench.tasks()}["Go/17"]
    program = bench.program(task, task.reference)
    assert program.count("package main") == 1 and program.count("import (") == 1
    assert '"strings"' in program


def test_cpp_program_takes_includes_from_declaration_and_code_from_prompt():
    bench = get_benchmark("humaneval-x-cpp")
    task = {t.task_id: t for t in bench.tasks()}["CPP/0"]
    program = bench.program(task, "X")
    assert program.startswith("#include") and program.endswith(task.prompt + "X")


def test_rust_prompts():
    x = {t.task_id: t for t in get_benchmark("humaneval-x-rust").tasks()}["Rust/0"]
    assert "fn has_close_elements" in x.prompt  # prompt + declaration: the signature is there to continue
    pack = get_benchmark("humanevalpack-rust")
    t = {t.task_id: t for t in pack.tasks()}["Rust/0"]
    assert "fn main(){}" in t.prompt and "fn main" not in pack.program(t, "}")
