"""A recipe's stages in order: `run(config)` prepares the run (its processes, model, data, the checks that can fail
before anything trains), then runs each stage of `run.stages` through one entry of `PIPELINE` and records it in
`summary.json`.

The stages, in pipeline order: sft, grpo (they train the run's model, saved to final/), generate and filter (the
model's verified traces: generate/, filter/), distill (a smaller student on them, and a baseline student on the
cold-start data: distill/), eval (every model of the run on the held-out set: eval/heldout.json). The code of each is
in grpo/stages/; the entries below hand it its parts of the config and the run.

Resume (`resume=True`): the run's stages that `summary.json` records as done are skipped; the first unfinished
training stage (sft, grpo) continues from its newest checkpoint; generate keeps its finished shards and distill a
finished student; any other interrupted stage restarts from its beginning, its lines in metrics.jsonl and
samples.jsonl dropped (a LoRA cold start restarts too: its checkpoints hold merged weights).
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import yaml

from grpo.config import Config, ConfigError, to_yaml
from grpo.data.jsonl import read_jsonl
from grpo.data.prompts import Example, to_examples
from grpo.data import environments
from grpo.learner.lora import check_targets
from grpo.learner.team import Team, launch
from grpo.model import (build_model, build_tokenizer, cpu_has_bf16, device_of, load, mixed_precision, parameter_count,
                        slow_bf16_warning)
from grpo.rollout.factory import check_engine, make_engine
from grpo.rollout.tools import ToolSettings, check_tools
from grpo.runs.checkpoint import latest_checkpoint, settle
from grpo.runs.files import RUN_FILES, clear_run, earlier_run, write_atomic
from grpo.runs.log import RunLog
from grpo.runs.sinks import Sinks, check as check_trackers
from grpo.stages.distill import run_distill
from grpo.stages.evaluate import EvalPlan, evaluate_heldout
from grpo.stages.generate import run_filter, run_generate
from grpo.stages.grpo import run_grpo
from grpo.stages.judge import Judge
from grpo.stages.sft import run_sft
from verifiers import plugins


@dataclass
class Run:
    """What every stage entry gets: the config, the run's model, its records and rendered examples, where it writes,
    the summary so far, the processes, the run's verifier settings, and the checkpoint a resumed run continues."""

    config: Config
    model: object
    tokenizer: object
    train: list[dict]
    heldout: list[dict]
    train_examples: list[Example]
    heldout_examples: list[Example]
    dir: Path
    summary: dict
    team: Team
    judge: Judge
    checkpoint: Path | None = None
    sinks: Sinks = field(default_factory=Sinks)  # the trackers of run.report_to (main process only)

    def continues(self, stage: str) -> Path | None:
        """The checkpoint `stage` continues from, if this is a resumed run stopped inside it."""
        return self.checkpoint if self.checkpoint is not None and self.checkpoint.parent.name == stage else None


def prepare(config: Config, start_from: Path | None = None):
    """Seeds, threads, model and tokenizer for a run (from `start_from` when resuming)."""
    random.seed(config.run.seed)
    torch.manual_seed(config.run.seed)
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    if start_from is not None:
        return load(str(start_from), config.model.dtype)
    if config.model.path:
        return load(config.model.path, config.model.dtype, config.model.revision)
    tokenizer = build_tokenizer()
    model = build_model(config.model.preset, tokenizer, max_position_embeddings=config.model.max_position_embeddings,
                        seed=config.run.seed)
    return model.to(getattr(torch, config.model.dtype)), tokenizer


