"""`mftpp generate`: samples + meta, batching equals one-at-a-time, sampling, stop rules, adapters, CLI, errors."""

import json

import pytest
import torch
from conftest import reported

from mftcoder_pp.benchmarks import get_benchmark
from mftcoder_pp.cli import main
from mftcoder_pp.data.prompts import language_token
from mftcoder_pp.generate import GenerationError, generate, select_tasks
from mftcoder_pp.generation.batching import plan_batches
from mftcoder_pp.generation.padded import StopOnSequences
from mftcoder_pp.generation.prompts import (build_prompt, default_instruction, rejoin, resolve_language_prefix,
                                           split_trailing_space)
from mftcoder_pp.generation.stops import stop_rule
from mftcoder_pp.model.load import TinyModelSpec, build_tiny

LANGS = ["python", "cpp", "java", "javascript", "go", "rust"]
SPEC = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64)


def tiny_tokenizer(language_tokens=True):
    """Byte-level BPE without merges (every byte a token) + EOS, PAD and the language tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|pad|>"] + ([language_token(lang) for lang in LANGS] if language_tokens else [])
    vocab = {t: i for i, t in enumerate(special + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(special)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                   additional_special_tokens=special[2:])


def tiny_model(tok):
    model = build_tiny(SPEC, tok)
    with torch.no_grad(), torch.random.fork_rng():  # larger weights than the init: varied, decisive argmaxes
        torch.manual_seed(0)
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models are fastest on one thread (and OpenMP spin-waits badly on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    tok = tiny_tokenizer()
    tiny_model(tok).save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def rows_of(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def meta_of(out):
    return json.loads((out / "samples.jsonl.meta.json").read_text())


FAST = dict(max_new_tokens=24, progress=False)


def test_greedy_writes_samples_and_meta(tmp_path, model_dir):
    out = tmp_path / "g"
    meta = generate(model_dir, "synthetic-python", str(out), limit=3, **FAST)
    rows = rows_of(out)
    assert [r["task_id"] for r in rows] == [t.task_id for t in get_benchmark("synthetic-python").tasks()[:3]]
    assert all(isinstance(r["completion"], str) and 1 <= r["num_tokens"] <= 24 for r in rows)
    on_disk = meta_of(out)
    assert on_disk == meta
    for key in ("model", "benchmark", "n", "temperature", "top_p", "max_new_tokens", "stop_sequences",
                "prompt_format", "language_prefix", "language_prefix_by_language", "seed", "dtype", "provenance",
                "started", "finished", "tokens_generated", "tokens_per_second", "eos_token_ids", "batch_size"):
        assert key in meta, key
    assert meta["benchmark"] == "synthetic-python" and meta["n"] == 1 and meta["do_sample"] is False
    assert meta["complete"] and meta["num_samples"] == 3
    assert meta["tokens_generated"] == sum(r["num_tokens"] for r in rows) and meta["tokens_per_second"] > 0
    assert meta["language_prefix_by_language"] == {"python": True}  # the tokenizer has <|python|>
    assert meta["stop_sequences"]["python"]["cut_before"][0] == "\ndef "
    assert meta["engine"] == "continuous" and meta["sampling_seeds"] is None  # what decoded, how rows are seeded


def test_batched_equals_one_at_a_time(tmp_path, model_dir):
    # Prompts of different lengths in one batch: left padding, the mask and positions must be right.
    a = generate(model_dir, "synthetic-python", str(tmp_path / "a"), limit=6, batch_size=6, **FAST)
    b = generate(model_dir, "synthetic-python", str(tmp_path / "b"), limit=6, batch_size=1, **FAST)
    ra, rb = rows_of(tmp_path / "a"), rows_of(tmp_path / "b")
    assert len({len(build_prompt(t, "instruct", True)) for t in select_tasks(
        get_benchmark("synthetic-python").tasks(), 6, 1, 0)}) > 1
    assert [(r["task_id"], r["completion"], r["num_tokens"]) for r in ra] == \
           [(r["task_id"], r["completion"], r["num_tokens"]) for r in rb]
    assert len({r["completion"] for r in ra}) > 1 and a["tokens_generated"] == b["tokens_generated"]


def test_sampling_n_samples_reproducible(tmp_path, model_dir):
    kw = dict(limit=2, n=3, temperature=0.8, top_p=0.95, batch_size=4, **FAST)
    generate(model_dir, "synthetic-cpp", str(tmp_path / "s1"), seed=1, **kw)
    generate(model_dir, "synthetic-cpp", str(tmp_path / "s2"), seed=1, **kw)
    generate(model_dir, "synthetic-cpp", str(tmp_path / "s3"), seed=2, **kw)
    r1, r2, r3 = (rows_of(tmp_path / s) for s in ("s1", "s2", "s3"))
    ids = [t.task_id for t in get_benchmark("synthetic-cpp").tasks()[:2]]
    assert [r["task_id"] for r in r1] == [ids[0]] * 3 + [ids[1]] * 3
    assert r1 == r2
    assert [r["completion"] for r in r1] != [r["completion"] for r in r3]
    assert len({r["completion"] for r in r1[:3]}) > 1  # the samples of one task differ
    assert meta_of(tmp_path / "s1")["do_sample"] and meta_of(tmp_path / "s1")["temperature"] == 0.8
    assert meta_of(tmp_path / "s1")["sampling_seeds"].startswith("per row")
    # Rows are seeded one by one: another batch size gives the same samples.
    generate(model_dir, "synthetic-cpp", str(tmp_path / "s4"), seed=1, **{**kw, "batch_size": 1})
    assert rows_of(tmp_path / "s4") == r1


# --- stop rules -------------------------------------------------------------------------------------

@pytest.mark.parametrize("generated, expected", [
    ("    return x + 1\n\ndef other():\n    pass\n", "    return x + 1\n"),
    ("    return x\nprint(f(1))\n", "    return x"),
    ("    return x\n\n\nif __name__ == '__main__':\n    main()", "    return x\n\n"),
    ("    y = 1  # fine\n    # indented\n    return y\n# test\n", "    y = 1  # fine\n    # indented\n    return y"),
    ("    return 1\n```\nExplanation", "    return 1"),
    ("def again():\n    pass", ""),  # starts on a new line: the body was empty
    ("    return 1\n", "    return 1\n"),  # no stop
])
def test_python_body_stops(generated, expected):
    assert stop_rule("python").truncate(generated)[0] == expected


@pytest.mark.parametrize("language", ["cpp", "java", "javascript", "go", "rust"])
def test_brace_languages_cut_after_closing_brace(language):
    rule = stop_rule(language)
    body = "    if (x) {\n        return 1;\n    }\n    return 0;\n}"
    assert rule.truncate(body + "\n\nint main() {\n}\n") == (body, True)
    assert rule.truncate(body) == (body, True)
    assert rule.truncate("}\nrest") == ("}", True)  # the function closed on the first line
    assert rule.truncate("    return 0;\n```\ntext") == ("    return 0;", True)
    assert rule.truncate("    return 0;\n  }") == ("    return 0;\n  }", False)  # indented: not the end


def test_full_program_stops_keep_helpers():
    rule = stop_rule("python", full_program=True)
    program = "import re\n\ndef helper(x):\n    return x\n\nclass A:\n    pass\n\ndef f(x):\n    return helper(x)\n"
    assert rule.truncate(program + "\nassert f(1) == 1\n")[0] == program
    assert rule.truncate(program + "print(f(2))")[0] == program[:-1]
    assert rule.truncate(program) == (program, False)


def test_earliest_stop_wins():
    assert stop_rule("go").truncate("\treturn 1\n}\n```\n}")[0] == "\treturn 1\n}"
    assert stop_rule("rust").truncate("    1\n```\n}\n")[0] == "    1"


@pytest.mark.parametrize("name", ["synthetic-python", "synthetic-cpp", "synthetic-java", "synthetic-javascript",
                                  "synthetic-go", "synthetic-rust", "humaneval", "mbpp"])
def test_references_survive_their_stop_rule(name):
    bench = get_benchmark(name)
    for t in bench.tasks():
        rule = stop_rule(t.language, bench.completion_is_full_program)
        kept = rule.truncate(t.reference + "\n")[0]
        assert kept.rstrip() == t.reference.rstrip(), t.task_id


def test_stopping_criterion_per_row():
    tok = tiny_tokenizer()
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = [5, 6, 7]
    rows = [enc("  x = 1\n}\n    more"), enc("  y\n  z = 1;\n  w"), enc("ab") + [tok.eos_token_id] + enc("cd")]
    steps = max(map(len, rows))
    rows = [r + [tok.pad_token_id] * (steps - len(r)) for r in rows]
    crit = StopOnSequences(tok, stop_rule("cpp"), len(prompt), 3, [tok.eos_token_id])
    finished_at = [None] * 3
    for n in range(1, steps + 1):
        done = crit(torch.tensor([prompt + r[:n] for r in rows]), None)
        for i, d in enumerate(done.tolist()):
            if d and finished_at[i] is None:
                finished_at[i] = n
    assert finished_at == [len(enc("  x = 1\n}")), None, 3]
    assert crit.reason == ["stop", "length", "eos"]
    # The virtual new line: "}" as the very first token ends the function.
    crit = StopOnSequences(tok, stop_rule("cpp"), 1, 1, [])
    assert crit(torch.tensor([[5] + enc("}")]), None).tolist() == [True]


# --- the decoding engine ------------------------------------------------------------------------------

def test_padded_decoder_prefill_modes_and_single_rows_agree(model_dir):
    from mftcoder_pp.generation.padded import Sampling, generate_batch
    from mftcoder_pp.model.load import load_for_inference

    model, tok = load_for_inference(model_dir)
    prompts = [tok(t)["input_ids"] for t in ("def f(x):\n", "x", "int main() {\n  return 0;", "fn")]
    kw = dict(sampling=Sampling(max_new_tokens=12, min_new_tokens=12), rule=None, eos_ids=[], pad_id=tok.pad_token_id)
    rows = generate_batch(model, tok, prompts, prefill="rows", **kw)
    batch = generate_batch(model, tok, prompts, prefill="batch", **kw)
    alone = [generate_batch(model, tok, [p], prefill="batch", **kw)[0] for p in prompts]
    assert [o.token_ids for o in rows] == [o.token_ids for o in batch] == [o.token_ids for o in alone]
    assert all(len(o.token_ids) == 12 and o.finish_reason == "length" for o in rows)


def test_growing_cache_layer_writes_in_place_and_adopts_replacements():
    from mftcoder_pp.generation.padded import GrowingLayer

    layer = GrowingLayer(reserve=4)
    k, v = torch.randn(2, 3, 3, 5), torch.randn(2, 3, 3, 5)
    keys, values = layer.update(k, v)
    assert torch.equal(keys, k) and torch.equal(values, v) and layer.get_seq_length() == 3
    buffer = layer._kbuf
    k1 = torch.randn(2, 3, 1, 5)
    keys, _ = layer.update(k1, k1)
    assert layer._kbuf is buffer and torch.equal(keys, torch.cat([k, k1], 2))  # in place, within the reserve
    keys, _ = layer.update(k1, k1)  # past the reserve: grows, content kept
    assert layer._kbuf is not buffer and torch.equal(keys, torch.cat([k, k1, k1], 2))
    layer.batch_select_indices(torch.tensor([1]))  # replaced from outside: adopted
    keys, _ = layer.update(k1[1:], k1[1:])
    assert torch.equal(keys, torch.cat([k[1:], k1[1:], k1[1:], k1[1:]], 2))


# --- prompts and batching ----------------------------------------------------------------------------

def test_prompt_formats():
    task = get_benchmark("synthetic-python").tasks()[0]
    p = build_prompt(task, "instruct", False)
    assert p == f"Instruction: {task.instruction}\nInput: {task.prompt.rstrip(chr(10))}\nOutput: "
    assert build_prompt(task, "instruct", True).startswith("<|python|>Instruction: ")
    assert build_prompt(task, "completion", False) == task.prompt
    he = get_benchmark("humaneval").tasks()[0]
    assert build_prompt(he, "instruct", False).startswith(f"Instruction: {default_instruction('python')}\nInput: ")
    assert default_instruction("cpp") == "Complete the following C++ function."
    mbpp = get_benchmark("mbpp").tasks()[0]
    p = build_prompt(mbpp, "instruct", False, full_program=True)
    assert p.startswith(f"Instruction: {mbpp.instruction} Your code should pass these tests:\nInput: assert ")
    assert p.count(mbpp.instruction) == 1
    # A whole program in completion format: bigcode-evaluation-harness's docstring (statement + first
    # test), not the raw prompt, which ends in asserts a base model would only continue.
    first_test = mbpp.prompt.split("Your code should pass these tests:", 1)[1].strip().splitlines()[0]
    assert build_prompt(mbpp, "completion", False, full_program=True) == f'"""\n{mbpp.instruction}\n{first_test}\n"""\n'
    assert build_prompt(mbpp, "completion", True, full_program=True).startswith('<|python|>"""\n')


