"""Each preprocessing step on its own: syntax check, normalisation, anonymisation, dedup, decontamination."""

import gzip
import json
import re
import warnings
from importlib import resources

import pytest

from mftcoder_pp.benchmarks import get_benchmark
from mftcoder_pp.data.anonymise import anonymise
from mftcoder_pp.data.codetokens import code_tokens
from mftcoder_pp.data.decontaminate import BenchmarkText, ContaminationIndex
from mftcoder_pp.data.dedup import content_key, exact_duplicates, lsh_params, near_duplicates
from mftcoder_pp.data.normalise import normalise_code, normalise_text
from mftcoder_pp.data.syntax import check, check_example, parses

# ---- syntax -----------------------------------------------------------------------------------------

FRAGMENTS = [  # (language, input, output): completions that are valid only in context
    ("python", 'def add(a, b):\n    """Add."""\n', "    return a + b\n"),
    ("java", "", "public int twice(int x) {\n    return 2 * x;\n}\n"),
    ("java", "import java.util.*;\nclass Solution {\n    public int f(int x) {\n", "        return x + 1;\n    }\n}\n"),
    ("go", "", "func Twice(x int) int {\n\treturn 2 * x\n}\n"),
    ("go", "package main\n\nfunc Twice(x int) int {\n", "\treturn 2 * x\n}\n"),
    ("cpp", "", "int y = x * 2;\nreturn y;\n"),
    ("cpp", "#include <vector>\nint f(std::vector<int> v) {\n", "    return v.size();\n}\n"),
    ("javascript", "", "const y = x * 2;\nreturn y;\n"),
    ("rust", "fn twice(x: i32) -> i32 {\n", "    2 * x\n}\n"),
    ("rust", "", "let y = x * 2;\ny\n"),
]


@pytest.mark.parametrize("lang,inp,out", FRAGMENTS)
def test_fragments_parse_in_a_wrapper(lang, inp, out):
    assert check(out, inp, lang) is not None


@pytest.mark.parametrize("lang,code", [
    ("python", "def f(x:\n    return x\n"), ("java", "public int f( {\n"), ("go", "func f( {\n"),
    ("cpp", "int f() { return 1 +; }\n"), ("javascript", "function f( { return 1; }\n"),
    ("rust", "fn f() -> { let = ; }\n"),
])
def test_invalid_code_is_rejected(lang, code):
    how, error = check_example(code, "", lang)
    assert how is None and "line" in error


def test_chat_answers_are_checked_block_by_block():
    ok = "Here:\n\n```python\ndef f(x):\n    return x\n```\nand text."
    bad = "Here:\n\n```python\ndef f(x:\n```\n"
    assert check_example(ok, "", "python")[0] == "fenced blocks"
    how, error = check_example(bad, "", "python")
    assert how is None and error.startswith("code block starting at line 4: ")


# ---- normalisation ----------------------------------------------------------------------------------

def test_normalise_python():
    code = "\ufeffdef f(x):\r\n\tif x:  \r\n\t\treturn '''a  \n\tb'''\t\r\n\treturn 0\r\n\r\n\r\n"
    assert normalise_code(code, "python") == "def f(x):\n    if x:\n        return '''a  \n\tb'''\n    return 0\n"


def test_go_keeps_tab_indentation_and_raw_strings():
    code = "func f() string {\n\treturn `a  \n\tb`   \n}"
    assert normalise_code(code, "go") == "func f() string {\n\treturn `a  \n\tb`\n}\n"


def test_normalise_chat_answer_blocks_and_prose():
    text = "Try this:   \r\n\r\n```python\r\nif x:\r\n\ty = 1   \r\n```\r\nDone.  "
    assert normalise_code(text, "python") == "Try this:\n\n```python\nif x:\n    y = 1\n```\nDone.\n"
    assert normalise_text("  Hello  \r\nworld \n\n") == "  Hello\nworld"


