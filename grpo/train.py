"""`python -m grpo.train [--config FILE] [--resume RUN_DIR] [section.key=value ...]`: a recipe's stages in order.

With no argument it runs the embedded default, `configs/tiny.yaml`: a tiny model built from scratch here,
cold-start SFT on the built-in arithmetic task, then GRPO with the math verifier's reward, held-out accuracy
after each stage. The run dir gets the resolved `config.yaml`, `metrics.jsonl`, `samples.jsonl`,
`checkpoints/`, `final/` (Hugging Face format) and `summary.json`
({"stages": {"sft": {"heldout_accuracy", "seconds", ...}, "grpo": {...}}}).

The stages, in pipeline order (`run.stages` lists any of them, in this order): sft, grpo (they train the run's
model, saved to final/), generate and filter (the model's verified traces: generate/, filter/; grpo/generate.py),
distill (a smaller student on them, and a baseline student on the cold-start data: distill/; grpo/distill.py),
eval (every model of the run on the held-out set: eval/heldout.json).

`--resume RUN_DIR` continues a stopped run: it reads the run's own `config.yaml` (overrides still apply),
skips the stages `summary.json` records as done, continues the cold start (with `sft.save_every`) and GRPO from
their newest checkpoints, keeps the generate stage's finished shards and a finished distilled model, and
restarts any other interrupted stage (a LoRA cold start too: its checkpoints hold merged weights).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

from grpo.config import Config, ConfigError, grpo_eval_tokens, load_config, to_yaml
from grpo.data import DataError, load_heldout, load_records, to_examples
from grpo.model import build_model, build_tokenizer, load, mixed_precision, parameter_count
from grpo.remote import EngineError as RemoteError
from grpo.runfiles import CheckpointError, drop_after, latest_checkpoint, write_atomic
from grpo.trainer import TrainingStopped

DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml"


def prepare(config: Config, start_from: Path | None = None):
    """Seeds, threads, model and tokenizer for a run (from `start_from` when resuming)."""
    random.seed(config.run.seed)
    torch.manual_seed(config.run.seed)
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    if start_from is not None:
        return load(str(start_from), config.model.dtype)
    if config.model.path:
        return load(config.model.path, config.model.dtype)
    tokenizer = build_tokenizer()
    model = build_model(config.model.preset, tokenizer, max_position_embeddings=config.model.max_position_embeddings,
                        seed=config.run.seed)
    return model.to(getattr(torch, config.model.dtype)), tokenizer


def _resume_point(run_dir: Path, config: Config) -> tuple[dict, Path | None, Path | None]:
    """(summary so far, model directory to start from, checkpoint to continue: of the first unfinished training
    stage, sft or grpo, in checkpoints/<stage>/) of a stopped run. A LoRA cold start restarts instead (its
    checkpoints hold merged weights, not the adapters)."""
    stages = config.run.stages
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"stages": {}}
    pending = [s for s in stages if s in ("sft", "grpo") and s not in summary["stages"]]
    checkpoint = None
    if pending and not (pending[0] == "sft" and config.sft.lora.rank):
        checkpoint = latest_checkpoint(run_dir / "checkpoints" / pending[0])
    if checkpoint is not None:
        return summary, checkpoint, checkpoint
    trained = [s for s in stages if s in summary["stages"] and s in ("sft", "grpo")]  # stages that write final/
    return summary, (run_dir / "final" if trained else None), None


def check_context(config: Config, model, tokenizer, examples, budget: int | None = None) -> None:
    """The longest prompt plus the generation budget (default: rollout.max_new_tokens or
    grpo.eval_max_new_tokens, the larger) must fit the engine's context."""
    context = config.rollout.max_model_len or model.config.max_position_embeddings
    prompts = [e.prompt for e in examples]
    longest = max((len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]), default=0)
    budget = budget or max(config.rollout.max_new_tokens, config.grpo.eval_max_new_tokens)
    if longest + budget > context:
        raise ConfigError(f"rollout.max_new_tokens / grpo.eval_max_new_tokens / generate.max_new_tokens ({budget}) "
                          f"plus the longest prompt "
                          f"({longest} tokens) exceed the context of {config.model.path or config.model.preset} "
                          f"({context} tokens{', rollout.max_model_len' if config.rollout.max_model_len else ''})")


