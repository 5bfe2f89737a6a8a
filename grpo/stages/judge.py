"""Judging completions with the run's verifier settings, and the GRPO rewards built on the verdicts.

`Judge` is the one place where a completion meets the verifiers: behind the think prefix its prompt opened (the
verifier reads the answer after `</think>`), sent to the verifier its row calls for (verifiers/route.py: math, code in
the sandbox, or a user's module:function), in worker pools with `reward.timeout_s` per item and `reward.workers`
processes; and to the reward plug-ins (`reward.functions`, verifiers/plugins.py), under the same deadline. GRPO
rewards, held-out evaluation and the generate stage all judge through it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from grpo.algo import rewards as R
from grpo.config import PromptConfig, RewardConfig
from grpo.data.prompts import Example, with_think_prefix
from grpo.rollout.types import Group
from verifiers import plugins, route


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

    def __call__(self, completions: list[str], examples: list[Example]) -> list:
        """[VerifyResult] for the completions (as generated) of `examples` (one each), in order."""
        kinds = [e.verifier or ("code" if isinstance(e.answer, dict) else "math") for e in examples]
        return route.judge(self.texts(completions), [e.answer for e in examples], timeout_s=self.timeout_s,
                           workers=self.workers, partial=self.partial, kinds=kinds,
                           rows=[e.row if e.row is not None else {} for e in examples])

    def terms(self, completions: list[str], examples: list[Example], functions: list) -> dict[str, list]:
        """Each reward plug-in's `plugins.Value` per completion, by the plug-in's name (a pool that cannot run at
        all, e.g. workers that cannot import the module, fails every completion with `reward_error`)."""
        texts, rows = self.texts(completions), [e.row if e.row is not None else {} for e in examples]
        out = {}
        for f in functions:
            try:
                out[f.label()] = plugins.run(f.fn, texts, rows, timeout_s=self.timeout_s, workers=self.workers)
            except Exception as e:  # noqa: BLE001 -- the step goes on; the failure is reported with the rest
                out[f.label()] = [plugins.Value(0.0, "reward_error", f"{type(e).__name__}: {e}")] * len(texts)
        return out


def score(groups: list[Group], examples: list[Example], judge: Judge, reward: RewardConfig, *, max_new_tokens: int,
          say=print) -> list[list[dict]]:
    """GRPO's verify phase: per group, per completion {"reward", "accuracy", "format", "correct", "reason", "terms"}:
    the total combined by grpo/algo/rewards.py from the verifier's accuracy, the format reward, the overlong penalty
    and each reward plug-in's value ("terms", by name). A verifier pool that fails as a whole is an infrastructure
    failure: accuracy NaN (reason "verifier_error"), so every group is dropped, never learned from; a user's
    verifier that fails a completion gives it accuracy 0 (reason reward_error, reward_timeout, ...); a plug-in that
    fails a completion gives it 0 for that term. Each is reported through `say`, never a crash."""
    completions = [c for g in groups for c in g.completions]
    per = [e for g, e in zip(groups, examples) for _ in g.completions]
    texts = [c.text for c in completions]
    try:
        results = judge(texts, per)
        accuracy, correct = [r.reward for r in results], [r.correct for r in results]
        reasons = [r.reason for r in results]
    except Exception as e:  # noqa: BLE001 -- the pool itself failed: nothing is known, nothing is learned
        say(f"grpo: verifier failed on this batch ({type(e).__name__}: {e}); its groups are dropped")
        n = len(completions)
        accuracy, correct, reasons = [float("nan")] * n, [False] * n, ["verifier_error"] * n
    else:
        _report_verifiers(results, per, say)
    terms = judge.terms(texts, per, reward.functions)
    _report(terms, reward.functions, say)
    formats = [R.think_format(t) for t in judge.texts(texts)]
    totals = R.combine(accuracy, formats, [len(c.token_ids) for c in completions],
                       accuracy_weight=reward.accuracy_weight, format_weight=reward.format_weight,
                       format_gate=reward.format_gate, max_new_tokens=max_new_tokens,
                       overlong_buffer=reward.overlong_buffer, overlong_factor=reward.overlong_penalty,
                       extra=[(f.weight, [v.value for v in terms[f.label()]]) for f in reward.functions])
    flat = [{"reward": t, "accuracy": a, "format": f, "correct": c, "reason": r,
             "terms": {name: values[i].value for name, values in terms.items()},
             **({"term_reasons": failed} if (failed := {name: values[i].reason for name, values in terms.items()
                                                         if values[i].reason != "ok"}) else {})}
            for i, (t, a, f, c, r) in enumerate(zip(totals, accuracy, formats, correct, reasons))]
    n = len(groups[0].completions) if groups else 0
    return [flat[i * n : (i + 1) * n] for i in range(len(groups))]


FAILED = ("reward_timeout", "reward_memory", "reward_crash", "reward_error")  # a user's function failed (plugins.py)


def _report_verifiers(results: list, examples: list[Example], say) -> None:
    """One line per verifier that failed some completions as a function (a user's module:function, reasoning-gym's
    scorer): how many, why, the first detail."""
    by_kind: dict[str, list] = {}
    for r, e in zip(results, examples):  # the built-in verifiers never give these reasons; reasoning-gym's can
        by_kind.setdefault(e.verifier or "math", []).append(r)
    for kind, verdicts in by_kind.items():
        failed = [r for r in verdicts if r.reason in FAILED]
        nan = sum(r.reason == "infra_error" for r in verdicts)
        if nan:
            say(f"grpo: verifier {kind} returned NaN for {nan} of {len(verdicts)} completions (an infrastructure "
                "failure): their groups are dropped from the step")
        if failed:
            counts = ", ".join(f"{n} {reason}" for reason, n in Counter(r.reason for r in failed).items())
            detail = next((r.detail for r in failed if r.detail), "")
            say(f"grpo: verifier {kind} failed {len(failed)} of {len(verdicts)} completions ({counts})"
                f"{': ' + detail if detail else ''}; they get accuracy 0")


def _report(terms: dict[str, list], functions: list, say) -> None:
    """One line per plug-in that failed some completions: how many, why, and the first detail."""
    for f in functions:
        failed = [v for v in terms[f.label()] if v.reason not in ("ok", "no_opinion")]
        if failed:
            counts = ", ".join(f"{n} {reason}" for reason, n in Counter(v.reason for v in failed).items())
            detail = next((v.detail for v in failed if v.detail), "")
            say(f"grpo: reward {f.label()} ({f.fn}) failed {len(failed)} of {len(terms[f.label()])} completions "
                f"({counts}){': ' + detail if detail else ''}; they get 0 for it")
        nan = sum(v.value != v.value for v in terms[f.label()])
        if nan:
            say(f"grpo: reward {f.label()} ({f.fn}) returned NaN for {nan} of {len(terms[f.label()])} completions "
                "(an infrastructure failure): their groups are dropped from the step")
