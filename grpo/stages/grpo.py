"""The `grpo` stage: group sampling, verifier rewards, group-relative advantages, the clipped policy update.

One step, in order (each phase timed as perf/<phase>_s):
1. rollout     B prompts from the shuffled training set, G completions each from the engine, seeded by
               (run seed, step, round)                                                  grpo/stages/rollouts.py
               with rollout.max_lag k > 0, the batch was sampled k steps earlier on a thread while the learner
               trained, with the weights of step n - k (the sync waits for that thread)  grpo/stages/ahead.py
2. verify      every completion judged by the run's verifier (math, or code in the sandbox; worker pools, hard
               deadlines), rewards combined (grpo/algo/rewards.py); with dynamic sampling, all-equal groups
               are dropped and phases 1-2 repeat with fresh prompts; several processes: the batch made whole
               on each (`broadcast`, or `rollout_gather` for data-parallel rollouts)   grpo/stages/rollouts.py
3. advantages  (B, G) rewards -> (B, G) advantages, estimator grpo.advantage           grpo/algo/advantages.py
4. update      mu optimizer passes over the batch in micro-batches, gradient clipping, AdamW, LR schedule;
               a NaN/inf update is skipped, grpo.max_nonfinite_steps in a row stop the run
                                                                      grpo/learner/policy.py, update.py
5. sync        the learner's weights to the engine (FSDP: gathered first, `gather`)    grpo/learner/policy.py
6. eval        held-out accuracy every eval_every steps                                grpo/stages/evaluate.py
7. log         the metrics.jsonl line, samples.jsonl, the progress bar                 grpo/runs/log.py
8. checkpoint  every save_every steps, after the step's lines are written (a run killed while or after it saves
               resumes with every line the checkpoint counts); its seconds are reported, and counted in
               perf/step_s, on the next step's line                                    grpo/runs/checkpoint.py
The objects the phases call own all the state: the policy (model, optimizer, schedule, reference, LoRA, sharding),
the rollouts (engine, prompt sampler), the evaluator, the checkpointer and the run log. On several processes each
does nothing where its process has nothing to do (grpo/learner/team.py), so the loop is the same on all.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from grpo.config import GRPOConfig, RewardConfig, RolloutConfig
from grpo.learner.policy import NonFinite, Policy
from grpo.learner.team import ONE, Team
from grpo.learner.update import UpdateSettings
from grpo.runs.checkpoint import Checkpointer
from grpo.runs.log import RunLog
from grpo.runs.sinks import Sinks
from grpo.stages.ahead import Ahead
from grpo.stages.evaluate import EvalPlan, Evaluator
from grpo.stages.judge import Judge
from grpo.stages.rollouts import Rollouts

CHECKPOINTS = Path("checkpoints") / "grpo"  # under the run dir


def run_grpo(model, tokenizer, engine, train, heldout, cfg: GRPOConfig, rollout: RolloutConfig,
             reward: RewardConfig, run_dir: Path, *, seed: int, judge: Judge, plan: EvalPlan,
             resume_from: Path | None = None, start_accuracy: float | None = None, team: Team = ONE,
             full_model=None, sinks: Sinks | None = None) -> dict:
    """Train `model` with GRPO on `train` examples; return {"heldout_accuracy", "seconds", "steps", "evals",
    "final"} ({} on processes other than the main one). `judge`: the run's verifier settings (rewards and held-out
    accuracy); `plan`: the stage's held-out protocol; `start_accuracy`: the starting model's held-out accuracy when
    the caller measured it under the same plan (else measured at step 0). `engine`: None on a process that does
    not sample; under FSDP the main process's engine samples from `full_model`, an unsharded copy of `model`.
    `sinks`: the run's trackers, which get every metrics line too."""
    start = time.monotonic()
    log = RunLog(run_dir, "grpo", total=cfg.steps, every=cfg.log_every, timed=True, enabled=team.is_main,
                 show={"reward": ("reward/mean", ".2f"), "correct": ("reward/correct_frac", ".2f"),
                       "len": ("rollout/len_mean", ".0f"), "gen_tok/s": ("perf/rollout_tokens_per_s", ".0f"),
                       "learn_tok/s": ("perf/learner_tokens_per_s", ".0f")},
                 sinks=sinks)
    policy = Policy(model, cfg, stage="grpo", section="grpo.lora", team=team, reference=cfg.kl_coef > 0,
                    full_model=full_model, resume=resume_from, say=log.say,
                    updates=UpdateSettings.of(cfg, rollout, tokenizer.pad_token_id),
                    guard=NonFinite(cfg.max_nonfinite_steps, f"The newest checkpoint under {run_dir / CHECKPOINTS} "
                                    "is intact; lower grpo.lr or check the data, then --resume"))
    rollouts = Rollouts(engine, train, cfg, rollout, reward, judge=replace(judge, partial=reward.code_partial),
                        seed=seed, team=team, say=log.say)
    source = Ahead(rollouts, rollout.max_lag, rollout.server_timeout_s, total=cfg.steps)
    evaluator = Evaluator(policy.view, tokenizer, heldout, plan, judge, log=log, engine=engine, every=cfg.eval_every,
                          total=cfg.steps, n_samples=4)
    ckpt = Checkpointer(run_dir / CHECKPOINTS, tokenizer, every=cfg.save_every, total=cfg.steps,
                        keep=cfg.keep_checkpoints, team=team)
    first_step, elapsed_before = 0, 0.0
    if resume_from is not None:
        state = ckpt.restore(resume_from, policy, log)
        rollouts.sampler.load_state_dict(state["sampler"])
        source.load(state.get("ahead"))
        first_step, evaluator.evals, elapsed_before = state["step"], state["evals"], state["elapsed"]

    def progress() -> dict:  # the stage's own part of a checkpoint
        return {"sampler": rollouts.sampler.state_dict(), "ahead": source.state(), "evals": evaluator.evals,
                "elapsed": elapsed_before + time.monotonic() - start}

    evaluator.start(first_step, known=start_accuracy)
    for step in log.steps(first_step):
        timer, done = log.timer, step + 1
        batch = source.take(step, timer)                                         # 1-2. rollout, verify
        source.ahead(step)                                                       #   max_lag: next ones, on a thread
        with timer("advantages"):                                                # 3. advantages
            samples = batch.samples(cfg.advantage, reward.mask_truncated)
        with timer("update"):                                                    # 4. update
            stats = policy.update(samples, step)
        source.wait(timer)                                                       #   max_lag: the engine idle again
        policy.sync(rollouts.engine, timer)                                      # 5. sync
        evaluator.maybe(done, timer)                                             # 6. eval
        metrics = {**batch.metrics(timer.seconds["rollout"]), **stats, "optim/lr": policy.lr,
                   "perf/learner_tokens_per_s": stats["perf/learner_tokens"] / max(timer.seconds["update"], 1e-9)}
        log.step(done, metrics, batch.readable(done, cfg.samples_per_log))        # 7. log
        log.carry("checkpoint", ckpt.maybe_save(done, policy, progress))       # 8. checkpoint
    accuracy = evaluator.final(cfg.steps)
    policy.finish()
    final = run_dir / "final"
    result = {"heldout_accuracy": accuracy, "seconds": round(elapsed_before + time.monotonic() - start, 1),
              "steps": cfg.steps, "evals": evaluator.evals, "final": str(final)}
    ckpt.save(final, cfg.steps, policy, {**progress(), "result": result}, final=True)  # the model to use
    return result if team.is_main else {}
