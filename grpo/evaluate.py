"""Held-out accuracy: greedy completions from the learner, judged by the math verifier.

The same code path serves in-training validation and offline evaluation of a run's checkpoint
(`python -m evals.run --run-dir RUN`, evals/heldout.py), so both give the same number. Generation is batched with
left padding and stops at the end-of-turn token.
"""

from __future__ import annotations

import torch

from verifiers.math import verify_batch


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
                              add_special_tokens=False)
            tokens = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                    eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            new = tokens[:, batch["input_ids"].shape[1]:]  # (B, T_new)
            out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return out


def heldout_accuracy(model, tokenizer, examples, *, max_new_tokens: int, think_prefix: bool) -> tuple[float, list[dict]]:
    """(accuracy, samples): the fraction of examples whose greedy completion the verifier accepts."""
    if not examples:
        return float("nan"), []
    completions = generate(model, tokenizer, [e.prompt for e in examples], max_new_tokens=max_new_tokens)
    judged = ["<think>\n" + c if think_prefix else c for c in completions]  # the prompt opened the think block
    results = verify_batch(judged, [e.answer for e in examples], workers=2, timeout_s=5.0)
    samples = [{"prompt": e.prompt, "completion": c, "gold": e.answer, "reward": r.reward, "reason": r.reason,
                "correct": bool(r.correct), "extracted": r.extracted}
               for e, c, r in zip(examples, completions, results)]
    return sum(r.correct for r in results) / len(results), samples
