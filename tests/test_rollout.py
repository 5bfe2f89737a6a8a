"""The transformers rollout engine: seeded, stops at end of turn, logprobs of the processed distribution."""

import math

import pytest
import torch

from grpo.config import RolloutConfig
from grpo.model import build_model, build_tokenizer
from grpo.rollout import HFEngine, SamplingParams, make_engine, processed_logprobs

PROMPTS = ["Compute 1 + 2.\n<think>\n", "Compute (3 - 4) + 5.\n<think>\n"]


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_tokenizer()
    return build_model("tiny", tokenizer, seed=0), tokenizer


def test_processed_logprobs_by_hand():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.2)]])
    # temperature 1, no filter: the softmax itself
    assert torch.allclose(processed_logprobs(logits, SamplingParams()).exp(), torch.tensor([[0.5, 0.3, 0.2]]),
                          atol=1e-6, rtol=0)
    # top-k 2: 0.5 / 0.8 and 0.3 / 0.8, the third is impossible
    p = processed_logprobs(logits, SamplingParams(top_k=2)).exp()
    assert torch.allclose(p, torch.tensor([[0.625, 0.375, 0.0]]), atol=1e-6, rtol=0)
    # top-p 0.7: 0.5 alone is below 0.7, so 0.3 joins; 0.2 is dropped (mass before it is 0.8 >= 0.7)
    p = processed_logprobs(logits, SamplingParams(top_p=0.7)).exp()
    assert torch.allclose(p, torch.tensor([[0.625, 0.375, 0.0]]), atol=1e-6, rtol=0)
    # top-p 0.5: the first token's mass reaches it exactly, it stays alone
    p = processed_logprobs(logits, SamplingParams(top_p=0.5)).exp()
    assert torch.allclose(p, torch.tensor([[1.0, 0.0, 0.0]]), atol=1e-6, rtol=0)
    # temperature 2: p ∝ sqrt(p) -> sqrt(.5), sqrt(.3), sqrt(.2) normalised
    roots = torch.tensor([0.5, 0.3, 0.2]).sqrt()
    p = processed_logprobs(logits, SamplingParams(temperature=2.0)).exp()
    assert torch.allclose(p, (roots / roots.sum()).unsqueeze(0), atol=1e-6, rtol=0)


def test_same_seed_same_completions_other_seed_other_completions(tiny):
    engine = HFEngine(*tiny)
    sampling = SamplingParams(max_new_tokens=12)
    a = engine.generate(PROMPTS, 4, sampling, seed=1)
    b = engine.generate(PROMPTS, 4, sampling, seed=1)
    c = engine.generate(PROMPTS, 4, sampling, seed=2)
    ids = lambda groups: [comp.token_ids for g in groups for comp in g.completions]  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c)
    assert [g.prompt for g in a] == PROMPTS and all(len(g.completions) == 4 for g in a)


def test_logprobs_match_a_full_forward_pass(tiny):
    model, tokenizer = tiny
    groups = HFEngine(model, tokenizer, batch_size=3).generate(PROMPTS, 3, SamplingParams(max_new_tokens=16), seed=0)
    for group in groups:
        for completion in group.completions:
            ids = torch.tensor([group.prompt_ids + completion.token_ids])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
            p = len(group.prompt_ids)
            full = [logp[p - 1 + j, token].item() for j, token in enumerate(completion.token_ids)]
            assert completion.logprobs == pytest.approx(full, abs=1e-4)


def test_stops_at_end_of_turn_and_reports_the_reason(tiny):
    model, tokenizer = tiny
    eot = tokenizer.eos_token_id
    bias = torch.zeros(len(tokenizer))
    bias[eot] = 50.0  # the end-of-turn token becomes overwhelmingly likely
    handle = model.lm_head.register_forward_hook(lambda m, i, out: out + bias)
    try:
        groups = HFEngine(model, tokenizer).generate(PROMPTS, 2, SamplingParams(max_new_tokens=8), seed=0)
    finally:
        handle.remove()
    for g in groups:
        for c in g.completions:
            assert c.token_ids == [eot] and c.finish_reason == "stop" and c.text == ""
    long = HFEngine(model, tokenizer).generate(PROMPTS[:1], 2, SamplingParams(max_new_tokens=5, temperature=0), seed=0)
    for c in long[0].completions:
        assert c.finish_reason == ("stop" if eot in c.token_ids else "length")
        assert len(c.token_ids) <= 5 and len(c.logprobs) == len(c.token_ids)


def test_greedy_matches_transformers_generate(tiny):
    model, tokenizer = tiny
    groups = HFEngine(model, tokenizer).generate(PROMPTS, 1, SamplingParams(temperature=0, max_new_tokens=10), seed=0)
    tokenizer.padding_side = "left"
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**batch, max_new_tokens=10, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    for row, g in enumerate(groups):
        expected = out[row, batch["input_ids"].shape[1]:].tolist()
        got = g.completions[0].token_ids
        assert expected[: len(got)] == got


def test_unknown_engine_is_refused(tiny):
    with pytest.raises(ValueError, match="rollout.engine"):
        make_engine(RolloutConfig(engine="sglang"), *tiny)
