"""`python -m grpo.train`: the training entry point.

The GRPO loop itself lands with issue #5 (and cold-start SFT with #4). Until then this entry point says so
plainly and shows the part of a training step that already works: rewards from the math verifier, judged in
worker processes under a hard deadline, exactly as the loop will call them.
"""

from __future__ import annotations

import argparse
import sys

# (completion, gold) pairs of the kind a policy produces early in training
_SAMPLES = [
    ("<think>16 - 3 - 4 = 9 eggs, 9 * 2 = 18</think> She makes $\\boxed{18}$ dollars.", "18"),
    ("<think>r = 3, theta = pi/2</think> The point is $\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}$.",
     "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("The answer is \\boxed{0.5}, or maybe \\boxed{0.25}.", "\\frac{1}{2}"),
    ("We get x = 2 or x = 3, so the answer is $\\boxed{2, 3}$.", "3, 2"),
    ("Since 4t = 4 we conclude \\boxed{4t}.", "4"),
    ("The product is \\boxed{9^{9^{9^{9}}}}.", "3"),
    ("<think>I keep going and going and never finish", "7"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grpo.train", description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    from verifiers.math import verify_batch

    print("grpo.train: the GRPO training loop is not built yet (issue #5); cold-start SFT arrives with issue #4.")
    print("What works now: the math reward. Judging sample completions in 2 worker processes:\n")
    results = verify_batch([c for c, _ in _SAMPLES], [g for _, g in _SAMPLES], workers=2, timeout_s=5.0)
    print(f"{'reward':>6}  {'reason':<17} {'gold':<34} completion")
    for (completion, gold), r in zip(_SAMPLES, results):
        print(f"{r.reward:>6.1f}  {r.reason:<17} {gold:<34} {completion[-60:]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
