"""Held-out accuracy: completions from the stage's model, judged by the run's verifier; the one wiring every
stage (sft, grpo, eval, the distilled students) and `python -m evals.run --run-dir` / `evals.paired` use.

Two protocols, one function:
- greedy (temperature 0, n = 1): batched `transformers.generate` with left padding, stopping at end of turn;
- sampled (temperature > 0, n samples per problem, e.g. DeepSeek-R1's T 0.6 / top-p 0.95): through the run's
  rollout engine (vLLM or transformers), seeded, so one checkpoint gives one number.
Accuracy is pass@1 averaged over the n samples; pass@k, maj@k and their standard errors come from
grpo/algo/passk.py under the names `python -m evals.run` writes. `EvalPlan.of(config, stage)` is each stage's
protocol, problem count and token budget, so in-training validation and offline evaluation of a run's checkpoint
give the same number.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from grpo.algo.passk import suite_metrics
from grpo.config import Config, SFTConfig
from grpo.data.prompts import to_examples
from grpo.model import device_of
from grpo.rollout.factory import make_engine
from grpo.rollout.hf import HFEngine
from grpo.rollout.tools import ToolEngine, ToolSettings
from grpo.rollout.types import Completion, SamplingParams, stop_token_ids
from grpo.stages.judge import Judge
from verifiers.normalize import normalize


@dataclass(frozen=True)
class EvalProtocol:
    n: int = 1  # samples per problem
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0  # sampled protocol: the engine's seed

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


GREEDY = EvalProtocol()


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy completions (decoded, special tokens but <think> tags removed), in prompt order."""
    model.eval()
    stops = sorted(stop_token_ids(model, tokenizer))  # the rollout engines' end-of-turn tokens
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device_of(model))
            tokens = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                                    pad_token_id=tokenizer.pad_token_id)
            new = tokens[:, batch["input_ids"].shape[1]:]  # (B, T_new)
            out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return out


def _sampled(engine, prompts: list[str], protocol: EvalProtocol, max_new_tokens: int) -> list[list[Completion]]:
    if engine is None:
        raise ValueError("a sampled held-out evaluation (temperature > 0) needs the rollout engine")
    sampling = SamplingParams(temperature=protocol.temperature, top_p=protocol.top_p, max_new_tokens=max_new_tokens)
    return [g.completions for g in engine.generate(prompts, protocol.n, sampling, seed=protocol.seed)]


def heldout_accuracy(model, tokenizer, examples, *, max_new_tokens: int, judge: Judge,
                     protocol: EvalProtocol = GREEDY, engine=None,
                     tools: ToolSettings | None = None) -> tuple[float, list[dict]]:
    """(accuracy, samples): pass@1 over the examples, averaged over `protocol.n` samples each. One sample dict
    per completion, in problem order, with its problem's index under "problem". With `tools`, the model calls the
    interpreter as in training (through `engine`, a tool engine, or else one on the transformers engine), greedy
    included; the verifier reads the model's own text, the sample shows the transcript."""
    if not examples:
        return float("nan"), []
    prompts = [e.prompt for e in examples]
    if protocol.greedy and protocol.n != 1:
        raise ValueError(f"greedy evaluation takes n = 1 (got n = {protocol.n}): every sample would be equal")
    if tools is not None:
        own = ToolEngine(HFEngine(model, tokenizer), tokenizer, tools) if not isinstance(engine, ToolEngine) else None
        per_problem = _sampled(own or engine, prompts, protocol, max_new_tokens)
    elif protocol.greedy:
        per_problem = [[Completion([], c, [], "")] for c in generate(model, tokenizer, prompts,
                                                                      max_new_tokens=max_new_tokens)]
    else:
        per_problem = _sampled(engine, prompts, protocol, max_new_tokens)
    flat = [(i, e, c) for i, (e, cs) in enumerate(zip(examples, per_problem)) for c in cs]
    results = judge([c.text for _, _, c in flat], [e for _, e, _ in flat])
    samples = [{"problem": i, "prompt": e.prompt, "completion": c.transcript, **({"turns": c.turns} if c.turns else {}),
                "gold": e.answer, "reward": r.reward, "reason": r.reason, "correct": bool(r.correct),
                "extracted": r.extracted}
               for (i, e, c), r in zip(flat, results)]
    return sum(r.correct for r in results) / len(results), samples


