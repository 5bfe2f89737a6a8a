"""How the GRPO learner updates: completions -> padded tensors -> mu optimizer passes of the policy loss.

Layout. Each completion becomes one row `prompt_ids + completion_ids`, right-padded to the batch's longest row.
Position t of the (N, L-1) "target" tensors holds the token at t+1 and what the model said about it at t:
`mask` is 1 on completion tokens (the stop token included; 0 on tool output, grpo/rollout/tools.py), `engine_logprobs` holds the engine's sampling
logprobs there. Rows are sorted by length before they are cut into micro-batches (`plan`: at most
`grpo.micro_batch_size` rows and, with `grpo.max_tokens_per_micro_batch`, at most that many padded tokens, so
short completions share a micro-batch and long ones do not blow the memory), so little padding is computed; the
loss is normalised by the whole optimizer step (`StepSize`), so the cut does not change the update
(tests/test_learner.py checks it).

Packing (`grpo.pack`, grpo/learner/packing.py): the model instead runs on packed rows, several completions to a
row, each attending only to itself (restarting position ids), and its logprobs are gathered back into the padded
target layout of the micro-batch's completions (`unpack`), where the loss, its masks and normalisation are as
above. A probe at each update refuses a model whose attention crosses packed sequences.

Logprobs (grpo/learner/logprobs.py): the full logits of a micro-batch at once, or with
`grpo.logprob_chunk_tokens` > 0 the output head applied a chunk of positions at a time under activation
checkpointing, so the (n, L, V) logits never exist whole (the large-vocabulary memory knob; exact gradient).

Zero advantages (`grpo.skip_zero_advantage`, on by default): a completion whose advantage is 0 (its group's rewards
all equal) or that is out of the loss adds exactly nothing to the gradient when nothing but the policy loss acts
on it (kl_coef 0), so the learner does not run it (`informative`); the step's normalisation still counts it, so
the update is the one of the whole batch (tests/test_learner.py checks it). The statistics of the pass (entropy,
logprob gap, clip fraction) are then those of the completions that train, and a NaN in a skipped completion's
logprobs no longer skips the step. When nothing is left, every trainable parameter gets a zero gradient, so AdamW
still takes its momentum step (a parameter the forward never uses would get one too, where the full batch left it
without a gradient).

Old logprobs: with mu = 1 and no importance-sampling correction the learner's own detached logprobs are the
old ones (ratio 1, one forward saved); otherwise they are computed once, without gradient, before the first
pass. The reference model (only when kl_coef > 0) is the frozen model the stage started from.

Several processes (`accelerate launch`: DDP, tested on CPU; FSDP, GPUs only and not yet run): every rank gets
the whole rollout batch, takes its share (rows sorted by length, dealt round-robin) and cuts it into as many
micro-batches as the largest share needs, so every rank runs the same number (which FSDP and ZeRO-3 need); it
normalises its loss by the *global* `StepSize`. The loss is multiplied by the number of processes before
backward because DDP averages gradients over ranks, so the summed gradient equals the one-process gradient of the
whole batch (tests/test_distributed.py checks it).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from grpo.algo.loss import StepSize, policy_loss
from grpo.config import GRPOConfig, RolloutConfig
from grpo.learner.logprobs import token_logprobs
from grpo.learner.packing import check_confined, packed_inputs, packed_plan
from grpo.model import device_of


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # (n, L) right-padded prompt + completion; packed: (rows, width)
    attention_mask: torch.Tensor | None  # (n, L); packed: None (position_ids say where each sequence starts)
    mask: torch.Tensor  # (n, L-1) 1 on completion targets that enter the loss
    engine_logprobs: torch.Tensor  # (n, L-1) sampling logprobs on completion targets, 0 elsewhere
    advantages: torch.Tensor  # (n,)
    old_logprobs: torch.Tensor | None = None  # (n, L-1), set before the first pass when needed
    ref_logprobs: torch.Tensor | None = None  # (n, L-1), set when kl_coef > 0
    position_ids: torch.Tensor | None = None  # packed: (rows, width), restarting at each sequence
    unpack: torch.Tensor | None = None  # packed: (n, L-1) indices of the padded targets in the packed (rows, width-1)


@dataclass(frozen=True)
class UpdateSettings:
    """`update`'s settings for a run: the GRPO section's, plus the sampling temperature (the learner scores with the
    distribution the engine sampled from) and the generation budget (Dr. GRPO's constant)."""

    mu: int
    micro_batch_size: int
    pad_id: int
    temperature: float
    max_new_tokens: int
    max_grad_norm: float
    loss_kwargs: dict
    logprob_chunk_tokens: int = 0
    max_tokens_per_micro_batch: int = 0
    pack: bool = False
    skip_zero_advantage: bool = False

    @classmethod
    def of(cls, cfg: GRPOConfig, rollout: RolloutConfig, pad_id: int) -> UpdateSettings:
        loss_kwargs = dict(clip_low=cfg.clip_low, clip_high=cfg.clip_high, level=cfg.ratio_level,
                           aggregation=cfg.loss_aggregation, kl_coef=cfg.kl_coef, is_cap=cfg.is_cap or None,
                           is_mask=cfg.is_mask, is_band=tuple(cfg.is_band))
        return cls(mu=cfg.mu, micro_batch_size=cfg.micro_batch_size, pad_id=pad_id,
                   temperature=rollout.temperature or 1.0, max_new_tokens=rollout.max_new_tokens,
                   max_grad_norm=cfg.max_grad_norm, loss_kwargs=loss_kwargs,
                   logprob_chunk_tokens=cfg.logprob_chunk_tokens,
                   max_tokens_per_micro_batch=cfg.max_tokens_per_micro_batch, pack=cfg.pack,
                   skip_zero_advantage=cfg.skip_zero_advantage)


@dataclass(frozen=True)
class Sample:
    """One completion as the learner needs it."""

    prompt_ids: list[int]
    token_ids: list[int]
    engine_logprobs: list[float]
    advantage: float
    in_loss: bool  # False: masked out (a truncated completion under reward.mask_truncated)
    loss_mask: list[int] | None = None  # per token: 0 on tool output (never in the loss, KL or entropy); None: all 1

    def in_loss_tokens(self) -> int:
        """How many of its tokens enter the loss."""
        if not self.in_loss:
            return 0
        return len(self.token_ids) if self.loss_mask is None else sum(self.loss_mask)


def plan(samples: list[Sample], size: int, max_tokens: int = 0, count: int = 0) -> list[list[int]]:
    """Which samples go in which micro-batch: indices sorted by length (prompt + completion), cut into groups of at
    most `size` rows and, with `max_tokens`, at most that many padded tokens (rows x the group's longest row; a
    row longer than the budget goes alone); then, while there are fewer than `count` groups, the group with the
    most rows is halved (so every process can run the same number of micro-batches)."""
    order = sorted(range(len(samples)), key=lambda i: len(samples[i].prompt_ids) + len(samples[i].token_ids))
    groups: list[list[int]] = []
    for i in order:
        width = len(samples[i].prompt_ids) + len(samples[i].token_ids)  # the longest so far: rows are sorted
        if groups and len(groups[-1]) < size and (not max_tokens or (len(groups[-1]) + 1) * width <= max_tokens):
            groups[-1].append(i)
        else:
            groups.append([i])
    while len(groups) < count and max(len(g) for g in groups) > 1:
        k = max(range(len(groups)), key=lambda j: len(groups[j]))
        half = len(groups[k]) // 2
        groups[k:k + 1] = [groups[k][:half], groups[k][half:]]
    return groups


def micro_batches(samples: list[Sample], size: int, pad_id: int, device: torch.device | str = "cpu", *,
                  max_tokens: int = 0, count: int = 0, pack: bool = False) -> list[MicroBatch]:
    """The micro-batches of `plan` (see the module docstring for the layout), on `device`; with `pack`, the packed
    micro-batches of grpo/learner/packing.py instead (`size` rows each, or fewer under `max_tokens`)."""
    if not pack:
        return [_micro_batch([samples[i] for i in group], pad_id, device)
                for group in plan(samples, size, max_tokens, count)]
    lengths = [len(s.prompt_ids) + len(s.token_ids) for s in samples]
    out = []
    for rows in packed_plan(lengths, size, max_tokens, count):
        chosen = [samples[i] for row in rows for i in row]
        width = max(sum(lengths[i] for i in row) for row in rows)
        ids, positions, unpack = packed_inputs(rows, [s.prompt_ids + s.token_ids for s in chosen], width, pad_id)
        mb = _micro_batch(chosen, pad_id, device)
        mb.input_ids, mb.attention_mask = ids.to(device), None
        mb.position_ids, mb.unpack = positions.to(device), unpack.to(device)
        out.append(mb)
    return out


def _micro_batch(rows: list[Sample], pad_id: int, device) -> MicroBatch:
    """`rows` right-padded to the longest (the padded layout of the module docstring)."""
    width = max(len(s.prompt_ids) + len(s.token_ids) for s in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width - 1))
    engine = torch.zeros((n, width - 1))
    for r, s in enumerate(rows):
        p, c = len(s.prompt_ids), len(s.token_ids)
        input_ids[r, : p + c] = torch.tensor(s.prompt_ids + s.token_ids, dtype=torch.long)
        attention[r, : p + c] = 1
        if s.in_loss:  # target t+1 = completion token; predicted at position t
            mask[r, p - 1 : p - 1 + c] = 1.0 if s.loss_mask is None else torch.tensor(s.loss_mask, dtype=mask.dtype)
        engine[r, p - 1 : p - 1 + c] = torch.tensor(s.engine_logprobs)
    tensors = (input_ids, attention, mask, engine, torch.tensor([s.advantage for s in rows]))
    return MicroBatch(*(t.to(device) for t in tensors))


