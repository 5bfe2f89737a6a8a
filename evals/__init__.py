"""Evaluation suites (MATH-500, AIME, GSM8K, LiveCodeBench-style) on the same code path as training."""