def distributed(config: Config):
    """An `accelerate.Accelerator` when launched as several processes (`accelerate launch`), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if config.run.stages != ["grpo"]:
        raise ConfigError(f"run.stages {config.run.stages}: only the grpo stage runs on several processes; run the "
                          "others in one process (before: model.path set to their final/ model; after: "
                          "--resume with run.stages)")
    g = config.grpo
    if (g.prompts_per_step * g.group_size) % world:
        raise ConfigError(f"grpo.prompts_per_step x grpo.group_size ({g.prompts_per_step * g.group_size}) must be "
                          f"a multiple of the number of processes ({world})")
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"  # set by the launcher for an FSDP config
    if fsdp and config.grpo.lora.rank:
        raise ConfigError("grpo.lora.rank: LoRA adapters under FSDP are not supported; train them under DDP "
                          "(configs/accelerate/ddp.yaml), where every process holds the whole frozen model anyway")
    if config.rollout.data_parallel:
        for refused, why in (
                (g.prompts_per_step % world, "grpo.prompts_per_step must be a multiple of the number of processes"),
                (g.dynamic_sampling, "not with grpo.dynamic_sampling (each process would refill its share on its own)"),
                (fsdp, "not under FSDP (an engine per process needs the whole weights on each; use DDP)"),
                (config.rollout.engine == "server", "not with rollout.engine server (one server, one process syncing "
                 "it: leave data_parallel off and the main process samples for all)"),
                (config.rollout.vllm_tensor_parallel_size > 1, ("not with rollout.vllm_tensor_parallel_size > 1 "
                 "(every process's workers would claim the same cores or devices)"))):
            if refused:
                raise ConfigError(f"rollout.data_parallel with {world} processes: {why}")
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    accelerator = Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[InitProcessGroupKwargs(
        timeout=timedelta(seconds=config.run.collective_timeout_s))])
    kind = accelerator.distributed_type.name
    if fsdp and kind != "FSDP":
        raise ConfigError(f"an FSDP accelerate config, but accelerate started {kind} processes: FSDP runs only on GPUs "
                          "(or other accelerators); on CPU use configs/accelerate/ddp.yaml")
    if kind not in ("MULTI_CPU", "MULTI_GPU", "FSDP"):
        raise ConfigError(f"the GRPO trainer runs on DDP or FSDP (configs/accelerate/ddp.yaml, fsdp.yaml); "
                          f"accelerate's {kind} is not supported")
    return accelerator


def run(config: Config, *, resume: bool = False) -> dict:
    accelerator = distributed(config)
    is_main = accelerator is None or accelerator.is_main_process
    run_dir = config.run.path()
    run_dir.mkdir(parents=True, exist_ok=True)
    if is_main:
        write_atomic(run_dir / "config.yaml", to_yaml(config))
    summary, start_from, checkpoint = ({"stages": {}}, None, None)
    if resume:
        summary, start_from, checkpoint = _resume_point(run_dir, config)
    continues = checkpoint.parent.name if checkpoint is not None else None  # the stage the checkpoint is of
    model, tokenizer = prepare(config, start_from)
    if config.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    mixed_precision(model, config.model.mixed_precision)
    print(f"model: {config.model.path or config.model.preset} ({parameter_count(model) / 1e6:.2f}M parameters), "
          f"run dir: {run_dir}")
    train, report = load_records(config.data, config.task, split="train", seed=config.run.seed)
    heldout = load_heldout(config)
    print(f"data: {report['kept']} training records ({report['left_out']} left out by data.max_rows), "
          f"{len(heldout)} held-out")
    summary["run_dir"] = str(run_dir)
    for stage in config.run.stages:
        if stage in summary["stages"]:
            print(f"{stage}: already done (summary.json), skipped")
            continue
        if resume and is_main and stage != "distill" and stage != continues:
            for name in ("metrics.jsonl", "samples.jsonl"):  # the stage restarts: forget an interrupted attempt
                drop_after(run_dir / name, stage, -1)
        if stage == "sft":
            from grpo.sft import run_sft

            result = run_sft(model, tokenizer, to_examples(cold_start(train, config), tokenizer, config.prompt),
                             to_examples(heldout, tokenizer, config.prompt), config.sft, run_dir,
                             seed=config.run.seed, think_prefix=config.prompt.think_prefix,
                             resume_from=checkpoint if continues == "sft" else None)
            if result["left_out_too_long"]:
                print(f"sft: {result['left_out_too_long']} examples longer than sft.max_length were left out")
            print(f"sft: held-out accuracy {result['heldout_accuracy']:.3f} after {result['steps']} steps "
                  f"({result['seconds']:.0f} s); model saved to {result['final']}")
            summary["stages"]["sft"] = result
        if stage == "grpo":
            from grpo.rollout import make_engine
            from grpo.sharded import is_sharded
            from grpo.trainer import run_grpo

            train_examples = to_examples(train, tokenizer, config.prompt)
            heldout_examples = to_examples(heldout, tokenizer, config.prompt)
            check_context(config, model, tokenizer, train_examples + heldout_examples)
            # under FSDP `model` is sharded in place: the main process samples from, evaluates and saves a copy
            full = copy.deepcopy(model) if is_sharded(accelerator) and is_main else None
            engine = (make_engine(config.rollout, full if full is not None else model, tokenizer)
                      if is_main or config.rollout.data_parallel else None)
            previous = [summary["stages"][s]["heldout_accuracy"] for s in config.run.stages
                        if s in summary["stages"] and s != "grpo"]
            eval_tokens = grpo_eval_tokens(config.grpo, config.rollout)
            same_heldout = (config.grpo.eval_size == config.sft.eval_size and "sft" in summary["stages"]
                            and config.grpo.eval_temperature == 0  # SFT evaluates greedy
                            and config.sft.max_new_tokens == eval_tokens)
            try:
                result = run_grpo(model, tokenizer, engine, train_examples, heldout_examples, config.grpo,
                                  config.rollout, config.reward, run_dir, seed=config.run.seed,
                                  think_prefix=config.prompt.think_prefix,
                                  resume_from=checkpoint if continues == "grpo" else None,
                                  start_accuracy=previous[-1] if previous and same_heldout else None,
                                  accelerator=accelerator, full_model=full)
            finally:
                if engine is not None:
                    engine.close()
            if not is_main:
                continue
            start = result["evals"][0]["heldout_accuracy"] if result["evals"] else float("nan")
            print(f"grpo: held-out accuracy {result['heldout_accuracy']:.3f} (from {start:.3f}) after "
                  f"{result['steps']} steps ({result['seconds']:.0f} s); model saved to {result['final']}")
            summary["stages"]["grpo"] = result
        if stage in ("generate", "filter", "distill", "eval"):
            heldout_examples = to_examples(heldout, tokenizer, config.prompt)
            summary["stages"][stage] = PIPELINE[stage](config, model, tokenizer, train, heldout, heldout_examples,
                                                       run_dir, summary)
        if is_main:
            write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


def cold_start(train: list[dict], config: Config) -> list[dict]:
    """The records the sft stage trains on: the first sft.max_examples of the training set (0: all)."""
    return train[: config.sft.max_examples] if config.sft.max_examples else train


def _teacher_accuracy(config: Config, model, tokenizer, heldout_examples, summary: dict) -> float:
    """The held-out accuracy of the model generating traces: the last training stage's, else measured here."""
    trained = [summary["stages"][s]["heldout_accuracy"] for s in ("grpo", "sft") if s in summary["stages"]]
    if trained:
        return trained[0]
    return evaluate_model(config, "teacher", model, tokenizer, heldout_examples, None)["heldout_accuracy"]


