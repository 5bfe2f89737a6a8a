"""The learner: tensor layout by hand, logprobs against a plain loop, and an update that does not depend on how
the batch is cut into micro-batches."""

import copy

import pytest
import torch

from grpo.learner.logprobs import token_logprobs
from grpo.learner.update import Sample, informative, micro_batches, step_size, update
from grpo.model import build_model, build_tokenizer

LOSS = dict(clip_low=0.2, clip_high=0.28, level="token", aggregation="token-mean", kl_coef=0.0, is_cap=None)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_tokenizer()
    return build_model("tiny", tokenizer, seed=0), tokenizer


def test_layout_by_hand():
    # prompt [5, 6], completion [7, 8]: input 5 6 7 8; position 1 predicts 7, position 2 predicts 8
    samples = [Sample([5, 6], [7, 8], [-0.5, -0.25], 1.5, True), Sample([5], [9], [-1.0], -1.0, False)]
    (short, long_) = micro_batches(samples, 1, pad_id=0)  # sorted by length: the 2-token row first
    assert short.input_ids.tolist() == [[5, 9]] and short.mask.tolist() == [[0.0]]  # left out of the loss
    assert short.engine_logprobs.tolist() == [[-1.0]] and short.advantages.tolist() == [-1.0]
    assert long_.input_ids.tolist() == [[5, 6, 7, 8]] and long_.attention_mask.tolist() == [[1, 1, 1, 1]]
    assert long_.mask.tolist() == [[0.0, 1.0, 1.0]]
    assert long_.engine_logprobs.tolist() == [[0.0, -0.5, -0.25]]
    both = micro_batches(samples, 2, pad_id=0)[0]
    assert both.input_ids.tolist() == [[5, 9, 0, 0], [5, 6, 7, 8]]
    assert both.attention_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    size = step_size(samples, max_new_tokens=16)
    assert (size.tokens, size.sequences, size.max_completion_length) == (2, 1, 16)


def test_token_logprobs_against_a_plain_loop(tiny):
    model, _ = tiny
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    logprobs, entropy = token_logprobs(model, ids, torch.ones_like(ids), temperature=0.7)
    with torch.no_grad():
        logits = model(ids).logits[0].float() / 0.7
    for t in range(4):
        dist = torch.log_softmax(logits[t], dim=-1)
        assert logprobs[0, t].item() == pytest.approx(dist[ids[0, t + 1]].item(), abs=1e-5)
        assert entropy[0, t].item() == pytest.approx(-(dist.exp() * dist).sum().item(), abs=1e-5)


