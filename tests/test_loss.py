"""The policy loss by hand (arithmetic in comments), and invariance to micro-batching."""

import math

import pytest
import torch

from grpo.algo.loss import StepSize, k3_kl, policy_loss

LN = math.log


def lp(*probs):
    return torch.tensor([[LN(p) for p in probs]])


def test_token_ppo_clip_with_decoupled_range():
    # w = [1.5, 0.5] (old logprobs 0), A = +1, clip [0.8, 1.28]:
    #   t0: min(1.5, 1.28) = 1.28 -> L = -1.28 (clipped);  t1: min(0.5, 0.8) = 0.5 -> L = -0.5
    # token-mean over the step's 2 tokens: (-1.28 - 0.5) / 2 = -0.89
    loss, stats = policy_loss(lp(1.5, 0.5), torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2),
                              StepSize(2, 1, 4), clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx(-0.89, abs=1e-6)
    assert stats["clipped_tokens"] == 1


def test_negative_advantage_clips_the_other_side():
    # A = -1: t0: min(-1.5, -1.28) = -1.5 -> L = 1.5;  t1: min(-0.5, -0.8) = -0.8 -> L = 0.8 (clipped)
    loss, stats = policy_loss(lp(1.5, 0.5), torch.zeros(1, 2), torch.tensor([-1.0]), torch.ones(1, 2),
                              StepSize(2, 1, 4))
    assert loss.item() == pytest.approx(1.15, abs=1e-6) and stats["clipped_tokens"] == 1


def test_aggregations():
    logprobs = torch.cat([lp(1.5, 0.5), lp(1.5, 0.5)])
    adv, mask = torch.tensor([1.0, -1.0]), torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    step = StepSize(tokens=3, sequences=2, max_completion_length=4)
    # per token: seq0 [-1.28, -0.5], seq1 [1.5, (masked)]
    # token-mean: (-1.28 - 0.5 + 1.5) / 3 = -0.093333
    # seq-mean-token-mean: ((-1.78 / 2) + (1.5 / 1)) / 2 = (-0.89 + 1.5) / 2 = 0.305
    # constant: -0.28 / (2 * 4) = -0.035
    for mode, expected in (("token-mean", -0.28 / 3), ("seq-mean-token-mean", 0.305), ("constant", -0.035)):
        loss, _ = policy_loss(logprobs, torch.zeros(2, 2), adv, mask, step, aggregation=mode)
        assert loss.item() == pytest.approx(expected, abs=1e-6), mode


def test_gspo_sequence_ratio():
    # mean log-ratio (ln 1.5 + ln 0.5) / 2 = ln(0.75) / 2 -> w = sqrt(0.75) = 0.866025 on both tokens,
    # inside [0.8, 1.28]: L = -0.866025 per token, token-mean -0.866025
    loss, _ = policy_loss(lp(1.5, 0.5), torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2), StepSize(2, 1, 4),
                          level="sequence")
    assert loss.item() == pytest.approx(-math.sqrt(0.75), abs=1e-6)


def test_k3_kl_by_hand():
    # logprob ln .5, ref ln .25: d = ln .5 = -0.693147; exp(d) - d - 1 = 0.5 + 0.693147 - 1 = 0.193147
    assert k3_kl(lp(0.5), lp(0.25)).item() == pytest.approx(0.5 + LN(2) - 1, abs=1e-6)
    assert k3_kl(lp(0.5), lp(0.5)).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_term_is_added_with_its_coefficient():
    # on-policy (w = 1), A = 0: L_t = 0 + 0.1 * 0.193147
    loss, stats = policy_loss(lp(0.5), lp(0.5), torch.tensor([0.0]), torch.ones(1, 1), StepSize(1, 1, 1),
                              ref_logprobs=lp(0.25), kl_coef=0.1)
    assert loss.item() == pytest.approx(0.1 * (0.5 + LN(2) - 1), abs=1e-6)
    assert stats["kl_sum"] == pytest.approx(0.5 + LN(2) - 1, abs=1e-6)


def test_kl_outside_the_mask_cannot_overflow_the_loss():
    # position 1 is out of the loss (a prompt or padding position), its logprob 95 nats below the reference's:
    # exp(95) overflows fp32; only position 0 counts: A = 0, d = 0 there, so the loss and its gradient are 0
    logprobs = torch.tensor([[-1.0, -100.0]], requires_grad=True)
    loss, stats = policy_loss(logprobs, logprobs.detach(), torch.tensor([0.0]), torch.tensor([[1.0, 0.0]]),
                              StepSize(1, 1, 2), ref_logprobs=torch.tensor([[-1.0, -5.0]]), kl_coef=0.1)
    loss.backward()
    assert loss.item() == 0.0 and stats["kl_sum"] == 0.0
    assert torch.equal(logprobs.grad, torch.zeros(1, 2))


