"""The report's pictures: one PNG per question a person asks of a run, every run overlaid in its own colour
(a sweep, seed repeats, with and without a flag). Noisy per-step metrics are drawn raw (faint) and smoothed
(`ema`); held-out accuracy is drawn as measured. Only `plot` touches matplotlib."""

from __future__ import annotations

from pathlib import Path

from grpo.report.runs import RunData, ema

# name -> (title, [(stage, metrics key, panel title)], y axis: "fraction", "log" or "")
FIGURES = {
    "heldout": ("Held-out accuracy during each training stage",
                [("sft", "eval/heldout_accuracy", "sft"), ("grpo", "eval/heldout_accuracy", "grpo"),
                 ("distill", "eval/heldout_accuracy", "distill (student)"),
                 ("distill_baseline", "eval/heldout_accuracy", "distill baseline")], "fraction"),
    "reward": ("GRPO reward per step",
               [("grpo", "reward/mean", "reward/mean"), ("grpo", "reward/correct_frac", "reward/correct_frac"),
                ("grpo", "reward/zero_std_frac", "reward/zero_std_frac (groups with no signal)")], "fraction"),
    "length": ("GRPO completions",
               [("grpo", "rollout/len_mean", "rollout/len_mean (tokens)"),
                ("grpo", "rollout/truncated_frac", "rollout/truncated_frac")], ""),
    "policy": ("GRPO policy update",
               [("grpo", "loss/kl", "loss/kl"), ("grpo", "policy/entropy", "policy/entropy"),
                ("grpo", "loss/clip_frac", "loss/clip_frac"), ("grpo", "optim/grad_norm", "optim/grad_norm")], ""),
    "logprob_gap": ("Engine vs learner log-probabilities of the sampled tokens",
                    [("grpo", "rollout/logprob_gap", "rollout/logprob_gap (mean |diff|)"),
                     ("grpo", "rollout/logprob_gap_max", "rollout/logprob_gap_max")], "log"),
    "offpolicy": ("Staleness and its correction: the engine/learner ratio exp(learner - engine) of the sampled tokens",
                  [("grpo", "async/lag", "async/lag (updates)"), ("grpo", "is/weight_mean", "is/weight_mean"),
                   ("grpo", "is/weight_max", "is/weight_max"), ("grpo", "is/capped_frac", "is/capped_frac")], ""),
    "tools": ("The interpreter in the rollouts (rollout.tools)",
              [("grpo", "tools/calls_mean", "tools/calls_mean (per completion)"),
               ("grpo", "tools/error_frac", "tools/error_frac (of calls)"),
               ("grpo", "tools/timeout_frac", "tools/timeout_frac (of calls)"),
               ("grpo", "perf/tool_s", "perf/tool_s (waiting on calls)")], ""),
    "throughput": ("Tokens per second",
                   [("sft", "perf/train_tokens_per_s", "sft: trained tokens/s"),
                    ("grpo", "perf/rollout_tokens_per_s", "grpo: generated tokens/s"),
                    ("grpo", "perf/learner_tokens_per_s", "grpo: learner tokens/s"),
                    ("distill", "perf/train_tokens_per_s", "distill: trained tokens/s")], ""),
    "loss": ("Supervised loss",
             [("sft", "loss/sft", "sft"), ("distill", "loss/sft", "distill (student)"),
              ("distill_baseline", "loss/sft", "distill baseline")], ""),
}
SMOOTH = 0.8  # ema weight for per-step metrics (held-out accuracy is not smoothed)
PHASES = ("rollout", "verify", "rollout_wait", "advantages", "update", "sync", "eval", "log",
          "checkpoint")  # GRPO's, in order (rollout and verify overlap the update under rollout.max_lag)


