"""Judging completions with the run's verifier settings, and the GRPO rewards built on the verdicts.

`Judge` is the one place where a completion meets the verifier: behind the think prefix its prompt opened (the
verifier reads the answer after `</think>`), sent to the verifier its gold calls for (verifiers/route.py: math for
a string gold, the sandbox for a code problem), in worker pools with `reward.timeout_s` per item and
`reward.workers` processes. GRPO rewards, held-out evaluation and the generate stage all judge through it.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo.algo import rewards as R
from grpo.config import PromptConfig, RewardConfig
from grpo.data.prompts import with_think_prefix
from grpo.rollout.types import Group
from verifiers import route


@dataclass(frozen=True)
class Judge:
    timeout_s: float = 5.0  # per completion; a timeout is a verdict (reward 0, reason "timeout"), never a hang
    workers: int = 2  # verifier worker processes
    think_prefix: bool = False  # the prompts opened a think block: put it back before judging
    partial: bool = False  # code: the reward is the fraction of tests passed (`correct` still needs all)

    @classmethod
    def of(cls, reward: RewardConfig, prompt: PromptConfig) -> Judge:
        """The run's settings (GRPO's rewards add `partial=reward.code_partial`; held-out accuracy never does)."""
        return cls(reward.timeout_s, reward.workers, prompt.think_prefix)

    def texts(self, completions: list[str]) -> list[str]:
        """The completions as the verifier reads them."""
        return [with_think_prefix(c, self.think_prefix) for c in completions]

    def __call__(self, completions: list[str], golds: list) -> list:
        """[VerifyResult] for the completions (as generated), in order."""
        return route.judge(self.texts(completions), golds, timeout_s=self.timeout_s, workers=self.workers,
                           partial=self.partial)


def score(groups: list[Group], golds: list, judge: Judge, reward: RewardConfig, *, max_new_tokens: int,
          say=print) -> list[list[dict]]:
    """GRPO's verify phase: per group, per completion {"reward", "accuracy", "format", "correct", "reason"}, the
    total reward combined by grpo/algo/rewards.py. A verifier that raises gives zero rewards with reason
    "verifier_error" (reported through `say`, never a crash)."""
    completions = [c for g in groups for c in g.completions]
    gold_per = [gold for g, gold in zip(groups, golds) for _ in g.completions]
    try:
        results = judge([c.text for c in completions], gold_per)
        accuracy, correct = [r.reward for r in results], [r.correct for r in results]
        reasons = [r.reason for r in results]
    except Exception as e:  # noqa: BLE001 -- the pool itself failed; the step goes on with zero rewards
        say(f"grpo: verifier failed on this batch ({type(e).__name__}: {e}); rewards are 0")
        n = len(completions)
        accuracy, correct, reasons = [0.0] * n, [False] * n, ["verifier_error"] * n
    formats = [R.think_format(t) for t in judge.texts([c.text for c in completions])]
    totals = R.combine(accuracy, formats, [len(c.token_ids) for c in completions],
                       accuracy_weight=reward.accuracy_weight, format_weight=reward.format_weight,
                       format_gate=reward.format_gate, max_new_tokens=max_new_tokens,
                       overlong_buffer=reward.overlong_buffer, overlong_factor=reward.overlong_penalty)
    flat = [{"reward": t, "accuracy": a, "format": f, "correct": c, "reason": r}
            for t, a, f, c, r in zip(totals, accuracy, formats, correct, reasons)]
    n = len(groups[0].completions) if groups else 0
    return [flat[i * n : (i + 1) * n] for i in range(len(groups))]
