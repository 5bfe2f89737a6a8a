"""The local code sandbox (bubblewrap + rlimits) that runs model-written programs. Arrives with issue #3."""