def resume_point(run_dir: Path, config: Config) -> tuple[dict, Path | None, Path | None]:
    """(summary so far, model directory to start from, checkpoint to continue: of the first unfinished training
    stage, sft or grpo, in checkpoints/<stage>/) of a stopped run. A LoRA cold start restarts instead (its
    checkpoints hold merged weights, not the adapters)."""
    stages = config.run.stages
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"stages": {}}
    pending = [s for s in stages if s in ("sft", "grpo") and s not in summary["stages"]]
    if pending and finished(run_dir, pending[0]) is not None:  # done but for summary.json: its model is final/
        return summary, run_dir / "final", None
    checkpoint = None
    if pending and not (pending[0] == "sft" and config.sft.lora.rank):
        checkpoint = latest_checkpoint(run_dir / "checkpoints" / pending[0])
    if checkpoint is not None:
        return summary, checkpoint, checkpoint
    trained = [s for s in stages if s in summary["stages"] and s in ("sft", "grpo")]  # stages that write final/
    return summary, (run_dir / "final" if trained else None), None


def finished(run_dir: Path, stage: str) -> dict | None:
    """`stage`'s result (what summary.json records) when final/ holds its finished model: a run stopped after the
    stage saved it and before summary.json said so. The model the stage started from is gone (final/ was its input
    too), so the stage must count as done, never run again from its own output."""
    state_path = run_dir / "final" / "trainer_state.pt"
    if stage not in ("sft", "grpo") or not state_path.exists():
        return None
    state = torch.load(state_path, weights_only=False, map_location="cpu", mmap=True)
    return state.get("result") if state.get("stage") == stage else None


def check_context(config: Config, model, tokenizer, examples, budget: int, keys: str) -> None:
    """The longest prompt plus the generation `budget` (set by the config `keys`) must fit the engine's context."""
    context = config.rollout.max_model_len or model.config.max_position_embeddings
    prompts = [e.prompt for e in examples]
    longest = max((len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]), default=0)
    if longest + budget > context:
        raise ConfigError(f"{keys} ({budget}) plus the longest prompt ({longest} tokens) exceed the context of "
                          f"{config.model.path or config.model.preset} ({context} tokens"
                          f"{', rollout.max_model_len' if config.rollout.max_model_len else ''})")


def fresh_dir(config: Config) -> None:
    """A new run starts in a directory no earlier run wrote to, or (run.overwrite) one whose earlier run's files it
    deletes first, unless the new run reads its model or data from among them; else a ConfigError before the run
    writes anything (the console's logs/ aside). Every process checks before any passes `launch`; the main one
    deletes."""
    run_dir = config.run.path()
    found = earlier_run(run_dir)
    if not found:
        return
    if not config.run.overwrite:
        raise ConfigError(f"{run_dir} already holds a run ({', '.join(found)}): continue it with python -m grpo.train "
                          f"--resume {run_dir} (a finished one runs only stages added with run.stages=[...]), write "
                          "this one elsewhere with run.dir=DIR or run.name=NAME, or replace it with run.overwrite=true")
    doomed = [run_dir.resolve() / name for name in RUN_FILES]
    for key, value in {"model.path": config.model.path, "distill.student_path": config.distill.student_path,
                       "data.path": config.data.path, "heldout.path": config.heldout.path}.items():
        where = Path(value).resolve() if value else None
        if where is not None and any(where == d or d in where.parents for d in doomed):
            raise ConfigError(f"run.overwrite would delete {key} {value} (inside the run dir {run_dir}) before the "
                              "run reads it: copy it out, or write this run elsewhere with run.dir=DIR")
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run.overwrite: deleted the earlier run's {', '.join(clear_run(run_dir))} in {run_dir}")


