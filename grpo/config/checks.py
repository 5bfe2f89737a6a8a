"""Impossible combinations of config keys, each named: `validate` raises a ConfigError naming the file (or the
command line), the key and what it must be. The rows are grouped by what they guard (a schedule, an SFT run, an
evaluation protocol, LoRA, the GRPO loop, the pipeline's stages). `process_checks` adds the rules of a run on
several processes (`accelerate launch`), which depend on how many there are."""

from __future__ import annotations

from grpo.algo.advantages import ESTIMATORS
from grpo.algo.loss import AGGREGATIONS
from grpo.config.schema import (
    TOOL_MARKERS,
    BUILT_IN,
    PRESET_NAMES,
    STAGES,
    SUITE_NAMES,
    TRACKERS,
    Config,
    ConfigError,
    LoraConfig,
    SFTConfig,
)

FILES = ("jsonl", "parquet", "hub")  # the sources read from a path (a file, or a hub dataset id)
FLAWS = ("solution_slips", "sign_errors", "answer_sign_drops")  # the task's errors in cold-start solutions


def _schedule_checks(section: str, cfg) -> list:
    """The learning-rate schedule rows shared by every training stage (SFT, GRPO)."""
    return [
        (0 <= cfg.warmup_steps <= cfg.steps, f"{section}.warmup_steps",
         f"must be within 0..{section}.steps ({cfg.steps})"),
        (0.0 <= cfg.min_lr_ratio <= 1.0 and cfg.lr > 0, f"{section}.lr", "lr > 0 and 0 <= min_lr_ratio <= 1"),
    ]


def _sft_checks(section: str, s: SFTConfig, max_position_embeddings: int, *, built: bool) -> list:
    """The rows of an SFT run (the cold start's `sft`, the student's `distill.sft`); `built`: the model comes from
    a preset with `model.max_position_embeddings` (a loaded model's context is its own)."""
    return [
        (s.steps >= 1 and s.batch_size >= 1 and s.grad_accum >= 1 and s.max_examples >= 0, f"{section}.steps",
         "steps, batch, accum >= 1 and max_examples >= 0"),
        (s.max_grad_norm > 0, f"{section}.max_grad_norm", "must be > 0 (a number: the gradient clipping threshold)"),
        (s.eval_size >= 1, f"{section}.eval_size", "must be >= 1 (held-out problems per evaluation)"),
        (s.max_tokens_per_micro_batch >= 0, f"{section}.max_tokens_per_micro_batch",
         "must be >= 0 (0: whole batches)"),
        *_schedule_checks(section, s),
        (s.max_length <= max_position_embeddings or not built, f"{section}.max_length",
         f"exceeds model.max_position_embeddings ({max_position_embeddings})"),
        *_lora_checks(f"{section}.lora", s.lora),
        (not (built and s.lora.rank), f"{section}.lora.rank", ("needs a pretrained model (model.path, or "
         "distill.student_path for the student): adapters on a preset built from scratch train on random weights")),
    ]


def _protocol_checks(section: str, prefix: str, n: int, temperature: float, top_p: float) -> list:
    """The rows of an evaluation protocol (`grpo.eval_*`, `eval.*`): n samples, temperature, top-p."""
    key_n, key_t, key_p = (f"{prefix}{k}" for k in ("n", "temperature", "top_p"))
    return [
        (n >= 1 and temperature >= 0 and 0 < top_p <= 1, f"{section}.{key_n}",
         f"{key_n} >= 1, {key_t} >= 0, 0 < {key_p} <= 1"),
        (temperature > 0 or n == 1, f"{section}.{key_n}",
         f"must be 1 when {section}.{key_t} is 0 (greedy samples are all the same)"),
    ]


