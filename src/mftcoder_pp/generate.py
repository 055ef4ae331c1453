"""`mftpp generate`: complete a benchmark's prompts with a model and write what `mftpp evaluate` reads.

Files in the output directory:
- samples.jsonl: one line per sample, {"task_id", "completion", "language", "num_tokens",
  "finish_reason"}; a task's n samples are written together once all are generated, so the file only
  ever holds whole tasks. At the end it is rewritten in benchmark order.
- samples.jsonl.meta.json: every generation setting (model, benchmark, sampling, prompt format,
  language prefix, stop sequences per language, EOS ids, seed, dtype, versions), times and throughput.
  `mftpp evaluate` copies it into its summary ("generation").

Rows (task, sample) are decoded by the continuous decoder (generation/engine.py) with --batch-size
slots: a row that ends frees its slot for the next one at once. With an HMD-Fusion adapter every
forward has one language, so each language is one run of the decoder; otherwise languages mix (each
row keeps its own stop rule).

A re-run into the same directory with the same settings continues: tasks already complete are kept
(settings that do not change the samples, such as --batch-size, --limit and the device, may differ).
Details, the stop rules and the decoder's measurements: docs/generate.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .benchmarks import Task, get_benchmark
from .data.encoding import leading_special_ids, prompt_ids
from .data.records import json_objects
from .data.prompts import TEMPLATES
from .defaults import GENERATE as D
from .generation.prompts import (PREFIX_MODES, PROMPT_FORMATS, build_prompt, has_chat_template, rejoin,
                                 resolve_language_prefix, split_trailing_space)
from .generation.stops import stop_rule
from .progress import Progress
from .provenance import provenance, write_json as _write_json

DTYPES = ("float32", "bfloat16", "float16")
SAMPLES_NAME = "samples.jsonl"
# Settings that decide what the samples are: a resumed run must agree on every one of them.
IDENTITY_KEYS = ("model", "benchmark", "n", "temperature", "top_p", "max_new_tokens", "prompt_format",
                 "prompt_trailing_whitespace",
                 "language_prefix_by_language", "stop_sequences", "eos_token_ids", "seed", "sampling_seeds",
                 "dtype", "num_shards", "shard_index")
STOP_RULE_TEXT = ("generation of a row stops at an EOS token or when its text contains a stop sequence; the "
                  "completion is cut at the earliest stop sequence, matched as if the completion started on a new "
                  "line: cut_before sequences are removed with what follows, cut_after sequences are kept and what "
                  "follows removed")


class GenerationError(ValueError):
    """Bad input to a generation run (one-line message)."""


def validate(n: int, temperature: float, top_p: float, max_new_tokens: int, batch_size: int, limit: int | None,
             prompt_format: str, language_prefix: str, dtype: str, num_shards: int, shard_index: int) -> None:
    if n < 1:
        raise GenerationError(f"--n must be >= 1, got {n}")
    if temperature < 0:
        raise GenerationError(f"--temperature must be >= 0 (0 = greedy), got {temperature}")
    if n > 1 and temperature == 0:
        raise GenerationError(f"--n {n} with greedy decoding (--temperature 0) repeats one sample; "
                              "give a sampling temperature, e.g. --temperature 0.8")
    if not 0 < top_p <= 1:
        raise GenerationError(f"--top-p must be in (0, 1], got {top_p}")
    if max_new_tokens < 1:
        raise GenerationError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if batch_size < 1:
        raise GenerationError(f"--batch-size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise GenerationError(f"--limit must be >= 1, got {limit}")
    if prompt_format not in PROMPT_FORMATS:
        raise GenerationError(f"unknown --prompt-format {prompt_format!r}; known: {', '.join(PROMPT_FORMATS)}")
    if language_prefix not in PREFIX_MODES:
        raise GenerationError(f"unknown --language-prefix {language_prefix!r}; known: {', '.join(PREFIX_MODES)}")
    if dtype not in DTYPES:
        raise GenerationError(f"unknown --dtype {dtype!r}; known: {', '.join(DTYPES)}")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise GenerationError(f"--shard-index must be in [0, {num_shards}) and --num-shards >= 1, "
                              f"got {shard_index} of {num_shards}")


def _check_model(model: str) -> None:
    """The model directory, checked before torch is imported: a wrong path must cost nothing."""
    from .model.load import ModelLoadError, check_inference_dir

    try:
        check_inference_dir(model)
    except ModelLoadError as exc:
        raise GenerationError(f"--model: {exc}") from None


def select_tasks(tasks: list[Task], limit: int | None, num_shards: int, shard_index: int,
                 spread: bool = False) -> list[Task]:
    """The first `limit` tasks (with `spread`: `limit` tasks evenly spaced over the benchmark, so a
    benchmark ordered by language keeps every language), then those whose index modulo num_shards
    is shard_index."""
    if limit and spread and limit < len(tasks):
        tasks = [tasks[i * len(tasks) // limit] for i in range(limit)]
    tasks = tasks[:limit] if limit else tasks
    return [t for i, t in enumerate(tasks) if i % num_shards == shard_index]


def generate(model: str, benchmark: str, out: str, n: int = D.n, temperature: float = D.temperature,
             top_p: float = D.top_p, max_new_tokens: int = D.max_new_tokens, batch_size: int = D.batch_size,
             limit: int | None = None, prompt_format: str = D.prompt_format,
             language_prefix: str = D.language_prefix, seed: int = D.seed, dtype: str = D.dtype,
             num_shards: int = D.num_shards, shard_index: int = D.shard_index, device: str = D.device,
             attn_implementation: str = "sdpa", progress: bool = True, spread: bool = False,
             label: str = "generate") -> dict:
    """Generate n completions per task of `benchmark` into out/samples.jsonl; returns the metadata
    written to out/samples.jsonl.meta.json."""
    validate(n, temperature, top_p, max_new_tokens, batch_size, limit, prompt_format, language_prefix, dtype,
             num_shards, shard_index)
    try:
        bench = get_benchmark(benchmark)
    except ValueError as exc:
        raise GenerationError(f"--benchmark: {exc}") from None
    _check_model(model)
    full_program = bool(getattr(bench, "completion_is_full_program", False))
    tasks = select_tasks(bench.tasks(), limit, num_shards, shard_index, spread)
    if not tasks:
        raise GenerationError(f"no tasks in shard {shard_index} of {num_shards} of {bench.name}")

    import torch

    from .generation.engine import Sampling, engine_name, engine_settings
    from .model.gguf import model_source
    from .model.load import hf_progress_bars, load_for_inference

    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    with hf_progress_bars(progress and sys.stderr.isatty()):
        mdl, tok = load_for_inference(model, dtype=getattr(torch, dtype), attn_implementation=attn_implementation)
    try:
        mdl.to(dev)
    except (RuntimeError, AssertionError) as exc:
        raise GenerationError(f"cannot use device {dev!r} ({str(exc).splitlines()[0]})") from None
    languages = list(dict.fromkeys(t.language for t in tasks))
    prefix = resolve_language_prefix(language_prefix, tok, languages)
    rules = {lang: stop_rule(lang, full_program) for lang in languages}
    if prompt_format == "chat" and not has_chat_template(tok):
        raise GenerationError(f"--prompt-format chat: the tokenizer of {model} has no chat template "
                              f"(use --prompt-format completion or instruct)")
    hmd_langs = hmd_languages(mdl)
    if hmd_langs is not None and (missing := [lang for lang in languages if lang not in hmd_langs]):
        raise GenerationError(f"the model's HMD-Fusion adapter has no branch for {', '.join(missing)} "
                              f"(it has {', '.join(hmd_langs)})")
    eos_ids = eos_token_ids(mdl, tok)
    sampling = Sampling(temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                        max_new_tokens=max_new_tokens)

    meta = {
        "model": os.path.abspath(model), "benchmark": bench.name, "n": n, "temperature": temperature,
        "do_sample": sampling.do_sample, "top_p": sampling.top_p, "top_k": 0, "max_new_tokens": max_new_tokens,
        "prompt_format": prompt_format, "prompt_template": TEMPLATES[0] if prompt_format == "instruct" else None,
        "prompt_trailing_whitespace": "kept" if prompt_format == "instruct" else "held back",
        "language_prefix": language_prefix, "language_prefix_by_language": prefix,
        "stop_sequences": {lang: r.to_dict() for lang, r in rules.items()}, "stop_rule": STOP_RULE_TEXT,
        "completion_is_full_program": full_program, "eos_token_ids": eos_ids, "seed": seed, "dtype": dtype,
        "num_shards": num_shards, "shard_index": shard_index, "limit": limit, "spread": spread,
        "num_tasks": len(tasks),
        "batch_size": batch_size, "device": dev, "attn_implementation": attn_implementation,
        "engine": engine_name(mdl), "engine_settings": engine_settings(mdl, sampling, batch_size),
        "sampling_seeds": "per row: sha256 of [seed, [[task_id, sample_index]]]" if sampling.do_sample else None,
        "hmd_languages": hmd_langs, "torch_threads": torch.get_num_threads(), "provenance": provenance(),
    }
    meta.update(model_source(model))  # a pypi: name stays a name; a GGUF import's record comes along
    outdir = Path(out)
    samples_path = outdir / SAMPLES_NAME
    meta_path = outdir / (SAMPLES_NAME + ".meta.json")
    done, previous = _start_or_resume(outdir, samples_path, meta_path, meta, n)
    meta.update(started=_now(), finished=None, complete=False,
                generation_seconds=round(previous.get("generation_seconds", 0.0), 3) if previous else 0.0)
    _write_json(meta_path, {**meta, **_token_stats(samples_path, meta["generation_seconds"])})

    pending = [t for t in tasks if t.task_id not in done]
    rows: list[tuple[Task, int, list[int], str]] = []  # (task, sample index, prompt ids, held-back whitespace)
    lead = meta["prompt_leading_special_ids"] = leading_special_ids(tok)  # BOS as in training (data/encoding.py)
    for t in pending:
        text, held = build_prompt(t, prompt_format, prefix[t.language], full_program, tok), ""
        if prompt_format != "instruct":
            text, held = split_trailing_space(text)
        ids = prompt_ids(tok, text, [] if _starts_with_bos(tok, text) else lead)
        rows += [(t, j, ids, held) for j in range(n)]
    buffered: dict[str, list[dict]] = {}
    start = time.monotonic()
    tokens = finished_tasks = 0
    bar = Progress(f"{label}: tasks", len(pending), enabled=progress)
    try:
        with open(samples_path, "a", encoding="utf-8") as fh:
            def write(i: int, o) -> None:
                nonlocal tokens, finished_tasks
                task, j, _, held = rows[i]
                tokens += o.num_tokens
                got = buffered.setdefault(task.task_id, [])
                got.append({"task_id": task.task_id, "completion": rejoin(o.text, held), "language": task.language,
                            "sample_index": j, "num_tokens": o.num_tokens, "finish_reason": o.finish_reason})
                if len(got) == n:
                    for row in sorted(buffered.pop(task.task_id), key=lambda r: r["sample_index"]):
                        fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    finished_tasks += 1
                bar.update(finished_tasks, **{"tok/s": round(tokens / max(time.monotonic() - start, 1e-9))})

            _decode_rows(mdl, tok, rows, rules, sampling, eos_ids, seed, batch_size, hmd_langs, write)
    finally:
        bar.close()
        meta["generation_seconds"] = round(meta["generation_seconds"] + time.monotonic() - start, 3)
        _write_json(meta_path, {**meta, **_token_stats(samples_path, meta["generation_seconds"])})
    _rewrite_in_order(samples_path, [t.task_id for t in tasks])
    meta.update(finished=_now(), complete=True)
    meta.update(_token_stats(samples_path, meta["generation_seconds"]))
    _write_json(meta_path, meta)
    return meta


def _decode_rows(mdl, tok, rows, rules, sampling, eos_ids, seed, batch_size, hmd_langs,
                 on_output: Callable[[int, object], None]) -> None:
    """Decode every row, calling on_output(row index, Output) as rows end: one run of the decoder, or
    one per language when HMD-Fusion routes every forward by language."""
    from .generation import engine

    groups: dict[str | None, list[int]] = {}
    for i, (task, *_) in enumerate(rows):
        groups.setdefault(task.language if hmd_langs is not None else None, []).append(i)
    for lang, members in groups.items():
        seeds = [_derive_seed(seed, [(rows[i][0].task_id, rows[i][1])]) for i in members] if sampling.do_sample else None
        with _routing(mdl, hmd_langs, lang):
            engine.generate_batch(mdl, tok, [rows[i][2] for i in members], sampling,
                                  [rules[rows[i][0].language] for i in members], eos_ids, tok.pad_token_id,
                                  seeds=seeds, slots=batch_size,
                                  on_output=lambda k, out, members=members: on_output(members[k], out))


def _starts_with_bos(tokenizer, text: str) -> bool:
    """Whether a text (a rendered chat template) already holds the BOS the encoding would add."""
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and text.startswith(bos)


def eos_token_ids(model, tokenizer) -> list[int]:
    """The tokenizer's EOS plus those of the model's generation config (chat models often have two)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for m in model.modules():
        cfg = getattr(m, "generation_config", None)
        extra = getattr(cfg, "eos_token_id", None)
        if extra is not None:
            ids += list(extra) if isinstance(extra, (list, tuple)) else [extra]
            break
    return sorted(set(int(i) for i in ids))


