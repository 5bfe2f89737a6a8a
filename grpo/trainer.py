"""The `grpo` stage: group sampling, verifier rewards, group-relative advantages, the clipped policy update.

One step, in order (each phase timed as perf/<phase>_s):
1. rollout     B prompts from the shuffled training set, G completions each from the engine, seeded by
               (run seed, step, round)
2. verify      the verifier judges every completion (math, or code in the sandbox: grpo/verify.py; worker
               pool, hard deadline); rewards combined by
               grpo/rewards.py. With dynamic sampling, groups whose rewards are all equal are dropped and
               phases 1-2 repeat with fresh prompts until B groups are kept or max_sampling_rounds is reached.
               A group holding an infrastructure failure (NaN reward) is always dropped.
3. advantages  (B, G) rewards -> (B, G) advantages (grpo/advantages.py, estimator grpo.advantage)
4. update      mu optimizer passes over the batch in micro-batches (grpo/learner.py), gradient clipping,
               AdamW, LR schedule (linear warmup, cosine to min_lr_ratio)
5. sync        the learner's weights to the engine (in place; nothing to copy when the engine shares them)
6. log         metrics.jsonl, samples.jsonl, progress bar; held-out evaluation every eval_every steps
7. checkpoint  every save_every steps, after the step's lines are written (a run killed while or after it
               saves resumes with every line the checkpoint counts); its seconds are reported, and counted
               in perf/step_s, on the next step's line
Checkpoints (checkpoints/grpo/step_<n>/, written to a temporary directory and renamed) hold the model,
tokenizer, optimizer, scheduler, RNG states, data position and elapsed time; `resume` continues from one
exactly as if the run had not stopped.
LoRA (grpo.lora.rank > 0, grpo/lora.py): only adapters train, the engine gets merged weights, the reference is
the network with its adapters off, and final/ holds the merged model.
FSDP (grpo/sharded.py; GPUs only, not yet run): every process gathers the full weights after each update into
the main process's unsharded copy, which the engine samples from, evaluation runs on and checkpoints save.
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from grpo import rewards as R
from grpo.advantages import advantages as compute_advantages
from grpo.config import GRPOConfig, RewardConfig, RolloutConfig, grpo_eval_tokens
from grpo.evaluate import EvalProtocol
from grpo.learner import Sample, update
from grpo.lora import (
    AdaptersOff,
    adapter_state_dict,
    base_state_dict,
    describe,
    load_adapter_state_dict,
    merged_state_dict,
    wrap,
)
from grpo.rollout import Group, SamplingParams
from grpo.runfiles import CheckpointError, append_jsonl, drop_after, log_heldout, prune_checkpoints, save_checkpoint
from grpo.sft import adamw, lr_factor
from grpo.sharded import full_optimizer_state, full_weights, is_sharded, load_full_optimizer_state

CHECKPOINTS = Path("checkpoints") / "grpo"  # under the run dir


class TrainingStopped(RuntimeError):
    """Training cannot go on (e.g. NaN/inf losses); the message says why and what is left on disk."""


class PromptSampler:
    """Shuffled passes over the training set; the state is (epoch, position), so a resumed run draws exactly
    the prompts the uninterrupted run would have."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch, self.position = size, seed, 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(self.size))
        random.Random(f"prompts:{self.seed}:{epoch}").shuffle(order)
        return order

    def take(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.position == self.size:
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._shuffled(self.epoch)
            out.append(self._order[self.position])
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._shuffled(self.epoch)


class Timer:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        yield
        self.seconds[phase] += time.perf_counter() - start


def score(groups: list[Group], golds: list[str], cfg: RewardConfig, *, max_new_tokens: int,
          think_prefix: bool) -> list[list[dict]]:
    """Judge every completion: per group, per completion {"reward", "accuracy", "format", "correct", "reason"}.
    A verifier that raises gives zero rewards with reason "verifier_error" (logged, never a crash)."""
    from grpo.verify import judge

    completions = [c for g in groups for c in g.completions]
    texts = [("<think>\n" if think_prefix else "") + c.text for c in completions]
    gold_per = [gold for g, gold in zip(groups, golds) for _ in g.completions]
    try:
        results = judge(texts, gold_per, timeout_s=cfg.timeout_s, workers=cfg.workers, partial=cfg.code_partial)
        accuracy, correct = [r.reward for r in results], [r.correct for r in results]
        reasons = [r.reason for r in results]
    except Exception as e:  # noqa: BLE001 -- the pool itself failed; the step goes on with zero rewards
        print(f"grpo: verifier failed on this batch ({type(e).__name__}: {e}); rewards are 0")
        accuracy, correct, reasons = [0.0] * len(texts), [False] * len(texts), ["verifier_error"] * len(texts)
    formats = [R.think_format(t) for t in texts]
    totals = R.combine(accuracy, formats, [len(c.token_ids) for c in completions],
                       accuracy_weight=cfg.accuracy_weight, format_weight=cfg.format_weight,
                       format_gate=cfg.format_gate, max_new_tokens=max_new_tokens,
                       overlong_buffer=cfg.overlong_buffer, overlong_factor=cfg.overlong_penalty)
    flat = [{"reward": t, "accuracy": a, "format": f, "correct": c, "reason": r}
            for t, a, f, c, r in zip(totals, accuracy, formats, correct, reasons)]
    n = len(groups[0].completions) if groups else 0
    return [flat[i * n : (i + 1) * n] for i in range(len(groups))]


def _rollout_and_verify(engine, sampler, examples, cfg: GRPOConfig, rollout: RolloutConfig, reward: RewardConfig,
                        *, step: int, seed: int, think_prefix: bool, timer: Timer, rank: int = 0, world: int = 1):
    """Phases 1-2, repeated under dynamic sampling. Returns (kept, seen): at most prompts_per_step
    (group, gold, scores) triples to train on, and every completion and score sampled, for the metrics.
    With data-parallel rollouts (`world` > 1) every process draws the same prompts and samples the `rank`-th
    contiguous share of them with its own seed."""
    sampling = SamplingParams(rollout.temperature, rollout.top_p, rollout.top_k, rollout.max_new_tokens)
    kept: list[tuple[Group, str, list[dict]]] = []
    seen = {"groups": 0, "zero_std": 0, "infra": 0, "rounds": 0, "completions": [], "scores": []}
    for round_ in range(cfg.max_sampling_rounds if cfg.dynamic_sampling else 1):
        seen["rounds"] += 1
        drawn, share = sampler.take(cfg.prompts_per_step), cfg.prompts_per_step // world
        picked = [examples[i] for i in drawn[rank * share : (rank + 1) * share]]
        with timer("rollout"):
            groups = engine.generate([e.prompt for e in picked], cfg.group_size, sampling,
                                     seed=(seed * 1_000_003 + step * 101 + round_ + rank * 7_919) & 0x7FFFFFFF)
        with timer("verify"):
            scores = score(groups, [e.answer for e in picked], reward, max_new_tokens=rollout.max_new_tokens,
                           think_prefix=think_prefix)
        rewards = torch.tensor([[s["reward"] for s in group] for group in scores])  # (B, G)
        informative = R.informative_groups(rewards)
        infra = torch.isnan(rewards).any(dim=1)
        seen["groups"] += len(groups)
        seen["zero_std"] += int((~informative & ~infra).sum())
        seen["infra"] += int(infra.sum())
        for g, e, s, keep_it, bad in zip(groups, picked, scores, informative.tolist(), infra.tolist()):
            seen["completions"].extend(g.completions)
            seen["scores"].extend(s)
            if not bad and (keep_it or not cfg.dynamic_sampling):
                kept.append((g, e.answer, s))
        if not cfg.dynamic_sampling or len(kept) >= cfg.prompts_per_step:
            break
    return kept[: cfg.prompts_per_step], seen


def _rollout_metrics(seen: dict, kept: list) -> dict:
    completions, scores = seen["completions"], seen["scores"]
    lengths = [len(c.token_ids) for c in completions]
    n = max(len(completions), 1)
    return {
        "reward/mean": sum(s["reward"] for s in scores if s["reward"] == s["reward"]) / n,
        "reward/correct_frac": sum(s["correct"] for s in scores) / n,
        "reward/format_frac": sum(s["format"] for s in scores) / n,
        "reward/zero_std_frac": seen["zero_std"] / max(seen["groups"], 1),
        "reward/infra_error_frac": seen["infra"] / max(seen["groups"], 1),
        "reward/verifier_timeout_frac": sum(s["reason"] in ("timeout", "memory", "verifier_error") for s in scores) / n,
        "rollout/len_mean": sum(lengths) / n,
        "rollout/len_max": max(lengths, default=0),
        "rollout/truncated_frac": sum(c.finish_reason == "length" for c in completions) / n,
        "rollout/groups_kept": len(kept),
        "rollout/rounds": seen["rounds"],
        "perf/generated_tokens": sum(lengths),
    }


def run_grpo(model, tokenizer, engine, train, heldout, cfg: GRPOConfig, rollout: RolloutConfig,
             reward: RewardConfig, run_dir: Path, *, seed: int, think_prefix: bool,
             resume_from: Path | None = None, start_accuracy: float | None = None, accelerator=None,
             full_model=None) -> dict:
    """Train `model` with GRPO on `train` examples; return {"heldout_accuracy", "seconds", "steps", ...}.
    `start_accuracy`: the held-out accuracy of the starting model when the caller already measured it on the
    same problems (the previous stage's); otherwise it is measured at step 0.
    With an `accelerator` of several processes (DDP), the main process holds the engine, samples, scores,
    logs, evaluates and checkpoints; the rollout batch is broadcast and every process trains on its share
    (grpo/learner.py); the others get `engine=None` and return {}. Under FSDP the main process also gets
    `full_model`, an unsharded copy of `model` the engine was built on (grpo/sharded.py)."""
    start = time.monotonic()
    is_main = accelerator is None or accelerator.is_main_process
    sharded = is_sharded(accelerator)
    view = full_model if full_model is not None else model  # the main process's whole model: sync, eval, save
    metrics_path, samples_path = run_dir / "metrics.jsonl", run_dir / "samples.jsonl"
    peft_model = _with_adapters(model, cfg, resume_from, is_main) if cfg.lora.rank else None
    optimizer = adamw(model, cfg)  # the adapters alone under LoRA (nothing else requires grad)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    sampler = PromptSampler(len(train), seed)
    ref_model = None
    if cfg.kl_coef > 0:  # under LoRA: the same network with its adapters off, no second copy
        ref_model = AdaptersOff(peft_model) if peft_model else copy.deepcopy(model).eval().requires_grad_(False)
    learner, learner_optimizer = model, optimizer
    multi = accelerator is not None and accelerator.num_processes > 1
    data_parallel = multi and rollout.data_parallel  # every process samples its share with its own engine
    if accelerator is not None:  # the scheduler drives the same param_groups through the wrapper
        learner, learner_optimizer = accelerator.prepare(model, optimizer)
    first_step, evals, elapsed_before, nonfinite = 0, [], 0.0, 0
    if resume_from is not None:
        state = torch.load(resume_from / "trainer_state.pt", weights_only=False, map_location="cpu")
        by_name = any(isinstance(k, str) for k in state["optimizer"]["state"])  # FSDP's layout: parameter names
        if by_name != sharded:
            raise CheckpointError(f"{resume_from}: its optimizer state was written "
                                  f"{'under FSDP' if by_name else 'by one process or DDP'}; resume it the same way")
        if sharded:
            load_full_optimizer_state(learner, optimizer, state["optimizer"])
        else:
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        if ref_model is not None and peft_model is None:
            ref_model.load_state_dict(torch.load(resume_from / "reference.pt", map_location="cpu"))
        first_step, evals, elapsed_before = state["step"], state["evals"], state["elapsed"]
        if is_main:
            for path in (metrics_path, samples_path):
                drop_after(path, "grpo", first_step)
            print(f"grpo: resumed from {resume_from} at step {first_step}")
    eval_tokens = grpo_eval_tokens(cfg, rollout)
    loss_kwargs = dict(clip_low=cfg.clip_low, clip_high=cfg.clip_high, level=cfg.ratio_level,
                       aggregation=cfg.loss_aggregation, kl_coef=cfg.kl_coef, is_cap=cfg.is_cap or None)

    protocol = eval_protocol(cfg, seed)

    def evaluate(step: int) -> float:  # the engine holds the learner's weights here (synced after each update)
        accuracy = log_heldout(view, tokenizer, heldout[: cfg.eval_size], run_dir, stage="grpo", step=step,
                               max_new_tokens=eval_tokens, think_prefix=think_prefix, n_samples=4,
                               protocol=protocol, engine=engine, split="heldout")
        evals.append({"step": step, "heldout_accuracy": accuracy})
        return accuracy

    def checkpoint(path: Path, step: int, optimizer_state: dict | None, *, with_reference: bool = True) -> None:
        state = {"step": step, "optimizer": optimizer.state_dict() if optimizer_state is None else optimizer_state,
                 "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(), "python_rng": random.getstate(),
                 "torch_rng": torch.get_rng_state(), "evals": evals,
                 "elapsed": elapsed_before + time.monotonic() - start}
        extra = {}
        if ref_model is not None and with_reference and peft_model is None:
            extra["reference"] = ref_model.state_dict()
        if peft_model is not None:  # the merged model to use, and what --resume rebuilds the adapted one from
            extra.update(lora_base=base_state_dict(peft_model), lora_adapter=adapter_state_dict(peft_model))
        save_checkpoint(path, view, tokenizer, state, extra or None,
                        weights=merged_state_dict(peft_model) if peft_model is not None else None)

    if first_step == 0 and is_main:
        if start_accuracy is None:
            print(f"grpo: held-out accuracy before training {evaluate(0):.3f}")
        else:
            evals.append({"step": 0, "heldout_accuracy": start_accuracy})
    progress = tqdm(range(first_step, cfg.steps), desc="grpo", unit="step", dynamic_ncols=True,
                    initial=first_step, total=cfg.steps, disable=not is_main)
    saving_s = 0.0  # the checkpoint written after the previous step's line, reported on this step's
    for step in progress:
        timer, step_start = Timer(), time.perf_counter() - saving_s
        if saving_s:
            timer.seconds["checkpoint"], saving_s = saving_s, 0.0
        samples = None
        if is_main or data_parallel:
            # 1-2. rollout and verify (repeated under dynamic sampling)
            kept, seen = _rollout_and_verify(
                engine, sampler, train, cfg, rollout, reward, step=step, seed=seed, think_prefix=think_prefix,
                timer=timer, **({"rank": accelerator.process_index, "world": accelerator.num_processes}
                                if data_parallel else {}))
            if data_parallel:
                with timer("rollout_gather"):
                    kept, seen = _gather_rollouts(kept, seen)
            # 3. advantages
            with timer("advantages"):
                rewards = torch.tensor([[s["reward"] for s in scores] for _, _, scores in kept]).reshape(len(kept), -1)
                adv = compute_advantages(rewards, cfg.advantage) if kept else rewards  # (B, G)
                samples = [Sample(g.prompt_ids, c.token_ids, c.logprobs, float(adv[i, j]),
                                  not (reward.mask_truncated and c.finish_reason == "length"))
                           for i, (g, _, _) in enumerate(kept) for j, c in enumerate(g.completions)]
        if multi and not data_parallel:
            with timer("broadcast"):
                samples = _broadcast(samples)
        # 4. update
        with timer("update"):
            stats = update(learner, learner_optimizer, ref_model, samples, mu=cfg.mu,
                           micro_batch_size=cfg.micro_batch_size, pad_id=tokenizer.pad_token_id,
                           temperature=rollout.temperature or 1.0, max_new_tokens=rollout.max_new_tokens,
                           max_grad_norm=cfg.max_grad_norm, loss_kwargs=loss_kwargs,
                           accelerator=accelerator) if samples else {}
            scheduler.step()
        skipped = int(stats.get("optim/skipped_nonfinite", 0))
        nonfinite = nonfinite + 1 if skipped else 0
        if skipped and is_main:
            progress.write(f"grpo step {step + 1}: non-finite loss or gradient norm, update skipped "
                           f"({nonfinite} in a row)")
        if cfg.max_nonfinite_steps and nonfinite >= cfg.max_nonfinite_steps:
            raise TrainingStopped(
                f"grpo: {nonfinite} steps in a row had a NaN/inf loss or gradient norm (step {step + 1}; "
                f"grpo.max_nonfinite_steps={cfg.max_nonfinite_steps}); stopped without saving. The newest checkpoint "
                f"under {run_dir / CHECKPOINTS} is intact; lower grpo.lr or check the data, then --resume")
        done = step + 1
        save_now = bool(cfg.save_every) and done % cfg.save_every == 0 and done < cfg.steps
        full_state = full_optimizer = None
        if sharded:  # collectives: every process takes part, the main process gets the whole
            with timer("gather"):
                full_state = full_weights(learner, accelerator)
                full_optimizer = full_optimizer_state(learner, optimizer) if save_now else None
        if not is_main and not data_parallel:
            continue
        # 5. sync (under data-parallel rollouts, every process its own engine)
        with timer("sync"):
            if full_state is not None:
                view.load_state_dict(full_state)
            if getattr(engine, "model", None) is not view:  # the transformers engine samples from `view` itself
                engine.load_weights(merged_state_dict(peft_model).items() if peft_model is not None
                                    else view.state_dict().items())
        if not is_main:
            continue
        # 6. log, evaluate
        with timer("log"):
            log_now = done % cfg.log_every == 0 or done == cfg.steps
            metrics = {"stage": "grpo", "step": done, **_rollout_metrics(seen, kept), **stats,
                       "optim/lr": scheduler.get_last_lr()[0]}
            if log_now:
                append_jsonl(samples_path, _samples(kept, done, cfg.samples_per_log))
            if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
                progress.write(f"grpo step {done}: held-out accuracy {evaluate(done):.3f}")
        step_seconds = time.perf_counter() - step_start
        metrics.update({f"perf/{phase}_s": round(s, 4) for phase, s in timer.seconds.items()})
        metrics["perf/step_s"] = round(step_seconds, 4)
        metrics["perf/tokens_per_s"] = metrics["perf/generated_tokens"] / max(timer.seconds["rollout"], 1e-9)
        if log_now:
            append_jsonl(metrics_path, [metrics])
        progress.set_postfix(reward=f"{metrics['reward/mean']:.2f}", correct=f"{metrics['reward/correct_frac']:.2f}",
                             len=f"{metrics['rollout/len_mean']:.0f}")
        # 7. checkpoint: after the step's lines, so that resuming from it never lacks one of them
        if save_now:
            saving_start = time.perf_counter()
            checkpoint(run_dir / CHECKPOINTS / f"step_{done}", done, full_optimizer)
            prune_checkpoints(run_dir / CHECKPOINTS, cfg.keep_checkpoints)
            saving_s = time.perf_counter() - saving_start
    progress.close()
    final_optimizer = full_optimizer_state(learner, optimizer) if sharded else None  # a collective, as above
    if not is_main:
        return {}
    accuracy = evaluate(cfg.steps)
    if peft_model is not None:
        peft_model.merge_and_unload()  # `model` becomes a plain model again, the adapters merged into it
        model.requires_grad_(True)  # PEFT froze the base; a later stage gets a model that trains
        peft_model = None
    final = run_dir / "final"
    checkpoint(final, cfg.steps, final_optimizer, with_reference=False)  # the model to use, not a resume point
    return {"heldout_accuracy": accuracy, "seconds": round(elapsed_before + time.monotonic() - start, 1),
            "steps": cfg.steps, "evals": evals, "final": str(final)}


def _with_adapters(model, cfg: GRPOConfig, resume_from: Path | None, verbose: bool):
    """LoRA adapters injected into `model` (grpo/lora.py); on resume, the frozen weights and the adapters come
    back from the checkpoint. Returns the PEFT wrapper (for its adapter switch and state)."""
    if resume_from is not None:
        model.load_state_dict(torch.load(resume_from / "lora_base.pt", map_location="cpu"))
    peft_model = wrap(model, cfg.lora)
    if resume_from is not None:
        load_adapter_state_dict(peft_model, torch.load(resume_from / "lora_adapter.pt", map_location="cpu"))
    if verbose:
        print(f"grpo: {describe(model, cfg.lora)}")
    return peft_model


def eval_protocol(cfg: GRPOConfig, seed: int) -> EvalProtocol:
    """The held-out protocol of a GRPO stage (also what `evals.run --run-dir` rebuilds)."""
    return EvalProtocol(n=cfg.eval_n, temperature=cfg.eval_temperature, top_p=cfg.eval_top_p, seed=seed)


def _gather_rollouts(kept: list, seen: dict) -> tuple[list, dict]:
    """Every process's (kept, seen), merged on every process in rank order: the whole step's batch."""
    from accelerate.utils import gather_object

    parts = gather_object([(kept, seen)])
    merged = {key: sum(part[key] for _, part in parts) for key in ("groups", "zero_std", "infra")}
    merged["rounds"] = max(part["rounds"] for _, part in parts)
    for key in ("completions", "scores"):
        merged[key] = [x for _, part in parts for x in part[key]]
    return [k for part, _ in parts for k in part], merged


def _broadcast(samples):
    """The main process's rollout batch, on every process."""
    from accelerate.utils import broadcast_object_list

    box = [samples]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _samples(kept, step: int, k: int) -> list[dict]:
    """The first completion of the first k groups, readable."""
    rows = []
    for g, gold, scores in kept[:k]:
        c, s = g.completions[0], scores[0]
        rows.append({"stage": "grpo", "step": step, "split": "train", "prompt": g.prompt, "completion": c.text,
                     "gold": gold, "reward": s["reward"], "reason": s["reason"], "finish_reason": c.finish_reason,
                     "group_rewards": [x["reward"] for x in scores]})
    return rows
