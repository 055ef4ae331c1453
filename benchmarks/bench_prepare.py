"""Preprocessing speed: records/s of `prepare` (read + syntax check + normalisation + exact and near dedup).

    python benchmarks/bench_prepare.py [--records 20000] [--seed 0] [--anonymise] [--decontaminate]

The input is made from data the package ships: MBPP (all 974 solutions, python), the six
HumanEvalPack reference programs (prompt + solution; python, java, go, cpp, javascript, rust) and the
packaged OASST chat answers. Rows are drawn round-robin and mutated with a seeded RNG so the dedup
steps have real work: about 10% are exact copies, 10% near copies (a renamed identifier and an added
comment), the rest get a unique identifier rename plus formatting noise (CRLF, tab indentation,
trailing spaces) for the normaliser. Writes one canonical JSONL, runs `run_prepare` on it with
decontamination, anonymisation and figures off (unless asked), and prints per-step seconds and the
overall records/s as a Markdown table, plus records per CPU-second (wall time depends on what
else the machine runs).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from mftcoder_pp.benchmarks import get_benchmark
from mftcoder_pp.prepare import DecontaminationConfig, PrepareConfig, SourceConfig, StepsConfig, run_prepare

LANG_CODES = {"python": "python", "java": "java", "go": "go", "cpp": "cpp", "javascript": "js", "rust": "rust"}
# Words never renamed by the mutation (keywords and common types of the six languages).
KEYWORDS = set("""and as assert async await break case catch char class const continue crate def default defer del
delete do double elif else enum except export extends false final finally float for from func function go goto
if impl import in instanceof int interface is lambda let long loop map match mod move mut namespace new nil none
nonlocal not null or package pass println private protected pub public raise range ref return self select short
static std string struct super switch template this throw throws true try type typeof typename union unsafe use
using var void volatile where while with yield auto bool boolean byte chan fallthrough fmt include size_t vector
iostream main print len string""".split())
COMMENT = {"python": "#", "java": "//", "go": "//", "cpp": "//", "javascript": "//", "rust": "//"}


def seed_rows() -> list[dict]:
    rows = []
    mbpp = resources.files("mftcoder_pp.benchmarks").joinpath("data", "mbpp", "mbpp.jsonl.gz")
    for line in gzip.decompress(mbpp.read_bytes()).decode().splitlines():
        r = json.loads(line)
        rows.append({"task": "synthesis", "language": "python", "instruction": r["text"],
                     "input": "\n".join(r["test_list"]), "output": r["code"]})
    for lang, code in LANG_CODES.items():
        for t in get_benchmark(f"humanevalpack-{code}").tasks():
            rows.append({"task": "completion", "language": lang, "instruction": t.instruction or "Complete the code.",
                         "input": "", "output": t.prompt + t.reference})
    oasst = resources.files("mftcoder_pp").joinpath("data", "instruct", "octopack_oasstcommitpackft.jsonl.gz")
    for line in gzip.decompress(oasst.read_bytes()).decode().splitlines():
        r = json.loads(line)
        rows.append({"task": "chat", "language": "python", "instruction": r["prompt"], "input": "",
                     "output": r["completion"]})
    return rows


def mutate(row: dict, rng: random.Random, tag: int) -> dict:
    out = row["output"]
    words = sorted(set(re.findall(r"\b[a-z_][a-z0-9_]{2,}\b", out)) - KEYWORDS)
    if words:  # a whole-word rename keeps the code valid unless it hits a keyword; "_m<tag>" suffix cannot
        w = rng.choice(words)
        out = re.sub(rf"\b{w}\b", f"{w}_m{tag}", out)
    lines = out.split("\n")
    if rng.random() < 0.3:
        lines = [line.replace("    ", "\t") for line in lines]
    if rng.random() < 0.3:
        lines = [line + "  " if line.strip() else line for line in lines]
    out = ("\r\n" if rng.random() < 0.3 else "\n").join(lines)
    return {**row, "output": out}


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    base = seed_rows()
    rows: list[dict] = []
    for i in range(n):
        kind = rng.random()
        if rows and kind < 0.1:  # exact copy of an earlier row
            rows.append({**rng.choice(rows)})
        elif rows and kind < 0.2:  # near copy: one line of comment added to an earlier row
            prev = rng.choice(rows)
            mark = COMMENT[prev["language"]]
            rows.append({**prev, "output": prev["output"].rstrip("\n") + f"\n{mark} note {i}\n"})
        else:
            rows.append(mutate(base[i % len(base)], rng, i))
    return [{"id": f"bench/{i}", **r} for i, r in enumerate(rows)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--anonymise", action="store_true")
    ap.add_argument("--decontaminate", action="store_true")
    args = ap.parse_args()

    t0 = time.monotonic()
    rows = make_rows(args.records, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        made = time.monotonic() - t0
        cfg = PrepareConfig(sources=[SourceConfig(path=str(data), format="canonical")], figures=False,
                            steps=StepsConfig(anonymise=args.anonymise, decontaminate=args.decontaminate),
                            decontamination=DecontaminationConfig())
        t1, c1 = time.monotonic(), time.process_time()
        report = run_prepare(cfg, out=str(Path(tmp) / "out"))
        wall, cpu = time.monotonic() - t1, time.process_time() - c1

    n = report["steps"][0]["total"]
    print(f"# prepare speed ({platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()})\n")
    print(f"{len(rows)} input rows (made in {made:.1f} s); kept {report['totals']['kept']}; "
          f"rejected {report['totals']['rejected']}: "
          + ", ".join(f"{k} {v['count']}" for k, v in report["rejected"].items()) + "\n")
    print("| step | records after | seconds | records/s (into the step) |")
    print("|---|---:|---:|---:|")
    into = n
    for s in report["steps"]:
        rate = (into if s["step"] != "read" else len(rows)) / s["seconds"] if s["seconds"] else float("inf")
        print(f"| {s['step']} | {s['total']} | {s['seconds']:.2f} | {rate:,.0f} |")
        into = s["total"]
    print(f"| **all (incl. writing the report)** | {report['totals']['kept']} | {wall:.2f} | "
          f"**{len(rows) / wall:,.0f}** |")
    print(f"\nCPU time of the run: {cpu:.2f} s -> {len(rows) / cpu:,.0f} records per CPU-second "
          f"(independent of other load; load average now {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
