"""The transformers rollout engine: G sampled completions per prompt from a transformers causal LM.

Left-padded prefill, then one token per step with a KV cache, temperature / top-k / top-p, stopping at the
end-of-turn token(s) or `max_new_tokens`. The logprob of a sampled token is taken from the processed distribution
it was drawn from (`processed_logprobs`); with top-k or top-p the learner (which applies the temperature only)
sees a slightly different distribution, and the gap is logged as `rollout/logprob_gap`. Seeded: the same seed,
prompts and weights give the same completions. It holds the learner's own model object, so a weight sync has
nothing to copy.
"""

from __future__ import annotations

from typing import Iterable

import torch

from grpo.model import device_of
from grpo.rollout.types import Completion, Group, SamplingParams, stop_token_ids


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


class HFEngine:
    """Sampling with a transformers causal LM. It holds the learner's own model object, so `load_weights`
    has nothing to copy (it checks the names); a separate copy is loaded when `model` is another module."""

    def __init__(self, model, tokenizer, *, batch_size: int = 256):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.stop_ids)
        self._ends: dict[int, bool] = {}  # token id -> holds a last character of `_stops` (the stop strings)
        self._stops: tuple[str, ...] = ()

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int) -> list[Group]:
        groups = [Group(p, self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        rows = [g.prompt_ids for g in groups for _ in range(n)]  # prompt-major: group i is rows i*n .. i*n+n-1
        completions = self.sample_rows(rows, sampling, seed=seed)
        for i, g in enumerate(groups):
            g.completions = completions[i * n : (i + 1) * n]
        return groups

    def sample_rows(self, rows: list[list[int]], sampling: SamplingParams, *, seed: int, stop: tuple[str, ...] = (),
                    max_new: list[int] | None = None) -> list[Completion]:
        """See the protocol (grpo/rollout/types.py): one completion per row of token ids."""
        if stop != self._stops:
            self._ends, self._stops = {}, stop
        generator = torch.Generator(device=device_of(self.model)).manual_seed(seed)
        limits = max_new if max_new is not None else [sampling.max_new_tokens] * len(rows)
        completions: list[Completion] = []
        for start in range(0, len(rows), self.batch_size):
            end = start + self.batch_size
            completions.extend(self._sample(rows[start:end], sampling, generator, stop, limits[start:end]))
        return completions

    @torch.no_grad()
    def _sample(self, prompt_ids: list[list[int]], sampling: SamplingParams, generator, stop: tuple[str, ...],
                limits: list[int]) -> list[Completion]:
        model, n, budget = self.model, len(prompt_ids), max(limits)
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
        stop_ids = torch.tensor(sorted(self.stop_ids), device=device)
        tokens = torch.full((n, budget), self.pad_id, dtype=torch.long, device=device)  # (N, T)
        logprobs = torch.zeros((n, budget), device=device)
        limit = torch.tensor(limits, dtype=torch.long, device=device)  # (N,) each row's own budget
        lengths = limit.clone()  # set at a stop
        done = torch.zeros(n, dtype=torch.bool, device=device)
        called = [False] * n  # stopped at a stop string
        cache = None
        step_ids, step_positions = input_ids, positions
        for t in range(budget):
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
            stopped = ~done & torch.isin(sampled, stop_ids)
            if stop:
                for row in self._stop_strings(tokens, sampled, stopped | done, t, stop):
                    called[row] = True
                    stopped[row] = True
            lengths[stopped] = t + 1
            done |= stopped | (t + 1 >= limit)
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
            reason = "call" if called[row] else "stop" if ids and ids[-1] in self.stop_ids else "length"
            result.append(Completion(ids, self.tokenizer.decode(ids, skip_special_tokens=True),
                                     logprobs[row, :length].tolist(), reason))
        return result

    def _stop_strings(self, tokens: torch.Tensor, sampled: torch.Tensor, finished: torch.Tensor, t: int,
                      stop: tuple[str, ...]) -> list[int]:
        """The rows whose new text (tokens[:, :t+1]) now contains a stop string: it can only end in the token
        just sampled, so only rows whose token holds a stop string's last character are decoded, and only their
        last few tokens (every token is at least one character)."""
        width = max(len(s) for s in stop)
        hits = []
        for row in (~finished).nonzero().flatten().tolist():
            token = int(sampled[row])
            if token not in self._ends:
                piece = self.tokenizer.decode([token])
                self._ends[token] = any(s[-1] in piece for s in stop)
            if self._ends[token]:
                tail = self.tokenizer.decode(tokens[row, max(0, t + 1 - width) : t + 1].tolist())
                if any(s in tail for s in stop):
                    hits.append(row)
        return hits

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        own = self.model.state_dict(keep_vars=True)  # parameters by every name, tied ones included
        for name, tensor in named_tensors:
            if name not in own:
                raise KeyError(f"engine model has no parameter {name!r}")
            if own[name] is not tensor:
                own[name].data.copy_(tensor)

    def close(self) -> None:
        self.model = None