def _samples(tokenizer):
    texts = [("Compute 1 + 2.\n", "3</think>\\boxed{3}"), ("Compute 4.\n", "4"), ("Compute 9 - 1.\n", "8 8 8"),
             ("Q\n", "a longer completion here")]
    out = []
    for i, (prompt, completion) in enumerate(texts):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        out.append(Sample(p, c, [-2.0] * len(c), [1.0, -0.5, 0.25, -0.75][i], True))
    return out


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "constant"])
def test_update_is_the_same_whatever_the_micro_batch_size(tiny, aggregation):
    model, tokenizer = tiny
    samples = _samples(tokenizer)

    def updated(micro_batch_size, mu=1):
        learner = copy.deepcopy(model)
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
        stats = update(learner, optimizer, None, samples, mu=mu, micro_batch_size=micro_batch_size,
                       pad_id=tokenizer.pad_token_id, temperature=1.0, max_new_tokens=32, max_grad_norm=1e9,
                       loss_kwargs=dict(LOSS, aggregation=aggregation))
        return torch.cat([p.detach().flatten() for p in learner.parameters()]), stats

    whole, stats = updated(4)
    for size in (1, 3):
        other, other_stats = updated(size)
        assert torch.allclose(whole, other, atol=1e-6, rtol=0)
        assert other_stats["loss/policy"] == pytest.approx(stats["loss/policy"], abs=1e-6)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (whole - before).abs().max() > 1e-4  # the update did something
    assert stats["loss/clip_frac"] == 0.0 and stats["loss/ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    # mu = 2: the second pass sees ratios away from 1 against the fixed old logprobs
    _, two = updated(4, mu=2)
    assert two["loss/ratio_mean"] != pytest.approx(1.0, abs=1e-6)


def test_zero_advantages_leave_the_model_unchanged(tiny):
    model, tokenizer = tiny
    samples = [Sample(s.prompt_ids, s.token_ids, s.engine_logprobs, 0.0, True) for s in _samples(tokenizer)]
    learner = copy.deepcopy(model)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
    stats = update(learner, optimizer, None, samples, mu=1, micro_batch_size=2, pad_id=tokenizer.pad_token_id,
                   temperature=1.0, max_new_tokens=32, max_grad_norm=1.0, loss_kwargs=LOSS)
    for a, b in zip(learner.parameters(), model.parameters()):
        assert torch.equal(a, b)
    assert stats["loss/policy"] == 0.0 and stats["optim/grad_norm"] == 0.0


def test_engine_gap_and_kl_are_reported(tiny):
    model, tokenizer = tiny
    samples = _samples(tokenizer)
    learner = copy.deepcopy(model)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
    reference = copy.deepcopy(model).requires_grad_(False)
    stats = update(learner, optimizer, reference, samples, mu=1, micro_batch_size=4, pad_id=tokenizer.pad_token_id,
                   temperature=1.0, max_new_tokens=32, max_grad_norm=1.0, loss_kwargs=dict(LOSS, kl_coef=0.1))
    # learner == reference before the update, so k3 KL is exactly 0 on the first (and only) pass
    assert stats["loss/kl"] == pytest.approx(0.0, abs=1e-7)
    # the engine logprobs were set to -2 everywhere: the gap is mean |learner - (-2)| over completion tokens
    batch = micro_batches(samples, 4, tokenizer.pad_token_id)[0]
    with torch.no_grad():
        logprobs, _ = token_logprobs(model, batch.input_ids, batch.attention_mask, 1.0)
    expected = float(((logprobs + 2.0).abs() * batch.mask).sum() / batch.mask.sum())
    assert stats["rollout/logprob_gap"] == pytest.approx(expected, abs=1e-5)
    largest = float(((logprobs + 2.0).abs() * batch.mask).max())
    assert stats["rollout/logprob_gap_max"] == pytest.approx(largest, abs=1e-5)


def test_chunked_logprobs_equal_the_full_ones_with_their_gradient(tiny):
    """The output head a few positions at a time under checkpointing: the same logprobs, entropy and gradient."""
    model, _ = tiny
    ids = torch.tensor([[3, 4, 5, 6, 7, 8, 9], [3, 9, 9, 4, 0, 0, 0]])
    attention = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    results = []
    for chunk in (0, 1, 5, 1000):
        learner = copy.deepcopy(model)
        logprobs, entropy = token_logprobs(learner, ids, attention, 0.7, chunk_tokens=chunk)
        (logprobs * attention[:, 1:]).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in learner.parameters() if p.grad is not None])
        results.append((logprobs.detach(), entropy, grads))
    full = results[0]
    for logprobs, entropy, grads in results[1:]:
        assert torch.allclose(logprobs, full[0], atol=1e-6, rtol=0)
        assert torch.allclose(entropy, full[1], atol=1e-6, rtol=0)
        assert ((grads - full[2]).norm() / full[2].norm()).item() < 1e-5  # float summation order only


@pytest.mark.parametrize("loss", [dict(aggregation="token-mean"), dict(aggregation="seq-mean-token-mean"),
                                  dict(aggregation="constant"), dict(kl_coef=0.1), dict(level="sequence"),
                                  dict(is_cap=2.0)], ids=["token-mean", "seq-mean", "constant", "kl", "gspo", "tis"])
