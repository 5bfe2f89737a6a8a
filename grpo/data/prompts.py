"""Prompts: how a problem becomes the text the model is given, and the one rule for the think prefix.

`prompt.template` is plain (the question alone), chat (the tokenizer's chat template) or r1 (the chat template
with DeepSeek-R1's instruction). With `prompt.think_prefix` the prompt ends with `THINK_PREFIX`, so the model
continues inside an opened think block; a completion is then judged (and filtered) with the prefix put back in
front of it (`with_think_prefix`), since the verifier reads the answer after `</think>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo.config import PromptConfig
from grpo.data.jsonl import DataError

R1_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
THINK_PREFIX = "<think>\n"


@dataclass
class Example:
    prompt: str  # the rendered prompt, exactly what the model is given
    answer: str | dict  # the gold answer for the verifier (a dict: a code problem with tests, verifiers/route.py)
    completion: str | None  # the SFT target (None when the data has no worked solution)
    problem: str = ""  # the question alone, before the prompt template


def with_think_prefix(completion: str, think_prefix: bool) -> str:
    """The completion as the verifier reads it: behind the think prefix its prompt opened (if it did)."""
    return THINK_PREFIX + completion if think_prefix else completion


def render_prompt(problem: str, tokenizer, cfg: PromptConfig) -> str:
    """The text the model is given: plain, the chat template, or the chat template with the R1 instruction."""
    if cfg.template == "plain":
        prompt = problem.rstrip() + "\n"
    else:
        content = problem if cfg.template == "chat" else f"{problem.rstrip()}\n{R1_INSTRUCTION}"
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                               add_generation_prompt=True)
        if opens_think(prompt):  # the template opened the block itself (R1-distill, Qwen3 templates)
            if not cfg.think_prefix:
                raise DataError("prompt.think_prefix is false but the tokenizer's chat template already opens "
                                "<think>: completions start inside the think block, so set prompt.think_prefix "
                                "true (the template's <think> is then used, not repeated)")
            return prompt if prompt.endswith("\n") else prompt + "\n"
    return prompt + (THINK_PREFIX if cfg.think_prefix else "")


def opens_think(prompt: str) -> bool:
    """Does the rendered prompt end inside an opened think block?"""
    return prompt.rstrip().endswith("<think>")


def to_examples(records: list[dict], tokenizer, cfg: PromptConfig) -> list[Example]:
    """Records -> examples; the SFT target continues the prompt (so a think prefix is not repeated) and ends
    with the end-of-turn token."""
    examples = []
    for r in records:
        completion = None
        if r.get("solution"):
            completion = r["solution"]
            if cfg.think_prefix and completion.startswith(THINK_PREFIX):
                completion = completion[len(THINK_PREFIX):]
            completion += tokenizer.eos_token
        examples.append(Example(render_prompt(r["problem"], tokenizer, cfg), r["answer"], completion, r["problem"]))
    return examples
