"""`python -m evals.run`: score a model, or completions from anywhere, on evaluation environments.

    python -m evals.run --suite math500 --model PATH --output-dir DIR [--preset r1|greedy] [--n N] ...
    python -m evals.run --suite humaneval --completions FILE --output-dir DIR
    python -m evals.run --suite rg:spell_backward --options '{"max_word_len": 6}' --model PATH --output-dir DIR
        [--template plain]      # the question alone, for a model trained with prompt.template plain
    python -m evals.run --run-dir runs/tiny --output-dir DIR      # a run's own held-out set, as training scored it

A suite is an environment (grpo/data/environments.py): a built-in suite (MATH-500, AIME 24/25, GSM8K, HumanEval,
MBPP, LiveCodeBench; local files or the hub, grpo/data/suites.py), `rg:<name>`, the held-out problems of a
reasoning-gym generator (the same ones a run on that generator validates on), or `module:function`, a user's factory
returning an Environment. All are judged by `verifiers.route.judge`, as training judges them.
`--completions FILE` grades precomputed completions: jsonl lines with `id` (the dataset's own id, see
grpo/data/suites.py) and `completion`, several lines per id for n > 1. Every suite writes
`DIR/<suite>/results.json` (`suite`, `n`, `metrics` with `pass@1`, the protocol and every parameter),
`DIR/<suite>/samples.jsonl` (each sample with its verdict) and `DIR/<suite>/report.md` (`<suite>` with what a folder
name cannot hold replaced: `rg:spell_backward` -> `rg_spell_backward`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from evals.heldout import evaluate_run
from grpo.algo.passk import suite_metrics
from grpo.config import RolloutConfig
from grpo.data import environments
from grpo.data.environments import Environment
from grpo.data.jsonl import DataError, read_jsonl
from grpo.config import PromptConfig
from grpo.data.prompts import THINK_PREFIX, opens_think, render_prompt, with_think_prefix
from grpo.data.suites import SUITES, data_dir
from grpo.hub import NotFound
from grpo.model import load
from grpo.rollout import EngineError, EngineUnavailable, SamplingParams, make_engine
from grpo.runs import console
from grpo.stages.evaluate import vote_key
from verifiers.route import judge

PRESETS = {  # DeepSeek-R1's protocol (README "Usage Recommendations"), and greedy decoding
    "r1": {"temperature": 0.6, "top_p": 0.95, "think_prefix": True},
    "greedy": {"temperature": 0.0, "top_p": 1.0, "think_prefix": False, "n": 1},
}


class Refused(ValueError):
    """Nothing to evaluate with these arguments (exit code 2 with the message)."""


def read_completions(path: Path, ids: set[str]) -> dict[str, list[str]]:
    """id -> completions, in file order; unknown ids and malformed lines are errors naming the line."""
    out: dict[str, list[str]] = defaultdict(list)
    for where, row in read_jsonl(path):
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("completion"), str):
            raise ValueError(f"{where}: needs an 'id' and a string 'completion'")
        key = str(row["id"])
        if key not in ids:
            raise ValueError(f"{where}: id {key!r} is not in the suite")
        out[key].append(row["completion"])
    return dict(out)


def grade(records: list[dict], samples: dict[str, list[dict]], *, workers: int, timeout_s: float,
          think_opened: bool = False) -> list[dict]:
    """Each problem with its samples judged by the verifier its record names: [{"id", "row", "code", "samples":
    [{completion, correct, reason, extracted, ...}]}]. Every problem must have the same number of samples.
    `think_opened`: the prompts opened a think block, so each completion is judged behind it (as training judges
    it: an answer written before the model closed its thinking is not its answer)."""
    flat = [(r, s) for r in records for s in samples[r["id"]]]
    texts = [with_think_prefix(s["completion"], think_opened) for _, s in flat]
    verdicts = judge(texts, [r["answer"] for r, _ in flat], workers=workers,
                     timeout_s=timeout_s, kinds=[r["verifier"] for r, _ in flat], rows=[r["row"] for r, _ in flat])
    by_id: dict[str, dict] = {}
    for (record, sample), v in zip(flat, verdicts):
        code = record["verifier"] == "code"
        entry = by_id.setdefault(record["id"], {"id": record["id"], "row": record["row"], "code": code,
                                                "samples": []})
        entry["samples"].append({**sample, "correct": bool(v.correct), "reason": v.reason,
                                 "extracted": None if code else v.extracted})
    return [by_id[r["id"]] for r in records]


def summarise(env: Environment, graded: list[dict]) -> dict:
    problems = [{"correct": [s["correct"] for s in p["samples"]],
                 "answers": [vote_key(s["extracted"]) for s in p["samples"]]} for p in graded]
    metrics = suite_metrics(problems)
    if any(p.get("code") for p in graded):  # a vote over programs is not defined here
        metrics = {k: v for k, v in metrics.items() if not k.startswith("maj@")}
    every = [s for p in graded for s in p["samples"]]
    metrics["extraction_failure_rate"] = sum(s["reason"] in ("no_answer", "no_code") for s in every) / len(every)
    if all("tokens" in s for s in every):
        metrics["mean_length_tokens"] = sum(s["tokens"] for s in every) / len(every)
        metrics["truncation_rate"] = sum(s.get("finish_reason") == "length" for s in every) / len(every)
    else:
        metrics["mean_length_chars"] = sum(len(s["completion"]) for s in every) / len(every)
    breakdowns = {}
    for fieldname in env.breakdown:
        groups = defaultdict(list)
        for p in graded:
            groups[str(p["row"].get(fieldname))].append(sum(s["correct"] for s in p["samples"]) / len(p["samples"]))
        breakdowns[fieldname] = {k: {"pass@1": sum(v) / len(v), "problems": len(v)} for k, v in sorted(groups.items())}
    return {"metrics": metrics, "breakdowns": breakdowns}


def write(out: Path, env: Environment, graded: list[dict], summary: dict, params: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    n = len(graded[0]["samples"])
    results = {"suite": env.name, "n": n, "problems": len(graded), **summary, "params": params,
               "note": env.note}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    with (out / "samples.jsonl").open("w") as f:
        for p in graded:
            for s in p["samples"]:
                f.write(json.dumps({"id": p["id"], **s}) + "\n")
    m = summary["metrics"]
    lines = [f"# {env.name}", "", f"{len(graded)} problems, n = {n} samples each. {env.note}".rstrip(), "",
             "| metric | value | standard error |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.4f} | {m.get(k + '_se', float('nan')):.4f} |" for k, v in m.items()
              if not k.endswith("_se")]
    for fieldname, table in summary["breakdowns"].items():
        lines += ["", f"## by {fieldname}", "", f"| {fieldname} | problems | pass@1 |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['problems']} | {v['pass@1']:.4f} |" for k, v in table.items()]
    lines += ["", "## Parameters", "", "```json", json.dumps(params, indent=2), "```", "", "## Samples", ""]
    right = [s for p in graded for s in p["samples"] if s["correct"]][:2]
    wrong = [s for p in graded for s in p["samples"] if not s["correct"]][:2]
    for label, chosen in (("right", right), ("wrong", wrong)):
        for s in chosen:
            shown = s.get("transcript", s["completion"])[-800:]  # with tools: what the model saw, results included
            lines += [f"**{label}** ({s['reason']}):", "", "```", shown, "```", ""]
    lines += ["## Plots", ""] + [f"![{name}]({name}.png)" for name in plot(out, graded, summary)]
    (out / "report.md").write_text("\n".join(lines))
    return results


def plot(out: Path, graded: list[dict], summary: dict) -> list[str]:
    """PNG plots next to the report: pass@k against k (n > 1), completion lengths, each breakdown."""
    import matplotlib  # matplotlib: only when a report is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    m = summary["metrics"]
    ks = sorted(int(k.split("@")[1]) for k in m if k.startswith("pass@") and not k.endswith("_se"))
    if len(ks) > 1:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar(ks, [m[f"pass@{k}"] for k in ks], yerr=[m[f"pass@{k}_se"] for k in ks], marker="o",
                    label="pass@k")
        majority = [k for k in ks if f"maj@{k}" in m]
        if majority:
            ax.plot(majority, [m[f"maj@{k}"] for k in majority], marker="s", label="maj@k")
        ax.set_xscale("log", base=2)
        ax.set(xlabel="k", ylabel="fraction of problems", ylim=(0, 1))
        ax.legend()
        made.append(_save(fig, out, "pass_at_k"))
    every = [s for p in graded for s in p["samples"]]
    tokens = all("tokens" in s for s in every)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, correct in (("correct", True), ("wrong", False)):
        values = [s["tokens"] if tokens else len(s["completion"]) for s in every if s["correct"] == correct]
        if values:
            ax.hist(values, bins=30, alpha=0.6, label=f"{label} ({len(values)})")
    ax.set(xlabel="completion length (" + ("tokens" if tokens else "characters") + ")", ylabel="samples")
    ax.legend()
    made.append(_save(fig, out, "lengths"))
    for fieldname, table in summary["breakdowns"].items():
        fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(table) + 2), 3.5))
        ax.bar(list(table), [v["pass@1"] for v in table.values()])
        ax.set(xlabel=fieldname, ylabel="pass@1", ylim=(0, 1))
        ax.tick_params(axis="x", labelrotation=45)
        made.append(_save(fig, out, f"by_{fieldname}"))
    return made


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=100)
    import matplotlib.pyplot as plt  # loaded by plot() already

    plt.close(fig)
    return name


def generate(env: Environment, records: list[dict], args) -> dict[str, list[dict]]:
    """Samples from a model through the rollout engine (`--engine`, vLLM when it imports)."""
    model, tokenizer = load(args.model, revision=args.revision, key="--model")
    prompts = []
    for r in records:
        if args.template != "r1":  # a run's own template (grpo/data/prompts.py): the question alone, as it trained
            prompts.append(render_prompt(r["problem"], tokenizer, PromptConfig(args.template, args.think_prefix)))
            continue
        text = env.prompt(r)
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True)
        prompts.append(text + (THINK_PREFIX if args.think_prefix and not opens_think(text) else ""))
    args.think_opened = opens_think(prompts[0])  # the template's own <think>, or ours: grade() judges behind it
    context = model.config.max_position_embeddings
    longest = max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    budget = min(args.max_new_tokens, context - longest)
    if budget < 1:
        raise Refused(f"suite {env.name}: a prompt of {longest} tokens fills the model's context ({context} tokens, "
                      "its max_position_embeddings): evaluate a model with a longer context (for a preset built "
                      "here, train it with model.max_position_embeddings=2048 or more)")
    engine = make_engine(RolloutConfig(engine=args.engine, max_model_len=context, tools=args.tools,
                                       max_tool_calls=args.max_tool_calls, tool_timeout_s=args.tool_timeout_s),
                         model, tokenizer)
    try:
        groups = engine.generate(prompts, args.n, SamplingParams(temperature=args.temperature, top_p=args.top_p,
                                                                 max_new_tokens=budget), seed=args.seed)
    finally:
        engine.close()
    return {r["id"]: [{"completion": c.text, "tokens": len(c.token_ids), "finish_reason": c.finish_reason,
                       **({"transcript": c.transcript, "turns": c.turns} if c.turns else {})}
                      for c in g.completions] for r, g in zip(records, groups)}


HELDOUT = Environment("heldout", lambda split, seed: ([], {}),
                      note="the run's own held-out problems, evaluated as the run evaluated them")


def _folder(name: str) -> str:
    """The output folder of a suite: its name, with what a path cannot hold replaced (rg:x -> rg_x)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _run_dir(args) -> int:
    if args.suite not in (None, "heldout"):
        print("evals.run: --run-dir evaluates the run's own held-out set (--suite heldout)", file=sys.stderr)
        return 2
    samples, params = evaluate_run(Path(args.run_dir), args.checkpoint)
    by_id: dict[str, dict] = {}
    for s in samples:
        by_id.setdefault(str(s["problem"]), {"id": str(s["problem"]), "row": {}, "samples": []})["samples"].append(s)
    graded = list(by_id.values())
    results = write(Path(args.output_dir) / "heldout", HELDOUT, graded, summarise(HELDOUT, graded), params)
    print(f"heldout: pass@1 {results['metrics']['pass@1']:.4f} ± {results['metrics']['pass@1_se']:.4f} "
          f"over {results['problems']} problems ({params['source']})")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Evaluate a model, or precomputed completions, on suites.")
    parser.add_argument("--suite", help=f"comma-separated: {', '.join(SUITES)}, rg:<reasoning-gym dataset>, or "
                        "module:function returning an Environment (with --run-dir: heldout)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a local model directory or a hub id (ORG/NAME)")
    parser.add_argument("--revision", default="", help="with a hub id: branch, tag or commit (default main)")
    source.add_argument("--run-dir", help="a training run: its own held-out set, evaluated as training did")
    parser.add_argument("--checkpoint", default="final", help="with --run-dir: final or checkpoints/grpo/step_N")
    source.add_argument("--completions", help="jsonl of {id, completion}: grade these instead of generating")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--verbose", action="store_true",
                        help="show vLLM's start-up warnings here (default: OUTPUT_DIR/logs/third_party.log)")
    parser.add_argument("--preset", choices=list(PRESETS), default="r1")
    parser.add_argument("--n", type=int, help="samples per problem (default: the suite's; the greedy preset: 1; --temperature 0 needs --n 1)")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--max-new-tokens", type=int, default=32768)
    parser.add_argument("--think-prefix", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--engine", choices=["auto", "vllm", "hf"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tools", choices=["none", "python"], default="none",
                        help="python: the model calls the sandboxed interpreter while it answers (rollout.tools; the "
                             "default markers <python>...</python>, results in <output>...</output>); graded on "
                             "its own text")
    parser.add_argument("--max-tool-calls", type=int, default=4, help="with --tools: code blocks run per answer")
    parser.add_argument("--tool-timeout-s", type=float, default=2.0, help="with --tools: deadline of one call")
    parser.add_argument("--limit", type=int, default=0, help="only the first N problems")
    parser.add_argument("--data-dir", help="local suite files (default: GRPO_EVAL_DATA, else ../shared/data); a "
                        "suite whose file is not there loads from the hub")
    parser.add_argument("--options", default="{}", help="rg:<name>: the generator's options as JSON")
    parser.add_argument("--size", type=int, default=200, help="rg:<name>: held-out problems drawn")
    parser.add_argument("--heldout-percent", type=int, default=10,
                        help="rg:<name>: the share held out (a run's data.heldout_percent)")
    parser.add_argument("--template", choices=["r1", "chat", "plain"], default="r1",
                        help="r1: the question and the suite's instruction in the model's chat template (default); "
                        "chat, plain: the question alone, as a run with that prompt.template rendered it")
    parser.add_argument("--date-from", default="", help="LiveCodeBench: contest_date >= this (ISO date)")
    parser.add_argument("--date-to", default="", help="LiveCodeBench: contest_date < this")
    parser.add_argument("--difficulty", default="", help="LiveCodeBench: comma-separated easy,medium,hard")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout-s", type=float, default=6.0)
    return parser