def hmd_languages(model) -> list[str] | None:
    """The language list of the model's HMD-Fusion adapter, or None when it has none."""
    try:
        from .modules.hmd_fusion import hmd_layers
    except ImportError:
        return None
    layers = hmd_layers(model)
    return list(layers[0].hmd_cfg.languages) if layers else None


def _routing(model, hmd_langs: list[str] | None, language: str | None):
    if hmd_langs is None or language is None:
        return contextlib.nullcontext()
    import torch

    from .modules.hmd_fusion import language_routing

    # One id for the whole (single-language) run: HMD-Fusion repeats it to the batch size of each
    # forward, which covers the prefills as well as the decoding steps of any size.
    return language_routing(model, torch.full((1,), hmd_langs.index(language), dtype=torch.long))


def _derive_seed(seed: int, keys: list[tuple[str, int]]) -> int:
    """A row's sampling seed: a function of the run seed and the row (task id, sample index) only, so a
    row samples the same completion whatever ran beside it or before it."""
    digest = hashlib.sha256(json.dumps([seed, keys]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _read_rows(path: Path) -> list[dict]:
    """Rows of samples.jsonl; a torn last line (a kill mid-write) is dropped, so its task is redone."""
    if not path.exists():
        return []
    return [row for _, row in json_objects(path, GenerationError, "samples file", torn_tail=True)
            if isinstance(row.get("task_id"), str)]


def _start_or_resume(outdir: Path, samples: Path, meta_path: Path, meta: dict, n: int) -> tuple[set[str], dict | None]:
    """Task ids already complete in `samples` (rewritten to whole tasks only), and the previous meta."""
    outdir.mkdir(parents=True, exist_ok=True)
    if not samples.exists():
        return set(), None
    if not meta_path.exists():
        raise GenerationError(f"{samples} exists without its {meta_path.name}; use another --out directory")
    try:
        previous = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError:  # invalid JSON or invalid UTF-8
        raise GenerationError(f"{meta_path}: not valid JSON; use another --out directory") from None
    diff = [k for k in IDENTITY_KEYS if previous.get(k) != meta[k]]
    if diff:
        raise GenerationError(f"{outdir} holds samples generated with other settings (differs in {', '.join(diff)}); "
                              "use another --out directory")
    rows = _read_rows(samples)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["task_id"]] = counts.get(r["task_id"], 0) + 1
    done = {tid for tid, c in counts.items() if c == n}
    with open(samples, "w", encoding="utf-8") as fh:
        for r in rows:
            if r["task_id"] in done:
                fh.write(json.dumps(r) + "\n")
    return done, previous


def _rewrite_in_order(path: Path, order: list[str]) -> None:
    rank = {tid: i for i, tid in enumerate(order)}
    rows = sorted(_read_rows(path), key=lambda r: (rank.get(r["task_id"], len(rank)), r.get("sample_index", 0)))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


def _token_stats(samples: Path, seconds: float) -> dict:
    rows = _read_rows(samples)
    tokens = sum(int(r.get("num_tokens", 0)) for r in rows)
    reasons: dict[str, int] = {}
    for r in rows:
        reasons[r.get("finish_reason", "?")] = reasons.get(r.get("finish_reason", "?"), 0) + 1
    return {"num_samples": len(rows), "tokens_generated": tokens, "finish_reasons": reasons,
            "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
