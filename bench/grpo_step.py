"""Benchmark: one GRPO step, ours against TRL's GRPOTrainer, same model, prompts, reward and settings, one run.

    python -m bench.grpo_step [--steps 12] [--threads 2] [--model anchor|small] [--sides ...]
                              [--init scratch|recipe] [--init-dir DIR]
    (TRL: pip install -e ".[bench]")

Two settings, each measured on every side (ours with the vLLM engine, ours with the transformers engine, ours
with vLLM and `grpo.pack: true`, the same under `model.mixed_precision: bf16`, TRL's GRPOTrainer with
transformers.generate in fp32 and with `bf16=True`, TRL with its vLLM colocate mode):
- "anchor": G=8 completions for 2 prompts per step, 32 completion tokens, DAPO loss (token-mean), no KL,
  one pass per batch (the settings of ../shared/anchors/trl_grpo_cpu.py);
- "rollout-heavy": 16 prompts x G=8, 128 completion tokens.
Every side gets the same freshly initialised Qwen2 model (`--model anchor`: the anchor's size, hidden 256,
4 layers, 4 heads, 3.2M parameters; `--model small`: the `small` preset, 19M) with our character-level tokenizer,
the same arithmetic prompts, temperature 1, AdamW at the
same learning rate, fp32 (but the bf16 sides), and the same reward: our math verifier
(`verifiers.math.verify_batch`, 2 workers).
Our sides run the learner as the config's defaults do, with `grpo.micro_batch_size` from `--micro-batch` (128: the
whole batch, as TRL's side) and vLLM compiled with `--compiled`; a side's `-noskip` form (`ours-vllm-packed-noskip`)
sets `grpo.skip_zero_advantage: false`. A freshly initialised model earns no reward, so every group's advantages
are 0 and, by default, our learner runs none of the batch (`skipped_frac` 1): the `-noskip` sides measure the
learner's work against TRL's, which runs every completion.
`--init recipe` starts every side instead from the default recipe's cold start at the benchmark's model size: the
model is trained by our SFT stage with configs/tiny.yaml's `sft`, `task` and `prompt` sections (its worked
solutions with their sign-dropping flaw, 1,500 steps; about 17 minutes at 3.2M and 80 at 19M on 2 cores, once: kept in
`--init-dir`, with its held-out accuracy and the recipe sections it was made from in `cold_start.json`; made again when
those change), and the prompts are that task's (think prefix
included; TRL's reward reads the completion behind it, as ours does). That is the state a GRPO step meets in a real
run: completions of the length the model writes, and some groups whose rewards are all equal (advantage 0), which
the default learner does not run and TRL does; `skipped_frac` says how many.
Each side runs in its own subprocess (its own peak RSS). Figures: seconds per step (mean over steps after the
first two), generated tokens per second over the whole step, peak RSS. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import SideFailed, run_side

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
LR, SEED, WARMUP = 1e-5, 0, 2
SETTINGS = {"anchor": {"prompts": 2, "group": 8, "tokens": 32},
            "rollout-heavy": {"prompts": 16, "group": 8, "tokens": 128}}


MODELS = {  # the anchor's size, and the size of bench/rollout.py (the `small` preset)
    "anchor": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=4),
    "small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=8,
                  num_key_value_heads=4),
}
MODEL = "anchor"  # set from --model
INIT = {"dir": ""}  # --init recipe: the cold-start model's directory
RECIPE = "configs/tiny.yaml"
OURS = {"micro_batch_size": 128, "compiled": False, "skip": True}  # set from --micro-batch, --compiled, a side's -noskip


def _model_and_prompts(n: int):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from grpo.config import PromptConfig
    from grpo.data.prompts import to_examples
    from grpo.data.tasks import arithmetic
    from grpo.model import build_tokenizer

    tokenizer = build_tokenizer()
    if INIT["dir"]:
        from grpo.config import load_config
        from grpo.data.records import load_records

        recipe = load_config(RECIPE)
        records, _ = load_records(recipe.data, recipe.task, split="train", seed=recipe.run.seed)
        model = Qwen2ForCausalLM.from_pretrained(INIT["dir"], dtype=torch.float32)
        return model, tokenizer, to_examples(records[:n], tokenizer, recipe.prompt)
    config = Qwen2Config(vocab_size=len(tokenizer), **MODELS[MODEL], max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config)
    records = arithmetic(n, split="train", seed=SEED, digits=2, ops=1)
    return model, tokenizer, to_examples(records, tokenizer, PromptConfig(template="plain", think_prefix=False))


def _recipe_sections() -> dict:
    """What the cold start depends on in the recipe: a kept cold start made from other settings is made again."""
    from grpo.config import load_config, to_dict

    recipe = to_dict(load_config(RECIPE))
    return {key: recipe[key] for key in ("run", "model", "task", "data", "prompt", "sft")}


def cold_start(directory: Path) -> dict:
    """The default recipe's cold start (configs/tiny.yaml: its task, prompts and `sft` section) on the benchmark's
    freshly initialised model, saved to `directory` with `cold_start.json` (held-out accuracy, seconds)."""
    from grpo.config import load_config
    from grpo.data.prompts import to_examples
    from grpo.data.records import load_records
    from grpo.stages.judge import Judge
    from grpo.stages.sft import run_sft

    recipe = load_config(RECIPE)
    saved, INIT["dir"] = INIT["dir"], ""
    model, tokenizer, _ = _model_and_prompts(1)
    INIT["dir"] = saved
    examples = {}
    for split in ("train", "heldout"):
        records, _ = load_records(recipe.data, recipe.task, split=split, seed=recipe.run.seed)
        examples[split] = to_examples(records, tokenizer, recipe.prompt)
    with tempfile.TemporaryDirectory() as out:
        result = run_sft(model, tokenizer, examples["train"], examples["heldout"], recipe.sft, Path(out),
                         seed=recipe.run.seed, judge=Judge())
    model.save_pretrained(directory)
    info = {"recipe": RECIPE, "model": MODEL, "steps": result["steps"], "seconds": result["seconds"],
            "heldout_accuracy": result["heldout_accuracy"], "sections": _recipe_sections()}
    (directory / "cold_start.json").write_text(json.dumps(info, indent=2))
    return info


def run_ours(setting: dict, steps: int, engine_name: str = "hf", pack: bool = False, bf16: bool = False) -> dict:
    from grpo.config import GRPOConfig, RewardConfig, RolloutConfig
    from grpo.rollout import make_engine
    from grpo.stages.evaluate import EvalPlan
    from grpo.stages.grpo import run_grpo
    from grpo.stages.judge import Judge

    model, tokenizer, examples = _model_and_prompts(setting["prompts"] * steps * 2)
    cfg = GRPOConfig(steps=steps, prompts_per_step=setting["prompts"], group_size=setting["group"], lr=LR,
                     loss_aggregation="token-mean", clip_low=0.2, clip_high=0.28,
                     micro_batch_size=OURS["micro_batch_size"], skip_zero_advantage=OURS["skip"],
                     eval_every=0, eval_size=1, eval_max_new_tokens=1, pack=pack)
    if bf16:
        from grpo.model import mixed_precision

        mixed_precision(model, "bf16")  # model.mixed_precision: bf16 (the engine samples in fp32)
    rollout = RolloutConfig(engine=engine_name, temperature=1.0, max_new_tokens=setting["tokens"],
                            vllm_enforce_eager=not OURS["compiled"])
    engine = make_engine(rollout, model, tokenizer)
    with tempfile.TemporaryDirectory() as out:
        run_grpo(model, tokenizer, engine, examples, examples[:1], cfg, rollout, RewardConfig(), Path(out),
                 seed=SEED, judge=Judge(), plan=EvalPlan(1, 1), start_accuracy=0.0)
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "perf/step_s" in r][WARMUP:]
    seconds = [r["perf/step_s"] for r in rows]
    tokens = sum(r["perf/generated_tokens"] for r in rows)
    return {"s_per_step": statistics.mean(seconds), "tokens_per_s": tokens / sum(seconds),
            "skipped_frac": statistics.mean(r.get("optim/zero_advantage_skipped", 0.0) for r in rows),
            "rollout_s": statistics.mean(r["perf/rollout_s"] for r in rows),
            "update_s": statistics.mean(r["perf/update_s"] for r in rows),
            "sync_s": statistics.mean(r["perf/sync_s"] for r in rows)}


def run_trl(setting: dict, steps: int, use_vllm: bool = False, bf16: bool = False) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpo.data.prompts import opens_think, with_think_prefix
    from verifiers.math import verify_batch

    model, tokenizer, examples = _model_and_prompts(setting["prompts"] * steps * 2)
    tokenizer.padding_side = "left"
    data = Dataset.from_list([{"prompt": e.prompt, "answer": e.answer} for e in examples])

    def accuracy(prompts, completions, answer, **kwargs):  # behind the think prefix a prompt opened, as ours
        texts = [with_think_prefix(c, opens_think(p)) for p, c in zip(prompts, completions)]
        return [r.reward for r in verify_batch(texts, answer, timeout_s=5.0, workers=2)]

    marks = {"times": [], "lengths": []}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            marks["t0"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            marks["times"].append(time.perf_counter() - marks["t0"])

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                marks["lengths"].append(logs["completions/mean_length"])

    group = setting["group"]
    with tempfile.TemporaryDirectory() as out:
        if use_vllm:  # TRL's colocated vLLM starts from model.name_or_path: give it a directory
            model.save_pretrained(f"{out}/model")
            tokenizer.save_pretrained(f"{out}/model")
            model = type(model).from_pretrained(f"{out}/model")
        config = GRPOConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=setting["prompts"] * group,
                            gradient_accumulation_steps=1, num_generations=group,
                            max_completion_length=setting["tokens"], temperature=1.0, learning_rate=LR,
                            loss_type="dapo", beta=0.0, epsilon=0.2, epsilon_high=0.28, num_iterations=1,
                            use_vllm=use_vllm, vllm_mode="colocate", vllm_gpu_memory_utilization=0.1,
                            use_cpu=True, bf16=bf16, fp16=False, gradient_checkpointing=False,
                            logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, seed=SEED,
                            dataloader_num_workers=0)
        trainer = GRPOTrainer(model=model, reward_funcs=[accuracy], args=config, train_dataset=data,
                              processing_class=tokenizer, callbacks=[Clock()])
        trainer.train()
    seconds = marks["times"][WARMUP:]
    tokens = sum(length * setting["prompts"] * group for length in marks["lengths"][WARMUP:])
    return {"s_per_step": statistics.mean(seconds), "tokens_per_s": tokens / sum(seconds)}


SIDES = ["ours", "ours-vllm", "ours-vllm-packed", "ours-vllm-packed-bf16", "trl", "trl-bf16", "trl-vllm"]


def child(side: str, name: str, steps: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    if side.endswith("-noskip"):  # grpo.skip_zero_advantage: false
        OURS["skip"], side = False, side.removesuffix("-noskip")
    runs = {"ours": lambda: run_ours(SETTINGS[name], steps),
            "ours-vllm": lambda: run_ours(SETTINGS[name], steps, "vllm"),
            "ours-vllm-packed": lambda: run_ours(SETTINGS[name], steps, "vllm", pack=True),
            "ours-vllm-packed-bf16": lambda: run_ours(SETTINGS[name], steps, "vllm", pack=True, bf16=True),
            "trl": lambda: run_trl(SETTINGS[name], steps),
            "trl-bf16": lambda: run_trl(SETTINGS[name], steps, bf16=True),
            "trl-vllm": lambda: run_trl(SETTINGS[name], steps, True)}
    result = runs[side]()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--settings", default="anchor,rollout-heavy")
    parser.add_argument("--model", choices=list(MODELS), default="anchor",
                        help="anchor: 3.2M parameters (TRL anchor's size); small: 19M (bench/rollout.py's)")
    parser.add_argument("--sides", default="ours-vllm,ours,trl,trl-vllm")
    parser.add_argument("--micro-batch", type=int, default=128,
                        help="our grpo.micro_batch_size (default 128: the whole batch, as TRL's side runs it)")
    parser.add_argument("--compiled", action="store_true",
                        help="our vLLM sides compile their model (rollout.vllm_enforce_eager: false)")
    parser.add_argument("--init", choices=["scratch", "recipe"], default="scratch",
                        help="recipe: every side starts from the default recipe's cold start at this model size")
    parser.add_argument("--init-dir", default="/tmp/bench_grpo_step_init",
                        help="where --init recipe keeps its cold-start model (one per --model; made once)")
    parser.add_argument("--side", choices=SIDES + [f"{s}-noskip" for s in SIDES if s.startswith("ours")] + ["init"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global MODEL
    MODEL = args.model
    OURS.update(micro_batch_size=args.micro_batch, compiled=args.compiled)
    init = Path(args.init_dir) / args.model
    if args.init == "recipe":
        INIT["dir"] = str(init)
    if args.side == "init":
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(cold_start(init)))
        return
    if args.side:
        child(args.side, args.setting, args.steps, args.threads)
        return
    forwarded = ["--init", args.init, "--init-dir", args.init_dir]
    cold = None
    if args.init == "recipe":
        kept = init / "cold_start.json"
        if not kept.exists() or json.loads(kept.read_text()).get("sections") != _recipe_sections():
            print(f"cold start of the {args.model} model with {RECIPE}'s sft section -> {init}", flush=True)
            run_side("bench.grpo_step", ["--side", "init", "--model", args.model, "--threads", str(args.threads),
                                         *forwarded], "cold start")
        cold = json.loads((init / "cold_start.json").read_text())
        print(f"cold start: {cold}", flush=True)
    result = {"machine": f"{os.uname().machine} {os.cpu_count()} cpus", "threads": args.threads, "steps": args.steps,
              "model": args.model, "micro_batch": args.micro_batch, "compiled": args.compiled, "init": args.init,
              "cold_start": cold}
    for name in args.settings.split(","):
        result[name] = {"setting": SETTINGS[name]}
        for side in args.sides.split(","):
            try:
                figures = run_side("bench.grpo_step", ["--side", side, "--setting", name, "--steps", str(args.steps),
                                                       "--threads", str(args.threads), "--model", args.model,
                                                       "--micro-batch", str(args.micro_batch),
                                                       *(["--compiled"] if args.compiled else []), *forwarded],
                                   f"{name} {side}")
            except SideFailed as e:
                print(e, file=sys.stderr)
                result[name][side] = {"failed": e.last_error}
                continue
            figures = {k: round(v, 3) for k, v in figures.items()}
            print(f"{name} {side}: {figures}", flush=True)
            result[name][side] = figures
        trl = result[name].get("trl")
        for side in [s for s in args.sides.split(",") if s.startswith("ours")]:
            if "s_per_step" in result[name].get(side, {}) and trl and "s_per_step" in trl:
                result[name][f"speedup_{side}_vs_trl"] = round(trl["s_per_step"] / result[name][side]["s_per_step"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