def test_a_chunked_update_equals_the_full_one(tiny, loss):
    """Every aggregation, with KL to a reference, GSPO's sequence ratio and truncated IS; two passes (mu = 2)."""
    model, tokenizer = tiny
    samples = _samples(tokenizer)
    reference = copy.deepcopy(model) if loss.get("kl_coef") else None

    def updated(chunk):
        learner = copy.deepcopy(model)
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
        stats = update(learner, optimizer, reference, samples, mu=2, micro_batch_size=3,
                       pad_id=tokenizer.pad_token_id, temperature=0.9, max_new_tokens=32, max_grad_norm=1e9,
                       loss_kwargs=dict(LOSS, **loss), logprob_chunk_tokens=chunk)
        return torch.cat([p.detach().flatten() for p in learner.parameters()]), stats

    full, full_stats = updated(0)
    chunked, chunked_stats = updated(7)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    change, chunked_change = full - before, chunked - before
    assert ((chunked_change - change).norm() / change.norm()).item() < 1e-5  # float summation order only
    for key in ("loss/policy", "loss/kl", "policy/entropy", "rollout/logprob_gap", "loss/ratio_mean"):
        assert chunked_stats[key] == pytest.approx(full_stats[key], rel=1e-6, abs=1e-6), key


def test_a_head_that_is_not_a_plain_linear_layer_uses_full_logits(tiny):
    from grpo.learner.logprobs import output_head

    model, _ = tiny
    assert output_head(model) is model.lm_head
    wrapped = copy.deepcopy(model)
    wrapped.config.final_logit_softcapping = 30.0  # logits transformed after the head: chunking would skip it
    assert output_head(wrapped) is None


def _lengths(lengths):
    return [Sample([1] * p, [2] * c, [-1.0] * c, 1.0, True) for p, c in lengths]


def test_token_budget_plans_by_hand():
    from grpo.learner.update import plan

    samples = _lengths([(2, 8), (2, 2), (2, 3), (2, 18)])  # lengths 10, 4, 5, 20; sorted: 1 (4), 2 (5), 0 (10), 3 (20)
    assert plan(samples, size=4) == [[1, 2, 0, 3]]
    # budget 12 padded tokens: [4, 5] is 2 x 5 = 10; adding 10 would be 3 x 10 = 30; 20 alone exceeds it, alone
    assert plan(samples, size=4, max_tokens=12) == [[1, 2], [0], [3]]
    assert plan(samples, size=1, max_tokens=1000) == [[1], [2], [0], [3]]  # the row limit still holds
    # count: halve the group with the most rows until there are enough (every process runs the same number)
    assert plan(samples, size=4, count=3) == [[1], [2], [0, 3]]


@pytest.mark.parametrize("budget", [40, 70, 10_000])
def test_a_token_budget_update_equals_the_row_one(tiny, budget):
    model, tokenizer = tiny
    samples = _samples(tokenizer) * 2

    def updated(**cut):
        learner = copy.deepcopy(model)
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
        stats = update(learner, optimizer, None, samples, mu=2, pad_id=tokenizer.pad_token_id, temperature=1.0,
                       max_new_tokens=32, max_grad_norm=1e9, loss_kwargs=LOSS, **cut)
        return torch.cat([p.detach().flatten() for p in learner.parameters()]), stats

    rows, rows_stats = updated(micro_batch_size=8)
    budgeted, stats = updated(micro_batch_size=8, max_tokens_per_micro_batch=budget)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (((budgeted - before) - (rows - before)).norm() / (rows - before).norm()).item() < 1e-5
    assert stats["loss/policy"] == pytest.approx(rows_stats["loss/policy"], abs=1e-6)