def test_clip_fraction_counts_only_tokens_the_band_keeps():
    # w = [1.5, 1.5] (above 1 + 0.28, A = 1: clipped); token 1's engine ratio 0.5 / 0.05 = 10 leaves the band
    # [0.5, 2]: masked, so one clipped token of the two in the loss
    _, stats = policy_loss(lp(0.75, 0.75), lp(0.5, 0.5), torch.tensor([1.0]), torch.ones(1, 2), StepSize(2, 1, 2),
                           engine_logprobs=lp(0.5, 0.05), is_mask="token", is_band=(0.5, 2.0))
    assert stats["is_masked"] == 1 and stats["clipped_tokens"] == 1


def test_truncated_importance_sampling_weight():
    # old - engine = ln 2 -> rho = min(2, 1.5) = 1.5; on-policy w = 1, A = 1: L = -1 * 1.5
    loss, _ = policy_loss(lp(0.5), lp(0.5), torch.tensor([1.0]), torch.ones(1, 1), StepSize(1, 1, 1),
                          engine_logprobs=lp(0.25), is_cap=1.5)
    assert loss.item() == pytest.approx(-1.5, abs=1e-6)


def test_importance_statistics_by_hand():
    # learner probs [0.5, 0.5, 0.5] (on-policy, w = 1), engine [0.25, 0.5, 0.1]: r = [2, 1, 5]; the third token is
    # out of the loss. cap 1.5: r_0 = 2 is capped (1 of 2 loss tokens); sum over the loss tokens 3, max 2
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, stats = policy_loss(lp(0.5, 0.5, 0.5), lp(0.5, 0.5, 0.5), torch.tensor([1.0]), mask, StepSize(2, 1, 3),
                              engine_logprobs=lp(0.25, 0.5, 0.1), is_cap=1.5)
    assert loss.item() == pytest.approx(-(1.5 + 1.0) / 2, abs=1e-6)  # token-mean of -rho
    assert stats["is_sum"] == pytest.approx(3.0) and stats["is_max"] == pytest.approx(2.0)
    assert stats["is_capped"] == 1 and stats["is_masked"] == 0


def test_token_band_mask_drops_tokens_outside_the_band():
    # r = [2, 1, 0.4], band [0.5, 1.5]: tokens 0 and 2 masked; L = -1 on token 1 only, still over the step's 3 tokens
    loss, stats = policy_loss(lp(0.5, 0.5, 0.2), lp(0.5, 0.5, 0.2), torch.tensor([1.0]), torch.ones(1, 3),
                              StepSize(3, 1, 3), engine_logprobs=lp(0.25, 0.5, 0.5), is_mask="token",
                              is_band=(0.5, 1.5))
    assert loss.item() == pytest.approx(-1.0 / 3, abs=1e-6)
    assert stats["is_masked"] == 2


def test_sequence_band_mask_drops_whole_completions():
    # sequence 0: r = [2, 2] -> geometric mean 2, outside [0.5, 1.5]: both tokens masked;
    # sequence 1: r = [2, 0.5] -> geometric mean 1: kept, although each token alone leaves the band
    old = torch.tensor([[LN(0.5), LN(0.5)], [LN(0.5), LN(0.5)]])
    engine = torch.tensor([[LN(0.25), LN(0.25)], [LN(0.25), LN(1.0)]])
    loss, stats = policy_loss(old, old, torch.tensor([1.0, 1.0]), torch.ones(2, 2), StepSize(4, 2, 2),
                              engine_logprobs=engine, is_mask="sequence", is_band=(0.5, 1.5))
    assert loss.item() == pytest.approx(-2.0 / 4, abs=1e-6)  # sequence 1's two tokens, -1 each, over 4
    assert stats["is_masked"] == 2
    with pytest.raises(ValueError, match="is_mask must be token or sequence"):
        policy_loss(old, old, torch.tensor([1.0, 1.0]), torch.ones(2, 2), StepSize(4, 2, 2), engine_logprobs=engine,
                    is_mask="tokens")


def test_empty_mask_gives_zero():
    loss, stats = policy_loss(lp(0.5, 0.5), torch.zeros(1, 2), torch.tensor([1.0]), torch.zeros(1, 2),
                              StepSize(0, 1, 2))
    assert loss.item() == 0.0 and stats["tokens"] == 0


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "constant"])
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_the_update_does_not_depend_on_micro_batching(aggregation, level):
    torch.manual_seed(0)
    n, t = 6, 5
    base = torch.randn(n, t, requires_grad=True)
    old = torch.randn(n, t) * 0.1
    adv = torch.randn(n)
    mask = (torch.rand(n, t) > 0.3).float()
    mask[:, 0] = 1
    step = StepSize(int(mask.sum()), n, t)

    def grad(splits):
        base.grad = None
        for rows in splits:
            logprobs = torch.log_softmax(base, -1)[rows]
            loss, _ = policy_loss(logprobs, old[rows], adv[rows], mask[rows], step, level=level,
                                  aggregation=aggregation)
            loss.backward()
        return base.grad.clone()

    whole = grad([list(range(n))])
    assert torch.allclose(whole, grad([[0, 1], [2, 3], [4, 5]]), atol=1e-6, rtol=0)
    assert torch.allclose(whole, grad([[i] for i in range(n)]), atol=1e-6, rtol=0)