def plot(runs: list[RunData], out: Path) -> list[tuple[str, str, list[str]]]:
    """Draw every figure some run has data for into `out`; [(file name, title, the runs drawn in it)] in report
    order."""
    import matplotlib  # only when a report is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    made = []
    for name, (title, panels, yaxis) in FIGURES.items():
        panels = [p for p in panels if any(r.series(p[0], p[1])[0] for r in runs)]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
        drawn = []
        for ax, (stage, key, panel_title) in zip(axes[0], panels):
            for i, run in enumerate(runs):
                steps, values = run.series(stage, key)
                if not steps:
                    continue
                colour = colours[i % len(colours)]
                drawn += [run.name] if run.name not in drawn else []
                if key.startswith("eval/"):
                    ax.plot(steps, values, marker="o", color=colour, label=run.name)
                else:
                    if len(steps) > 5:
                        ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
                    ax.plot(steps, ema(values, SMOOTH if len(steps) > 5 else 0.0), color=colour, label=run.name)
            if all(v == 0 for r in runs for v in r.series(stage, key)[1]):  # e.g. loss/kl without a reference
                ax.text(0.5, 0.6, "0 at every step", transform=ax.transAxes, ha="center", color="0.4")
            ax.set(title=panel_title, xlabel=f"{stage} step")
            if yaxis == "fraction":
                ax.set_ylim(-0.02, 1.02)
            if yaxis == "log" and all(v > 0 for r in runs for v in r.series(stage, key)[1]):
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(title)
        made.append((_save(fig, out, name), title, drawn))
    made += _phases(runs, out, plt, colours)
    return made


def _phases(runs: list[RunData], out: Path, plt, colours) -> list[tuple[str, str, list[str]]]:
    """Seconds per GRPO step by phase, stacked: one panel per run."""
    timed = [r for r in runs if r.series("grpo", "perf/step_s")[0]]
    if not timed:
        return []
    cols = min(3, len(timed))
    rows = -(-len(timed) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols + 1.1, 3.4 * rows + 0.3), squeeze=False, sharey=True)
    for ax in axes.flat[len(timed):]:
        ax.set_visible(False)
    names = PHASES + ("other",)
    legend = {}
    for ax, run in zip(axes.flat, timed):
        steps, total = run.series("grpo", "perf/step_s")
        lagged = any(run.series("grpo", "perf/rollout_wait_s")[1])  # rollout.max_lag: sampling overlaps the update
        stacked, labels = [], []
        for phase in names:
            if lagged and phase in ("rollout", "verify"):
                continue  # on the sampling thread, beside the update: the wait for it is what the step pays
            if phase == "other":  # what no named phase covers (the rest of the loop, the progress bar)
                seconds = [t - sum(s[j] for s in stacked) for j, t in enumerate(total)]
            else:
                by_step = dict(zip(*run.series("grpo", f"perf/{phase}_s")))
                seconds = [by_step.get(s, 0.0) for s in steps]
            if any(v > 0 for v in seconds):
                stacked.append([max(v, 0.0) for v in seconds])
                labels.append(phase)
        colour = [colours[names.index(phase) % len(colours)] for phase in labels]  # the same phase, the same colour
        for handle in ax.stackplot(steps, stacked, labels=labels, colors=colour):
            legend.setdefault(handle.get_label(), handle)
        ax.set(title=run.name + (" (rollouts sampled ahead, beside the update)" if lagged else ""),
               xlabel="grpo step", ylabel="seconds")
        ax.grid(alpha=0.3)
    handles = [legend[name] for name in names if name in legend]
    labels = [name for name in names if name in legend]
    title = "Where each GRPO step's seconds go"
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1 - 1.1 / fig.get_figwidth(), 1))
    fig.legend(handles[::-1], labels[::-1], fontsize=8, loc="center right")  # top of the stack first
    return [(_save(fig, out, "time"), title, [r.name for r in timed])]


def _save(fig, out: Path, name: str) -> str:
    import matplotlib.pyplot as plt  # loaded by plot()

    if not fig.legends:  # a figure legend has its room made already
        fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=100)
    plt.close(fig)
    return f"{name}.png"