def by_problem(samples: list[dict]) -> list[dict]:
    """Samples grouped per problem as grpo/algo/passk.py takes them: [{"correct": [...], "answers": [...]}]."""
    groups: dict[int, dict] = {}
    for s in samples:
        g = groups.setdefault(s["problem"], {"correct": [], "answers": []})
        g["correct"].append(s["correct"])
        g["answers"].append(vote_key(s["extracted"]))
    return list(groups.values())


def vote_key(extracted: str | None) -> str | None:
    """How an extracted answer votes in maj@k: its canonical LaTeX (verifiers/normalize.py: \\dfrac and \\frac,
    \\left( and ( are one), so spellings of one answer are one vote."""
    if extracted is None:
        return None
    try:
        return normalize(extracted)
    except Exception:  # noqa: BLE001 - an answer normalisation cannot read votes as written
        return extracted


@dataclass(frozen=True)
class EvalPlan:
    """How a stage measures held-out accuracy: on the first `size` problems (None: all), with `max_new_tokens` per
    completion, under `protocol`, with the interpreter when `tools` (the run's rollout.tools: training and its
    held-out evaluation use the same setting)."""

    size: int | None
    max_new_tokens: int
    protocol: EvalProtocol = GREEDY
    tools: ToolSettings | None = None

    @classmethod
    def of(cls, config: Config, stage: str) -> EvalPlan:
        """The plan of a stage of the run: `grpo`, `eval`, or `sft` (the cold start; the students use `sft` on
        their own section, distill.sft)."""
        seed, tools = config.run.seed, ToolSettings.of(config.rollout)
        if stage == "grpo":
            g = config.grpo
            return cls(g.eval_size, g.eval_max_new_tokens or config.rollout.max_new_tokens,
                       EvalProtocol(n=g.eval_n, temperature=g.eval_temperature, top_p=g.eval_top_p, seed=seed), tools)
        if stage == "eval":
            e = config.eval
            return cls(e.size or None, e.max_new_tokens or config.rollout.max_new_tokens,
                       EvalProtocol(n=e.n, temperature=e.temperature, top_p=e.top_p, seed=seed), tools)
        return cls.sft(config.sft, tools)

    @classmethod
    def sft(cls, cfg: SFTConfig, tools: ToolSettings | None = None) -> EvalPlan:
        """An SFT run's plan (the cold start's `sft`, the students' `distill.sft`): greedy."""
        return cls(cfg.eval_size, cfg.max_new_tokens, tools=tools)

    def measures_like(self, other: EvalPlan) -> bool:
        """Would both give the same figure on the same model? (Greedy decoding ignores the seed and top-p.)"""
        same_protocol = self.protocol == other.protocol or (self.protocol.greedy and other.protocol.greedy)
        return (self.size == other.size and self.max_new_tokens == other.max_new_tokens and same_protocol
                and self.tools == other.tools)


