"""`python -m grpo.serve`: the vLLM server of server mode, kept at this documented command; the code is
grpo/rollout/server.py (`python -m grpo.rollout.server` is the same)."""

from grpo.rollout.server import main

if __name__ == "__main__":
    main()
