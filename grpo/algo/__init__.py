"""The pure math: tensors or numbers in, tensors or numbers out; no config, I/O or distribution. Group-relative
advantages (advantages.py), the policy loss (loss.py), rewards and the dynamic-sampling filter (rewards.py), pass@k /
maj@k / bootstrap errors / McNemar (passk.py). Imports torch at most; every function is checked by hand in tests/."""
