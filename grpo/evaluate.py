"""Held-out accuracy: completions from the learner, judged by the math verifier.

Two protocols, one function:
- greedy (temperature 0, n = 1): batched `transformers.generate` with left padding, stopping at end of turn;
- sampled (temperature > 0, n samples per problem, e.g. DeepSeek-R1's T 0.6 / top-p 0.95): through the run's
  rollout engine (vLLM or transformers), seeded, so one checkpoint gives one number.
Accuracy is pass@1 averaged over the n samples. The same code path serves in-training validation and offline
evaluation of a run's checkpoint (`python -m evals.run --run-dir RUN`, evals/heldout.py), so both give the
same number.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpo.model import device_of
from grpo.verify import judge


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
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device_of(model))
            tokens = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                    eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            new = tokens[:, batch["input_ids"].shape[1]:]  # (B, T_new)
            out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return out


def _sampled(engine, prompts: list[str], protocol: EvalProtocol, max_new_tokens: int) -> list[list[str]]:
    from grpo.rollout import SamplingParams

    if engine is None:
        raise ValueError("a sampled held-out evaluation (temperature > 0) needs the rollout engine")
    sampling = SamplingParams(temperature=protocol.temperature, top_p=protocol.top_p, max_new_tokens=max_new_tokens)
    return [[c.text for c in g.completions] for g in engine.generate(prompts, protocol.n, sampling, seed=protocol.seed)]


def heldout_accuracy(model, tokenizer, examples, *, max_new_tokens: int, think_prefix: bool,
                     protocol: EvalProtocol = GREEDY, engine=None) -> tuple[float, list[dict]]:
    """(accuracy, samples): pass@1 over the examples, averaged over `protocol.n` samples each. One sample dict
    per completion, in problem order, with its problem's index under "problem"."""
    if not examples:
        return float("nan"), []
    prompts = [e.prompt for e in examples]
    if protocol.greedy:
        if protocol.n != 1:
            raise ValueError(f"greedy evaluation takes n = 1 (got n = {protocol.n}): every sample would be equal")
        per_problem = [[c] for c in generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens)]
    else:
        per_problem = _sampled(engine, prompts, protocol, max_new_tokens)
    flat = [(i, e, c) for i, (e, cs) in enumerate(zip(examples, per_problem)) for c in cs]
    judged = ["<think>\n" + c if think_prefix else c for _, _, c in flat]  # the prompt opened the think block
    results = judge(judged, [e.answer for _, e, _ in flat], workers=2, timeout_s=5.0)
    samples = [{"problem": i, "prompt": e.prompt, "completion": c, "gold": e.answer, "reward": r.reward,
                "reason": r.reason, "correct": bool(r.correct), "extracted": r.extracted}
               for (i, e, c), r in zip(flat, results)]
    return sum(r.correct for r in results) / len(results), samples


def by_problem(samples: list[dict]) -> list[dict]:
    """Samples grouped per problem as evals/metrics.py takes them: [{"correct": [...], "answers": [...]}]."""
    groups: dict[int, dict] = {}
    for s in samples:
        g = groups.setdefault(s["problem"], {"correct": [], "answers": []})
        g["correct"].append(s["correct"])
        g["answers"].append(s["extracted"])
    return list(groups.values())
