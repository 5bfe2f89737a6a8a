"""How a GRPO batch is rolled out: prompts drawn, G completions each from the engine, judged, kept or dropped, and
made whole on every process. Phases 1-3 of the GRPO step (grpo/stages/grpo.py).

1. rollout  `prompts_per_step` (B) prompts from the shuffled training set (`PromptSampler`), G completions each from
            the engine, seeded by (run seed, step, round)
2. verify   every completion judged (grpo/stages/judge.py), rewards combined; with dynamic sampling, groups whose
            rewards are all equal are dropped and phases 1-2 repeat with fresh prompts until B groups are kept or
            `max_sampling_rounds` is reached. A group holding an infrastructure failure (NaN reward) is always dropped.
   Several processes: the main process samples and its batch is broadcast (timed `broadcast`); with data-parallel
   rollouts every process samples its contiguous share of the same prompts with its own engine and seed, and the
   parts are gathered in rank order (timed `rollout_gather`), so every process holds the one-process batch.
3. advantages  (B, G) rewards -> (B, G) advantages (grpo/algo/advantages.py) -> the learner's samples
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from grpo.algo import rewards as R
from grpo.algo.advantages import advantages
from grpo.config import GRPOConfig, RewardConfig, RolloutConfig
from grpo.learner.team import ONE, Team
from grpo.learner.update import Sample
from grpo.rollout.types import Group, SamplingParams
from grpo.stages.judge import FAILED, Judge, score


class PromptSampler:
    """Shuffled passes over the training set; the state is (epoch, position), so a resumed run draws exactly
    the prompts the uninterrupted run would have."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch, self.position = size, seed, 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(self.size))
        random.Random(f"prompts:{self.seed}:{epoch}").shuffle(order)
        return order

    def take(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.position == self.size:
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._shuffled(self.epoch)
            out.append(self._order[self.position])
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._shuffled(self.epoch)


def _nothing_seen() -> dict:
    return {"groups": 0, "zero_std": 0, "infra": 0, "rounds": 0, "completions": [], "scores": [], "tool_s": 0.0,
            "tools": False}


@dataclass
class Batch:
    """One step's rollouts: `kept`, the (group, gold, scores) triples to train on, and `seen`, counts and every
    completion sampled with its scores (all rounds of dynamic sampling), for the metrics (the main process's)."""

    kept: list[tuple[Group, object, list[dict]]] = field(default_factory=list)
    seen: dict = field(default_factory=_nothing_seen)
    version: int = 0  # the engine's weights version (updates applied) that sampled it (grpo/stages/ahead.py)
    lag: int = 0  # the step that trains on it minus `version`
    seconds: dict = field(default_factory=dict)  # sampled ahead: the thread's phase seconds

    @classmethod
    def merged(cls, parts: list[Batch]) -> Batch:
        """The processes' parts of a data-parallel rollout, in rank order: the whole step's batch."""
        seen = {key: sum(p.seen[key] for p in parts) for key in ("groups", "zero_std", "infra", "tool_s")}
        seen["rounds"] = max(p.seen["rounds"] for p in parts)
        seen["tools"] = any(p.seen["tools"] for p in parts)
        for key in ("completions", "scores"):
            seen[key] = [x for p in parts for x in p.seen[key]]
        return cls([k for p in parts for k in p.kept], seen)

    def samples(self, estimator: str, mask_truncated: bool) -> list[Sample]:
        """Phase 3: group-relative advantages of the kept groups' rewards, one learner sample per completion (a
        truncated one left out of the loss under `mask_truncated`)."""
        if not self.kept:  # dynamic sampling found no group with a signal in its rounds
            return []
        rewards = torch.tensor([[s["reward"] for s in scores] for _, _, scores in self.kept])  # (B, G)
        adv = advantages(rewards, estimator)  # (B, G)
        return [Sample(g.prompt_ids, c.token_ids, c.logprobs, float(adv[i, j]),
                       not (mask_truncated and c.finish_reason == "length"), c.mask)
                for i, (g, _, _) in enumerate(self.kept) for j, c in enumerate(g.completions)]

    def metrics(self, rollout_seconds: float) -> dict:
        """The step's reward/* and rollout/* metrics (reward/<name>: each plug-in term's mean), and the generation
        throughput."""
        completions, scores = self.seen["completions"], self.seen["scores"]
        lengths = [len(c.token_ids) for c in completions]
        n, groups = max(len(completions), 1), max(self.seen["groups"], 1)
        names = dict.fromkeys(name for s in scores for name in s.get("terms", {}))
        finite = lambda values: [v for v in values if v == v]  # noqa: E731 - NaN: an infrastructure failure
        mean = lambda values: sum(values) / max(len(values), 1)  # noqa: E731
        terms = {f"reward/{name}": mean(finite(s["terms"][name] for s in scores)) for name in names}
        return {
            "reward/mean": mean(finite(s["reward"] for s in scores)),
            "reward/correct_frac": sum(s["correct"] for s in scores) / n,
            "reward/format_frac": sum(s["format"] for s in scores) / n,
            "reward/zero_std_frac": self.seen["zero_std"] / groups,
            "reward/infra_error_frac": self.seen["infra"] / groups,
            "reward/verifier_timeout_frac": sum(s["reason"] in ("timeout", "memory", "verifier_error", *FAILED)
                                                for s in scores) / n,
            "rollout/len_mean": sum(lengths) / n,
            "rollout/len_max": max(lengths, default=0),
            **terms,
            "rollout/truncated_frac": sum(c.finish_reason == "length" for c in completions) / n,
            "rollout/groups_kept": len(self.kept),
            "rollout/rounds": self.seen["rounds"],
            "async/lag": self.lag,
            "perf/generated_tokens": sum(lengths),
            "perf/rollout_tokens_per_s": sum(lengths) / max(rollout_seconds, 1e-9),
            **(tool_metrics(completions, self.seen["tool_s"]) if self.seen["tools"] else {}),
        }

    def readable(self, step: int, k: int) -> list[dict]:
        """The first completion of the first k groups, as samples.jsonl lines."""
        rows = []
        for g, gold, scores in self.kept[:k]:
            c, s = g.completions[0], scores[0]
            rows.append({"stage": "grpo", "step": step, "split": "train", "prompt": g.prompt,
                         "completion": c.transcript, **({"turns": c.turns} if c.turns else {}),
                         "gold": gold, "reward": s["reward"], "reason": s["reason"],
                         **({"terms": s["terms"]} if s.get("terms") else {}),
                         **({"term_reasons": s["term_reasons"]} if "term_reasons" in s else {}),
                         "finish_reason": c.finish_reason, "group_rewards": [x["reward"] for x in scores]})
        return rows


def tool_metrics(completions: list, seconds: float) -> dict:
    """tools/*: calls per completion, the share of calls that failed (an error, a limit, a crash; a timeout too)
    and that ran past their deadline; perf/tool_s, the rollout's wall seconds waiting on calls."""
    calls = [t["status"] for c in completions for t in (c.turns or []) if t["role"] == "tool"]
    n = max(len(calls), 1)
    return {"tools/calls_mean": len(calls) / max(len(completions), 1),
            "tools/error_frac": sum(s not in ("ok", "output_limit") for s in calls) / n,
            "tools/timeout_frac": sum(s == "timeout" for s in calls) / n,
            "perf/tool_s": seconds}


class Rollouts:
    """Phases 1-2 of every GRPO step (see the module docstring): the engine (None on a process that does not
    sample), the prompt sampler, the judge and reward settings; `say` reports a verifier that failed."""

    def __init__(self, engine, examples, cfg: GRPOConfig, rollout: RolloutConfig, reward: RewardConfig, *,
                 judge: Judge, seed: int, team: Team = ONE, say=print):
        self.engine, self.examples, self.cfg, self.reward, self.judge = engine, examples, cfg, reward, judge
        self.seed, self.team, self.say = seed, team, say
        self.sampling = SamplingParams(rollout.temperature, rollout.top_p, rollout.top_k, rollout.max_new_tokens)
        self.sampler = PromptSampler(len(examples), seed)
        self.tools = rollout.tools != "none"

    def collect(self, step: int, timer) -> Batch:
        """The step's batch, whole on every process."""
        batch = self._sample(step, timer) if self.engine is not None else None
        if self.team.data_parallel:
            with timer("rollout_gather"):
                return Batch.merged(self.team.gather(batch))
        if self.team.world > 1:  # the main process sampled; the others train on its batch
            with timer("broadcast"):
                kept = self.team.broadcast(batch.kept if batch is not None else None)
            return batch if batch is not None else Batch(kept)
        return batch

    def _sample(self, step: int, timer) -> Batch:
        """Phases 1-2, repeated under dynamic sampling; this process's share under data-parallel rollouts."""
        cfg = self.cfg
        rank, world = (self.team.rank, self.team.world) if self.team.data_parallel else (0, 1)
        batch = Batch()
        for round_ in range(cfg.max_sampling_rounds if cfg.dynamic_sampling else 1):
            batch.seen["rounds"] += 1
            drawn, share = self.sampler.take(cfg.prompts_per_step), cfg.prompts_per_step // world
            picked = [self.examples[i] for i in drawn[rank * share : (rank + 1) * share]]
            with timer("rollout"):
                groups = self.engine.generate([e.prompt for e in picked], cfg.group_size, self.sampling,
                                              seed=(self.seed * 1_000_003 + step * 101 + round_ + rank * 7_919)
                                              & 0x7FFFFFFF)
            with timer("verify"):
                scores = score(groups, picked, self.judge, self.reward,
                               max_new_tokens=self.sampling.max_new_tokens, say=self.say)
            rewards = torch.tensor([[s["reward"] for s in group] for group in scores])  # (B, G)
            informative = R.informative_groups(rewards)
            infra = torch.isnan(rewards).any(dim=1)
            batch.seen["groups"] += len(groups)
            batch.seen["tool_s"] += sum(g.tool_seconds for g in groups)
            batch.seen["tools"] = self.tools
            batch.seen["zero_std"] += int((~informative & ~infra).sum())
            batch.seen["infra"] += int(infra.sum())
            for g, e, s, keep_it, bad in zip(groups, picked, scores, informative.tolist(), infra.tolist()):
                batch.seen["completions"].extend(g.completions)
                batch.seen["scores"].extend(s)
                if not bad and (keep_it or not cfg.dynamic_sampling):
                    batch.kept.append((g, e.answer, s))
            if not cfg.dynamic_sampling or len(batch.kept) >= cfg.prompts_per_step:
                break
        batch.kept = batch.kept[: cfg.prompts_per_step]
        return batch
