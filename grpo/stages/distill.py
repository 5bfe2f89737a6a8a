"""The `distill` stage: SFT of a smaller student on the filtered teacher traces (DeepSeek-R1's distillation).

The student is built from a preset (`distill.student_preset`) or loaded (`distill.student_path`) and trained by
the cold start's SFT code with `distill.sft` settings. Optional logit distillation (`distill.kd_coef > 0`) adds
the forward KL to the teacher's token distribution, for tokenizers that are the same. With `distill.baseline`,
the same student (same initial weights, same settings) is also trained on the cold-start data alone: the
comparison DeepSeek-R1 makes between distillation and the small model's own training.

Run dir: `distill/student/` and `distill/baseline/` (Hugging Face models), each with `result.json` once done;
metrics.jsonl lines tagged `distill` and `distill_baseline`. A re-run keeps a finished model, continues an
interrupted one from its newest checkpoint (`distill.sft.save_every`: checkpoints/distill/, .../distill_baseline/)
exactly, and otherwise retrains it from its start (the same seed gives the same model).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from grpo.config import DistillConfig, ModelConfig, PromptConfig
from grpo.data.jsonl import DataError
from grpo.data.prompts import Example, render_prompt, to_examples, turn_end
from grpo.learner.supervised import Distillation
from grpo.model import build_model, load, mixed_precision, parameter_count
from grpo.rollout.tools import ToolSettings
from grpo.runs.checkpoint import latest_checkpoint
from grpo.runs.files import drop_after, write_atomic
from grpo.runs.sinks import Sinks
from grpo.stages.judge import Judge
from grpo.stages.sft import run_sft

DISTILL = Path("distill")  # under the run dir


def make_student(cfg: DistillConfig, model_cfg: ModelConfig, teacher_tokenizer, seed: int):
    """(student, its tokenizer): loaded from `student_path`, or a preset built for the teacher's tokenizer."""
    if cfg.student_path:
        student, tokenizer = load(cfg.student_path, model_cfg.dtype, cfg.student_revision, key="distill.student_path")
        return mixed_precision(student, model_cfg.mixed_precision), tokenizer
    student = build_model(cfg.student_preset, teacher_tokenizer,
                          max_position_embeddings=model_cfg.max_position_embeddings, seed=seed)
    return mixed_precision(student.to(getattr(torch, model_cfg.dtype)), model_cfg.mixed_precision), teacher_tokenizer


def trace_examples(traces: list[dict], tokenizer, prompt: PromptConfig) -> list[Example]:
    """Kept traces -> SFT examples for the student: its own prompt rendering, the teacher's completion, the end of
    its turn."""
    if not traces:
        raise DataError("filter/traces.jsonl: no trace survived the filter; nothing to distill (see "
                        "filter/report.json for why)")
    end = turn_end(tokenizer, prompt)
    return [Example(render_prompt(t["problem"], tokenizer, prompt), t["answer"], t["completion"] + end, t["problem"])
            for t in traces]


def same_tokenizer(a, b) -> bool:
    return a is b or (a.get_vocab() == b.get_vocab() and a.eos_token == b.eos_token)


def _train(name: str, student, tokenizer, train, heldout, cfg: DistillConfig, run_dir: Path, *, seed: int,
           judge: Judge, kd: Distillation | None, sinks: Sinks | None, tools: ToolSettings | None = None) -> dict:
    out = run_dir / DISTILL / name
    done = out / "result.json"
    if done.exists():
        print(f"distill: the {name} model is already trained ({out}), kept")
        return json.loads(done.read_text())
    stage = "distill" if name == "student" else f"distill_{name}"
    # an interrupted attempt continues from its newest checkpoint (distill.sft.save_every; not under LoRA, whose
    # checkpoints hold merged weights), else it is forgotten and the model trains from its start
    checkpoint = None if cfg.sft.lora.rank else latest_checkpoint(run_dir / "checkpoints" / stage)
    if checkpoint is not None:
        _load_weights(student, checkpoint)
    else:
        for log in ("metrics.jsonl", "samples.jsonl"):
            drop_after(run_dir / log, stage, -1)
        if sinks is not None:
            sinks.rewind(stage, -1)
    result = run_sft(student, tokenizer, train, heldout, cfg.sft, run_dir, seed=seed, judge=judge, stage=stage,
                     section="distill.sft.lora", final=out, kd=kd, resume_from=checkpoint, sinks=sinks, tools=tools)
    result["parameters"] = parameter_count(student)
    write_atomic(done, json.dumps(result, indent=2))
    return result


def _load_weights(model, checkpoint: Path) -> None:
    """A checkpoint's weights into `model` in place (a tied output head comes with the embedding)."""
    missing, unexpected = model.load_state_dict(load_file(str(checkpoint / "model.safetensors")), strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise DataError(f"{checkpoint}: its weights do not fit the student (missing {sorted(set(missing) - tied)}, "
                        f"unexpected {sorted(unexpected)})")


def run_distill(teacher, teacher_tokenizer, traces: list[dict], cold_start: list[dict], heldout: list[dict],
                cfg: DistillConfig, model_cfg: ModelConfig, prompt: PromptConfig, run_dir: Path, *, seed: int,
                judge: Judge, sinks: Sinks | None = None, tools: ToolSettings | None = None) -> dict:
    """Train the student (and the baseline); return the summary entry. `sinks`: the run's trackers. `tools`: the
    traces call the interpreter (its results masked out of the loss) and the students are evaluated with it."""
    student, tokenizer = make_student(cfg, model_cfg, teacher_tokenizer, seed)
    kd = None
    if cfg.kd_coef > 0:
        if not same_tokenizer(teacher_tokenizer, tokenizer):
            raise DataError(f"distill.kd_coef > 0 needs the teacher's tokenizer; {cfg.student_path} has another "
                            "(set distill.kd_coef 0 for SFT on the traces alone)")
        kd = Distillation(teacher.eval(), cfg.kd_coef, cfg.kd_temperature)
    held = to_examples(heldout, tokenizer, prompt)
    traces = traces[: cfg.sft.max_examples] if cfg.sft.max_examples else traces
    result = _train("student", student, tokenizer, trace_examples(traces, tokenizer, prompt), held, cfg, run_dir,
                    seed=seed, judge=judge, kd=kd, sinks=sinks, tools=tools)
    entry = {**result, "teacher_parameters": parameter_count(teacher), "traces": len(traces)}
    if cfg.baseline:
        cold = [e for e in to_examples(cold_start, tokenizer, prompt) if e.completion]
        if not cold:
            raise DataError("distill.baseline: the cold-start data has no worked solutions (data.solution_field)")
        fresh, _ = make_student(cfg, model_cfg, teacher_tokenizer, seed)
        base = _train("baseline", fresh, tokenizer, cold, held, cfg, run_dir, seed=seed, judge=judge, kd=None,
                      sinks=sinks, tools=tools)
        entry.update({"baseline_heldout_accuracy": base["heldout_accuracy"], "baseline_seconds": base["seconds"],
                      "baseline_final": base["final"]})
    return entry