def validate(config: Config, where: str) -> None:
    """Impossible combinations, each named."""
    s, d = config.sft, config.data
    checks = [
        (all(stage in STAGES for stage in config.run.stages), "run.stages",
         f"unknown stage in {config.run.stages}; this build runs {list(STAGES)}"),
        (all(t in TRACKERS for t in config.run.report_to), "run.report_to",
         f"unknown tracker in {config.run.report_to}; one of {list(TRACKERS)}"),
        (len(set(config.run.report_to)) == len(config.run.report_to), "run.report_to",
         f"names a tracker twice: {config.run.report_to}"),
        (config.model.path or config.model.preset in PRESET_NAMES, "model.preset",
         f"{config.model.preset!r} is not a preset {PRESET_NAMES} and model.path is empty"),
        (config.model.dtype in ("float32", "bfloat16"), "model.dtype", "must be float32 or bfloat16"),
        (config.model.mixed_precision in ("no", "bf16"), "model.mixed_precision", "must be no or bf16"),
        (config.model.mixed_precision == "no" or config.model.dtype == "float32", "model.mixed_precision",
         "bf16 autocast keeps fp32 weights; with model.dtype bfloat16 everything is bf16 already (set one)"),
        (d.source in (*BUILT_IN, *FILES, "reasoning_gym"), "data.source",
         "must be arithmetic, programs, products, jsonl, parquet, hub or reasoning_gym"),
        *[(c.source not in FILES or c.path, f"{section}.path", f"is required when {section}.source is {c.source}")
          for section, c in (("data", d), ("heldout", config.heldout))],
        *[(c.source != "reasoning_gym" or c.name, f"{section}.name",
           "is required when the source is reasoning_gym (a generator, e.g. spell_backward)")
          for section, c in (("data", d), ("heldout", config.heldout))],
        (d.source not in FILES or d.solution_field or "sft" not in config.run.stages, "data.solution_field",
         "SFT on file data needs the field holding worked solutions"),
        (d.answer_format in ("plain", "gsm8k", "boxed"), "data.answer_format", "must be plain, gsm8k or boxed"),
        *[(v in ("math", "code", "reasoning_gym") or _target(v), f"{section}.verifier",
           f"must be math, code, reasoning_gym or module:function, got {v!r}")
          for section, v in (("data", d.verifier), ("heldout", config.heldout.verifier))],
        (config.prompt.template in ("plain", "chat", "r1"), "prompt.template", "must be plain, chat or r1"),
        (set(config.task.operators) <= set("+-*") and config.task.operators, "task.operators", "use + - *"),
        (config.task.digits >= 1 and config.task.ops >= 1, "task.digits", "digits and ops must be >= 1"),
        *[(0 <= getattr(config.task, key) <= 1, f"task.{key}", "is a share: 0 to 1")
          for key in FLAWS],
        (not any(getattr(config.task, key) for key in FLAWS) or d.source not in ("programs", "products"),
         "task." + ", task.".join(FLAWS),
         f"apply to the built-in arithmetic task only (set them to 0 for {d.source})"),
        (0 <= config.task.answer_char_drops <= 1, "task.answer_char_drops", "is a share: 0 to 1"),
        (0 <= config.task.tool_solutions <= 1, "task.tool_solutions", "is a share: 0 to 1"),
        (not config.task.tool_solutions or d.source == "products", "task.tool_solutions",
         "applies to the built-in products task only"),
        (not config.task.tool_solutions or (config.rollout.tool_open, config.rollout.tool_close,
                                            config.rollout.tool_result_open, config.rollout.tool_result_close)
         == TOOL_MARKERS, "task.tool_solutions",
         f"writes its worked solutions in the default tool markers {TOOL_MARKERS}: keep rollout.tool_open, "
         "tool_close, tool_result_open and tool_result_close at those"),
        *[(c.source not in (*FILES, "reasoning_gym") or 0 < c.heldout_percent < 100, f"{section}.heldout_percent",
           "must be between 0 and 100 (exclusive)") for section, c in (("data", d), ("heldout", config.heldout))],
        (not (d.source == config.heldout.source == "reasoning_gym" and d.name == config.heldout.name)
         or config.heldout.heldout_percent <= d.heldout_percent, "heldout.heldout_percent",
         f"({config.heldout.heldout_percent}) above data.heldout_percent ({d.heldout_percent}) would draw held-out "
         "problems that training also draws (the same generator): keep it at or below data's"),
        *_sft_checks("sft", s, config.model.max_position_embeddings, built=not config.model.path),
    ]
    checks += _grpo_checks(config) + _pipeline_checks(config)
    for ok, key, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {key} {message}")


