"""The evaluation command lines: `python -m evals.run` (a model, a completions file or a run's own held-out set on
the suites: results.json, samples, a report with plots) and `python -m evals.paired` (two models, one held-out set,
McNemar). They sit above the trainer: the suites, metrics and held-out evaluation they call are grpo's
(grpo/data/suites.py, grpo/algo/passk.py, grpo/stages/evaluate.py), the same code training uses; grpo never
imports evals."""