def scores(model, mb: MicroBatch, temperature: float, chunk_tokens: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(logprobs, entropy) of `mb`'s targets in the padded (n, L-1) layout, from its padded or packed rows (with
    chunked logprobs: at the positions in the loss only, 0 elsewhere)."""
    needed = mb.mask > 0
    if mb.unpack is not None:  # the same positions in the packed layout
        rows, width = mb.input_ids.shape
        packed = torch.zeros(rows * (width - 1), dtype=torch.bool, device=needed.device)
        packed[mb.unpack[needed]] = True
        needed = packed.view(rows, width - 1)
    logprobs, entropy = token_logprobs(model, mb.input_ids, mb.attention_mask, temperature, chunk_tokens,
                                       position_ids=mb.position_ids, needed=needed)
    if mb.unpack is None:
        return logprobs, entropy
    return logprobs.reshape(-1)[mb.unpack], entropy.reshape(-1)[mb.unpack]


@torch.no_grad()
def fill_fixed_logprobs(model, ref_model, batches: list[MicroBatch], *, need_old: bool, temperature: float,
                        chunk_tokens: int = 0) -> None:
    """Old logprobs (before any update) and reference logprobs, without gradient."""
    for mb in batches:
        if need_old:
            mb.old_logprobs = scores(model, mb, temperature, chunk_tokens)[0]
        if ref_model is not None:
            mb.ref_logprobs = scores(ref_model, mb, temperature, chunk_tokens)[0]


def step_size(samples: list[Sample], max_new_tokens: int) -> StepSize:
    """The StepSize of the whole rollout batch (the tokens and sequences its micro-batches' masks hold), which
    every rank normalises by."""
    lengths = [s.in_loss_tokens() for s in samples if s.in_loss]
    return StepSize(tokens=sum(lengths), sequences=sum(n > 0 for n in lengths), max_completion_length=max_new_tokens)


def informative(samples: list[Sample], world: int = 1) -> list[Sample]:
    """The completions that can move the weights when the policy loss is all that acts on them: a non-zero
    advantage and tokens in the loss (with advantage 0 every term of the policy loss and of its gradient is 0).
    With `world` processes, topped up with the shortest of the others to a multiple of `world`, so every rank gets
    an equal share (none informative: none on every rank). In the batch's order."""
    keep = [s.advantage != 0 and s.in_loss_tokens() > 0 for s in samples]
    missing = -sum(keep) % world
    if missing:
        rest = sorted((i for i, k in enumerate(keep) if not k),
                      key=lambda i: (len(samples[i].prompt_ids) + len(samples[i].token_ids), i))
        for i in rest[:missing]:
            keep[i] = True
    return [s for s, k in zip(samples, keep) if k]


def filled(samples: list[Sample], world: int) -> list[Sample]:
    """`samples` and, when their count does not split over `world` processes (a group dropped for a failed reward,
    dynamic sampling that ran out of rounds), copies of the shortest one left out of the loss (advantage 0, no
    token in the loss, KL or statistics) until it does: they change no gradient and no normaliser."""
    missing = -len(samples) % world
    if not missing or not samples:
        return samples
    shortest = min(samples, key=lambda s: len(s.prompt_ids) + len(s.token_ids))
    filler = dataclasses.replace(shortest, advantage=0.0, in_loss=False)
    return samples + [filler] * missing


def share(samples: list[Sample], rank: int, world: int) -> list[Sample]:
    """This rank's completions: sorted by length and dealt round-robin (equal counts, similar lengths)."""
    if len(samples) % world:
        raise ValueError(f"{len(samples)} completions do not split over {world} processes: a multiple of the "
                         "number of processes is needed (`update` fills the batch up to one with `filled`)")
    order = sorted(range(len(samples)), key=lambda i: (len(samples[i].prompt_ids) + len(samples[i].token_ids), i))
    return [samples[i] for i in order[rank::world]]


def optimizer_pass(model, optimizer, batches: list[MicroBatch], size: StepSize, *, temperature: float,
                   max_grad_norm: float, loss_kwargs: dict, accelerator=None, chunk_tokens: int = 0) -> dict:
    """One optimizer step over every micro-batch of the rollout batch; detached statistics (this rank's sums).
    A non-finite loss or gradient norm skips the step (no parameter changes; `skipped` is 1)."""
    totals = {"loss": 0.0, "clipped_tokens": 0.0, "kl_sum": 0.0, "ratio_sum": 0.0, "tokens": 0.0,
              "entropy_sum": 0.0, "gap_sum": 0.0, "gap_max": 0.0, "is_sum": 0.0, "is_max": 0.0, "is_capped": 0.0,
              "is_masked": 0.0}
    world = accelerator.num_processes if accelerator is not None else 1
    model.train()
    for i, mb in enumerate(batches):
        logprobs, entropy = scores(model, mb, temperature, chunk_tokens)
        old = mb.old_logprobs if mb.old_logprobs is not None else logprobs.detach()
        loss, stats = policy_loss(logprobs, old, mb.advantages, mb.mask, size, ref_logprobs=mb.ref_logprobs,
                                  engine_logprobs=mb.engine_logprobs, **loss_kwargs)
        if size.tokens:
            if accelerator is None:
                loss.backward()
            else:  # DDP averages over ranks: scale back to the sum; reduce gradients once, after the last one
                last = i == len(batches) - 1
                with contextlib.nullcontext() if last else accelerator.no_sync(model):
                    accelerator.backward(loss * world)
        totals["loss"] += loss.item() if torch.is_tensor(loss) else float(loss)
        for key in ("clipped_tokens", "kl_sum", "ratio_sum", "tokens", "is_sum", "is_capped", "is_masked"):
            totals[key] += stats[key]
        totals["is_max"] = max(totals["is_max"], stats["is_max"])
        totals["entropy_sum"] += float((entropy * mb.mask).sum())
        gap = (old - mb.engine_logprobs).abs() * mb.mask
        totals["gap_sum"] += float(gap.sum())
        totals["gap_max"] = max(totals["gap_max"], float(gap.max()) if gap.numel() else 0.0)
    if not batches and size.tokens:  # every completion skipped (zero advantages): the step of zero gradients
        for p in model.parameters():
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)
    if accelerator is None:
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    else:
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    loss_total = torch.tensor(totals["loss"], device=accelerator.device if accelerator is not None else "cpu")
    if world > 1:  # every rank takes the same decision
        loss_total = accelerator.reduce(loss_total, "sum")
    finite = bool(torch.isfinite(loss_total)) and bool(torch.isfinite(torch.as_tensor(grad_norm)))
    if size.tokens and finite:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    totals["grad_norm"] = float(grad_norm)
    totals["skipped"] = float(not finite)
    return totals


