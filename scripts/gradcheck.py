"""Check the hand-written MLP gradient against autodiff and finite differences.

Example: python scripts/gradcheck.py --sizes 4,16,16,3 --activation tanh --batch-norm --l2 1e-3
"""

from _start import run  # this folder's launcher: a Ctrl-C while importing is one line

if __name__ == "__main__":
    run("jaxnn.gradcheck", "main")
