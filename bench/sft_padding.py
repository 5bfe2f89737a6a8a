"""Study (work, not speed): how much of an SFT step's computed positions are padding, and what packing would remove.

    python -m bench.sft_padding [--batches 300] [--max-length 4096]

The SFT stage (grpo/stages/sft.py) length-buckets its batches: shuffled, then sorted by length within pools of 50
batches. For each data set below, `--batches` batches of the stage's own stream are laid out four ways, and the share
of computed positions (rows x width) that hold no token is printed:

- random: batches in shuffled order, each padded to its longest row (no bucketing);
- bucketed: the stage's batches, each padded to its longest row (what the stage computes);
- bucketed + packed: the same batches through the GRPO learner's packing plan (grpo/learner/packing.py
  `packed_plan`, first-fit decreasing into rows as wide as the batch's longest sequence);
- random + packed: shuffled batches packed the same way.

Data sets: the cold-start data of configs/tiny.yaml, tiny_gym.yaml and tiny_code.yaml (built here), and MATH's
training problems with their worked solutions (../shared/data/math_train.jsonl or GRPO_EVAL_DATA, when present;
`problem + solution` through the tiny model's character-level tokenizer, sequences over `--max-length` left out as
the stage leaves them out), whose lengths vary the way real reasoning traces do. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

from grpo.learner.packing import packed_plan

RECIPES = ("configs/tiny.yaml", "configs/tiny_gym.yaml", "configs/tiny_code.yaml")


def layouts(lengths: list[int], batch_size: int, batches: int, seed: int = 0) -> dict[str, float]:
    """Padding share of the computed positions for `batches` batches of `batch_size`, four layouts (module doc)."""
    from grpo.stages.sft import batches as bucketed_stream

    rng = random.Random(seed)
    shuffled = list(range(len(lengths)))
    rng.shuffle(shuffled)
    stream = bucketed_stream([(range(n), None) for n in lengths], batch_size, random.Random(seed))
    groups = {"bucketed": [next(stream) for _ in range(batches)],
              "random": [shuffled[(k * batch_size) % len(lengths):][:batch_size] for k in range(batches)]}
    tokens = {name: sum(lengths[i] for g in gs for i in g) for name, gs in groups.items()}
    out = {}
    for name, gs in groups.items():
        padded = sum(len(g) * max(lengths[i] for i in g) for g in gs)
        packed = 0
        for g in gs:
            plan = packed_plan([lengths[i] for i in g], rows=len(g))
            packed += sum(len(rows) * max(lengths[g[j]] for row in rows for j in row) for rows in plan)
        out[name] = round(1 - tokens[name] / padded, 4)
        out[f"{name} + packed"] = round(1 - tokens[name] / packed, 4)
    return out


def recipe_lengths(path: str) -> tuple[list[int], int]:
    from grpo.config import load_config
    from grpo.data import environments
    from grpo.data.prompts import to_examples
    from grpo.model import build_tokenizer
    from grpo.stages.sft import tokenize

    config = load_config(path, [])
    train, _ = environments.of_data(config.data, config.task, hold_out=not config.heldout.source).load("train", 0)
    if config.sft.max_examples:
        train = train[: config.sft.max_examples]
    sequences, _ = tokenize(to_examples(train, build_tokenizer(), config.prompt), build_tokenizer(),
                            config.sft.max_length)
    return [len(ids) for ids, _ in sequences], config.sft.batch_size


def math_lengths(max_length: int) -> list[int] | None:
    from grpo.model import build_tokenizer

    root = Path(os.environ.get("GRPO_EVAL_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    path = root / "math_train.jsonl"
    if not path.exists():
        return None
    tokenizer = build_tokenizer()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lengths = [len(tokenizer(r["problem"] + "\n" + r["solution"], add_special_tokens=False)["input_ids"])
               for r in rows]
    return [n for n in lengths if n <= max_length]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--max-length", type=int, default=4096)
    args = parser.parse_args()
    results = {}
    sets = [(path, *recipe_lengths(path)) for path in RECIPES]
    math = math_lengths(args.max_length)
    if math is not None:
        sets += [(f"MATH train, batch {b}", math, b) for b in (8, 32)]
    print(f"{'data':<28} {'n':>6} {'len min/median/max':>20}   padding share: random / bucketed / bucketed+packed / "
          "random+packed")
    for name, lengths, batch_size in sets:
        share = layouts(lengths, batch_size, args.batches)
        ordered = sorted(lengths)
        results[name] = {"sequences": len(lengths), "batch_size": batch_size, **share}
        print(f"{name:<28} {len(lengths):>6} {f'{ordered[0]}/{ordered[len(ordered) // 2]}/{ordered[-1]}':>20}   "
              f"{share['random']:.3f} / {share['bucketed']:.3f} / {share['bucketed + packed']:.3f} / "
              f"{share['random + packed']:.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
