"""HMD-Fusion adapter on tiny Qwen2/Llama models, plain and PEFT-LoRA wrapped."""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from mftcoder_pp.modules.hmd_fusion import (  # noqa: E402
    CONFIG_NAME,
    HMDConfig,
    HMDLayer,
    apply_hmd,
    decoupling_loss,
    disable_hmd,
    hmd_aux,
    hmd_parameters,
    language_routing,
    load_hmd_adapter,
    save_hmd_adapter,
    set_languages,
)

LANGS = ["python", "java", "cpp"]
TINY = dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
MATRIX = [(arch, use_peft) for arch in ("qwen2", "llama") for use_peft in (False, True)]
IDS = [f"{a}-{'peft' if p else 'plain'}" for a, p in MATRIX]


def make_model(arch="qwen2", use_peft=False, seed=0):
    torch.manual_seed(seed)
    if arch == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**TINY))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY))
    if use_peft:
        model = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    return model.eval()


def randomize_adapter(model, seed=1, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in hmd_parameters(model):
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def logits(model, ids, lang=None, **kw):
    with torch.no_grad():
        if lang is None:
            return model(input_ids=ids, **kw).logits
        with language_routing(model, torch.tensor(lang)):
            return model(input_ids=ids, **kw).logits


INPUT = torch.tensor([[5, 17, 42, 8, 99, 3], [7, 7, 61, 20, 1, 33]])


@pytest.mark.parametrize("arch,use_peft", MATRIX, ids=IDS)
def test_identity_at_init_and_naming(arch, use_peft):
    model = make_model(arch, use_peft)
    base = logits(model, INPUT)
    assert apply_hmd(model, HMDConfig(LANGS, top_layers=2, rank=4)) is model
    torch.testing.assert_close(logits(model, INPUT, [0, 2]), base, atol=1e-6, rtol=0)
    names = [n for n, _ in hmd_parameters(model)]
    assert any(n.endswith("layers.2.hmd_shared_down.weight") for n in names)
    assert not any(".layers.0." in n for n in names)  # only the top 2 of 3 layers are wrapped
    assert all(p.requires_grad and p.dtype == torch.float32 for _, p in hmd_parameters(model))
    assert any("layers.1.base_layer.self_attn" in n for n, _ in model.named_parameters())


@pytest.mark.parametrize("arch,use_peft", MATRIX, ids=IDS)
def test_one_step_trains_only_adapter(arch, use_peft):
    model = make_model(arch, use_peft)
    apply_hmd(model, HMDConfig(LANGS, top_layers=6, rank=4))  # top_layers=6 > 3 layers: all wrapped
    assert sum(isinstance(m, HMDLayer) for m in model.modules()) == 3
    adapter = {id(p) for _, p in hmd_parameters(model)}
    for p in model.parameters():
        p.requires_grad_(id(p) in adapter)
    before = logits(model, INPUT, [0, 1])
    model.train()
    opt = torch.optim.AdamW([p for _, p in hmd_parameters(model)], lr=1e-2)
    with language_routing(model, torch.tensor([0, 1])):
        model(input_ids=INPUT, labels=INPUT).loss.backward()
    for n, p in model.named_parameters():
        if id(p) in adapter:
            assert p.grad is not None, n
        else:
            assert p.grad is None, n
    assert any(n.endswith("hmd_up.weight") and p.grad.abs().sum() > 0 for n, p in hmd_parameters(model))
    opt.step()
    model.eval()
    assert not torch.allclose(logits(model, INPUT, [0, 1]), before)


def test_per_language_routing():
    model = make_model()
    apply_hmd(model, HMDConfig(LANGS, top_layers=6, rank=4))
    randomize_adapter(model)
    same = INPUT[:1].repeat(2, 1)  # identical tokens, languages 0 and 1
    out = logits(model, same, [0, 1])
    assert not torch.allclose(out[0], out[1])
    with torch.no_grad():  # perturb only language 1's branch in every wrapped layer
        for n, p in hmd_parameters(model):
            if n.endswith("hmd_lang_down"):
                p[1].add_(torch.randn_like(p[1]))
    out2 = logits(model, same, [0, 1])
    torch.testing.assert_close(out2[0], out[0], atol=1e-6, rtol=0)
    assert not torch.allclose(out2[1], out[1])
    # per-sample routing inside a batch equals running each sample alone
    torch.testing.assert_close(out2[1:], logits(model, same[:1], [1]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch,use_peft", MATRIX, ids=IDS)
def test_save_load_roundtrip_and_disable(arch, use_peft, tmp_path):
    model = make_model(arch, use_peft)
    base = logits(model, INPUT)
    apply_hmd(model, HMDConfig(LANGS, top_layers=2, rank=4, decoupling=True))
    randomize_adapter(model)
    out = logits(model, INPUT, [2, 0])
    assert not torch.allclose(out, base)
    with disable_hmd(model):
        torch.testing.assert_close(logits(model, INPUT), base, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits(model, INPUT, [2, 0]), out)  # re-enabled on exit
    save_hmd_adapter(model, tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert meta["layer_indices"] == [1, 2] and meta["languages"] == LANGS and meta["rank"] == 4
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "hmd_adapter_model.safetensors").keys()
    assert keys and all(k.split(".")[2].startswith("hmd_") for k in keys)  # adapter state only
    fresh = load_hmd_adapter(make_model(arch, use_peft), tmp_path)
    torch.testing.assert_close(logits(fresh, INPUT, [2, 0]), out, atol=1e-6, rtol=0)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=CONFIG_NAME):
        load_hmd_adapter(make_model(), tmp_path)
    model = apply_hmd(make_model(), HMDConfig(LANGS, top_layers=6, rank=4))
    save_hmd_adapter(model, tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**meta, "rank": 8}))
    fresh = make_model()
    with pytest.raises(ValueError, match="hmd_adapter_model.safetensors.*shape"):
        load_hmd_adapter(fresh, tmp_path)
    assert not any(isinstance(m, HMDLayer) for m in fresh.modules())  # left unwrapped
    with pytest.raises(ValueError, match="already applied"):
        apply_hmd(model, HMDConfig(LANGS, top_layers=6, rank=16))