def test_packed_plans_by_hand():
    from grpo.learner.packing import packed_plan

    # lengths 10, 4, 5, 20, 6, 12; longest first: 3 (20), 5 (12), 0 (10), 4 (6), 2 (5), 1 (4)
    # 2 rows of 20: 3 starts row 0 (full); 5 starts row 1 (8 left); 0 does not fit, waits; 4 -> row 1 (2 left);
    # 2 waits, 1 waits. Next micro-batch, 2 rows of 10: 0 | 2 + 1
    assert packed_plan([10, 4, 5, 20, 6, 12], rows=2) == [[[3], [5, 4]], [[0], [2, 1]]]
    # a token budget of 30: one row of 20; two rows of 12 (10 fits no row's end); five rows of 6 (4 after 5 does not)
    assert packed_plan([10, 4, 5, 20, 6, 12], rows=8, max_tokens=30) == [[[3]], [[5], [0]], [[4], [2], [1]]]
    # count: split the micro-batch with the most sequences, by rows first, then a single row by its sequences
    assert packed_plan([10, 4, 5, 20, 6, 12], rows=2, count=3) == [[[3]], [[5, 4]], [[0], [2, 1]]]
    assert packed_plan([10, 4, 5, 20, 6, 12], rows=2, count=5) == [[[3]], [[5]], [[4]], [[0]], [[2, 1]]]


def test_packed_layout_by_hand():
    from grpo.learner.packing import packed_inputs

    ids, positions, unpack = packed_inputs([[0, 1], [2]], [[5, 6, 7], [8, 9], [4, 4, 4, 4]], width=6, pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 8, 9, 0], [4, 4, 4, 4, 0, 0]]
    assert positions.tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]]
    # padded targets (3 sequences x 3): sequence 1's target 0 is packed position 3 of row 0; row 1 starts at 5
    assert unpack.tolist() == [[0, 1, 0], [3, 0, 0], [5, 6, 7]]


def test_packed_logprobs_equal_the_padded_ones(tiny):
    from grpo.learner.packing import packed_plan
    from grpo.learner.update import _micro_batch, scores

    model, tokenizer = tiny
    rng = torch.Generator().manual_seed(0)
    samples = [Sample(torch.randint(3, 60, (p,), generator=rng).tolist(),
                      torch.randint(3, 60, (c,), generator=rng).tolist(), [-1.0] * c, a, True)
               for p, c, a in ((5, 21, 1.0), (4, 8, -0.5), (6, 8, 0.25))]  # 26 | 14 + 12
    lengths = [len(s.prompt_ids) + len(s.token_ids) for s in samples]
    (rows,) = packed_plan(lengths, rows=2)
    order = [i for row in rows for i in row]  # the packed micro-batch's sequence order
    padded = _micro_batch([samples[i] for i in order], tokenizer.pad_token_id, "cpu")
    (packed,) = micro_batches(samples, 2, tokenizer.pad_token_id, pack=True)
    assert packed.input_ids.shape[0] == 2 and len(order) == len(samples)  # 3 sequences in 2 rows
    assert torch.equal(packed.mask, padded.mask) and torch.equal(packed.advantages, padded.advantages)
    for chunk in (0, 6):
        want, want_entropy = scores(model, padded, 0.8, chunk)
        got, got_entropy = scores(model, packed, 0.8, chunk)
        on = padded.attention_mask[:, 1:].bool()
        assert torch.allclose(got[on], want[on], atol=1e-5, rtol=0)
        assert torch.allclose(got_entropy[on], want_entropy[on], atol=1e-5, rtol=0)


@pytest.mark.parametrize("loss", [dict(aggregation="token-mean"), dict(aggregation="seq-mean-token-mean"),
                                  dict(aggregation="constant"), dict(kl_coef=0.1), dict(level="sequence"),
                                  dict(is_cap=2.0)], ids=["token-mean", "seq-mean", "constant", "kl", "gspo", "tis"])