def test_trailing_whitespace_is_held_back_and_rejoined():
    assert split_trailing_space('def f():\n    """Doc."""\n') == ('def f():\n    """Doc."""', "\n")
    assert split_trailing_space("int f() {\n  \n") == ("int f() {", "\n  \n")
    assert split_trailing_space("x") == ("x", "")
    assert rejoin("\n    return 1\n", "\n") == "    return 1\n"
    assert rejoin("  # same line\n    return 1", "\n") == "  # same line\n    return 1"  # kept whole
    assert rejoin("abc", "") == "abc"


def test_completion_prompts_end_at_the_code_and_completions_continue_the_raw_prompt(tmp_path, model_dir,
                                                                                  monkeypatch):
    """The model sees the prompt without its final newline (the token boundary training saw: a newline
    merged with the next line's indentation); the stored completion continues the benchmark's own prompt."""
    import mftcoder_pp.generation.engine as engine
    from mftcoder_pp.generation.engine import Output
    seen = []

    def fake_batch(model, tokenizer, prompts, *args, **kwargs):
        seen.extend(tokenizer.decode(p) for p in prompts)
        return reported([Output("\n    return 1\n", 3, "stop") for _ in prompts], kwargs)

    monkeypatch.setattr(engine, "generate_batch", fake_batch)
    meta = generate(model_dir, "synthetic-python", str(tmp_path / "c"), limit=2, prompt_format="completion",
                    language_prefix="off", **FAST)
    tasks = get_benchmark("synthetic-python").tasks()[:2]
    assert sorted(seen) == sorted(t.prompt.rstrip() for t in tasks) and all(t.prompt.endswith("\n") for t in tasks)
    assert [r["completion"] for r in rows_of(tmp_path / "c")] == ["    return 1\n"] * 2
    assert meta["prompt_trailing_whitespace"] == "held back"
    generate(model_dir, "synthetic-python", str(tmp_path / "i"), limit=1, language_prefix="off", **FAST)
    assert seen[-1] == build_prompt(tasks[0], "instruct", False)  # instruct prompts are kept as trained
    assert meta_of(tmp_path / "i")["prompt_trailing_whitespace"] == "kept"


CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_chat_prompts_use_the_tokenizer_template_and_start_the_answer_with_the_code():
    tok = tiny_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    he = get_benchmark("humaneval").tasks()[0]
    p = build_prompt(he, "chat", False, tokenizer=tok)
    user = f"{default_instruction('python')}\n\n```python\n{he.prompt.rstrip()}\n```"
    assert p == f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n```python\n{he.prompt}"
    mbpp = get_benchmark("mbpp").tasks()[0]
    p = build_prompt(mbpp, "chat", False, full_program=True, tokenizer=tok)
    assert p.endswith("<|im_start|>assistant\n```python\n") and "assert " in p and p.count(mbpp.instruction) == 1
    with pytest.raises(ValueError, match="chat template"):
        build_prompt(he, "chat", False, tokenizer=tiny_tokenizer())


def test_chat_format_generates_after_the_template_and_needs_one(tmp_path, model_dir, monkeypatch):
    import shutil

    import mftcoder_pp.generation.engine as engine
    from mftcoder_pp.generation.engine import Output
    with pytest.raises(GenerationError, match="no chat template"):
        generate(model_dir, "synthetic-python", str(tmp_path / "none"), limit=1, prompt_format="chat", **FAST)
    chat_dir = tmp_path / "chat_model"
    shutil.copytree(model_dir, chat_dir)
    tok = tiny_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(chat_dir)
    seen = []

    def fake_batch(model, tokenizer, prompts, *args, **kwargs):
        seen.extend(tokenizer.decode(p) for p in prompts)
        return reported([Output("\n    return 1\n```", 3, "stop") for _ in prompts], kwargs)

    monkeypatch.setattr(engine, "generate_batch", fake_batch)
    meta = generate(str(chat_dir), "synthetic-python", str(tmp_path / "c"), limit=1, prompt_format="chat",
                    language_prefix="off", **FAST)
    task = get_benchmark("synthetic-python").tasks()[0]
    assert seen == [build_prompt(task, "chat", False, tokenizer=tok).rstrip()]
    assert meta["prompt_format"] == "chat" and meta["prompt_trailing_whitespace"] == "held back"
    assert rows_of(tmp_path / "c")[0]["completion"].startswith("    return 1\n")