def preflight(r: Run) -> None:
    """What can be refused before anything trains, for the stages still to run: the sampling budgets against the
    model's context, a rollout engine that cannot be imported here (`rollout.engine: vllm` without vllm; one that
    imports but refuses its settings is refused when its stage starts it), and the LoRA layers named on the run's
    model (a distill student loaded by path is checked when it is loaded), the trackers of run.report_to installed."""
    config, todo = r.config, [s for s in r.config.run.stages if s not in r.summary["stages"]]
    sampled_eval = not EvalPlan.of(config, "eval").protocol.greedy  # the eval stage and teacher accuracy sample
    if {"grpo", "generate"} & set(todo) or (sampled_eval and {"generate", "filter", "distill", "eval"} & set(todo)):
        check_engine(config.rollout)
    if {"sft", "grpo", "generate", "eval"} & set(todo):
        check_tools(config.rollout)
    if "grpo" in todo:
        check_context(config, r.model, r.tokenizer, r.train_examples + r.heldout_examples,
                      max(config.rollout.max_new_tokens, config.grpo.eval_max_new_tokens),
                      "rollout.max_new_tokens / grpo.eval_max_new_tokens")
        check_targets(r.model, config.grpo.lora, "grpo.lora")
    if "generate" in todo:
        check_context(config, r.model, r.tokenizer, r.train_examples,
                      config.generate.max_new_tokens or config.rollout.max_new_tokens,
                      "generate.max_new_tokens / rollout.max_new_tokens")
    if "sft" in todo:
        check_targets(r.model, config.sft.lora, "sft.lora")
    _check_plugins(config)
    try:
        check_trackers(config.run.report_to)
    except (ImportError, ValueError) as e:
        raise ConfigError(f"run.report_to: {e}") from None


def _check_plugins(config: Config) -> None:
    """Every reward plug-in and user verifier imports and takes (completion, row): else a ConfigError naming its key."""
    targets = [(f"reward.functions[{i}].fn", f.fn) for i, f in enumerate(config.reward.functions)]
    targets += [(f"{s}.verifier", getattr(config, s).verifier) for s in ("data", "heldout")
                if getattr(config, s).verifier not in ("math", "code", "reasoning_gym")]
    for key, target in targets:
        try:
            plugins.check(target)
        except plugins.PluginError as e:
            raise ConfigError(f"{key}: {e}") from None


