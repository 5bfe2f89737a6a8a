"""The run directory: its files (JSONL lines, atomic rewrites), checkpoints (what one holds, atomic save, prune,
resume), the run log (metrics and samples lines, progress bar, per-phase timer), the trackers those lines also go
to (sinks/) and what the terminal shows (console.py). Imports the data files' reader
only; the objects it saves (the policy) and the processes it runs on (the team) come in as arguments."""