def _corpus():
    for name in ("humanevalpack-python", "humanevalpack-go", "humanevalpack-java", "humanevalpack-cpp",
                 "humanevalpack-js", "humanevalpack-rust"):
        for t in get_benchmark(name).tasks()[::8]:
            yield t.language, t.prompt + t.reference
            yield t.language, t.test


def test_normalisation_is_idempotent_and_keeps_code_parsing():
    n = 0
    for lang, code in _corpus():
        once = normalise_code(code, lang)
        assert normalise_code(once, lang) == once
        if parses(code, lang):
            assert parses(once, lang)
        assert once.endswith("\n") and not once.endswith("\n\n")
        assert not re.search(r"[ \t]+\n", once) or lang in ("go",) or "\n" in once  # trailing spaces only in strings
        n += 1
    assert n > 100


# ---- anonymisation ----------------------------------------------------------------------------------

def test_anonymise_python_exact():
    code = ("import math\nLIMIT = 3\n\ndef solve(nums, k=2):\n    total = 0\n    for i, x in enumerate(nums):\n"
            "        total += x * k\n    return helper(total, key=k) + math.sqrt(LIMIT)\n\n"
            "def helper(a, key):\n    return a + key\n")
    result = anonymise(code, "python", keep=("solve",))
    assert result.status == "ok"
    assert result.code == ("import math\nLIMIT = 3\n\ndef solve(v0, v1=2):\n    v2 = 0\n"
                           "    for v3, v4 in enumerate(v0):\n        v2 += v4 * v1\n"
                           "    return helper(v2, key=v1) + math.sqrt(LIMIT)\n\n"
                           "def helper(v0, key):\n    return v0 + key\n")  # `key` is pinned by the keyword call


SAMPLES = {  # language: (code, entry point, names that must be renamed, names that must stay)
    "javascript": ("const BASE = 10;\nfunction add(a, b = 1, ...rest) {\n  let sum = a + b;\n"
                   "  for (const r of rest) { sum += r; }\n  const obj = {sum};\n"
                   "  return [1, 2].map(v => v * BASE + sum).length + obj.sum;\n}\n",
                   "add", {"a", "b", "rest", "r", "obj", "v"}, {"add", "BASE", "sum", "map", "length"}),
    "java": ("import java.util.*;\nclass Solution {\n  int count;\n  public int f(int n, List<Integer> xs) {\n"
             "    int total = 0;\n    for (int x : xs) { total += x; }\n    xs.forEach(y -> System.out.println(y));\n"
             "    return Math.max(total, n) + this.count + count;\n  }\n}\n",
             "f", {"n", "xs", "total", "x", "y"}, {"f", "count", "Math", "max", "forEach", "Solution"}),
    "go": ('package main\nimport "strings"\ntype P struct { x int }\nfunc F(s string, n int) int {\n'
           '\tparts := strings.Split(s, ",")\n\tx := len(parts)\n\tp := P{x: x}\n'
           '\tfor i, v := range parts { _ = v; x += i }\n\treturn p.x + n\n}\n',
           "F", {"s", "n", "parts", "p", "i", "v"}, {"F", "strings", "Split", "x", "len"}),
    "cpp": ("#include <vector>\n#include <algorithm>\nusing namespace std;\nint best_of(vector<int>& v, int k) {\n"
            "  int best = 0;\n  for (auto e : v) best = max(best, e * k);\n"
            "  auto g = [&](int z) { return z + best; };\n  return g(k);\n}\n",
            "best_of", {"v", "k", "best", "e", "g", "z"}, {"best_of", "max", "vector"}),
    "rust": ('fn f(v: &Vec<i32>, k: i32) -> i32 {\n    let mut best = 0;\n'
             '    for x in v.iter() { best = std::cmp::max(best, x * k); }\n    let g = |z: i32| z + best;\n'
             '    let msg = format!("{best}");\n    match v.first() { Some(y) => g(*y), None => k }\n}\n',
             "f", {"v", "k", "x", "g", "z", "msg"}, {"f", "best", "max", "y", "Some", "first"}),
}


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_anonymise_each_language(lang):
    code, entry, renamed, kept = SAMPLES[lang]
    result = anonymise(code, lang, keep=(entry,))
    assert result.status == "ok" and parses(result.code, lang)
    assert set(result.renamed) == renamed
    words = set(re.findall(r"[A-Za-z_]\w*", result.code))
    assert not renamed & words  # every occurrence renamed: consistent
    assert kept <= words  # entry point, globals, fields, library names untouched
    assert anonymise(result.code, lang, keep=(entry,)).code == result.code  # v0, v1, ... are stable


