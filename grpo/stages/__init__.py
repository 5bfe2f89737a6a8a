"""The pipeline's stages, each one loop of numbered phases over objects that own the state: sft.py (the cold start
and the distilled students' trainer), grpo.py (the RL loop) with rollouts.py (how a batch is rolled out, judged and
shared), judge.py (the run's verifier settings and GRPO's rewards), evaluate.py (held-out accuracy: one wiring for
every stage and the evals CLIs), generate.py and rejection.py (the teacher's traces and the filter), distill.py.
Imports everything below it (learner, rollout, runs, data, config, algo); nothing imports it but the pipeline and
the CLIs."""