def _grpo_checks(config: Config) -> list:
    g, r, w = config.grpo, config.rollout, config.reward
    return [
        (r.engine in ("auto", "hf", "vllm", "server"), "rollout.engine", "must be auto, hf, vllm or server"),
        (r.engine != "server" or r.server_url, "rollout.server_url",
         "is required with rollout.engine server (the address `python -m grpo.serve` prints)"),
        (r.max_lag >= 0, "rollout.max_lag", "must be >= 0 (0: synchronous)"),
        (r.max_lag == 0 or r.engine == "server", "rollout.max_lag",
         f"{r.max_lag} samples while the learner trains: it needs rollout.engine: server (vLLM in its own process; "
         f"the in-process engines share the learner's cores, and the transformers engine its weights), not "
         f"{r.engine!r}"),
        (r.server_timeout_s > 0 and r.vllm_start_timeout_s > 0, "rollout.server_timeout_s",
         "server_timeout_s and vllm_start_timeout_s must be > 0"),
        (r.vllm_tensor_parallel_size >= 1, "rollout.vllm_tensor_parallel_size", "must be >= 1"),
        (r.tools in ("none", "python"), "rollout.tools", f"{r.tools!r}: must be none or python"),
        (all(m.strip() for m in (r.tool_open, r.tool_close, r.tool_result_open, r.tool_result_close)),
         "rollout.tool_open", "the four tool markers (tool_open, tool_close, tool_result_open, tool_result_close) "
         "must not be blank"),
        (all(r.tool_close not in m for m in (r.tool_open, r.tool_result_open, r.tool_result_close)),
         "rollout.tool_close",
         f"{r.tool_close!r} must not appear in the other markers (generation pauses wherever it is written)"),
        (r.max_tool_calls >= 0 and r.tool_output_chars >= 1 and r.tool_workers >= 1, "rollout.max_tool_calls",
         "max_tool_calls >= 0, tool_output_chars >= 1 and tool_workers >= 1"),
        (r.tool_timeout_s > 0 and r.tool_memory_mb >= 16, "rollout.tool_timeout_s",
         "tool_timeout_s > 0 and tool_memory_mb >= 16"),
        (r.max_model_len >= 0 and r.vllm_cpu_kv_cache_gib > 0 and 0 < r.vllm_gpu_memory_utilization <= 1,
         "rollout.vllm_gpu_memory_utilization",
         "needs max_model_len >= 0, vllm_cpu_kv_cache_gib > 0 and 0 < vllm_gpu_memory_utilization <= 1"),
        (r.temperature >= 0 and 0 < r.top_p <= 1 and r.top_k >= 0, "rollout.temperature",
         "temperature >= 0, 0 < top_p <= 1, top_k >= 0"),
        (r.max_new_tokens >= 1 and r.batch_size >= 1, "rollout.max_new_tokens", "max_new_tokens and batch_size >= 1"),
        (w.overlong_buffer < r.max_new_tokens, "reward.overlong_buffer",
         f"must be below rollout.max_new_tokens ({r.max_new_tokens})"),
        *_reward_function_checks(w.functions),
        (w.timeout_s > 0 and w.workers >= 1, "reward.timeout_s", "timeout_s > 0 and workers >= 1"),
        *((getattr(g, k) >= 1, f"grpo.{k}", "must be >= 1") for k in ("steps", "prompts_per_step", "mu",
                                                                        "micro_batch_size")),
        (g.group_size >= 2, "grpo.group_size", "must be >= 2 (advantages compare completions of one prompt)"),
        (g.advantage in ESTIMATORS, "grpo.advantage", f"must be one of {sorted(ESTIMATORS)}"),
        (g.loss_aggregation in AGGREGATIONS, "grpo.loss_aggregation", f"must be one of {list(AGGREGATIONS)}"),
        (g.ratio_level in ("token", "sequence"), "grpo.ratio_level", "must be token or sequence"),
        (0 <= g.clip_low < 1 and g.clip_high >= 0, "grpo.clip_low", "0 <= clip_low < 1 and clip_high >= 0"),
        (g.kl_coef >= 0, "grpo.kl_coef", "must be >= 0"),
        (g.max_grad_norm > 0, "grpo.max_grad_norm", "must be > 0 (a number: the gradient clipping threshold)"),
        (g.eval_size >= 1, "grpo.eval_size", "must be >= 1 (held-out problems per evaluation; grpo.eval_every: 0 "
         "turns the evaluations during training off)"),
        (g.is_cap >= 0, "grpo.is_cap", "must be >= 0 (0: off)"),
        (g.is_mask in ("", "token", "sequence"), "grpo.is_mask", "must be token, sequence or empty (off)"),
        (r.max_lag == 0 or g.is_cap > 0 or g.is_mask, "rollout.max_lag",
         f"{r.max_lag} trains on samples {r.max_lag} step(s) stale: set grpo.is_cap (e.g. 2.0) or grpo.is_mask "
         "(token or sequence) so the loss corrects for the engine's older weights"),
        (len(g.is_band) == 2 and 0 <= g.is_band[0] < 1 < g.is_band[1], "grpo.is_band",
         "must be [low, high] with 0 <= low < 1 < high"),
        (g.logprob_chunk_tokens >= 0, "grpo.logprob_chunk_tokens", "must be >= 0 (0: full logits)"),
        (g.max_tokens_per_micro_batch >= 0, "grpo.max_tokens_per_micro_batch", "must be >= 0 (0: rows only)"),
        *_schedule_checks("grpo", g),
        (g.max_sampling_rounds >= 1 and g.keep_checkpoints >= 1, "grpo.max_sampling_rounds",
         "max_sampling_rounds and keep_checkpoints >= 1"),
        (g.max_nonfinite_steps >= 0, "grpo.max_nonfinite_steps", "must be >= 0"),
        *_protocol_checks("grpo", "eval_", g.eval_n, g.eval_temperature, g.eval_top_p),
        *_lora_checks("grpo.lora", g.lora),
    ]