def run(config: Config, *, resume: bool = False) -> dict:
    run_dir = config.run.path()
    if not resume:
        fresh_dir(config)
    team = launch(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    if team.is_main:
        write_atomic(run_dir / "config.yaml", to_yaml(replace(config, run=replace(config.run, overwrite=False))))
    if resume:
        if team.is_main:
            settle(run_dir / "final")  # a stop in the middle of replacing final/ (one process renames)
        team.broadcast(None)  # the others look once it is done
    summary, start_from, checkpoint = resume_point(run_dir, config) if resume else ({"stages": {}}, None, None)
    model, tokenizer = prepare(config, start_from)
    if config.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    mixed_precision(model, config.model.mixed_precision)
    slow = slow_bf16_warning(config.model.mixed_precision, config.model.dtype, device=device_of(model).type,
                             native_bf16=cpu_has_bf16())
    if slow and team.is_main:
        print(slow)
    print(f"model: {config.model.path or config.model.preset} ({parameter_count(model) / 1e6:.2f}M parameters), "
          f"run dir: {run_dir}")
    train, report = environments.of_data(config.data, config.task, hold_out=not config.heldout.source).load(
        "train", config.run.seed)
    heldout = environments.heldout(config).records("heldout", seed=config.run.seed)
    kept_out = f", {report['held_out']} of its rows held out (data.heldout_percent)" if report["held_out"] else ""
    print(f"data: {report['kept']} training records ({report['left_out']} left out by data.max_rows{kept_out}), "
          f"{len(heldout)} held-out")
    r = Run(config, model, tokenizer, train, heldout, to_examples(train, tokenizer, config.prompt),
            to_examples(heldout, tokenizer, config.prompt), run_dir, summary, team,
            Judge.of(config.reward, config.prompt), checkpoint)
    preflight(r)
    summary["run_dir"] = str(run_dir)
    if team.is_main and config.run.report_to:
        name = Path(config.run.dir).name if config.run.dir else config.run.name
        r.sinks = Sinks.open(config.run.report_to, run_dir, project=config.run.project, name=name,
                             config=yaml.safe_load(to_yaml(config)), resume=resume)
    try:
        for stage in config.run.stages:
            if stage in summary["stages"]:
                print(f"{stage}: already done (summary.json), skipped")
                continue
            if resume and (result := finished(run_dir, stage)) is not None:
                print(f"{stage}: finished before the stop (its model is final/), not run again")
                if team.is_main:
                    summary["stages"][stage] = result
                    write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
                continue
            if resume and stage != "distill" and r.continues(stage) is None:  # it restarts: forget an attempt
                RunLog(run_dir, stage, total=0, enabled=team.is_main, sinks=r.sinks).forget_after(-1)
            result = PIPELINE[stage](r)
            if team.is_main:
                summary["stages"][stage] = result
                write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    finally:
        r.sinks.close()
    return summary


def cold_start(train: list, config: Config) -> list:
    """What the sft stage trains on: the first sft.max_examples of the training set (0: all)."""
    return train[: config.sft.max_examples] if config.sft.max_examples else train


def _sft(r: Run) -> dict:
    result = run_sft(r.model, r.tokenizer, cold_start(r.train_examples, r.config), r.heldout_examples, r.config.sft,
                     r.dir, seed=r.config.run.seed, judge=r.judge, resume_from=r.continues("sft"), sinks=r.sinks,
                     tools=ToolSettings.of(r.config.rollout))
    if result["left_out_too_long"]:
        print(f"sft: {result['left_out_too_long']} examples longer than sft.max_length were left out")
    print(f"sft: held-out accuracy {result['heldout_accuracy']:.3f} after {result['steps']} steps "
          f"({result['seconds']:.0f} s); model saved to {result['final']}")
    return result


def _grpo(r: Run) -> dict:
    config, team = r.config, r.team
    # under FSDP `model` is sharded in place: the main process samples from, evaluates and saves a copy
    full = copy.deepcopy(r.model) if team.sharded and team.is_main else None
    engine = (make_engine(config.rollout, full if full is not None else r.model, r.tokenizer) if team.runs_engine
              else None)
    plan = EvalPlan.of(config, "grpo")
    known = (r.summary["stages"]["sft"]["heldout_accuracy"]  # the cold start measured the same problems the same way
             if "sft" in r.summary["stages"] and plan.measures_like(EvalPlan.of(config, "sft")) else None)
    try:
        result = run_grpo(r.model, r.tokenizer, engine, r.train_examples, r.heldout_examples, config.grpo,
                          config.rollout, config.reward, r.dir, seed=config.run.seed, judge=r.judge, plan=plan,
                          resume_from=r.continues("grpo"), start_accuracy=known, team=team, full_model=full,
                          sinks=r.sinks)
    finally:
        if engine is not None:
            engine.close()
    if team.is_main:
        start = result["evals"][0]["heldout_accuracy"] if result["evals"] else float("nan")
        print(f"grpo: held-out accuracy {result['heldout_accuracy']:.3f} (from {start:.3f}) after "
              f"{result['steps']} steps ({result['seconds']:.0f} s); model saved to {result['final']}")
    return result


def _generate(r: Run) -> dict:
    config = r.config
    engine = make_engine(config.rollout, r.model, r.tokenizer)
    try:
        result = run_generate(engine, r.train_examples, config.generate, r.dir, judge=r.judge,
                              max_new_tokens=config.generate.max_new_tokens or config.rollout.max_new_tokens,
                              seed=config.run.seed)
    finally:
        engine.close()
    result["heldout_accuracy"] = _teacher_accuracy(r)
    print(f"generate: {result['traces']} traces of {result['problems']} problems, {result['correct_frac']:.1%} "
          f"correct, {result['truncated_frac']:.1%} truncated ({result['seconds']:.0f} s) in {result['out']}")
    return result


def _filter(r: Run) -> dict:
    report = run_filter(r.dir, r.config.filter, think_prefix=r.config.prompt.think_prefix)
    removed = ", ".join(f"{k} {v}" for k, v in report["removed"].items() if v) or "none"
    print(f"filter: kept {report['kept']} of {report['traces']} traces ({report['problems_kept']} of "
          f"{report['problems']} problems); removed: {removed}; report in {r.dir / 'filter' / 'report.json'}")
    entry = {k: v for k, v in report.items() if k != "examples"}
    entry["heldout_accuracy"] = _teacher_accuracy(r)
    return entry


def _distill(r: Run) -> dict:
    config = r.config
    kept = r.dir / "filter" / "traces.jsonl"
    if not kept.exists():
        raise FileNotFoundError(f"{kept}: no filtered traces; run the generate and filter stages first")
    traces = [row for _, row in read_jsonl(kept)]
    entry = run_distill(r.model, r.tokenizer, traces, cold_start(r.train, config), r.heldout, config.distill,
                        config.model, config.prompt, r.dir, seed=config.run.seed, judge=r.judge, sinks=r.sinks,
                        tools=ToolSettings.of(config.rollout))
    # the teacher measured as the student is (distill.sft's plan: its problems, token budget and greedy decoding)
    entry["teacher_heldout_accuracy"] = _teacher_accuracy(r, EvalPlan.sft(config.distill.sft,
                                                                          ToolSettings.of(config.rollout)))
    base = entry.get("baseline_heldout_accuracy")
    if entry.get("left_out_too_long"):
        print(f"distill: {entry['left_out_too_long']} traces longer than distill.sft.max_length were left out")
    print(f"distill: student ({entry['parameters'] / 1e6:.2f}M parameters, teacher "
          f"{entry['teacher_parameters'] / 1e6:.2f}M) held-out accuracy {entry['heldout_accuracy']:.3f} "
          f"(teacher {entry['teacher_heldout_accuracy']:.3f}"
          + (f", same student on the cold-start data only {base:.3f}" if base is not None else "") + ")")
    return entry


def evaluate_model(r: Run, name: str, model, tokenizer, log: RunLog | None) -> dict:
    """One model on the held-out set under the eval stage's plan: {"heldout_accuracy", "pass@k", ...}; its metrics
    line (stage "eval", tagged with the model's `name`) and samples go to `log` when given."""
    evaluator = evaluate_heldout(model, tokenizer, r.heldout, r.config, EvalPlan.of(r.config, "eval"), log=log,
                                 tags={"model": name})
    return {"heldout_accuracy": evaluator.evals[-1]["heldout_accuracy"], **evaluator.last}


def _teacher_accuracy(r: Run, plan: EvalPlan | None = None) -> float:
    """The held-out accuracy of the model generating traces: the last training stage's (with a `plan`: only when it
    was measured under one that measures alike), else measured here (under `plan`, default the eval stage's)."""
    for stage in ("grpo", "sft"):
        if stage in r.summary["stages"]:
            if plan is None or EvalPlan.of(r.config, stage).measures_like(plan):
                return r.summary["stages"][stage]["heldout_accuracy"]
            break
    evaluator = evaluate_heldout(r.model, r.tokenizer, r.heldout, r.config, plan or EvalPlan.of(r.config, "eval"))
    return evaluator.evals[-1]["heldout_accuracy"]


def _eval(r: Run) -> dict:
    """The held-out set under the eval protocol, for every model the run holds: the trained model (final/),
    and the distilled student and its baseline when the run distilled."""
    models = {"final": (r.model, r.tokenizer)}
    for name in ("student", "baseline"):
        if (r.dir / "distill" / name / "result.json").exists():
            models[name] = load(str(r.dir / "distill" / name), r.config.model.dtype)
    start, log = time.monotonic(), RunLog(r.dir, "eval", total=0, sinks=r.sinks)
    results = {name: evaluate_model(r, name, m, tok, log) for name, (m, tok) in models.items()}
    (r.dir / "eval").mkdir(exist_ok=True)
    write_atomic(r.dir / "eval" / "heldout.json", json.dumps(results, indent=2))
    for name, result in results.items():
        print(f"eval: {name} held-out accuracy {result['heldout_accuracy']:.3f}")
    last = "student" if "student" in results else "final"
    return {"heldout_accuracy": results[last]["heldout_accuracy"], "model": last, "models": results,
            "seconds": round(time.monotonic() - start, 1)}


PIPELINE = {"sft": _sft, "grpo": _grpo, "generate": _generate, "filter": _filter, "distill": _distill, "eval": _eval}
