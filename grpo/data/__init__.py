"""Data: problem records (built-in tasks, jsonl, parquet, hub), the prompts made from them (and the one think-prefix
rule), the evaluation suites' rows, and n-gram decontamination against them. Imports the config and the verifiers'
answer extraction; nothing of the learner, the engines or the stages."""