def _generate(config: Config, model, tokenizer, train, heldout, heldout_examples, run_dir, summary) -> dict:
    from grpo.generate import run_generate
    from grpo.rollout import make_engine
    from grpo.verify import judge as verify

    prefix = "<think>\n" if config.prompt.think_prefix else ""
    budget = config.generate.max_new_tokens or config.rollout.max_new_tokens

    def judge(completions: list[str], answers: list[str]):
        return verify([prefix + c for c in completions], answers, timeout_s=config.reward.timeout_s,
                      workers=config.reward.workers)

    examples = to_examples(train, tokenizer, config.prompt)
    check_context(config, model, tokenizer, examples, budget)
    engine = make_engine(config.rollout, model, tokenizer)
    try:
        result = run_generate(engine, examples, config.generate, run_dir, judge=judge, max_new_tokens=budget,
                              seed=config.run.seed)
    finally:
        engine.close()
    result["heldout_accuracy"] = _teacher_accuracy(config, model, tokenizer, heldout_examples, summary)
    print(f"generate: {result['traces']} traces of {result['problems']} problems, {result['correct_frac']:.1%} "
          f"correct, {result['truncated_frac']:.1%} truncated ({result['seconds']:.0f} s) in {result['out']}")
    return result


def _filter(config: Config, model, tokenizer, train, heldout, heldout_examples, run_dir, summary) -> dict:
    from grpo.generate import run_filter

    report = run_filter(run_dir, config.filter, think_prefix=config.prompt.think_prefix)
    removed = ", ".join(f"{k} {v}" for k, v in report["removed"].items() if v) or "none"
    print(f"filter: kept {report['kept']} of {report['traces']} traces ({report['problems_kept']} of "
          f"{report['problems']} problems); removed: {removed}; report in {run_dir / 'filter' / 'report.json'}")
    entry = {k: v for k, v in report.items() if k != "examples"}
    entry["heldout_accuracy"] = _teacher_accuracy(config, model, tokenizer, heldout_examples, summary)
    return entry