def _given(name: str, records: list[dict], args) -> tuple[list[dict], dict[str, list[dict]], dict]:
    """--completions: (the records that have completions, samples per id, parameters); an error names the file."""
    every = {r["id"] for r in _environment(name, args, filtered=False).records(seed=args.seed)}
    given = read_completions(Path(args.completions), every)  # ids outside the filters are skipped
    missing = [r["id"] for r in records if r["id"] not in given]
    records = [r for r in records if r["id"] in given]
    if missing and records:  # graded: the problems given; said, so the score is not taken for the suite's
        print(f"evals.run: {args.completions}: {len(missing)} of the suite's {len(missing) + len(records)} problems "
              f"(after the filters) have no completion (e.g. id {missing[0]!r}); scoring the {len(records)} given",
              file=sys.stderr)
    given = {r["id"]: given[r["id"]] for r in records}
    if not records:
        raise Refused(f"suite {name}: no problem of {args.completions} is left after the filters")
    counts = {len(v) for v in given.values()}
    if len(counts) != 1:
        raise Refused(f"{args.completions}: ids have different numbers of completions {sorted(counts)}")
    samples = {k: [{"completion": c} for c in v] for k, v in given.items()}
    return records, samples, {"source": str(args.completions), "n": counts.pop(), "without_completions": len(missing)}


