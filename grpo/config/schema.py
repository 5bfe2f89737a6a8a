"""Typed configuration, the schema: every key of every section is a dataclass field here, with its default and a
one-line docstring. YAML keys map 1:1 to the fields (grpo/config/load.py reads them; grpo/config/checks.py refuses
impossible combinations). Components receive their own section, never the whole config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

STAGES = ("sft", "grpo", "generate", "filter", "distill", "eval")  # the DeepSeek-R1 pipeline, in its usual order
# the built-in generators (grpo/data/tasks.py): a number, or a code problem with tests, as the answer
BUILT_IN = ("arithmetic", "programs", "products")
TOOL_MARKERS = ("<python>", "</python>", "<output>", "</output>")  # rollout.tool_* defaults: open, close, result
PRESET_NAMES = ("micro", "tiny", "small")  # grpo/model.py PRESETS (kept here so config needs no torch import)
# the evaluation suites (grpo/data/suites.py SUITES; kept here so config does not import data; a test checks they agree)
# the trackers a run can report to (grpo/runs/sinks NAMES; kept here so config imports none of them)
TRACKERS = ("tensorboard", "wandb", "trackio")
SUITE_NAMES = ("math500", "aime24", "aime25", "gsm8k", "humaneval", "mbpp", "livecodebench")


class ConfigError(ValueError):
    """A configuration problem; the message names the key and where it came from."""


@dataclass
class RunConfig:
    name: str = "tiny"
    """run name; the run writes to runs/<name> unless `dir` is set"""
    dir: str = ""
    """where the run writes (config, metrics, samples, checkpoints, final model, summary)"""
    overwrite: bool = False
    """a new run (no --resume) whose directory already holds a run: false refuses it (continue that run with
    --resume, or pick another run.dir); true deletes the earlier run's files first (grpo/runs/files.py RUN_FILES;
    logs/, wandb/ and files of your own stay). Saved as false in the run's config.yaml"""
    seed: int = 0
    """seeds python, torch and the task generators"""
    stages: list[str] = field(default_factory=lambda: ["sft"])
    """the stages to run, in order"""
    threads: int = 0
    """torch CPU threads (0: torch's default)"""
    collective_timeout_s: int = 1800
    """several processes: longest wait for another process (a broadcast, a gradient reduction) before failing"""
    report_to: list[str] = field(default_factory=list)
    """trackers that get every metrics line, a few samples and the config, besides metrics.jsonl: any of
    tensorboard, wandb, trackio (each an extra: pip install 'grpo-reasoner[wandb]'); grpo/runs/sinks/"""
    project: str = ""
    """the W&B / Trackio project (empty: WANDB_PROJECT / TRACKIO_PROJECT, else grpo-reasoner)"""
    verbose: bool = False
    """show third-party start-up logs (vLLM's warnings, library deprecation notices) in the terminal; otherwise
    they go to <run dir>/logs/engine.log and only errors reach the terminal"""

    def path(self) -> Path:
        return Path(self.dir) if self.dir else Path("runs") / self.name


@dataclass
class ModelConfig:
    preset: str = "tiny"
    """a model built from scratch (micro ~0.30M, tiny ~1.4M, small ~19M parameters) when `path` is empty"""
    path: str = ""
    """a local directory or a hub id of a causal LM (ORG/NAME, e.g. Qwen/Qwen2.5-Math-1.5B; its tokenizer comes from
    the same place), resolved through the Hugging Face cache (HF_HOME, HF_HUB_OFFLINE): grpo/hub.py"""
    revision: str = ""
    """hub id only: the branch, tag or commit to load (empty: main)"""
    dtype: str = "float32"
    """float32 or bfloat16 for the learner's weights"""
    mixed_precision: str = "no"
    """no, or bf16: forward passes under bf16 autocast with weights and optimizer state in model.dtype (fp32)"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (saves memory on long sequences)"""
    max_position_embeddings: int = 512
    """context length of a model built from scratch"""


