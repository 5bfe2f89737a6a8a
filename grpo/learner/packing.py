"""Padding-free packed micro-batches (`grpo.pack: true`): several completions share one row of the learner's
forward pass, each attending only to itself, so no padding is computed inside a row.

    packed_plan(lengths, rows, max_tokens, count) -> micro-batches of packed rows of sequence indices
    packed_inputs(rows, sequences, width, pad_id) -> (input_ids, position_ids, unpack)

Layout. A packed row is `seq_a + seq_b + ... + padding` (each `prompt + completion`), `width` tokens long: the
micro-batch's longest sequence. Sequences are planned longest first, so each micro-batch is what the padded
layout's would be (its longest sequences, one per row, right-padded to the longest) with the short sequences of
the batch moved into those rows' padding: never more rows or positions than padding, and attention costs what a
padded row costs, rows x width^2 (not (rows x width)^2, as one long row would). `position_ids` restart at 0 at every
sequence (and at the row's trailing padding); with no attention mask, transformers turns restarting positions into
attention confined to each sequence (a block-diagonal causal mask through SDPA; flash-attention's variable-length
path where it is installed). `unpack` (n, L-1) maps the usual padded target layout of the micro-batch's n
sequences (grpo/learner/update.py) to the packed (rows, width-1) one: position t of sequence i (at offset o of
row r) is packed position r * (width - 1) + o + t. The learner scores the packed rows, then gathers its logprobs
into the padded layout, where the loss, its masks and its normalisation are unchanged (the gather's gradient is
a scatter-add back). Positions past a sequence's end gather an arbitrary finite value that the mask removes, as
the padded layout's pad positions do.

`check_confined(model, a, b)` runs two short token lists packed and alone and raises when they differ: a model
whose attention does not follow restarting positions (custom modelling code) would otherwise attend across
sequences silently.
"""

from __future__ import annotations

import torch


def packed_plan(lengths: list[int], rows: int, max_tokens: int = 0, count: int = 0) -> list[list[list[int]]]:
    """Micro-batches, each a list of packed rows (lists of indices into `lengths`). Sequences are taken longest first
    (ties by index); a micro-batch is `rows` rows (with `max_tokens`, at most max_tokens // width of them) as wide as
    the longest sequence left, and every sequence left goes into the first of its rows with room (first-fit
    decreasing): the longest ones start rows, the short ones fill the rows' ends; what does not fit waits for the
    next micro-batch. Then, while there are fewer than `count` micro-batches, the one with the most sequences is
    halved (by rows, or a single row by its sequences), so every process can run the same number."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[list[int]]] = []
    while order:
        width = lengths[order[0]]
        most = min(rows, max(max_tokens // width, 1)) if max_tokens else rows
        group: list[list[int]] = []
        room: list[int] = []
        rest = []
        for i in order:
            for r, free in enumerate(room):
                if lengths[i] <= free:
                    group[r].append(i)
                    room[r] -= lengths[i]
                    break
            else:
                if len(group) < most:
                    group.append([i])
                    room.append(width - lengths[i])
                else:
                    rest.append(i)
        groups.append(group)
        order = rest
    while len(groups) < count:
        k = max(range(len(groups)), key=lambda j: sum(len(r) for r in groups[j]))
        group = groups[k]
        if len(group) > 1:
            half = len(group) // 2
            groups[k : k + 1] = [group[:half], group[half:]]
        elif len(group[0]) > 1:
            half = len(group[0]) // 2
            groups[k : k + 1] = [[group[0][:half]], [group[0][half:]]]
        else:
            break  # one sequence per micro-batch already: no more splits (count <= sequences, so never reached)
    return groups


def packed_inputs(rows: list[list[list[int]]] | list[list[int]], sequences: list[list[int]], width: int,
                  pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, position_ids) of shape (len(rows), width) and `unpack` (n, L-1) for the micro-batch's n
    sequences in row order (`sequences[j]`: the token ids of the j-th sequence of the flattened rows; L: the
    longest of them). See the module docstring."""
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    longest = max(len(s) for s in sequences)
    unpack = torch.zeros((len(sequences), max(longest - 1, 0)), dtype=torch.long)
    j = 0
    for r, row in enumerate(rows):
        offset = 0
        for _ in row:
            ids = sequences[j]
            n = len(ids)
            input_ids[r, offset : offset + n] = torch.tensor(ids, dtype=torch.long)
            position_ids[r, offset : offset + n] = torch.arange(n)
            unpack[j, : n - 1] = r * (width - 1) + offset + torch.arange(n - 1)
            offset += n
            j += 1
        position_ids[r, offset:] = torch.arange(width - offset)  # trailing padding: a segment of its own
    return input_ids, position_ids, unpack


@torch.no_grad()
def check_confined(model, a: list[int], b: list[int]) -> None:
    """Raise when `model` does not confine attention to each packed sequence: `a + b` packed with restarting
    positions must give `b` the logits `b` alone gets."""
    inner = getattr(model, "module", model)  # DDP: no hooks for a probe
    was_training = inner.training
    device = next(inner.parameters()).device
    inner.eval()
    try:
        alone = inner(input_ids=torch.tensor([b], device=device), use_cache=False).logits[0].float()
        positions = torch.cat([torch.arange(len(a)), torch.arange(len(b))]).unsqueeze(0).to(device)
        packed = inner(input_ids=torch.tensor([a + b], device=device), position_ids=positions,
                       use_cache=False).logits[0, len(a):].float()
    finally:
        inner.train(was_training)
    scale = alone.abs().max().clamp(min=1.0)
    if not torch.allclose(packed, alone, rtol=0, atol=float(0.02 * scale)):
        raise ValueError(f"grpo.pack: {type(inner).__name__} attends across packed sequences (the logits of a "
                         f"sequence packed after another differ from its own by "
                         f"{float((packed - alone).abs().max()):.3g}); its attention does not follow restarting "
                         "position ids. Set grpo.pack: false")
