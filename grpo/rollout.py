"""Rollout engines: G sampled completions per prompt, with the token ids and per-token sampling logprobs.

The protocol (DESIGN.md) every engine follows:

    engine.generate(prompts, n, sampling, seed=...) -> list[Group]   # one group of n completions per prompt
    engine.load_weights(named_tensors)                               # after each learner update
    engine.close()

`HFEngine` samples with a transformers model: left-padded prefill, then one token per step with a KV cache,
temperature / top-k / top-p, stopping at the end-of-turn token(s) or `max_new_tokens`. The logprob of a
sampled token is taken from the *processed* distribution it was drawn from (after temperature, top-k and
top-p): exactly the sampling probability, which is what importance sampling needs. With top-k or top-p the
learner (which applies the temperature only) sees a slightly different distribution; the gap is logged as
`rollout/logprob_gap`. Seeded: the same seed, prompts and weights give the same completions.
`grpo.vllm_engine.VLLMEngine` implements the same protocol with vLLM; `make_engine` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

import torch

from grpo.model import device_of


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0  # nucleus mass kept (1: off)
    top_k: int = 0  # most likely tokens kept (0: off)
    max_new_tokens: int = 256


@dataclass
class Completion:
    token_ids: list[int]  # sampled tokens, the stop token included when finish_reason is "stop"
    text: str  # decoded without special tokens (end of turn, padding)
    logprobs: list[float]  # per token, from the processed sampling distribution
    finish_reason: str  # "stop" (end-of-turn token) or "length" (max_new_tokens reached)


@dataclass
class Group:
    prompt: str
    prompt_ids: list[int]
    completions: list[Completion] = field(default_factory=list)


class RolloutEngine(Protocol):
    def generate(self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int) -> list[Group]: ...

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None: ...

    def close(self) -> None: ...


def processed_logprobs(logits: torch.Tensor, sampling: SamplingParams) -> torch.Tensor:
    """(N, V) next-token logits -> (N, V) log-probabilities of the distribution sampled from: divided by the
    temperature, then the top-k filter, then the top-p (nucleus) filter; filtered tokens get -inf. Greedy
    (temperature 0) keeps the raw distribution (its argmax is taken)."""
    logits = logits.float()
    if sampling.temperature > 0:
        logits = logits / sampling.temperature
    if sampling.top_k > 0 and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(-1) - probs  # probability of the tokens ranked above this one
        drop_sorted = mass_before >= sampling.top_p  # the first token is always kept (mass_before = 0)
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


def stop_token_ids(model, tokenizer) -> set[int]:
    """End-of-turn tokens: the tokenizer's EOS and every EOS id in the model's generation config."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if not ids:
        raise ValueError("the tokenizer has no eos_token and the model's generation config names none")
    return ids


class HFEngine:
    """Sampling with a transformers causal LM. It holds the learner's own model object, so `load_weights`
    has nothing to copy (it checks the names); a separate copy is loaded when `model` is another module."""

    def __init__(self, model, tokenizer, *, batch_size: int = 256):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.stop_ids)

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int) -> list[Group]:
        groups = [Group(p, self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        rows = [g.prompt_ids for g in groups for _ in range(n)]  # prompt-major: group i is rows i*n .. i*n+n-1
        generator = torch.Generator(device=device_of(self.model)).manual_seed(seed)
        completions: list[Completion] = []
        for start in range(0, len(rows), self.batch_size):
            completions.extend(self._sample(rows[start : start + self.batch_size], sampling, generator))
        for i, g in enumerate(groups):
            g.completions = completions[i * n : (i + 1) * n]
        return groups

    @torch.no_grad()
    def _sample(self, prompt_ids: list[list[int]], sampling: SamplingParams, generator) -> list[Completion]:
        model, n = self.model, len(prompt_ids)
        was_training = model.training
        model.eval()
        device = generator.device  # the model's
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)  # (N, P) left-padded
        attention = torch.zeros((n, width), dtype=torch.long)
        for row, ids in enumerate(prompt_ids):
            input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids):] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)  # (N, P): 0 at each prompt's first real token
        stop = torch.tensor(sorted(self.stop_ids), device=device)
        tokens = torch.full((n, sampling.max_new_tokens), self.pad_id, dtype=torch.long, device=device)  # (N, T)
        logprobs = torch.zeros((n, sampling.max_new_tokens), device=device)
        lengths = torch.full((n,), sampling.max_new_tokens, dtype=torch.long, device=device)  # set at a stop
        done = torch.zeros(n, dtype=torch.bool, device=device)
        cache = None
        step_ids, step_positions = input_ids, positions
        for t in range(sampling.max_new_tokens):
            out = model(input_ids=step_ids, attention_mask=attention, position_ids=step_positions,
                        past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logp = processed_logprobs(out.logits[:, -1], sampling)  # (N, V)
            if sampling.temperature > 0:
                sampled = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)  # (N,)
            else:
                sampled = logp.argmax(-1)
            sampled = torch.where(done, torch.full_like(sampled, self.pad_id), sampled)
            tokens[:, t] = sampled
            logprobs[:, t] = logp.gather(-1, sampled.unsqueeze(-1)).squeeze(-1).masked_fill(done, 0.0)
            stopped = ~done & torch.isin(sampled, stop)
            lengths[stopped] = t + 1
            done |= stopped
            if bool(done.all()):
                break
            step_ids = sampled.unsqueeze(-1)  # (N, 1)
            step_positions = step_positions[:, -1:] + 1
            attention = torch.cat([attention, attention.new_ones(n, 1)], dim=-1)
        model.train(was_training)
        result = []
        for row in range(n):
            length = int(lengths[row])
            ids = tokens[row, :length].tolist()
            finished = bool(done[row])
            result.append(Completion(ids, self.tokenizer.decode(ids, skip_special_tokens=True),
                                     logprobs[row, :length].tolist(), "stop" if finished else "length"))
        return result

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        own = self.model.state_dict(keep_vars=True)  # parameters by every name, tied ones included
        for name, tensor in named_tensors:
            if name not in own:
                raise KeyError(f"engine model has no parameter {name!r}")
            if own[name] is not tensor:
                own[name].data.copy_(tensor)

    def close(self) -> None:
        self.model = None


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


def make_engine(rollout, model, tokenizer) -> RolloutEngine:
    """The engine `rollout.engine` names (a `RolloutConfig`): hf, vllm, server (grpo/remote.py), or auto (vLLM when
    it imports)."""
    if rollout.engine not in ("auto", "hf", "vllm", "server"):
        raise ValueError(f"rollout.engine {rollout.engine!r}: must be auto, hf, vllm or server")
    if rollout.engine == "server":
        from grpo.remote import ServerEngine

        return ServerEngine(rollout.server_url, model, tokenizer, timeout_s=rollout.server_timeout_s)
    if rollout.engine == "hf":
        return HFEngine(model, tokenizer, batch_size=rollout.batch_size)
    from grpo import vllm_engine

    if rollout.engine == "auto" and not vllm_engine.available():
        return HFEngine(model, tokenizer, batch_size=rollout.batch_size)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    settings = vllm_engine.EngineSettings(
        dtype=dtype, max_model_len=rollout.max_model_len or model.config.max_position_embeddings,
        cpu_kv_cache_gib=rollout.vllm_cpu_kv_cache_gib, gpu_memory_utilization=rollout.vllm_gpu_memory_utilization,
        sleep=rollout.vllm_sleep, enforce_eager=rollout.vllm_enforce_eager,
        tensor_parallel_size=rollout.vllm_tensor_parallel_size)
    return vllm_engine.acquire(model, tokenizer, settings)