@pytest.mark.parametrize("use_peft", [False, True], ids=["plain", "peft"])
def test_generate_with_cache_and_expansion(use_peft):
    model = make_model("qwen2", use_peft)
    apply_hmd(model, HMDConfig(LANGS, top_layers=6, rank=4))
    randomize_adapter(model, scale=1.0)
    prompt, mask = INPUT[:, :4], torch.ones(2, 4, dtype=torch.long)
    kw = dict(attention_mask=mask, max_new_tokens=5, pad_token_id=0, eos_token_id=None)
    with language_routing(model, torch.tensor([0, 1]), attention_mask=mask):
        cached = model.generate(input_ids=prompt, do_sample=False, use_cache=True, **kw)
        uncached = model.generate(input_ids=prompt, do_sample=False, use_cache=False, **kw)
        sampled = model.generate(input_ids=prompt, do_sample=True, num_return_sequences=2, **kw)
        beams = model.generate(input_ids=prompt, num_beams=2, num_return_sequences=2, **kw)
    assert torch.equal(cached, uncached)  # T=1 cached steps route like the full forward
    assert sampled.shape == beams.shape == (4, 9)
    assert torch.equal(beams[0, :4], prompt[0]) and torch.equal(beams[2, :4], prompt[1])


def test_decoupling_loss_and_aux():
    a = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]]])  # (B=1, T=3, r=2)
    b = torch.tensor([[[0.0, 2.0], [1.0, 0.0], [3.0, 4.0]]])
    cos2 = torch.tensor([0.0, 0.5, 1.0])  # hand computed: ⊥, 45°, parallel
    torch.testing.assert_close(decoupling_loss(a, b), cos2.mean())
    torch.testing.assert_close(decoupling_loss(a, b, torch.tensor([[1, 1, 0]])), torch.tensor(0.25))

    model = make_model()
    apply_hmd(model, HMDConfig(LANGS, top_layers=6, rank=4, decoupling=True, gate_bias_init=1.0))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    with language_routing(model, torch.tensor([2, 0]), attention_mask=mask):
        model(input_ids=INPUT, attention_mask=mask)
    aux = hmd_aux(model)
    assert aux["decoupling"].grad_fn is not None and 0 <= aux["decoupling"].item() <= 1
    expected = torch.sigmoid(torch.tensor(1.0)).item()  # gate weight is zero-initialised
    assert set(aux["gate_mean"]) == {"python", "cpp"}
    assert all(abs(v - expected) < 1e-6 for v in aux["gate_mean"].values())
    assert hmd_aux(make_model()) == {"decoupling": None, "gate_mean": {}}


def test_gradient_checkpointing_and_autocast():
    model = make_model()
    apply_hmd(model, HMDConfig(LANGS, top_layers=6, rank=4))
    randomize_adapter(model)
    # transformers 5 renamed gradient_checkpointing_enable (deprecated) to activation_checkpointing_enable
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    assert all(layer.base_layer.gradient_checkpointing for layer in model.model.layers)
    model.train()
    set_languages(model, torch.tensor([1, 2]))
    model(input_ids=INPUT, labels=INPUT).loss.backward()
    assert all(p.grad is not None for _, p in hmd_parameters(model))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model(input_ids=INPUT).logits).all()
    set_languages(model, None)


def test_missing_routing_and_bad_inputs():
    model = make_model()
    with language_routing(model, torch.tensor([0, 1])):  # no-op on a model without HMD
        model(input_ids=INPUT)
    apply_hmd(model, HMDConfig(LANGS, top_layers=6, rank=16))
    with pytest.raises(RuntimeError, match="set_languages"):
        model(input_ids=INPUT)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        set_languages(model, torch.tensor([0, 3]))
    with language_routing(model, torch.tensor([0, 1, 2])), pytest.raises(RuntimeError, match="not a multiple"):
        model(input_ids=INPUT)


@pytest.mark.parametrize("kw", [
    dict(languages=[]), dict(languages="python"), dict(languages=["a", "a"]),
    dict(languages=["a"], rank=0), dict(languages=["a"], top_layers=0), dict(languages=["a"], rank=2.0),
    dict(languages=["a"], gate_bias_init=float("nan")),
])
def test_bad_config(kw):
    with pytest.raises(ValueError, match="HMDConfig"):
        HMDConfig(**{"top_layers": 2, "rank": 4, **kw})
