"""The continuous decoder (generation/engine.py and its parts) on a tiny random model in float32: the
tokens of one row at a time whatever the slots, slots refilled mid-run, EOS and stop sequences,
shared prompts prefilled once, per-row sampling seeds, the scheduler, incremental detokenizing."""

import pytest
import torch

from mftcoder_pp.generation import engine, kvcache
from mftcoder_pp.generation.engine import Request, Sampling, generate_batch, generate_stream
from mftcoder_pp.generation.scheduler import Scheduler
from mftcoder_pp.generation.stops import IncrementalText, StopRule, StopWatch, stop_rule
from mftcoder_pp.model.load import TinyModelSpec, build_tiny

TEXTS = ("def f(x):\n", "x", "int main() {\n  return 0;", "fn", "def f(x):\n", "hello world, a longer prompt here")
NEW = 16


def byte_tokenizer():
    """Byte-level BPE without merges (every byte a token) + EOS and PAD."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|pad|>"]
    vocab = {t: i for i, t in enumerate(special + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(special)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>")


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    m = build_tiny(TinyModelSpec(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64), tok)
    with torch.no_grad(), torch.random.fork_rng():  # larger weights than the init: varied, decisive argmaxes
        torch.manual_seed(0)
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
    yield m.eval()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prompts(tok):
    return [tok(t)["input_ids"] for t in TEXTS]


@pytest.fixture(scope="module")
def alone(model, tok, prompts):
    """Greedy tokens of each prompt alone, from plain Hugging Face generate (no EOS, NEW tokens)."""
    out = []
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([p])
            g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW,
                               do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id)
            out.append(tuple(g[0, len(p):].tolist()))
    assert len(set(out)) > 3  # varied rows
    return out


GREEDY = Sampling(max_new_tokens=NEW)


@pytest.mark.parametrize("slots", [1, 2, 3, 6])
def test_continuous_equals_one_at_a_time(model, tok, prompts, alone, slots):
    outs = generate_batch(model, tok, prompts, GREEDY, None, [], tok.pad_token_id, slots=slots)
    assert [o.token_ids for o in outs] == alone
    assert all(o.finish_reason == "length" and o.num_tokens == NEW for o in outs)


def test_slot_refilled_mid_run_and_eos(model, tok, prompts, alone):
    # An EOS id that ends the two longest prompts (admitted first) at different steps, others not at all.
    eos = alone[5][4]
    ends = [r.index(eos) + 1 if eos in r else None for r in alone]
    assert ends[5] and ends[5] != ends[2] and None in ends
    trace = []
    got = dict(generate_stream(model, tok, [Request(tuple(p)) for p in prompts], GREEDY, [eos], tok.pad_token_id,
                               slots=2, trace=trace))
    for i, ref in enumerate(alone):
        o = got[i]
        if ends[i]:
            assert (o.token_ids, o.finish_reason, o.num_tokens) == (ref[:ends[i]], "eos", ends[i])
            assert o.text == tok.decode(ref[:ends[i] - 1])
        else:
            assert (o.token_ids, o.finish_reason) == (ref, "length")
    # A slot freed mid-run took the next row at the step its row ended, while another row kept decoding.
    admitted = {row: step for ev, step, _, row in trace if ev == "admit"}
    ended = {row: step for ev, step, _, row in trace if ev == "finish"}
    assert sorted(admitted) == sorted(ended) == list(range(len(prompts)))
    refills = [(step, slot) for ev, step, slot, _ in trace if ev == "admit" and step > 0]
    assert all(("finish", step, slot) in {e[:3] for e in trace} for step, slot in refills)
    assert any(admitted[q] < admitted[r] < ended[q] for r in admitted for q in admitted)


def test_stop_sequence_ends_the_row_at_the_completing_token(model, tok, prompts, alone):
    text = tok.decode(alone[5])  # random bytes: stop sequences are text, so take two ASCII characters
    i = next(i for i in range(3, len(text) - 1) if text[i:i + 2].isascii())
    rule = StopRule(cut_before=(text[i:i + 2],))
    # Where it must stop: the first prefix whose text holds the sequence.
    n = next(k for k in range(1, NEW + 1) if rule.find(tok.decode(alone[5][:k])) is not None)
    out = generate_batch(model, tok, [prompts[5]], GREEDY, rule, [], tok.pad_token_id)[0]
    assert (out.finish_reason, out.num_tokens, out.token_ids) == ("stop", n, alone[5][:n])
    assert out.text == rule.truncate(tok.decode(alone[5][:n]))[0] and n < NEW


def test_shared_prompts_are_prefilled_once(model, tok, prompts, alone, monkeypatch):
    from mftcoder_pp.generation.kvcache import SlotCache

    written = []  # (prefill batch rows, slots written) per prefill
    original = SlotCache.write

    def spy(self, slots, prefill, sources):
        written.append((prefill[0][0].shape[0], len(slots)))
        return original(self, slots, prefill, sources)

    monkeypatch.setattr(SlotCache, "write", spy)
    # Admitted together: three copies of a prompt are one row of the prefill batch.
    outs = generate_batch(model, tok, [prompts[0]] * 3 + [prompts[2]], GREEDY, None, [], tok.pad_token_id, slots=4)
    assert [o.token_ids for o in outs] == [alone[0]] * 3 + [alone[2]] and written == [(2, 4)]
    # Admitted later, while a copy still decodes: the prompt is copied from its slot, no prefill.
    eos = next(t for t in alone[5][1:8] if t not in alone[0])  # ends the long row early, never the others
    written.clear()
    outs = generate_batch(model, tok, [prompts[5], prompts[0], prompts[0]], GREEDY, None, [eos], tok.pad_token_id,
                          slots=2)
    assert [o.token_ids for o in outs[1:]] == [alone[0]] * 2 and outs[0].finish_reason == "eos"
    assert written == [(2, 2)]


def test_sampling_is_per_row_reproducible(model, tok, prompts):
    hot = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=NEW)
    rows = [prompts[0]] * 3 + [prompts[3]]

    def run(seeds, slots):
        return [o.token_ids for o in generate_batch(model, tok, rows, hot, None, [], tok.pad_token_id, seeds=seeds,
                                                    slots=slots)]

    a = run([1, 2, 3, 4], 2)
    assert a == run([1, 2, 3, 4], 2) == run([1, 2, 3, 4], 4)  # same seeds: same samples, whatever the slots
    assert len(set(a[:3])) == 3  # one prompt, three seeds: three different samples
    b = run([5, 2, 3, 4], 1)
    assert b[0] != a[0] and b[1:] == a[1:]  # a row's sample depends on its own seed only
    with pytest.raises(ValueError, match="seed"):
        generate_batch(model, tok, rows, hot, None, [], tok.pad_token_id)


def test_min_new_tokens_holds_eos_back(model, tok, prompts, alone):
    eos = alone[0][1]
    out = generate_batch(model, tok, [prompts[0]], Sampling(max_new_tokens=NEW, min_new_tokens=NEW), None, [eos],
                         tok.pad_token_id)[0]
    assert out.num_tokens == NEW and eos not in out.token_ids


def test_models_the_slot_cache_cannot_hold_use_the_padded_decoder(tok, prompts):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, use_sliding_window=True, sliding_window=4,
                      max_window_layers=0)
    assert not kvcache.supports(cfg) and kvcache.supports(Qwen2Config(num_hidden_layers=2))
    torch.manual_seed(0)
    sliding = Qwen2ForCausalLM(cfg).eval()
    assert engine.engine_name(sliding) == "padded"
    outs = generate_batch(sliding, tok, prompts[:3], GREEDY, None, [], tok.pad_token_id, slots=2)
    assert all(o.num_tokens == NEW for o in outs)


# --- the parts --------------------------------------------------------------------------------------

def test_scheduler_admits_longest_first_and_compacts():
    s = Scheduler([3, 9, 5, 9, 1], slots=3)
    assert s.admit() == [(0, 1), (1, 3), (2, 2)]  # longest first, ties in order
    s.finish(1)
    assert s.admit() == [(1, 0)] and s.waiting == [4]
    s.finish(0)
    s.finish(1)
    assert s.admit() == [(0, 4)] and not s.waiting
    assert s.compact() == [(2, 1)] and s.slot_row == [4, 2, None] and s.active == 2
    s.finish(0)
    assert s.compact() == [(1, 0)] and s.slot_row == [2, None, None]
    s.finish(0)
    assert s.done


def test_incremental_text_matches_decoding_the_whole(tok):
    ids = tok("héllo → wörld\n    return x  # ✓ ok")["input_ids"]  # multi-byte characters over several tokens
    inc = IncrementalText(tok)
    for k, t in enumerate(ids, 1):
        inc.add(t)
        whole = tok.decode(ids[:k])
        assert whole.startswith(inc.text) and len(whole.rstrip("\ufffd")) - len(inc.text) <= 0
    assert inc.text == tok.decode(ids)


@pytest.mark.parametrize("language", ["python", "cpp"])
def test_stopwatch_fires_where_the_rule_first_matches(tok, language):
    rule = stop_rule(language)
    for text in ("    return 1\n\ndef g():\n", "}\nmore", "  x = 1;\n  }\n}\nint", "    y\n#c", "abc"):
        ids = tok(text)["input_ids"]
        watch = StopWatch(tok, rule)
        fired = next((k for k, t in enumerate(ids, 1) if watch.add(t)), None)
        expected = next((k for k in range(1, len(ids) + 1) if rule.find(tok.decode(ids[:k])) is not None), None)
        assert fired == expected, (text, fired, expected)


def test_guesses_keep_the_greedy_tokens_and_save_steps(model, tok, alone, monkeypatch):
    from mftcoder_pp.generation.stepper import Stepper

    shapes = []
    original = Stepper.decode

    def spy(self, tokens, positions):
        shapes.append((len(tokens), len(tokens[0])))
        return original(self, tokens, positions)

    monkeypatch.setattr(Stepper, "decode", spy)
    loop = tok("ab ab ab ab ab ab ab ab")["input_ids"]  # a prompt whose continuation the model repeats
    long = Sampling(max_new_tokens=40)
    runs = {}
    for guesses in (False, True):
        shapes.clear()
        reqs = [Request(tuple(loop)), Request(tuple(loop[:-2]))]
        runs[guesses] = (dict(generate_stream(model, tok, reqs, long, [], tok.pad_token_id, slots=2, guesses=guesses)),
                         list(shapes))
    (plain, plain_steps), (guessed, guessed_steps) = runs[False], runs[True]
    assert {i: o.token_ids for i, o in guessed.items()} == {i: o.token_ids for i, o in plain.items()}
    assert all(q == 1 for _, q in plain_steps) and len(plain_steps) == 40
    assert any(q > 1 for _, q in guessed_steps) and len(guessed_steps) < 40


def test_rows_guessing_alone_keep_the_greedy_tokens(model, tok, monkeypatch):
    """Rows that feed guesses next to rows that feed none: the padding is skipped by the packed linears
    (zeros instead of products), and every row still gets its own greedy tokens."""
    from mftcoder_pp.generation.packed import Packed

    ragged = []
    original = Packed.only

    def spy(self, index, total):
        if index is not None:
            ragged.append((index.numel(), total))
        return original(self, index, total)

    monkeypatch.setattr(Packed, "only", spy)
    loop = tok("ab ab ab ab ab ab ab ab")["input_ids"]
    texts = ["def f(x):\n", "int main() {", "hello world", "fn"]
    reqs = [Request(tuple(loop))] + [Request(tuple(tok(t)["input_ids"])) for t in texts]
    long = Sampling(max_new_tokens=40)
    guessed = dict(generate_stream(model, tok, reqs, long, [], tok.pad_token_id, slots=5))
    plain = dict(generate_stream(model, tok, reqs, long, [], tok.pad_token_id, slots=1, guesses=False))
    assert {i: o.token_ids for i, o in guessed.items()} == {i: o.token_ids for i, o in plain.items()}
    assert ragged and any(n < total for n, total in ragged)


def test_packed_linears_compute_only_the_rows_asked_for():
    from mftcoder_pp.generation.packed import packed_linears

    lin = torch.nn.Linear(8, 5)
    x = torch.randn(3, 4, 8)
    index = torch.tensor([0, 4, 5, 8])  # row 0 feeds 1 token, row 1 two, row 2 one
    with torch.no_grad(), packed_linears(lin) as packed:
        assert packed
        whole = lin(x)
        with packed.only(index, 12):
            part = lin(x)
        other = lin(torch.randn(2, 8))  # an input of another size is computed whole
    assert other.shape == (2, 5)
    flat, ref = part.reshape(12, 5), lin(x).detach().reshape(12, 5)
    torch.testing.assert_close(flat[index], ref[index])
    assert torch.equal(flat[[i for i in range(12) if i not in index.tolist()]], torch.zeros(8, 5))
    torch.testing.assert_close(whole, lin(x).detach())


def test_ngram_drafts_and_plan():
    from mftcoder_pp.generation.lookahead import NgramIndex, plan

    idx = NgramIndex([1, 2, 3, 4, 1, 2])
    assert idx.draft(3) == [3, 4, 1] and idx.draft(0) == []  # after the earlier "1 2"
    idx.add(9)
    assert idx.draft(2) == []  # 9 never occurred before
    idx.add(3)
    assert idx.draft(2) == [4, 1]  # "3" alone matches
    # No drafts: no guesses. Good guesses and few rows: guess. Many rows with poor guesses: the step is dear.
    assert plan([[], []], [0.5, 0.5], 1 / 16) == [0, 0]
    assert plan([[5, 6, 7, 8]], [1.0], 1 / 16) == [4]
    assert plan([[5]] * 16, [0.1] * 16, 1 / 16) == [0] * 16
    # Among many rows, one that keeps its guesses (a repetition loop): when padding is computed like a
    # token, padding the other seven to its length costs more than it gains; when it is nearly free,
    # that row alone guesses, and a shorter draft guesses all of it.
    drafts, rates = [[1, 2, 3, 4]] + [[5, 6, 7, 8]] * 6 + [[9, 9]], [0.95] + [0.1] * 6 + [0.9]
    assert plan(drafts, rates, 1 / 16, pad_cost=1.0) == [0] * 8
    assert plan(drafts, rates, 1 / 16, pad_cost=0.1) == [4] + [0] * 6 + [2]


def test_packed_linear_weights_change_nothing_and_are_undone(model, tok, prompts, alone):
    from mftcoder_pp.generation.packed import linears, packed_linears

    assert linears(model)
    with packed_linears(model) as packed:
        assert packed and all("forward" in vars(m) for m in linears(model))
        outs = generate_batch(model, tok, prompts, GREEDY, None, [], tok.pad_token_id, slots=3)
    assert not any("forward" in vars(m) for m in linears(model))  # plain nn.Linear again
    assert [o.token_ids for o in outs] == alone
    unpacked = dict(generate_stream(model, tok, [Request(tuple(p)) for p in prompts], GREEDY, [], tok.pad_token_id,
                                    slots=3, packed=False))
    assert [unpacked[i].token_ids for i in range(len(prompts))] == alone


@pytest.mark.parametrize("slots", [3, 4])
def test_rows_ending_together_while_one_waits_leave_no_hole(model, tok, prompts, alone, slots):
    """Several rows end at one step while fewer rows wait than end: the slots left free must not sit
    between occupied ones at the next step (every EOS choice below is a different ending pattern)."""
    candidates = sorted({t for r in alone for t in r[:NEW - 1]})
    for eos in candidates:
        got = dict(generate_stream(model, tok, [Request(tuple(p)) for p in prompts], GREEDY, [eos],
                                   tok.pad_token_id, slots=slots))
        for i, ref in enumerate(alone):
            end = ref.index(eos) + 1 if eos in ref else None
            assert got[i].token_ids == (ref[:end] if end else ref), (eos, i)