class Evaluator:
    """A stage's held-out evaluations. `run(step)` evaluates `model` (sampled protocols through `engine`), writes the
    metrics line (`eval/heldout_accuracy`, `eval/heldout/pass@k`, ...; with `tags`) and the first `n_samples`
    samples to the run log, and keeps (step, accuracy) in `evals`; `maybe(step)` does so every `every` steps before
    the last. On a process that does not log (not the main one) nothing runs."""

    def __init__(self, model, tokenizer, examples, plan: EvalPlan, judge: Judge, *, log=None, engine=None,
                 every: int = 0, total: int = 0, n_samples: int = 8, tags: dict | None = None):
        self.model, self.tokenizer, self.plan, self.judge = model, tokenizer, plan, judge
        self.log, self.engine = log, engine
        self.examples = examples[: plan.size]
        self.every, self.total, self.n_samples, self.tags = every, total, n_samples, tags or {}
        self.active = log is None or log.enabled
        self.evals: list[dict] = []
        self.last: dict = {}  # the latest evaluation's pass@k, maj@k and standard errors
        self.last_samples: list[dict] = []  # and its samples, each with its verdict

    def run(self, step: int) -> float:
        accuracy, samples = heldout_accuracy(self.model, self.tokenizer, self.examples,
                                             max_new_tokens=self.plan.max_new_tokens, judge=self.judge,
                                             protocol=self.plan.protocol, engine=self.engine, tools=self.plan.tools)
        self.last, self.last_samples = suite_metrics(by_problem(samples)) if samples else {}, samples
        if any(isinstance(s["gold"], dict) for s in samples):  # code: a vote over programs is not defined
            self.last = {k: v for k, v in self.last.items() if not k.startswith("maj@")}
        if self.log is not None:
            self.log.line({"step": step, **self.tags, "eval/heldout_accuracy": accuracy,
                           **{f"eval/heldout/{k}": v for k, v in self.last.items()}})
            self.log.samples([dict(s, stage=self.log.stage, step=step, split="heldout", **self.tags)
                              for s in samples[: self.n_samples]])
        self.evals.append({"step": step, "heldout_accuracy": accuracy})
        return accuracy

    def start(self, first_step: int, known: float | None = None) -> None:
        """Before a stage's first step: the starting model's accuracy, `known` when the caller measured it on the
        same problems the same way (the previous stage's), else measured here. Nothing when resuming."""
        if first_step or not self.active:
            return
        if known is not None:
            self.evals.append({"step": 0, "heldout_accuracy": known})
        else:
            self._say(f"{self.stage}: held-out accuracy before training {self.run(0):.3f}")

    def maybe(self, step: int, timer=None) -> None:
        """Every `every` steps before the last (timed as `eval`)."""
        if not (self.active and self.every and step % self.every == 0 and step < self.total):
            return
        with timer("eval") if timer is not None else contextlib.nullcontext():
            accuracy = self.run(step)
        self._say(f"{self.stage} step {step}: held-out accuracy {accuracy:.3f}")

    def final(self, step: int) -> float:
        """The stage's last evaluation (NaN on a process that does not evaluate); already made when the stage
        resumed from a checkpoint taken after it (the SFT stage's last one)."""
        if self.evals and self.evals[-1]["step"] == step:
            return self.evals[-1]["heldout_accuracy"]
        return self.run(step) if self.active else float("nan")

    @property
    def stage(self) -> str:
        return self.log.stage if self.log is not None else "eval"

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log.say(line)
        else:
            print(line)


def evaluate_heldout(model, tokenizer, records: list[dict], config: Config, plan: EvalPlan, *, log=None,
                     tags: dict | None = None) -> Evaluator:
    """`model` on a run's held-out `records` under `plan`, as training measures them: the run's prompt and verifier
    settings and, for a sampled protocol, the run's rollout engine (started and closed here). Returns the evaluator
    that ran (accuracy: `evals[-1]`; pass@k and maj@k: `last`; samples: `last_samples`); with a `log`, its metrics
    line and samples (tagged with `tags`) are written there."""
    examples = to_examples(records, tokenizer, config.prompt)
    engine = None if plan.protocol.greedy and plan.tools is None else make_engine(config.rollout, model, tokenizer)
    try:
        evaluator = Evaluator(model, tokenizer, examples, plan, Judge.of(config.reward, config.prompt), log=log,
                              engine=engine, tags=tags)
        evaluator.run(0)
    finally:
        if engine is not None:
            engine.close()
    return evaluator