def _environment(name: str, args, *, filtered: bool = True) -> Environment:
    filters = {"date_from": args.date_from, "date_to": args.date_to, "difficulty": args.difficulty} if (
        filtered and name in SUITES) else {}
    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as e:
        raise Refused(f"--options is not JSON: {e}") from None
    if not isinstance(options, dict):
        raise Refused(f"--options must be a JSON object of the generator's options, got {args.options}")
    try:
        return environments.named(name, data_dir=data_dir(args.data_dir), options=options, size=args.size,
                                  percent=args.heldout_percent, **filters)
    except DataError as e:
        raise Refused(str(e)) from None


def _evaluate_suite(name: str, env: Environment, args) -> None:
    """One environment: its held-out records, samples (generated or given), verdicts and the files of evals.run."""
    records = env.records("heldout", seed=args.seed, limit=args.limit)
    if not records:
        raise Refused(f"suite {name}: no problems left after the filters")
    if args.completions:
        records, samples, params = _given(name, records, args)
    else:
        samples = generate(env, records, args)
        params = {"source": args.model, "preset": args.preset, "n": args.n, "temperature": args.temperature,
                  "top_p": args.top_p, "think_prefix": args.think_prefix, "max_new_tokens": args.max_new_tokens,
                  "engine": args.engine, "seed": args.seed, "tools": args.tools,
                  **({"max_tool_calls": args.max_tool_calls, "tool_timeout_s": args.tool_timeout_s}
                     if args.tools != "none" else {})}
    params.update({"limit": args.limit, "date_from": args.date_from, "date_to": args.date_to,
                   "difficulty": args.difficulty, "template": args.template})
    if name.startswith(environments.GYM_PREFIX):
        params.update({"options": args.options, "size": args.size, "heldout_percent": args.heldout_percent})
    # generated: whether the prompts opened a think block; --completions: only when --think-prefix says so (outputs
    # from elsewhere, e.g. reference solutions, carry no think block)
    opened = getattr(args, "think_opened", False) if not args.completions else bool(args.think_prefix_given)
    graded = grade(records, samples, workers=args.workers, timeout_s=args.timeout_s, think_opened=opened)
    results = write(Path(args.output_dir) / _folder(name), env, graded, summarise(env, graded), params)
    print(f"{name}: pass@1 {results['metrics']['pass@1']:.4f} ± {results['metrics']['pass@1_se']:.4f} "
          f"over {results['problems']} problems, n = {results['n']}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not (args.verbose or console.user_asked()):
        console.quiet(Path(args.output_dir))
    if args.run_dir:
        return _run_dir(args)
    if not args.suite:
        parser.error("--suite is required with --model or --completions")
    unknown = [s for s in args.suite.split(",") if s not in SUITES and ":" not in s]
    if unknown:
        print(f"evals.run: unknown suite {unknown[0]!r} (known: {', '.join(SUITES)}, rg:<reasoning-gym dataset>, "
              "or module:function)", file=sys.stderr)
        return 2
    preset = PRESETS[args.preset]
    for name in args.suite.split(","):
        suite_args = argparse.Namespace(**vars(args))  # the preset's and the suite's defaults, per suite
        suite_args.temperature = preset["temperature"] if args.temperature is None else args.temperature
        suite_args.top_p = preset["top_p"] if args.top_p is None else args.top_p
        suite_args.think_prefix = preset["think_prefix"] if args.think_prefix is None else args.think_prefix
        suite_args.think_prefix_given = args.think_prefix is True
        try:
            env = _environment(name, suite_args)
            suite_args.n = args.n or preset.get("n", env.n)
            if suite_args.temperature == 0 and suite_args.n > 1 and not args.completions:
                raise Refused(f"suite {name}: --temperature 0 (greedy) gives {suite_args.n} copies of one "
                              "completion, not pass@k: set --n 1 or a temperature above 0")
            _evaluate_suite(name, env, suite_args)
        except (Refused, EngineUnavailable, NotFound, DataError) as e:
            print(f"evals.run: {e}", file=sys.stderr)
            return 2
        except EngineError as e:
            print(f"evals.run: stopped: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