@pytest.mark.parametrize("chunk", [0, 7])
def test_a_packed_update_equals_the_padded_one(tiny, loss, chunk):
    """Packed (and chunked) against padded and unchunked: every aggregation, KL, GSPO, truncated IS; mu = 2."""
    model, tokenizer = tiny
    samples = _samples(tokenizer) * 2
    reference = copy.deepcopy(model) if loss.get("kl_coef") else None

    def updated(**how):
        learner = copy.deepcopy(model)
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
        stats = update(learner, optimizer, reference, samples, mu=2, micro_batch_size=3,
                       pad_id=tokenizer.pad_token_id, temperature=0.9, max_new_tokens=32, max_grad_norm=1e9,
                       loss_kwargs=dict(LOSS, **loss), **how)
        return torch.cat([p.detach().flatten() for p in learner.parameters()]), stats

    padded, padded_stats = updated()
    packed, packed_stats = updated(pack=True, logprob_chunk_tokens=chunk)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    change, packed_change = padded - before, packed - before
    assert ((packed_change - change).norm() / change.norm()).item() < 1e-5  # float summation order only
    for key in ("loss/policy", "loss/kl", "policy/entropy", "rollout/logprob_gap", "loss/ratio_mean",
                "loss/clip_frac"):
        assert packed_stats[key] == pytest.approx(padded_stats[key], rel=1e-6, abs=1e-6), key


def test_gradient_checkpointing_with_packing_and_chunks_equals_the_plain_update(tiny):
    """The Qwen recipes' learner (model.gradient_checkpointing, grpo.pack, grpo.logprob_chunk_tokens): the same
    update as the padded, unchunked one without checkpointing (recomputed activations, restarting positions)."""
    model, tokenizer = tiny
    samples = _samples(tokenizer) * 2

    def updated(checkpointing: bool, **how):
        learner = copy.deepcopy(model).train()
        if checkpointing:
            learner.gradient_checkpointing_enable()
            assert learner.is_gradient_checkpointing
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
        update(learner, optimizer, None, samples, mu=1, micro_batch_size=3, pad_id=tokenizer.pad_token_id,
               temperature=0.9, max_new_tokens=32, max_grad_norm=1e9, loss_kwargs=LOSS, **how)
        return torch.cat([p.detach().flatten() for p in learner.parameters()])

    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    change = updated(False) - before
    checkpointed = updated(True, pack=True, logprob_chunk_tokens=7) - before
    assert change.norm() > 0
    assert ((checkpointed - change).norm() / change.norm()).item() < 1e-5


def test_packing_refuses_a_model_that_attends_across_sequences(tiny):
    model, tokenizer = tiny

    class IgnoresPositions(torch.nn.Module):  # custom modelling code that drops position ids
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, position_ids=None, **kwargs):
            return self.inner(input_ids=input_ids, **kwargs)

    leaky = IgnoresPositions(copy.deepcopy(model))
    optimizer = torch.optim.SGD(leaky.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="grpo.pack: IgnoresPositions attends across packed sequences"):
        update(leaky, optimizer, None, _samples(tokenizer), mu=1, micro_batch_size=4, pad_id=tokenizer.pad_token_id,
               temperature=1.0, max_new_tokens=32, max_grad_norm=1.0, loss_kwargs=LOSS, pack=True)


def test_a_chunked_micro_batch_with_nothing_in_the_loss_still_backpropagates(tiny):
    """A micro-batch whose completions are all left out of the loss (truncated under mask_truncated): the head runs
    on no position, and the update still runs (zero gradient from it), as the full path does."""
    model, tokenizer = tiny
    samples = [Sample([5, 6, 7], [8, 9], [-1.0, -1.0], 1.0, False), *_samples(tokenizer)]
    learner = copy.deepcopy(model)
    stats = update(learner, torch.optim.SGD(learner.parameters(), lr=0.1), None, samples, mu=1, micro_batch_size=1,
                   pad_id=tokenizer.pad_token_id, temperature=1.0, max_new_tokens=32, max_grad_norm=1e9,
                   loss_kwargs=LOSS, logprob_chunk_tokens=4)
    assert stats["loss/tokens"] == sum(len(s.token_ids) for s in samples[1:])