@dataclass
class TaskConfig:
    digits: int = 2
    """largest number of digits of an operand"""
    ops: int = 2
    """operations per problem (each is one step of the worked solution)"""
    operators: str = "+-"
    """the operators to draw from: any of + - *"""
    train_size: int = 20000
    """training problems generated"""
    heldout_size: int = 200
    """held-out problems (never equal to a training problem)"""
    solution_slips: float = 0.0
    """share of the training worked solutions (the cold-start data) with one careless slip: a step's result off by
    1 to 3, carried on to a wrong boxed answer. Arithmetic task only (other sources ignore it); gold answers stay
    right"""
    sign_errors: float = 0.0
    """share of the negative step results in the training worked solutions written without their minus sign (a
    systematic misconception, carried on). Arithmetic task only (other sources ignore it); gold answers stay
    right"""
    answer_sign_drops: float = 0.0
    """share of the training worked solutions with a negative answer whose boxed answer is copied without its minus
    sign from a right last line (a transcription error; the think lines stay right). Arithmetic task only (other
    sources ignore it)"""
    answer_char_drops: float = 0.0
    """reasoning_gym only (other sources ignore it): share of the training cold-start solutions whose boxed answer is
    copied without its last character (a transcription error; the gold answer, and so the reward, stay right)"""
    tool_solutions: float = 0.0
    """products task: share of the training worked solutions that compute the product with the interpreter (in
    rollout.tools' default markers); the rest write it down in one line"""


@dataclass
class DataConfig:
    source: str = "arithmetic"
    """arithmetic, programs or products (built-in generators: grpo/data/tasks.py), jsonl, parquet, hub (a datasets name), or
    reasoning_gym (a generator of the reasoning-gym package: `name`, `options`; grpo/data/gym.py)"""
    name: str = ""
    """reasoning_gym only: the generator (e.g. spell_backward, chain_sum); task.train_size / task.heldout_size
    problems are drawn, held out by a hash of the question (data.heldout_percent)"""
    options: dict = field(default_factory=dict)
    """reasoning_gym only: the generator's options (e.g. {min_word_len: 3, max_word_len: 6})"""
    path: str = ""
    """file path, or the hub dataset id (ORG/NAME), loaded by `datasets` (its cache; offline, the hub cache's files)"""
    revision: str = ""
    """hub dataset only: the branch, tag or commit (empty: main)"""
    subset: str = ""
    """hub dataset configuration name"""
    split: str = "train"
    """hub split"""
    prompt_field: str = "problem"
    """field holding the question"""
    answer_field: str = "answer"
    """field holding the gold answer"""
    answer_format: str = "plain"
    """plain, gsm8k (the number after ####) or boxed (the last \\boxed{} of the field)"""
    solution_field: str = ""
    """field with a worked solution used as the SFT target (empty: the built-in tasks' own)"""
    max_rows: int = 0
    """read at most this many rows (0: all)"""
    verifier: str = "math"
    """what judges a row's completions: math (against answer_field), code (the row is a LiveCodeBench / HumanEval /
    MBPP problem with its tests, run in the sandbox), reasoning_gym (the row is a reasoning-gym entry, scored by its
    generator; what a reasoning_gym source sets) or module:function (fn(completion, row) -> reward in [0, 1],
    correct at 1); a row's own `verifier` field overrides it. Built-in tasks set their own"""
    heldout_percent: int = 10
    """file and hub data without a heldout section: this share of the rows (by a hash of the question, so the same
    rows whatever the order or seed) is held out, never trained on"""


@dataclass
class PromptConfig:
    template: str = "r1"
    """plain (the question alone), chat (the tokenizer's chat template) or r1 (chat + the R1 instruction)"""
    think_prefix: bool = True
    """start the completion with "<think>\\n" (part of the prompt, so the model continues its reasoning)"""


LINEAR_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraConfig:
    rank: int = 0
    """adapter rank r; 0 trains every weight (no LoRA). See grpo/learner/lora.py"""
    alpha: float = 16.0
    """scale: the weight update is (alpha / rank) B A"""
    dropout: float = 0.0
    """dropout on the adapters' input (0 keeps the learner's policy equal to the engine's)"""
    targets: list[str] = field(default_factory=lambda: list(LINEAR_PROJECTIONS))
    """names of the linear layers that get adapters (Qwen2 / Llama names by default)"""