def _distill(config: Config, model, tokenizer, train, heldout, heldout_examples, run_dir, summary) -> dict:
    from grpo.data import read_jsonl
    from grpo.distill import run_distill

    kept = run_dir / "filter" / "traces.jsonl"
    if not kept.exists():
        raise FileNotFoundError(f"{kept}: no filtered traces; run the generate and filter stages first")
    traces = [row for _, row in read_jsonl(kept)]
    entry = run_distill(model, tokenizer, traces, cold_start(train, config), heldout, config.distill, config.model,
                        config.prompt, run_dir, seed=config.run.seed)
    entry["teacher_heldout_accuracy"] = _teacher_accuracy(config, model, tokenizer, heldout_examples, summary)
    base = entry.get("baseline_heldout_accuracy")
    print(f"distill: student ({entry['parameters'] / 1e6:.2f}M parameters, teacher "
          f"{entry['teacher_parameters'] / 1e6:.2f}M) held-out accuracy {entry['heldout_accuracy']:.3f} "
          f"(teacher {entry['teacher_heldout_accuracy']:.3f}"
          + (f", same student on the cold-start data only {base:.3f}" if base is not None else "") + ")")
    return entry


def evaluate_model(config: Config, name: str, model, tokenizer, heldout_examples, run_dir: Path | None) -> dict:
    """One model on the held-out set under the eval protocol: {"heldout_accuracy", "pass@k", ...}; a metric line
    (stage "eval", the model's `name`) and samples when `run_dir` is given."""
    from evals.metrics import suite_metrics
    from grpo.evaluate import EvalProtocol, by_problem, heldout_accuracy
    from grpo.rollout import make_engine
    from grpo.runfiles import append_jsonl

    e = config.eval
    protocol = EvalProtocol(n=e.n, temperature=e.temperature, top_p=e.top_p, seed=config.run.seed)
    examples = heldout_examples[: e.size] if e.size else heldout_examples
    engine = None if protocol.greedy else make_engine(config.rollout, model, tokenizer)
    try:
        accuracy, samples = heldout_accuracy(model, tokenizer, examples,
                                             max_new_tokens=e.max_new_tokens or config.rollout.max_new_tokens,
                                             think_prefix=config.prompt.think_prefix, protocol=protocol, engine=engine)
    finally:
        if engine is not None:
            engine.close()
    if run_dir is not None:
        append_jsonl(run_dir / "metrics.jsonl", [{"stage": "eval", "step": 0, "model": name,
                                                  "eval/heldout_accuracy": accuracy}])
        append_jsonl(run_dir / "samples.jsonl", [dict(s, stage="eval", step=0, model=name) for s in samples[:8]])
    return {"heldout_accuracy": accuracy, **suite_metrics(by_problem(samples))}