def test_sft_padding_study_counts_by_hand():
    """bench/sft_padding.py: one batch of lengths 10, 5, 5 is padded to 3 x 10 positions (a third empty); packed,
    the two 5s share a row: 2 x 10 positions, none empty."""
    from bench.sft_padding import layouts

    assert layouts([10, 5, 5], batch_size=3, batches=1) == {"random": 0.3333, "random + packed": 0.0,
                                                            "bucketed": 0.3333, "bucketed + packed": 0.0}


@pytest.mark.parametrize("loss", [dict(is_cap=2.0), dict(is_cap=2.0, is_mask="sequence", is_band=(0.5, 2.0))],
                         ids=["tis", "tis-masked"])
def test_one_pass_with_importance_weights_runs_one_forward_per_micro_batch(tiny, loss, monkeypatch):
    """mu = 1 with truncated IS (and IcePop-style masking): the pass's own detached logprobs are the old ones, so
    there is no extra forward without gradient; the update is the one computed with a separate old-logprob pass."""
    import grpo.learner.update as learner_update

    model, tokenizer = tiny
    # engine logprobs around the fresh model's (about log 1/262): ratios of e^-0.8 to e^0.8, some above the cap
    samples = [Sample(s.prompt_ids, s.token_ids, [-5.57 + 0.8 * (i % 3 - 1) for i in range(len(s.token_ids))],
                      s.advantage, True) for s in _samples(tokenizer)]

    def updated(separate_old: bool):
        learner = copy.deepcopy(model)
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.1)
        forwards = []
        learner.register_forward_hook(lambda *_: forwards.append(1))
        if separate_old:  # what the update did before: old logprobs from a forward without gradient
            fill = learner_update.fill_fixed_logprobs
            monkeypatch.setattr(learner_update, "fill_fixed_logprobs",
                                lambda *a, **k: fill(*a, **{**k, "need_old": True}))
        stats = update(learner, optimizer, None, samples, mu=1, micro_batch_size=3, pad_id=tokenizer.pad_token_id,
                       temperature=0.9, max_new_tokens=32, max_grad_norm=1e9, loss_kwargs=dict(LOSS, **loss))
        monkeypatch.undo()
        return torch.cat([p.detach().flatten() for p in learner.parameters()]), stats, len(forwards)

    fused, fused_stats, fused_forwards = updated(False)
    separate, separate_stats, separate_forwards = updated(True)
    assert (fused_forwards, separate_forwards) == (2, 4)  # 4 samples in micro-batches of 3
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (separate - before).norm() > 0  # the update moved the weights
    assert ((fused - separate).norm() / (separate - before).norm()).item() < 1e-6
    assert fused_stats["is/weight_mean"] > 0 and fused_stats["is/capped_frac"] > 0  # the weights did act
    for key in ("loss/policy", "is/weight_mean", "is/weight_max", "is/capped_frac", "is/masked_frac",
                "rollout/logprob_gap"):
        assert fused_stats[key] == pytest.approx(separate_stats[key], rel=1e-6, abs=1e-7), key


@pytest.mark.parametrize("loss", [dict(aggregation="token-mean"), dict(aggregation="seq-mean-token-mean"),
                                  dict(aggregation="constant"), dict(kl_coef=0.1), dict(level="sequence"),
                                  dict(is_cap=2.0)], ids=["token-mean", "seq-mean", "constant", "kl", "gspo", "tis"])
