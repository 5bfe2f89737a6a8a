"""Per-token logprobs of the sampled tokens under the learner (and its distribution's entropy), two ways.

    token_logprobs(model, input_ids, attention_mask, temperature, chunk_tokens=0) -> (logprobs, entropy)

Both give, at every position t of the (n, L-1) target layout, log pi(token_{t+1} | prefix) of the
temperature-scaled distribution and that distribution's entropy (detached).

- full (`chunk_tokens` 0, or a model whose output head is not a plain linear layer): the model's logits,
  (n, L, V) at once, gathered as logit - logsumexp. Memory grows with n x L x V: with Qwen2.5's 151,936-token
  vocabulary one 64 x 1,024 micro-batch is 40 GB of fp32 logits, plus as much again kept for the backward pass.
- chunked: the model's final hidden states (n, L, H) go through the output head `chunk_tokens` positions at a
  time; each chunk runs under activation checkpointing, so its logits exist in the forward pass and again,
  recomputed, in the backward pass, and never for the whole batch. Peak memory grows with chunk_tokens x V. The
  gradient is exact (the same operations, in the same precision); the price is one more head matmul per chunk in
  the backward pass. The model still runs its own forward (through its wrappers: DDP, PEFT), asked for its
  hidden states and the logits of one position only (`logits_to_keep=1`). The learner passes `needed`, the
  completion positions in the loss, so the head skips prompt and padding positions (prompts are often most of a
  row: a 1,000-token problem statement and a 200-token answer).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


def output_head(model) -> torch.nn.Linear | None:
    """The model's output head when it is a plain linear layer applied to the final hidden states with nothing
    after it (no logit soft-capping or scaling); None otherwise (the full path is used)."""
    inner = getattr(model, "module", model)  # DDP
    get = getattr(inner, "get_output_embeddings", None)
    head = get() if callable(get) else None
    config = getattr(inner, "config", None)
    if type(head) is not torch.nn.Linear or any(getattr(config, k, None) for k in ("final_logit_softcapping",
                                                                                    "logit_scale")):
        return None
    return head


def token_logprobs(model, input_ids, attention_mask, temperature: float, chunk_tokens: int = 0, *,
                   position_ids=None, needed=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(logprobs, entropy), each (n, L-1); see the module docstring. `position_ids` (with no attention mask):
    packed rows (grpo/learner/packing.py). `needed` (n, L-1) bool, chunked path only: the head runs on those
    positions alone (the completion tokens in the loss; prompts and padding are skipped), the others hold 0."""
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
    if position_ids is not None:
        inputs.update(position_ids=position_ids, use_cache=False)  # no cache: transformers then reads the packing
    head = output_head(model) if chunk_tokens > 0 else None
    if head is None:
        return _full(model, inputs, temperature)
    out = model(**inputs, output_hidden_states=True, logits_to_keep=1)
    hidden = out.hidden_states[-1][:, :-1]  # (n, L-1, H): after the final norm
    n, width, size = hidden.shape
    flat, targets = hidden.reshape(-1, size), input_ids[:, 1:].reshape(-1)  # (n*(L-1), H), (n*(L-1),)
    keep = needed.reshape(-1).nonzero().squeeze(1) if needed is not None else None
    if keep is not None:
        flat, targets = flat[keep], targets[keep]
    starts = range(0, flat.shape[0], chunk_tokens) or [0]  # no position needed: one empty chunk keeps the graph
    parts = [_chunk(flat[s : s + chunk_tokens], targets[s : s + chunk_tokens], head.weight, head.bias, temperature)
             for s in starts]  # (a micro-batch of completions left out of the loss still backpropagates, zeros)
    logprobs = torch.cat([p[0] for p in parts])
    entropy = torch.cat([p[1] for p in parts])
    if keep is not None:  # back to every position, 0 where the head did not run
        logprobs = logprobs.new_zeros(n * width, dtype=logprobs.dtype).index_put((keep,), logprobs)
        entropy = entropy.new_zeros(n * width).index_put((keep,), entropy)
    return logprobs.view(n, width), entropy.view(n, width)


def _full(model, inputs: dict, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(**inputs).logits[:, :-1].float()  # (n, L-1, V)
    return _scored(logits, inputs["input_ids"][:, 1:], temperature)


def _scored(logits, targets, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Logprobs of `targets` and the (detached) entropy, from logits (..., V), without a second (..., V) tensor
    kept for the backward pass."""
    if temperature > 0:
        logits = logits / temperature
    lse = torch.logsumexp(logits, dim=-1)
    logprobs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - lse
    with torch.no_grad():
        entropy = lse - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    return logprobs, entropy


def _head_scored(hidden, targets, weight, bias, temperature: float):
    logits = torch.nn.functional.linear(hidden, weight, bias).float()  # (chunk, V): the only logits that exist
    return _scored(logits, targets, temperature)


def _chunk(hidden, targets, weight, bias, temperature: float):
    if not torch.is_grad_enabled():
        return _head_scored(hidden, targets, weight, bias, temperature)
    return checkpoint(_head_scored, hidden, targets, weight, bias, temperature, use_reentrant=False)