def _eval(config: Config, model, tokenizer, train, heldout, heldout_examples, run_dir, summary) -> dict:
    """The held-out set under the eval protocol, for every model the run holds: the trained model (final/),
    and the distilled student and its baseline when the run distilled."""
    models = {"final": (model, tokenizer)}
    for name in ("student", "baseline"):
        if (run_dir / "distill" / name / "result.json").exists():
            models[name] = load(str(run_dir / "distill" / name), config.model.dtype)
    start = time.monotonic()
    results = {name: evaluate_model(config, name, m, tok, to_examples(heldout, tok, config.prompt), run_dir)
               for name, (m, tok) in models.items()}
    (run_dir / "eval").mkdir(exist_ok=True)
    write_atomic(run_dir / "eval" / "heldout.json", json.dumps(results, indent=2))
    for name, r in results.items():
        print(f"eval: {name} held-out accuracy {r['heldout_accuracy']:.3f}")
    last = "student" if "student" in results else "final"
    return {"heldout_accuracy": results[last]["heldout_accuracy"], "model": last, "models": results,
            "seconds": round(time.monotonic() - start, 1)}


PIPELINE = {"generate": _generate, "filter": _filter, "distill": _distill, "eval": _eval}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grpo.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="recipe YAML (default: configs/tiny.yaml)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue a stopped run from its config.yaml, summary.json and newest checkpoint")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. sft.steps=100 run.seed=1")
    args = parser.parse_args(argv)
    try:
        if args.resume is not None:
            if args.config is not None:
                raise ConfigError(f"--config {args.config} with --resume: a resumed run reads its own "
                                  f"{args.resume / 'config.yaml'}; change keys with section.key=value overrides")
            if not (args.resume / "config.yaml").exists():
                raise ConfigError(f"{args.resume}: not a run directory (no config.yaml) to resume")
            config = load_config(args.resume / "config.yaml", [*args.overrides, f"run.dir={args.resume}"])
        else:
            config = load_config(args.config or DEFAULT_RECIPE, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        run(config, resume=args.resume is not None)
    except (DataError, FileNotFoundError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (TrainingStopped, CheckpointError, RemoteError) as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 1
    print(f"done in {time.monotonic() - start:.0f} s")
    return 0


def leave(code: int) -> None:
    """Exit (also what tests/distributed_update.py ends with). One of several processes (`accelerate launch`) runs
    the exit handlers, then skips the interpreter's teardown: over gloo a process sometimes aborted there
    (SIGABRT, "terminate called without an active exception": a communication thread still joinable at exit,
    pytorch/pytorch#90549) after its work was done and written. Destroying the process group first made the
    ranks hang instead."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()  # the engine pool's shutdown, among others
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