@pytest.mark.parametrize("pack", [False, True], ids=["padded", "packed"])
def test_skipping_zero_advantages_gives_the_same_update(tiny, loss, pack):
    """Completions with advantage 0 (and one out of the loss) not run: the same AdamW updates over two steps, the
    second of zero advantages only (momentum still moves the weights), mu = 2; with KL nothing is skipped."""
    model, tokenizer = tiny
    base = _samples(tokenizer) * 2
    zero = {1, 4, 6}
    first = [Sample(s.prompt_ids, s.token_ids, s.engine_logprobs, 0.0 if i in zero else s.advantage, i != 7)
             for i, s in enumerate(base)]
    second = [Sample(s.prompt_ids, s.token_ids, s.engine_logprobs, 0.0, True) for s in base]
    reference = copy.deepcopy(model) if loss.get("kl_coef") else None

    def updated(skip):
        learner = copy.deepcopy(model)
        optimizer = torch.optim.AdamW(learner.parameters(), lr=1e-3)
        stats = [update(learner, optimizer, reference, batch, mu=2, micro_batch_size=3,
                        pad_id=tokenizer.pad_token_id, temperature=0.9, max_new_tokens=32, max_grad_norm=1e9,
                        loss_kwargs=dict(LOSS, **loss), pack=pack, skip_zero_advantage=skip)
                 for batch in (first, second)]
        return torch.cat([p.detach().flatten() for p in learner.parameters()]), stats

    full, full_stats = updated(False)
    skipped, skipped_stats = updated(True)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    change, skipped_change = full - before, skipped - before
    assert change.abs().max() > 1e-4
    assert ((skipped_change - change).norm() / change.norm()).item() < 1e-5  # float summation order only
    for ours, theirs in zip(skipped_stats, full_stats):
        assert ours["loss/policy"] == pytest.approx(theirs["loss/policy"], rel=1e-6, abs=1e-7)
        assert ours["loss/tokens"] == theirs["loss/tokens"]
    kept = 1.0 if loss.get("kl_coef") else 0.0
    assert [s["optim/zero_advantage_skipped"] for s in full_stats] == [0.0, 0.0]
    assert [s["optim/zero_advantage_skipped"] for s in skipped_stats] == pytest.approx(
        [(1 - kept) * 4 / 8, 1 - kept])  # three of advantage 0, one out of the loss; then all
    tokens = lambda rows: sum(len(s.prompt_ids) + len(s.token_ids) for s in rows)  # noqa: E731
    run = [s for i, s in enumerate(first) if kept or (i not in zero and i != 7)]
    assert [s["perf/learner_tokens"] for s in full_stats] == [2 * tokens(first), 2 * tokens(second)]  # mu = 2
    assert [s["perf/learner_tokens"] for s in skipped_stats] == [2 * tokens(run), kept * 2 * tokens(second)]


def test_informative_tops_up_to_equal_shares():
    def sample(length, advantage):
        return Sample([1], [2] * length, [-1.0] * length, advantage, True)

    samples = [sample(5, 1.0), sample(2, 0.0), sample(9, -1.0), sample(1, 0.0), sample(3, 0.5), sample(4, 0.0)]
    assert [len(s.token_ids) for s in informative(samples)] == [5, 9, 3]
    assert [len(s.token_ids) for s in informative(samples, world=2)] == [5, 9, 1, 3]  # the shortest skipped one
    assert informative([sample(3, 0.0), sample(4, 0.0)], world=2) == []


def test_the_count_of_skipped_updates_in_a_row_survives_a_checkpoint(tiny):
    """Skips at steps 9 and 10, a checkpoint after 10: the resumed run's guard still counts 2, so a third skip stops
    it as it would have stopped the run that never stopped."""
    from grpo.config import GRPOConfig
    from grpo.learner.policy import NonFinite, Policy, TrainingStopped

    model, _ = tiny
    before = Policy(model, GRPOConfig(), stage="grpo", section="grpo.lora", guard=NonFinite(limit=3))
    for step, skipped in ((8, True), (9, True)):
        before.guard.after("grpo", step, skipped, say=lambda line: None)
    trainer, _, _ = before.state()
    after = Policy(copy.deepcopy(model), GRPOConfig(), stage="grpo", section="grpo.lora", guard=NonFinite(limit=3))
    after.load(trainer, None)
    with pytest.raises(TrainingStopped, match="3 steps in a row"):
        after.guard.after("grpo", 10, True, say=lambda line: None)