def _lora_checks(section: str, lora: LoraConfig) -> list:
    return [
        (lora.rank >= 0, f"{section}.rank", "must be >= 0 (0: no LoRA)"),
        (lora.alpha > 0 and 0 <= lora.dropout < 1, f"{section}.alpha", "alpha > 0 and 0 <= dropout < 1"),
        (bool(lora.targets) or not lora.rank, f"{section}.targets", "must name at least one layer"),
    ]


def _pipeline_checks(config: Config) -> list:
    gen, flt, dis, ev = config.generate, config.filter, config.distill, config.eval
    stages = config.run.stages
    known = [s for s in stages if s in STAGES]
    return [
        (len(set(stages)) == len(stages), "run.stages", f"names a stage twice: {stages}"),
        (known == sorted(known, key=STAGES.index), "run.stages",
         f"{stages} are out of order; the pipeline's order is {list(STAGES)}"),
        (gen.n >= 1 and gen.problems >= 0 and gen.shard_size >= 1 and gen.max_new_tokens >= 0, "generate.n",
         "n >= 1, problems >= 0, shard_size >= 1, max_new_tokens >= 0"),
        (gen.temperature > 0 and 0 < gen.top_p <= 1, "generate.temperature",
         "temperature > 0 and 0 < top_p <= 1 (traces are sampled)"),
        (all(s in SUITE_NAMES for s in flt.decontaminate), "filter.decontaminate",
         f"unknown suite in {flt.decontaminate}; known: {sorted(SUITE_NAMES)}"),
        (flt.ngram >= 1 and 0 < flt.min_overlap <= 1 and flt.max_per_problem >= 0, "filter.ngram",
         "ngram >= 1, 0 < min_overlap <= 1, max_per_problem >= 0"),
        (dis.student_path or dis.student_preset in PRESET_NAMES, "distill.student_preset",
         f"{dis.student_preset!r} is not a preset {PRESET_NAMES} and distill.student_path is empty"),
        (0 <= dis.kd_coef <= 1 and dis.kd_temperature > 0, "distill.kd_coef",
         "0 <= kd_coef <= 1 and kd_temperature > 0"),
        *_sft_checks("distill.sft", dis.sft, config.model.max_position_embeddings, built=not dis.student_path),
        *_protocol_checks("eval", "", ev.n, ev.temperature, ev.top_p),
        (ev.size >= 0 and ev.max_new_tokens >= 0, "eval.size", "size >= 0 and max_new_tokens >= 0"),
    ]


def process_checks(config: Config, world: int, fsdp: bool) -> None:
    """The rules of a run on `world` > 1 processes (`accelerate launch`; `fsdp`: its config shards the learner)."""
    if config.run.stages != ["grpo"]:
        raise ConfigError(f"run.stages {config.run.stages}: only the grpo stage runs on several processes; run the "
                          "others in one process (before: model.path set to their final/ model; after: "
                          "--resume with run.stages)")
    g = config.grpo
    if (g.prompts_per_step * g.group_size) % world:
        raise ConfigError(f"grpo.prompts_per_step x grpo.group_size ({g.prompts_per_step * g.group_size}) must be "
                          f"a multiple of the number of processes ({world})")
    if config.rollout.max_lag:
        raise ConfigError(f"rollout.max_lag: {config.rollout.max_lag} runs on one process for now; with {world} "
                          "processes set rollout.max_lag: 0")
    if fsdp and config.grpo.lora.rank:
        raise ConfigError("grpo.lora.rank: LoRA adapters under FSDP are not supported; train them under DDP "
                          "(configs/accelerate/ddp.yaml), where every process holds the whole frozen model anyway")
    if not config.rollout.data_parallel:
        return
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


def _target(text: str) -> bool:
    """Does `text` look like module:function?"""
    module, sep, name = text.partition(":")
    return bool(sep and module and name)


# reward/<name> metrics the trainer writes itself; a plug-in's name must not take one
RESERVED_TERMS = ("mean", "correct_frac", "format_frac", "zero_std_frac", "infra_error_frac", "verifier_timeout_frac")


def _reward_function_checks(functions: list) -> list:
    """The rows of `reward.functions`: each names module:function, a finite weight and its own metric name."""
    labels = [f.label() for f in functions]
    rows = []
    for i, f in enumerate(functions):
        key = f"reward.functions[{i}]"
        rows += [(_target(f.fn), f"{key}.fn", f"must be module:function, got {f.fn!r}"),
                 (f.weight == f.weight and abs(f.weight) != float("inf"), f"{key}.weight", "must be a finite number"),
                 (labels[i].replace("_", "").isalnum() and labels[i] not in RESERVED_TERMS, f"{key}.name",
                  f"{labels[i]!r} must be letters, digits and _, and not one of {list(RESERVED_TERMS)}"),
                 (labels.count(labels[i]) == 1, f"{key}.name", f"{labels[i]!r} names two reward functions")]
    return rows
