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
    verifier: str = ""  # what judges it: math, code, module:function ("": by the answer's type)
    row: dict | None = None  # the dataset row with all its fields (reward plug-ins receive it)


def with_think_prefix(completion: str, think_prefix: bool) -> str:
    """The completion as the verifier reads it: behind the think prefix its prompt opened (if it did)."""
    return THINK_PREFIX + completion if think_prefix else completion


def render_prompt(problem: str, tokenizer, cfg: PromptConfig) -> str:
    """The text the model is given: plain, the chat template, or the chat template with the R1 instruction (in the
    user's turn, as DeepSeek-R1 recommends, unless the template already says it: Qwen2.5-Math's default system
    prompt is that instruction, and it is not repeated)."""
    if cfg.template == "plain":
        prompt = problem.rstrip() + "\n"
    else:
        prompt = _chat(tokenizer, problem)
        if cfg.template == "r1" and R1_INSTRUCTION not in prompt:
            prompt = _chat(tokenizer, f"{problem.rstrip()}\n{R1_INSTRUCTION}")
        if opens_think(prompt):  # the template opened the block itself (R1-distill, Qwen3 templates)
            if not cfg.think_prefix:
                raise DataError("prompt.think_prefix is false but the tokenizer's chat template already opens "
                                "<think>: completions start inside the think block, so set prompt.think_prefix "
                                "true (the template's <think> is then used, not repeated)")
            return prompt if prompt.endswith("\n") else prompt + "\n"
    return prompt + (THINK_PREFIX if cfg.think_prefix else "")


def _chat(tokenizer, content: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)


_MARK = "\x00the reply\x00"


def end_of_turn(tokenizer) -> str | None:
    """The token the tokenizer's chat template closes an assistant's turn with (Qwen's `<|im_end|>`, DeepSeek-R1's
    end-of-sentence), found by rendering one; None without a chat template or when the turn ends in plain text. Base
    models often have another EOS (Qwen2.5-Math: `<|endoftext|>`), so a chat-formatted reply must end, and sampling
    stop, at this one too."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    text = tokenizer.apply_chat_template([{"role": "user", "content": "?"}, {"role": "assistant", "content": _MARK}],
                                         tokenize=False)
    after = text.split(_MARK, 1)[1] if _MARK in text else ""
    added = [t.content for t in tokenizer.added_tokens_decoder.values()]
    return max((t for t in added if t and after.startswith(t)), key=len, default=None)


def turn_end(tokenizer, cfg: PromptConfig) -> str:
    """What an SFT target ends with: the chat template's end of turn when prompts use the template, else the EOS."""
    return (end_of_turn(tokenizer) if cfg.template != "plain" else None) or tokenizer.eos_token


def opens_think(prompt: str) -> bool:
    """Does the rendered prompt end inside an opened think block?"""
    return prompt.rstrip().endswith("<think>")


def to_examples(records: list[dict], tokenizer, cfg: PromptConfig) -> list[Example]:
    """Records -> examples; the SFT target continues the prompt (so a think prefix is not repeated) and ends
    with the end of the turn (`turn_end`)."""
    examples, end = [], turn_end(tokenizer, cfg)
    for r in records:
        completion = None
        if r.get("solution"):
            completion = r["solution"]
            if cfg.think_prefix and completion.startswith(THINK_PREFIX):
                completion = completion[len(THINK_PREFIX):]
            completion += end
        examples.append(Example(render_prompt(r["problem"], tokenizer, cfg), r["answer"], completion, r["problem"],
                                r.get("verifier", ""), r.get("row")))
    return examples
