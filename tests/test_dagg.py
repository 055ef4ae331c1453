"""DAGG and its attention capture on a tiny Qwen2 (sdpa, eager, padding, PEFT, checkpointing), saliency, loss."""

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from mftcoder_pp.modules.attention_capture import attention_profile, capture_attention  # noqa: E402
from mftcoder_pp.modules.dagg import DAGG, dagg_loss, saliency_from_loss, token_saliency  # noqa: E402
from mftcoder_pp.modules.layers import find_decoder_layers  # noqa: E402

B, T, V = 3, 10, 100


def _config(impl="sdpa"):
    cfg = Qwen2Config(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2)
    cfg._attn_implementation = impl
    return cfg


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Qwen2ForCausalLM(_config("sdpa")).eval()


def _batch(seed=0, pad=True):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, V, (B, T), generator=g)
    attn = torch.ones(B, T, dtype=torch.long)
    if pad:
        attn[1, 7:] = 0  # right padding
        attn[2, 8:] = 0
    labels = ids.clone()
    labels[:, :4] = -100  # prompt
    labels[attn == 0] = -100
    return ids, attn, labels


def _task_loss(logits, labels):
    return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)


def test_capture_shapes_and_logits_unchanged(model):
    ids, attn, _ = _batch()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=attn).logits
    with capture_attention(model, [-1, 0]) as cap:
        out = model(input_ids=ids, attention_mask=attn)
    assert cap.layers == [2, 0]
    assert torch.allclose(out.logits, ref, atol=1e-5)
    assert torch.equal(out.logits.detach(), ref)  # the original kernel runs unchanged
    for j in (0, 2):
        assert cap.hidden(j).shape == (B, T, 32)
        assert cap.attention_weights(j).shape == (B, 4, T, T)
    # the model is restored: no capture attributes, shared config untouched
    for layer in find_decoder_layers(model):
        assert layer.self_attn.config is model.config
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("pad", [False, True])
def test_captured_attention_equals_eager(model, pad):
    eager = Qwen2ForCausalLM(_config("eager")).eval()
    eager.load_state_dict(model.state_dict())
    ids, attn, _ = _batch(pad=pad)
    with torch.no_grad():
        ref = eager(input_ids=ids, attention_mask=attn, output_attentions=True)
        with capture_attention(model, [0, 1, 2]) as cap:
            model(input_ids=ids, attention_mask=attn)
        mask = attn.bool()
        for j in range(3):
            got = cap.attention_weights(j)
            want = ref.attentions[j]
            valid_q = mask[:, None, :, None]  # pad query rows differ only in their (unused) fill
            assert torch.allclose(got * valid_q, want * valid_q, atol=1e-5)
        hs = eager(input_ids=ids, attention_mask=attn, output_hidden_states=True).hidden_states
        assert torch.allclose(cap.hidden(0), hs[1], atol=1e-5)
        assert torch.allclose(cap.hidden(1), hs[2], atol=1e-5)


def test_eager_model_capture_uses_returned_weights():
    torch.manual_seed(1)
    eager = Qwen2ForCausalLM(_config("eager")).eval()
    ids, attn, _ = _batch()
    with torch.no_grad():
        ref = eager(input_ids=ids, attention_mask=attn, output_attentions=True).attentions
        with capture_attention(eager, [1]) as cap:
            eager(input_ids=ids, attention_mask=attn)
    assert torch.allclose(cap.attention_weights(1), ref[1], atol=1e-6)


def test_profiles_sum_to_one_over_valid_keys(model):
    ids, attn, labels = _batch()
    resp = labels != -100
    with torch.no_grad(), capture_attention(model, [-1]) as cap:
        model(input_ids=ids, attention_mask=attn)
    a_task, a_lang = cap.profiles(2, [resp & attn.bool(), attn.bool()], attn.bool())
    for prof in (a_task, a_lang):
        assert prof.shape == (B, T)
        assert torch.allclose(prof.sum(-1), torch.ones(B), atol=1e-5)
        assert prof[attn == 0].abs().max() == 0
    # equals the profile of the full map
    full = attention_profile(cap.attention_weights(2), resp & attn.bool(), attn.bool())
    assert torch.allclose(full, a_task, atol=1e-6)


