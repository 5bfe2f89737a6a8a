"""The rollout protocol every engine follows, its records, and the rules they share.

    engine.generate(prompts, n, sampling, seed=...) -> list[Group]   # one group of n completions per prompt
    engine.load_weights(named_tensors)                               # after each learner update
    engine.close()

A completion carries its token ids (the stop token included), its text decoded by the run's tokenizer, the
logprob of each sampled token under the *processed* distribution it was drawn from (after temperature, top-k and
top-p: exactly the sampling probability, which importance sampling needs), and why it ended (`stop`, `length`).
`sample_rows` goes on from token ids, one completion per row, and can stop at a string: the tool loop
(grpo/rollout/tools.py) runs multi-turn rollouts with it on any engine. Engines: the transformers engine
(grpo/rollout/hf.py), vLLM in this process (vllm_engine.py), a vLLM server in another (client.py, server.py);
`grpo/rollout/factory.py` picks one. Every engine failure is an `EngineError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

import torch

from grpo.data.prompts import end_of_turn


class EngineError(RuntimeError):
    """A rollout engine failed or refused (a server that does not answer, a prompt beyond the context, a sync that
    broke off); the message names the engine and what was asked. A run stops with it (exit code 1)."""


class EngineUnavailable(EngineError):
    """The engine cannot start here (vLLM missing or refusing its settings): a setup problem, refused with the reason
    before anything trains (exit code 2)."""


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0  # nucleus mass kept (1: off)
    top_k: int = 0  # most likely tokens kept (0: off)
    max_new_tokens: int = 256


@dataclass
class Completion:
    token_ids: list[int]  # sampled tokens, the stop token included when finish_reason is "stop"
    text: str  # the model's own text, decoded without special tokens (end of turn, padding): what verifiers read
    logprobs: list[float]  # per token, from the processed sampling distribution (0 on tool-output tokens)
    finish_reason: str  # "stop" (end-of-turn token), "length" (max_new_tokens reached), "call" (a stop string:
    #                     only from `sample_rows`, which the tool loop drives)
    mask: list[int] | None = None  # with tools: 1 on the model's tokens, 0 on tool output (None: all the model's)
    turns: list[dict] | None = None  # with tools: [{"role": "model" | "tool", "text", ...}] in order

    @property
    def transcript(self) -> str:
        """What the model saw and wrote, tool output included (its text when no tool ran)."""
        return "".join(t["text"] for t in self.turns) if self.turns else self.text


@dataclass
class Group:
    prompt: str
    prompt_ids: list[int]
    completions: list[Completion] = field(default_factory=list)
    tool_seconds: float = 0.0  # with tools: this group's share of the rollout's wall seconds waiting on calls


class RolloutEngine(Protocol):
    def generate(self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int) -> list[Group]: ...

    def sample_rows(self, rows: list[list[int]], sampling: SamplingParams, *, seed: int, stop: tuple[str, ...] = (),
                    max_new: list[int] | None = None) -> list[Completion]:
        """One completion per row of token ids (a prompt and what followed it), going on from exactly those ids; it
        ends at an end-of-turn token, at `max_new[i]` new tokens (default `sampling.max_new_tokens`), or when its
        new text contains a `stop` string (finish_reason "call"; the tokens up to the one that completed it kept).
        What the tool loop (grpo/rollout/tools.py) is built on."""
        ...

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None: ...

    def close(self) -> None: ...


def stop_token_ids(model, tokenizer) -> set[int]:
    """End-of-turn tokens: the tokenizer's EOS, every EOS id in the model's generation config, and the token the chat
    template ends a turn with (a base model's EOS is often another one: Qwen2.5-Math's <|endoftext|> vs <|im_end|>)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    turn = end_of_turn(tokenizer)
    if turn is not None:
        ids.add(tokenizer.convert_tokens_to_ids(turn))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if not ids:
        raise ValueError("the tokenizer has no eos_token and the model's generation config names none")
    return ids


def context_overflow(prompt_ids: list[list[int]], max_new_tokens: int, context: int, whose: str,
                     prompts: list[str] | None = None) -> str | None:
    """The refusal for the first prompt whose length plus `max_new_tokens` exceeds `context` tokens (`whose`
    context: "the engine's", "the server's"), naming its length and, given `prompts`, its start; None if all fit."""
    for i, ids in enumerate(prompt_ids):
        if len(ids) + max_new_tokens > context:
            shown = f" (prompt: {prompts[i][:60]!r})" if prompts is not None else ""
            return (f"a prompt of {len(ids)} tokens plus max_new_tokens {max_new_tokens} exceeds {whose} context "
                    f"of {context} tokens{shown}")
    return None


def with_tied_head(named_tensors: Iterable[tuple[str, torch.Tensor]], tied: bool):
    """The tensors (detached), plus `lm_head.weight` when the embeddings are tied and only the embedding came (as
    from `named_parameters()`): vLLM's CPU backend keeps a repacked copy of the head that is redone only when the
    head's own name is loaded, so without it a vLLM engine would keep sampling from the old head."""
    seen_head, embedding = False, None
    for name, tensor in named_tensors:
        seen_head |= name == "lm_head.weight"
        if name == "model.embed_tokens.weight":
            embedding = tensor
        yield name, tensor.detach()
    if tied and not seen_head and embedding is not None:
        yield "lm_head.weight", embedding.detach()
