"""`mftpp tokenizer`: vocabulary fusion (Eq. 12) and language prefix tokens."""

import json

import pytest

from mftcoder_pp.config import ConfigError
from mftcoder_pp.data.vocab import fuse, train_language_bpe
from mftcoder_pp.tokenizer import build_tokenizer

PY = "def add_numbers(first, second):\n    return first + second\n"
RS = "fn add_numbers(first: i32, second: i32) -> i32 {\n    first + second\n}\n"


def write_data(tmp_path):
    d = tmp_path / "prepared"
    d.mkdir()
    for lang, code, n in (("python", PY, 60), ("rust", RS, 40)):
        rows = [{"id": f"{lang}{i}", "task": "synthesis", "language": lang, "instruction": f"Add {i} numbers.",
                 "input": "", "output": code} for i in range(n)]
        (d / f"synthesis-{lang}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def write_config(tmp_path, text):
    p = tmp_path / "tok.yaml"
    p.write_text(text)
    return str(p)


def test_scratch_tokenizer_loads_with_auto_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    data = write_data(tmp_path)
    cfg = write_config(tmp_path, f"out: {tmp_path / 'tok'}\ndata: [{data}]\nmin_frequency: 5\n"
                                 "vocab_size_per_language: 400\nlanguages: [python, rust]\n")
    report = build_tokenizer(cfg)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert len(tok) == report["vocab_size"]
    for lang in ("python", "rust"):
        assert len(tok(f"<|{lang}|>", add_special_tokens=False)["input_ids"]) == 1
        assert 0 < report["per_language"][lang]["tokens_per_char"] < 1  # merges compress the text
    assert tok.decode(tok(PY)["input_ids"]) == PY and tok.decode(tok(RS)["input_ids"]) == RS
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert set(report["vocabulary_overlap"]) == {"python", "rust"}
    assert json.loads((tmp_path / "tok" / "tokenizer_report.json").read_text())["vocab_size"] == len(tok)


def test_a_model_directory_keeps_the_tokenizer_it_was_trained_with(tmp_path):
    """Saved next to a Qwen2 config.json, our tokenizer must still tokenize as it did when the model was
    trained. (AutoTokenizer picks Qwen2Tokenizer there, whose transformers-5 pre-tokenizer splits digits
    and newlines differently: `= 0` became `=`, ` `, `0` after pretraining, and SFT learned garbage.)"""
    from mftcoder_pp.model.load import TinyModelSpec, build_tiny, load_tokenizer

    data = write_data(tmp_path)
    build_tokenizer(write_config(tmp_path, f"out: {tmp_path / 'tok'}\ndata: [{data}]\nmin_frequency: 5\n"
                                           "vocab_size_per_language: 400\nlanguages: [python, rust]\n"))
    tok = load_tokenizer(tmp_path / "tok")
    model_dir = tmp_path / "model"
    build_tiny(TinyModelSpec(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64),
               tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "qwen2"
    text = "<|python|>def f(x):\n    acc = 0\n    return x + 10\n"
    again = load_tokenizer(model_dir)
    assert again(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert (again.eos_token, again.pad_token, len(again)) == (tok.eos_token, tok.pad_token, len(tok))


def test_fused_vocabulary_is_the_union_and_tau_prunes():
    py = train_language_bpe([PY] * 30, 400, 5)
    rs = train_language_bpe([RS] * 30, 400, 5)
    fused = fuse({"python": py, "rust": rs}, ["<|endoftext|>"]).get_vocab()
    for _, merges in (py, rs):
        assert all(a + b in fused for a, b in merges)
    rare = train_language_bpe([PY] * 30, 400, 1000)  # no pair occurs 1000 times
    assert rare[1] == []


def test_byte_kind_has_no_merges(tmp_path):
    data = write_data(tmp_path)
    cfg = write_config(tmp_path, f"out: {tmp_path / 'tok'}\ndata: [{data}]\nkind: byte\nmin_frequency: 2\n")
    report = build_tokenizer(cfg)
    assert report["vocab_size"] == 256 + 2 + 6  # bytes + eos/pad + six language tokens


def test_pretrained_mode_adds_language_tokens(tmp_path):
    from transformers import AutoTokenizer

    data = write_data(tmp_path)
    build_tokenizer(write_config(tmp_path, f"out: {tmp_path / 'base'}\ndata: [{data}]\nmin_frequency: 5\n"
                                           "language_prefix_tokens: false\n"))
    report = build_tokenizer(write_config(tmp_path, f"out: {tmp_path / 'tok'}\nmode: pretrained\n"
                                                    f"base: {tmp_path / 'base'}\n"))
    assert len(report["added_tokens"]) == 6
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert len(tok) == report["base_vocab_size"] + 6


@pytest.mark.parametrize("text,message", [
    ("out: x\ndata: [d]\nvocab_sise: 3\n", "vocab_sise: unknown key"),
    ("out: x\nmode: scratch\n", "needs `data`"),
    ("out: x\nmode: pretrained\n", "needs `base`"),
    ("out: x\ndata: [d]\nlanguages: [python, cobol]\n", "unknown ['cobol']"),
    ("out: x\nmode: pretrained\nbase: /nonexistent/tok\n", "cannot load a tokenizer"),
])
def test_config_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_tokenizer(write_config(tmp_path, text))