def test_token_saliency_normalised_and_detached():
    g = torch.randn(2, 5, 8, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    s = token_saliency(g * 2, mask)
    assert s.grad_fn is None and not s.requires_grad
    assert torch.allclose(s.sum(-1), torch.ones(2))
    assert s[0, 3:].abs().sum() == 0
    assert torch.allclose(s[1], g[1].norm(dim=-1) / g[1].norm(dim=-1).sum())


def test_saliency_first_order_and_total_backward_still_possible(model):
    m = Qwen2ForCausalLM(_config()).train()
    m.load_state_dict(model.state_dict())
    ids, attn, labels = _batch()
    with capture_attention(m, [1, 2]) as cap:
        out = m(input_ids=ids, attention_mask=attn)
    task_loss = _task_loss(out.logits, labels)
    sal = saliency_from_loss(task_loss, [cap.hidden(1), cap.hidden(2)], attn.bool())
    for s in sal:
        assert s.grad_fn is None and not s.requires_grad  # no second-order graph built
        assert torch.allclose(s.sum(-1), torch.ones(B), atol=1e-5)
        assert s[attn == 0].abs().max() == 0
    # no parameter gradient was accumulated by the saliency pass
    assert all(p.grad is None for p in m.parameters())
    a = [cap.attention_weights(1), cap.attention_weights(2)]
    l_dagg = dagg_loss(sal, a, labels != -100, attn)
    (task_loss + 0.3 * l_dagg).backward()  # graph retained by the saliency pass
    assert m.model.layers[2].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_holder_loss_matches_functional_and_active_schedule(model):
    dagg = DAGG(layers=[-2, -1], lam=0.6, every=3)
    assert [dagg.active(s) for s in range(7)] == [True, False, False, True, False, False, True]
    m = Qwen2ForCausalLM(_config()).train()
    m.load_state_dict(model.state_dict())
    ids, attn, labels = _batch()
    with dagg.capture(m) as cap:
        out = m(input_ids=ids, attention_mask=attn)
    task_loss = _task_loss(out.logits, labels)
    l_holder = dagg.loss(task_loss, cap, labels != -100, attn)
    sal = saliency_from_loss(task_loss, [cap.hidden(1), cap.hidden(2)], attn.bool())
    l_fn = dagg_loss(sal, [cap.attention_weights(1), cap.attention_weights(2)], labels != -100, attn)
    assert l_holder.item() == pytest.approx(l_fn.item(), rel=1e-5)
    assert l_holder.item() > 0
    (task_loss + 0.3 * l_holder).backward()
    assert m.model.layers[1].self_attn.k_proj.weight.grad.abs().sum() > 0


def test_samples_without_response_are_skipped():
    torch.manual_seed(0)
    attn_maps = [torch.softmax(torch.randn(2, 2, 4, 4), -1).tril()]
    attn_maps[0] = attn_maps[0] / attn_maps[0].sum(-1, keepdim=True)
    s = [torch.full((2, 4), 0.25)]
    resp = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    both = dagg_loss(s, attn_maps, resp, None)
    only_first = dagg_loss([s[0][:1]], [attn_maps[0][:1]], resp[:1], None)
    assert both.item() == pytest.approx(only_first.item())
    assert dagg_loss(s, attn_maps, torch.zeros(2, 4, dtype=torch.bool), None).item() == 0.0


def test_optimising_dagg_loss_lowers_it(model):
    torch.manual_seed(0)
    m = Qwen2ForCausalLM(_config()).train()
    m.load_state_dict(model.state_dict())
    ids, attn, labels = _batch()
    dagg = DAGG(layers=[-1], lam=0.6, every=1)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        with dagg.capture(m) as cap:
            out = m(input_ids=ids, attention_mask=attn)
        l_dagg = dagg.loss(_task_loss(out.logits, labels), cap, labels != -100, attn)
        l_dagg.backward()
        opt.step()
        losses.append(l_dagg.item())
    assert losses[-1] < 0.5 * losses[0]


def test_gradient_checkpointing_backward_after_capture(model):
    m = Qwen2ForCausalLM(_config()).train()
    m.load_state_dict(model.state_dict())
    m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    calls = []
    m.model.layers[2].mlp.register_forward_pre_hook(lambda mod, args: calls.append(1))
    ids, attn, labels = _batch()
    dagg = DAGG(layers=[-1, -2], lam=0.6, every=1)
    with dagg.capture(m) as cap:
        out = m(input_ids=ids, attention_mask=attn)
    task_loss = _task_loss(out.logits, labels)
    l_ckpt = dagg.loss(task_loss, cap, labels != -100, attn)
    (task_loss + 0.3 * l_ckpt).backward()
    assert len(calls) >= 2  # the layer was recomputed in the backward: checkpointing is really on
    g_ckpt = m.model.layers[2].self_attn.q_proj.weight.grad.clone()

    ref = Qwen2ForCausalLM(_config()).train()
    ref.load_state_dict(model.state_dict())
    with dagg.capture(ref) as cap:
        out = ref(input_ids=ids, attention_mask=attn)
    task_loss = _task_loss(out.logits, labels)
    l_ref = dagg.loss(task_loss, cap, labels != -100, attn)
    (task_loss + 0.3 * l_ref).backward()
    assert l_ckpt.item() == pytest.approx(l_ref.item(), rel=1e-5)
    assert torch.allclose(g_ckpt, ref.model.layers[2].self_attn.q_proj.weight.grad, atol=1e-6)


def test_works_under_peft_lora(model):
    peft = pytest.importorskip("peft")
    base = Qwen2ForCausalLM(_config())
    base.load_state_dict(model.state_dict())
    lora = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    lora.train()
    assert len(find_decoder_layers(lora)) == 3
    ids, attn, labels = _batch()
    dagg = DAGG(layers=[-1], lam=0.6, every=1)
    with dagg.capture(lora) as cap:
        out = lora(input_ids=ids, attention_mask=attn)
    task_loss = _task_loss(out.logits, labels)
    l_dagg = dagg.loss(task_loss, cap, labels != -100, attn)
    (task_loss + 0.3 * l_dagg).backward()
    grads = [p.grad for n, p in lora.named_parameters() if "lora_" in n and "layers.2.self_attn.k_proj" in n]
    assert grads and all(g is not None for g in grads)
    assert l_dagg.item() > 0


def test_clear_errors():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Linear(4, 4)

        def forward(self, x):
            return self.mlp(x)

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Block(), Block()])

    with pytest.raises(TypeError, match="Toy"):
        with capture_attention(Toy(), [-1]):
            pass
    with pytest.raises(TypeError, match="Linear"):
        with capture_attention(nn.Linear(2, 2), [0]):
            pass
    m = Qwen2ForCausalLM(_config())
    with pytest.raises(IndexError):
        with capture_attention(m, [5]):
            pass
    with capture_attention(m, [0]) as cap:
        pass  # no forward: asking for the attention names the model class
    with pytest.raises(RuntimeError, match="Qwen2ForCausalLM"):
        cap.attention_weights(0)
    with pytest.raises(TypeError, match="flex_attention"):
        m.config._attn_implementation = "flex_attention"
        try:
            with capture_attention(m, [0]):
                pass
        finally:
            m.config._attn_implementation = "sdpa"


def test_attention_probabilities_stay_float32_under_bf16_autocast():
    """Under bf16 autocast QKᵀ would come out bf16 and the float32 mask fill would overflow."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from mftcoder_pp.modules.dagg import DAGG

    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    ids = torch.randint(0, 100, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    labels = ids.clone()
    labels[:, :5] = -100
    dagg = DAGG([-1], lam=0.6, every=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with dagg.capture(model) as cap:
            logits = model(input_ids=ids, attention_mask=mask).logits
        task = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, 100), ids[:, 1:].reshape(-1))
        loss = dagg.loss(task, cap, labels != -100, mask.bool())
    assert torch.isfinite(loss)