def test_language_prefix_auto():
    with_tokens, without = tiny_tokenizer(), tiny_tokenizer(language_tokens=False)
    assert resolve_language_prefix("auto", with_tokens, ["python", "go"]) == {"python": True, "go": True}
    assert resolve_language_prefix("auto", without, ["python"]) == {"python": False}
    assert resolve_language_prefix("on", without, ["python"]) == {"python": True}
    assert resolve_language_prefix("off", with_tokens, ["python"]) == {"python": False}


def test_batches_single_language_and_sorted():
    langs = ["python", "go", "python", "python", "go", "python"]
    lengths = [5, 9, 7, 7, 3, 1]
    batches = plan_batches(langs, lengths, 2)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert len(b) <= 2 and len({langs[i] for i in b}) == 1
    assert batches == [[2, 3], [0, 5], [1, 4]]  # longest first, ties keep their order


# --- resume, shards ---------------------------------------------------------------------------------

def test_resume_keeps_finished_tasks_and_rejects_other_settings(tmp_path, model_dir):
    out = tmp_path / "r"
    generate(model_dir, "synthetic-go", str(out), limit=2, **FAST)
    first = (out / "samples.jsonl").read_text().splitlines()
    # An interrupted run: a torn line at the end.
    (out / "samples.jsonl").write_text("\n".join(first) + '\n{"task_id": "go/x", "compl')
    meta = generate(model_dir, "synthetic-go", str(out), limit=4, batch_size=3, **FAST)
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 4 and lines[:2] == first and meta["num_samples"] == 4 and meta["complete"]
    with pytest.raises(GenerationError, match="differs in max_new_tokens"):
        generate(model_dir, "synthetic-go", str(out), limit=4, max_new_tokens=8, progress=False)