def test_anonymised_mbpp_solutions_still_pass_their_tests():
    ref = resources.files("mftcoder_pp.benchmarks").joinpath("data", "mbpp", "mbpp.jsonl.gz")
    rows = [json.loads(line) for line in gzip.decompress(ref.read_bytes()).decode().splitlines()]
    checked = 0
    for row in rows[600:700]:
        code = row["code"].replace("\r\n", "\n")
        entry = re.match(r"assert\s+\(?\s*(?:not\s+)?\(?\s*(\w+)", row["test_list"][0])
        result = anonymise(code, "python", keep=(entry.group(1),) if entry else ())
        if result.status != "ok":
            continue
        env: dict = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(row["test_setup_code"] + "\n" + result.code + "\n" + "\n".join(row["test_list"]), env)
        checked += 1
    assert checked >= 90


def test_anonymise_leaves_unparseable_code_alone():
    assert anonymise("def f(:\n", "python").status == "parse error"


# ---- dedup ------------------------------------------------------------------------------------------

LONG = ("def histogram(values, bins):\n    counts = [0] * bins\n    lo, hi = min(values), max(values)\n"
        "    width = (hi - lo) / bins or 1\n    for v in values:\n        i = min(int((v - lo) / width), bins - 1)\n"
        "        counts[i] += 1\n    return counts\n")


def test_exact_duplicates():
    keys = [content_key("", "a"), content_key("", "b"), content_key("", "a"), content_key("a", "")]
    assert exact_duplicates(keys) == {2: 0}


def test_near_duplicates_catch_small_edits_only():
    near = LONG.replace("counts[i] += 1", "counts[i] = counts[i] + 1").replace("histogram", "hist")
    other = "def add(a, b):\n    return a + b\n"
    tokens = [code_tokens(x) for x in (LONG, other, near, LONG.replace("    ", "\t"))]
    dups = near_duplicates(tokens, threshold=0.7)
    assert set(dups) == {2, 3} and dups[3] == (0, 1.0) and dups[2][0] == 0 and 0.7 <= dups[2][1] < 1
    assert near_duplicates(tokens, threshold=0.95) == {3: (0, 1.0)}


def test_lsh_params():
    bands, rows = lsh_params(0.85, 128)
    assert bands * rows <= 128 and rows > bands


# ---- decontamination --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def index():
    texts = [BenchmarkText(name, t.task_id, f, getattr(t, f)) for name in ("humaneval", "humaneval-x-java")
             for t in get_benchmark(name).tasks() for f in ("prompt", "reference", "test")]
    return ContaminationIndex(texts, n=10)


def test_pasted_benchmark_solution_is_caught(index):
    task = get_benchmark("humaneval").tasks()[12]
    pasted = "# my utilities\n" + (task.prompt + task.reference).replace("    ", "\t")  # reformatted
    m = index.match(pasted)
    assert m is not None and m.benchmark == "humaneval" and m.task_id == "HumanEval/12" and m.overlap > 0.9


def test_unrelated_code_and_boilerplate_are_not_flagged(index):
    assert index.match(LONG) is None
    harness = ("public class Main {\n    public static void main(String[] args) {\n"
               "        Solution s = new Solution();\n        List<Boolean> correct = Arrays.asList(\n"
               "                s.myOwnFunction(1, 2) == 3\n        );\n"
               "        if (correct.contains(false)) {\n            throw new AssertionError();\n        }\n    }\n}\n")
    assert index.match(harness) is None
    assert index.boilerplate  # the shared harness n-grams were found