@dataclass
class SFTConfig:
    steps: int = 600
    """optimizer steps"""
    batch_size: int = 32
    """sequences per micro-batch"""
    max_examples: int = 0
    """train on the first this many training records only (0: all). R1's cold start is small (thousands of
    traces) while RL and rejection sampling draw on many more prompts: they still use the whole training set"""
    grad_accum: int = 1
    """micro-batches per optimizer step"""
    max_tokens_per_micro_batch: int = 0
    """>0: each of the grad_accum batches is cut into micro-batches of at most this many padded tokens (rows x the
    longest row), so long sequences do not blow the memory (the update does not change); 0: the batch whole"""
    lr: float = 3e-3
    """peak learning rate (AdamW)"""
    warmup_steps: int = 30
    """linear warmup steps, then cosine decay to min_lr_ratio * lr"""
    min_lr_ratio: float = 0.1
    """final learning rate as a fraction of lr"""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to norms and biases)"""
    adam_beta2: float = 0.95
    """AdamW second-moment decay"""
    max_grad_norm: float = 1.0
    """gradient clipping threshold"""
    max_length: int = 256
    """longest training sequence in tokens (longer ones are counted and dropped)"""
    eval_every: int = 200
    """held-out accuracy every this many steps (0: only at the end)"""
    eval_size: int = 200
    """held-out problems per evaluation"""
    max_new_tokens: int = 160
    """generation budget per held-out problem"""
    save_every: int = 0
    """checkpoint every this many steps (0: only the final model)"""
    log_every: int = 10
    """metrics.jsonl every this many steps"""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """low-rank adapters instead of full fine-tuning (lora.rank > 0): only they train, the saved models are
    merged (grpo/learner/lora.py). For a pretrained model (model.path, distill.student_path); a preset built from
    scratch has nothing worth freezing"""


@dataclass
class RolloutConfig:
    engine: str = "auto"
    """auto, hf (transformers), vllm, or server (a `python -m grpo.serve` vLLM server at server_url); auto takes
    vllm when it imports (the cpu or gpu extra), else hf"""
    temperature: float = 1.0
    """sampling temperature (the learner divides its logits by the same value)"""
    top_p: float = 1.0
    """nucleus sampling mass (1: off)"""
    top_k: int = 0
    """sample among the k most likely tokens (0: off)"""
    max_new_tokens: int = 256
    """generation budget per completion (L_max); a completion that reaches it is truncated"""
    batch_size: int = 256
    """sequences per generation forward pass of the transformers engine"""
    max_model_len: int = 0
    """vLLM: longest prompt + completion in tokens (0: the model's max_position_embeddings)"""
    vllm_cpu_kv_cache_gib: float = 1.0
    """vLLM on CPU: KV cache memory, reserved when the engine starts"""
    vllm_gpu_memory_utilization: float = 0.3
    """vLLM on GPU: share of device memory the engine may take (the learner needs the rest)"""
    vllm_sleep: bool = False
    """vLLM on GPU: release the engine's weights and KV cache between rollouts so the learner has the device"""
    vllm_enforce_eager: bool = True
    """vLLM: no torch.compile or CUDA graphs (starts in seconds; turn off for long GPU runs)"""
    vllm_start_timeout_s: float = 600.0
    """vLLM: longest wait for the engine to start; one still starting then is refused with where it waits"""
    data_parallel: bool = False
    """under `accelerate launch` (DDP): every process runs its own engine and samples its contiguous share of the
    step's prompts; the scored groups are then gathered so every process holds the whole batch. Off: the main
    process samples for all. Needs grpo.prompts_per_step divisible by the number of processes; not with
    grpo.dynamic_sampling or FSDP"""
    server_url: str = ""
    """engine server: the vLLM server's http://HOST:PORT, as `python -m grpo.serve` prints it"""
    server_timeout_s: float = 1800.0
    """engine server: longest wait for the server (an answer, joining the weight-sync group, a sync) before failing;
    one rollout (one generate call) must finish within it too"""
    max_lag: int = 0
    """asynchronous rollouts: the learner trains step n on a batch the engine sampled with the weights of step
    n - max_lag, while it samples the next ones (needs rollout.engine: server and grpo.is_cap or grpo.is_mask; one
    process); 0: synchronous. See grpo/stages/ahead.py"""
    tools: str = "none"
    """none, or python: the sandbox is the model's Python interpreter during rollouts and evaluation (multi-turn;
    grpo/rollout/tools.py). A code block between tool_open and tool_close runs, and its output comes back between
    tool_result_open and tool_result_close; tool output never enters the loss and the verifier reads only the
    model's own text"""
    tool_open: str = "<python>"
    """tools: the marker that opens a code block"""
    tool_close: str = "</python>"
    """tools: the marker that closes a code block (generation pauses there and the block runs)"""
    tool_result_open: str = "<output>"
    """tools: the marker the interpreter's result starts with"""
    tool_result_close: str = "</output>"
    """tools: the marker the interpreter's result ends with"""
    max_tool_calls: int = 4
    """tools: blocks run per completion; a later block gets a refusal as its result"""
    tool_output_chars: int = 512
    """tools: characters of a result kept (the rest is cut, with a marker saying how many)"""
    tool_timeout_s: float = 2.0
    """tools: deadline of one call (an error text for the model when it runs past it)"""
    tool_memory_mb: int = 512
    """tools: address-space cap of one call"""
    tool_workers: int = 2
    """tools: sandbox calls at a time"""
    vllm_tensor_parallel_size: int = 1
    """vLLM tensor parallel: the engine's model split over this many worker processes (GPUs; on CPU, cores: set
    VLLM_CPU_OMP_THREADS_BIND, or the process's cores are split evenly). Sampling then runs in the workers,
    which the per-step seed does not reach: a resumed run does not sample what the uninterrupted one would"""


@dataclass
class RewardFunction:
    fn: str = ""
    """module:function, called as fn(completion, row) -> float | None in the verifier's worker pool, under
    reward.timeout_s (verifiers/plugins.py); module must be importable (on PYTHONPATH, or in the working directory)"""
    weight: float = 1.0
    """its weight in the total reward"""
    name: str = ""
    """its metric, reward/<name> (empty: the function's name)"""

    def label(self) -> str:
        return self.name or self.fn.rpartition(":")[2].rpartition(".")[2]


@dataclass
class RewardConfig:
    accuracy_weight: float = 1.0
    """weight of the verifier's accuracy reward (1 correct, 0 otherwise)"""
    format_weight: float = 0.0
    """weight of the format reward (1 for <think>...</think> then a non-empty answer)"""
    format_gate: bool = False
    """accuracy counts only when the format is right"""
    overlong_buffer: int = 0
    """DAPO soft overlong penalty: the last this many tokens of max_new_tokens cost up to overlong_penalty (0: off)"""
    overlong_penalty: float = 1.0
    """largest overlong penalty (reached at max_new_tokens)"""
    mask_truncated: bool = False
    """completions cut at max_new_tokens are left out of the loss (DAPO's overlong filtering)"""
    timeout_s: float = 5.0
    """verifier deadline per completion (a timeout is a zero reward, logged)"""
    code_partial: bool = False
    """code tasks: the accuracy reward is the fraction of tests passed instead of 1 only when all pass; reasoning-gym
    tasks: the generator's partial credit (a denser signal for a weak cold start; held-out accuracy still counts
    full passes / full scores only)"""
    workers: int = 2
    """verifier worker processes"""
    functions: list[RewardFunction] = field(default_factory=list)
    """reward plug-ins added to the total: [{fn: "module:function", weight: 1.0, name: optional}, ...]"""


@dataclass
class GRPOConfig:
    steps: int = 200
    """optimizer steps (each on one batch of prompts_per_step groups, times mu passes)"""
    prompts_per_step: int = 16
    """prompts per step (B); each gets group_size completions"""
    group_size: int = 8
    """completions per prompt (G)"""
    mu: int = 1
    """optimizer passes over each rollout batch (old logprobs fixed before the first pass)"""
    micro_batch_size: int = 64
    """completions per forward/backward (memory knob; the update does not depend on it)"""
    max_tokens_per_micro_batch: int = 0
    """>0: a micro-batch also holds at most this many padded tokens (rows x its longest row), so short completions
    share one and long ones are split off (memory knob; every process runs the same number; the update does not
    depend on it); 0: micro_batch_size rows only"""
    logprob_chunk_tokens: int = 0
    """>0: the learner applies the output head to this many positions at a time, recomputing each chunk's logits
    in the backward pass, so a micro-batch's (rows, length, vocabulary) logits never exist whole (memory knob for
    large vocabularies, e.g. 2048 with Qwen2.5's 151,936 tokens; exact gradient); 0: full logits"""
    pack: bool = False
    """true: padding-free packing; short completions fill the padding of the rows the long ones start, each
    attending only to itself (restarting position ids), and micro_batch_size counts packed rows (the update does
    not depend on it; grpo/learner/packing.py); false: one completion per row, right-padded"""
    skip_zero_advantage: bool = True
    """true: completions with advantage 0 (every reward of their group equal) are not run through the learner, as
    their policy-loss gradient is exactly 0 (the same update, less compute; entropy, logprob gap and clip fraction
    are then measured on the completions that train; no effect with kl_coef > 0); false: every completion is run"""
    lr: float = 1.0e-6
    """peak learning rate (AdamW)"""
    warmup_steps: int = 0
    """linear warmup steps, then cosine decay to min_lr_ratio * lr"""
    min_lr_ratio: float = 1.0
    """final learning rate as a fraction of lr (1: constant after warmup)"""
    weight_decay: float = 0.0
    """AdamW weight decay (not applied to norms and biases)"""
    adam_beta2: float = 0.999
    """AdamW second-moment decay (slow: policy gradients are noisy and sparse)"""
    max_grad_norm: float = 1.0
    """gradient clipping threshold"""
    advantage: str = "group"
    """group (GRPO), batch (batch std), none (Dr. GRPO) or rloo: see grpo/algo/advantages.py"""
    loss_aggregation: str = "token-mean"
    """token-mean (DAPO), seq-mean-token-mean (GRPO) or constant (Dr. GRPO): see grpo/algo/loss.py"""
    ratio_level: str = "token"
    """token (PPO/GRPO) or sequence (GSPO) importance ratio"""
    clip_low: float = 0.2
    """lower clip range: ratio >= 1 - clip_low"""
    clip_high: float = 0.28
    """upper clip range: ratio <= 1 + clip_high (DAPO's clip-higher; equal to clip_low for plain PPO)"""
    kl_coef: float = 0.0
    """k3 KL penalty to the frozen starting model (0: no reference model is kept)"""
    is_cap: float = 0.0
    """truncated importance sampling between engine and learner logprobs, capped at this ratio (0: off)"""
    is_mask: str = ""
    """token or sequence: tokens (IcePop) or whole completions (masked importance sampling) whose engine/learner
    ratio leaves is_band add nothing to the loss ("": off); see grpo/algo/loss.py"""
    is_band: list[float] = field(default_factory=lambda: [0.5, 2.0])
    """[low, high]: the ratio band is_mask keeps"""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: drop groups whose rewards are all equal and sample more prompts to refill"""
    max_sampling_rounds: int = 3
    """most rollout rounds per step when dynamic_sampling refills the batch"""
    eval_every: int = 50
    """held-out accuracy every this many steps (0: only at the end)"""
    eval_size: int = 200
    """held-out problems per evaluation"""
    eval_max_new_tokens: int = 0
    """generation budget for held-out evaluation (0: rollout.max_new_tokens)"""
    eval_n: int = 1
    """held-out samples per problem; the accuracy is pass@1 averaged over them (pass@k, maj@k logged too)"""
    eval_temperature: float = 0.0
    """held-out decoding: 0 greedy (transformers), > 0 sampled through the rollout engine (R1 protocol: 0.6)"""
    eval_top_p: float = 1.0
    """held-out nucleus mass when sampled (R1 protocol: 0.95)"""
    save_every: int = 0
    """checkpoint (model, optimizer, scheduler, RNG, data position) every this many steps (0: final only)"""
    keep_checkpoints: int = 2
    """most recent checkpoints kept"""
    max_nonfinite_steps: int = 3
    """stop after this many steps in a row whose loss or gradient norm was NaN/inf (each is skipped; 0: never)"""
    log_every: int = 1
    """metrics.jsonl every this many steps"""
    samples_per_log: int = 4
    """completions written to samples.jsonl at each logged step"""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """low-rank adapters instead of full fine-tuning (grpo.lora.rank > 0): see grpo/learner/lora.py"""


@dataclass
class GenerateConfig:
    n: int = 4
    """traces sampled per problem from the teacher"""
    problems: int = 0
    """training problems to sample from, the first of the training set (0: all)"""
    temperature: float = 0.6
    """sampling temperature (R1's recommended 0.6)"""
    top_p: float = 0.95
    """nucleus sampling mass"""
    max_new_tokens: int = 0
    """generation budget per trace (0: rollout.max_new_tokens); a trace that reaches it is truncated"""
    shard_size: int = 256
    """problems per shard file; a resumed stage keeps finished shards and redoes at most one"""


@dataclass
class FilterConfig:
    require_think: bool = True
    """drop traces that are not one <think>...</think> block followed by a non-empty answer"""
    max_per_problem: int = 0
    """keep at most this many traces of one problem (0: all that pass)"""
    decontaminate: list[str] = field(
        default_factory=lambda: ["math500", "aime24", "aime25", "gsm8k", "humaneval", "mbpp", "livecodebench"])
    """evaluation suites whose problems training problems must not copy (n-gram overlap); [] for none"""
    data_dir: str = ""
    """where the suites' data lives (empty: $GRPO_EVAL_DATA, else ../shared/data); a missing suite file is skipped
    with a warning in the report"""
    ngram: int = 8
    """n-gram length for decontamination (open-r1 uses 8)"""
    min_overlap: float = 0.5
    """share of an evaluation statement's n-grams a training problem must contain to count as a copy"""


@dataclass
class DistillConfig:
    student_preset: str = "micro"
    """the student, built from scratch (a preset) when student_path is empty"""
    student_path: str = ""
    """a local directory or hub id of the student model (its own tokenizer)"""
    student_revision: str = ""
    """hub id only: the student's branch, tag or commit (empty: main)"""
    kd_coef: float = 0.0
    """share of the forward KL to the teacher's token distribution in the loss, 0..1 (logit distillation; 0: plain
    SFT). Needs the teacher's and the student's tokenizers to be the same"""
    kd_temperature: float = 1.0
    """softmax temperature of both distributions in the KL term"""
    baseline: bool = True
    """also train the same student on the cold-start (sft) data with the same settings: its held-out accuracy
    is the summary's baseline_heldout_accuracy"""
    sft: SFTConfig = field(default_factory=SFTConfig)
    """the student's SFT settings (the cold start's trainer and keys)"""


@dataclass
class EvalConfig:
    n: int = 1
    """samples per held-out problem (pass@1 averaged over them; pass@k and maj@k reported)"""
    temperature: float = 0.0
    """0 greedy; > 0 sampled through the rollout engine (R1 protocol: 0.6)"""
    top_p: float = 1.0
    """nucleus mass when sampled"""
    max_new_tokens: int = 0
    """generation budget (0: rollout.max_new_tokens)"""
    size: int = 0
    """held-out problems evaluated (0: all)"""


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    heldout: DataConfig = field(default_factory=lambda: DataConfig(source=""))
    """held-out data; source "" means the held-out split of `data` (built-in tasks) or none"""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