def _reduced(passes: list[dict], accelerator) -> list[dict]:
    """Every rank's statistics summed (gap_max, is_max: the largest); unchanged in one process."""
    if accelerator is None or accelerator.num_processes == 1:
        return passes
    keys = ["loss", "clipped_tokens", "kl_sum", "ratio_sum", "tokens", "entropy_sum", "gap_sum", "is_sum",
            "is_capped", "is_masked"]
    out = []
    for p in passes:
        sums = accelerator.reduce(torch.tensor([p[k] for k in keys], dtype=torch.float64, device=accelerator.device),
                                  "sum")  # on the backend's device (NCCL: the GPU)
        maxima = accelerator.gather(torch.tensor([[p["gap_max"], p["is_max"]]], dtype=torch.float64,
                                                 device=accelerator.device)).max(0).values
        out.append({**p, **dict(zip(keys, sums.tolist())), "gap_max": float(maxima[0]), "is_max": float(maxima[1])})
    return out


def update(model, optimizer, ref_model, samples: list[Sample], *, mu: int, micro_batch_size: int, pad_id: int,
           temperature: float, max_new_tokens: int, max_grad_norm: float, loss_kwargs: dict,
           accelerator=None, logprob_chunk_tokens: int = 0, max_tokens_per_micro_batch: int = 0,
           pack: bool = False, skip_zero_advantage: bool = False) -> dict:
    """mu optimizer passes over `samples` (the whole rollout batch; with an `accelerator` of several
    processes, this rank trains on its share); metrics averaged over the passes (the logprob gap and entropy are
    those of the first pass, before any update; so are the engine/learner ratio's `is/*`).
    `optim/skipped_nonfinite`: passes skipped for a NaN/inf.
    `pack`: padding-free packed rows (grpo/learner/packing.py). `skip_zero_advantage`: only the `informative`
    completions are run (unless kl_coef > 0: a KL term gives every completion a gradient);
    `optim/zero_advantage_skipped` is the share of the batch skipped; `perf/learner_tokens` the tokens (prompt +
    completion) run through forward and backward, over every process and pass."""
    size = step_size(samples, max_new_tokens)  # the whole batch's, skipped completions included
    if pack:
        check_confined(model, samples[0].prompt_ids[:4], samples[-1].prompt_ids[:3] + samples[-1].token_ids[:3])
    world = accelerator.num_processes if accelerator is not None else 1
    whole = len(samples)
    if skip_zero_advantage and not loss_kwargs.get("kl_coef"):  # a KL term gives every completion a gradient
        samples = informative(samples, world)
    skipped = 1 - len(samples) / whole if whole else 0.0

    def planned(share_: list[Sample]) -> int:
        if pack:
            lengths = [len(s.prompt_ids) + len(s.token_ids) for s in share_]
            return len(packed_plan(lengths, micro_batch_size, max_tokens_per_micro_batch))
        return len(plan(share_, micro_batch_size, max_tokens_per_micro_batch))

    count = 0
    if world > 1 and samples:
        samples = filled(samples, world)  # a step with groups dropped may not split evenly
        # every process plans every share (each holds the whole batch): all run the largest count of micro-batches
        count = max(planned(share(samples, r, world)) for r in range(world))
    run_tokens = mu * sum(len(s.prompt_ids) + len(s.token_ids) for s in samples)  # every rank's, before the share
    if world > 1 and samples:
        samples = share(samples, accelerator.process_index, world)
    batches = micro_batches(samples, micro_batch_size, pad_id, device=device_of(model),
                            max_tokens=max_tokens_per_micro_batch, count=count, pack=pack) if samples else []
    # one pass (mu = 1): its own detached logprobs are the old ones, the weights being those that scored them; the
    # importance weights (is_cap, is_mask) read those values too, so no forward pass without gradient is run for them
    need_old = mu > 1
    model.train()  # the mode of the passes (LoRA dropout), whatever an evaluation left it in
    fill_fixed_logprobs(model, ref_model, batches, need_old=need_old, temperature=temperature,
                        chunk_tokens=logprob_chunk_tokens)
    passes = [optimizer_pass(model, optimizer, batches, size, temperature=temperature, max_grad_norm=max_grad_norm,
                             loss_kwargs=loss_kwargs, accelerator=accelerator, chunk_tokens=logprob_chunk_tokens)
              for _ in range(mu)]
    passes = _reduced(passes, accelerator)
    tokens = passes[0]["tokens"]
    mean = lambda key: sum(p[key] for p in passes) / len(passes)  # noqa: E731
    stats = {"loss/policy": mean("loss"), "optim/grad_norm": mean("grad_norm"),
             "optim/skipped_nonfinite": sum(p["skipped"] for p in passes), "loss/tokens": size.tokens,
             "optim/zero_advantage_skipped": skipped, "perf/learner_tokens": run_tokens}
    if not tokens:  # no completion token was run (all skipped or out of the loss): nothing was measured
        return stats
    return {**stats, "loss/clip_frac": mean("clipped_tokens") / tokens, "loss/kl": mean("kl_sum") / tokens,
            "loss/ratio_mean": mean("ratio_sum") / tokens, "policy/entropy": passes[0]["entropy_sum"] / tokens,
            "rollout/logprob_gap": passes[0]["gap_sum"] / tokens, "rollout/logprob_gap_max": passes[0]["gap_max"],
            "is/weight_mean": passes[0]["is_sum"] / tokens, "is/weight_max": passes[0]["is_max"],
            "is/capped_frac": passes[0]["is_capped"] / tokens, "is/masked_frac": passes[0]["is_masked"] / tokens}
