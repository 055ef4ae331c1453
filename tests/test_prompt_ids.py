"""A prompt is the same token sequence at training time and at generation time, also for a pretrained
tokenizer that adds BOS by default (Llama-2 style); tokenizers that add nothing are unchanged."""

from __future__ import annotations

import json

from conftest import reported
from mftcoder_pp.data.encoding import leading_special_ids, prompt_ids
from mftcoder_pp.data.prompts import IGNORE_INDEX

BOS, EOS = "<s>", "</s>"


def bos_tokenizer(out, append_eos: bool = False):
    """A byte-level BPE whose default encoding is `<s> text` (or `<s> text </s>`), saved like a model's own
    tokenizer, with the python language token added as `mftpp tokenizer` (pretrained mode) adds it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["def add(a, b):\n    return a + b\n"] * 10,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=[BOS, EOS], show_progress=False,
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    single = f"{BOS} $A" + (f" {EOS}" if append_eos else "")
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=EOS)
    fast.add_special_tokens({"additional_special_tokens": ["<|python|>"]})
    fast.save_pretrained(str(out))
    return out


def test_training_and_generation_give_a_prompt_the_same_ids(tmp_path, monkeypatch):
    from mftcoder_pp.benchmarks import get_benchmark
    from mftcoder_pp.generate import generate
    from mftcoder_pp.generation import engine
    from mftcoder_pp.generation.prompts import default_instruction
    from mftcoder_pp.model.load import TinyModelSpec, build_tiny, load_tokenizer
    from mftcoder_pp.train.dataset import build_corpus

    tok = load_tokenizer(bos_tokenizer(tmp_path / "tok"))
    bos = tok.convert_tokens_to_ids(BOS)
    assert tok("x")["input_ids"][0] == bos and leading_special_ids(tok) == [bos]  # the default adds BOS

    # training: one SFT record whose prompt is what `generate --prompt-format instruct` builds for HumanEval/0
    task = get_benchmark("humaneval").tasks()[0]
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    row = {"id": "r0", "task": "synthesis", "language": "python", "instruction": default_instruction("python"),
           "input": task.prompt, "output": "    return True\n"}
    (prepared / "synthesis-python.jsonl").write_text(json.dumps(row) + "\n")
    example = build_corpus([str(prepared)], tok, max_length=4096).train["synthesis/python"][0]
    trained_prompt = [t for t, label in zip(example.input_ids, example.labels) if label == IGNORE_INDEX]

    # generation: the same prompt through `generate`, the model call replaced by one that records its input
    model_dir = tmp_path / "model"
    build_tiny(TinyModelSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64),
               tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    seen = []

    def record(model, tokenizer, prompts, *args, **kwargs):
        seen.extend(list(p) for p in prompts)
        return reported([engine.Output(text="    return True\n", num_tokens=1, finish_reason="eos")
                         for _ in prompts], kwargs)

    monkeypatch.setattr(engine, "generate_batch", record)
    meta = generate(str(model_dir), "humaneval", str(tmp_path / "gen"), limit=1, prompt_format="instruct",
                    progress=False)
    assert seen == [trained_prompt]
    assert trained_prompt[:2] == [bos, tok.convert_tokens_to_ids("<|python|>")]  # BOS, then the language token
    assert meta["prompt_leading_special_ids"] == [bos]


def test_what_a_tokenizer_appends_never_follows_a_prompt(tmp_path):
    from mftcoder_pp.model.load import load_tokenizer

    tok = load_tokenizer(bos_tokenizer(tmp_path / "tok", append_eos=True))
    assert tok("def")["input_ids"][-1] == tok.eos_token_id  # the default appends EOS ...
    ids = prompt_ids(tok, "def")  # ... a prompt does not end with it
    assert ids[0] == tok.bos_token_id and ids[1:] == tok("def", add_special_tokens=False)["input_ids"]


def test_tokenizers_that_add_nothing_are_unchanged(tiny_workspace):
    from mftcoder_pp.model.load import load_tokenizer

    tok = load_tokenizer(tiny_workspace["tokenizer"])
    text = "<|python|>def f(x):\n    return x\n"
    assert leading_special_ids(tok) == []
    assert prompt_ids(tok, text) == tok(text)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