def test_shards_partition_the_tasks(tmp_path, model_dir):
    for i in range(2):
        generate(model_dir, "synthetic-rust", str(tmp_path / f"s{i}"), limit=5, num_shards=2, shard_index=i, **FAST)
    ids = [[r["task_id"] for r in rows_of(tmp_path / f"s{i}")] for i in range(2)]
    every = [t.task_id for t in get_benchmark("synthetic-rust").tasks()[:5]]
    assert ids == [every[0::2], every[1::2]]


# --- adapters -------------------------------------------------------------------------------------------

def test_peft_lora_adapter_generates(tmp_path, model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           task_type="CAUSAL_LM", init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    meta = generate(str(tmp_path / "adapter"), "synthetic-python", str(tmp_path / "out"), limit=2, **FAST)
    assert meta["num_samples"] == 2
    plain = rows_of(tmp_path / "out")
    generate(model_dir, "synthetic-python", str(tmp_path / "base"), limit=2, **FAST)
    assert plain != rows_of(tmp_path / "base")  # the (non-zero) LoRA weights were applied


def test_hmd_adapter_routes_by_language(tmp_path, model_dir):
    hmd = pytest.importorskip("mftcoder_pp.modules.hmd_fusion")
    from transformers import AutoModelForCausalLM

    from mftcoder_pp.model.load import load_tokenizer

    d = tmp_path / "hmd"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.save_pretrained(d)
    load_tokenizer(model_dir).save_pretrained(d)
    hmd.apply_hmd(model, hmd.HMDConfig(languages=["python", "go"], top_layers=2, rank=4))
    with torch.no_grad():
        for layer in hmd.hmd_layers(model):
            layer.hmd_up.weight.normal_(0, 0.5)  # non-zero: the adapter changes the outputs
    hmd.save_hmd_adapter(model, d)
    meta = generate(str(d), "synthetic-go", str(tmp_path / "out"), limit=2, **FAST)
    assert meta["hmd_languages"] == ["python", "go"] and meta["num_samples"] == 2
    with pytest.raises(GenerationError, match="no branch for rust"):
        generate(str(d), "synthetic-rust", str(tmp_path / "out2"), limit=1, **FAST)


# --- CLI ------------------------------------------------------------------------------------------------

def test_cli_generate_then_evaluate(tmp_path, model_dir, capsys):
    out = tmp_path / "gen"
    rc = main(["generate", "--model", model_dir, "--benchmark", "synthetic-python", "--out", str(out),
               "--limit", "2", "--max-new-tokens", "16", "--batch-size", "2", "--quiet"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_samples"] == 2 and printed["benchmark"] == "synthetic-python"
    rc = main(["evaluate", "--benchmark", "synthetic-python", "--samples", str(out / "samples.jsonl"),
               "--out", str(tmp_path / "eval"), "--workers", "2", "--quiet"])
    assert rc == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["num_samples"] == 2 and summary["generation"]["benchmark"] == "synthetic-python"
    assert len((tmp_path / "eval" / "results.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("extra, message", [
    (["--benchmark", "nope"], "unknown benchmark 'nope'; known: "),
    (["--n", "0"], "--n must be >= 1"),
    (["--temperature", "-1"], "--temperature must be >= 0"),
    (["--n", "3"], "give a sampling temperature"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--shard-index", "2", "--num-shards", "2"], "--shard-index must be in [0, 2)"),
    (["--model", "/nonexistent/model"], "model directory does not exist"),
    (["--model", "{empty dir}"], "{empty dir}: "),  # ModelLoadError names the path
])
def test_cli_errors(tmp_path, model_dir, capsys, extra, message):
    args = ["generate", "--model", model_dir, "--benchmark", "synthetic-python", "--out", str(tmp_path / "o")]
    for i in range(0, len(extra), 2):
        if extra[i] in args:
            args[args.index(extra[i]) + 1] = extra[i + 1]
        else:
            args += extra[i:i + 2]
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.replace("{empty dir}", str(empty)) for a in args]
    message = message.replace("{empty dir}", str(empty))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_spread_limit_keeps_every_language():
    from mftcoder_pp.benchmarks import get_benchmark
    from mftcoder_pp.generate import select_tasks

    tasks = get_benchmark("synthetic-transfer").tasks()  # ordered by language
    assert {t.language for t in select_tasks(tasks, 10, 1, 0)} == {tasks[0].language}
    spread = select_tasks(tasks, 10, 1, 0, spread=True)
    assert len(spread) == 10 and len({t.language for t in spread}) == len({t.language for t in tasks})
