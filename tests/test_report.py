"""python -m grpo.report: plots of real short runs, one and two overlaid, from their saved files; the run's own
report and closing summary; the pure helpers by hand."""

import json

import pytest
from test_trainer import SMALL

from grpo import train
from grpo.report import write_report
from grpo.report.__main__ import main as report_main
from grpo.report.runs import config_differences, ema, read_run

GRPO_FIGURES = {"reward.png", "length.png", "policy.png", "logprob_gap.png", "offpolicy.png", "throughput.png",
                "time.png"}


@pytest.fixture(scope="module")
def two_runs(base, tmp_path_factory):
    """Two short GRPO runs from the session's cold-start model that differ in one key (the learning rate)."""
    root = tmp_path_factory.mktemp("report")
    for name, lr in (("lr_low", "1e-4"), ("lr_high", "1e-3")):
        assert train.main([f"run.dir={root / name}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=3",
                           "rollout.engine=hf", *SMALL, "grpo.eval_every=2", f"grpo.lr={lr}"]) == 0
    return root / "lr_low", root / "lr_high"


def png(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_a_run_ends_with_its_report_and_a_summary_of_where_things_are(two_runs, capsys, tmp_path, base):
    run_dir = tmp_path / "run"
    assert train.main([f"run.dir={run_dir}", "run.stages=[grpo]", f"model.path={base}", "grpo.steps=2",
                       "rollout.engine=hf", "run.report_to=[tensorboard]", *SMALL]) == 0
    out = capsys.readouterr().out
    assert f"report             {run_dir / 'report' / 'report.md'}" in out
    assert f"final model        {run_dir / 'final'}" in out and "held-out accuracy  grpo " in out
    assert f"python -m evals.run --run-dir {run_dir} --suite heldout" in out
    assert f"tensorboard --logdir {run_dir / 'tensorboard'}" in out
    figures = json.loads((run_dir / "report" / "figures.json").read_text())
    assert GRPO_FIGURES <= {f["file"] for f in figures}
    assert all(png(run_dir / "report" / f["file"]) for f in figures)


def test_two_runs_overlaid_with_their_config_differences(two_runs, tmp_path):
    out = tmp_path / "compare"
    assert report_main([str(d) for d in two_runs] + ["--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    figures = json.loads((out / "figures.json").read_text())
    assert GRPO_FIGURES | {"heldout.png"} <= {f["file"] for f in figures}
    for figure in figures:  # every picture draws both runs, and the report shows it
        assert figure["runs"] == ["lr_low", "lr_high"], figure
        assert png(out / figure["file"]) and f"]({figure['file']})" in report
    assert "| grpo.lr | `0.0001` | `0.001` |" in report  # the only key that differs besides where they write
    assert report.count("| grpo.") == 1 and "| lr_low | grpo " in report and "| lr_high | grpo " in report


def test_a_report_reads_a_run_cut_short(two_runs, tmp_path):
    """A run killed mid-line: the torn last line is left out and said; a stage not in summary.json is 'not
    finished'."""
    run_dir = tmp_path / "cut"
    run_dir.mkdir()
    lines = (two_runs[0] / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + '\n{"stage": "grpo", "st')
    path = write_report([run_dir])
    text = path.read_text()
    assert path == run_dir / "report" / "report.md"
    assert "1 metrics lines that did not parse were left out" in text and "grpo not finished" in text
    assert read_run(run_dir).series("grpo", "reward/mean")[0] == [1, 2, 3]


def test_a_directory_without_metrics_is_an_error(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert f"{tmp_path}: not a run directory (no metrics.jsonl)" in capsys.readouterr().err


def test_heldout_series_takes_the_start_recorded_in_the_summary(two_runs):
    run = read_run(two_runs[0])
    steps, _ = run.series("grpo", "eval/heldout_accuracy")
    assert steps == [0, 2, 3]


def test_ema_is_debiased_by_hand():
    # w 0.5: s1 = 0.5 * 1 = 0.5, / (1 - 0.5) = 1; s2 = 0.5 * 0.5 + 0.5 * 3 = 1.75, / (1 - 0.25) = 2.3333...
    assert ema([1.0, 3.0], 0.5) == pytest.approx([1.0, 7 / 3], abs=1e-12, rel=0)
    assert ema([1.0, 3.0], 0.0) == [1.0, 3.0]
    assert ema([], 0.9) == []


def test_config_differences_name_the_keys_that_differ():
    a = {"run": {"dir": "x", "seed": 0}, "grpo": {"lr": 1e-3, "steps": 5}}
    b = {"run": {"dir": "y", "seed": 1}, "grpo": {"lr": 1e-3, "steps": 5, "extra": [1]}}
    assert config_differences([a, b]) == {"grpo.extra": [None, [1]], "run.seed": [0, 1]}
