"""Check the hand-written MLP gradient against autodiff and finite differences.

Example: python scripts/gradcheck.py --sizes 4,16,16,3 --activation tanh --batch-norm --l2 1e-3
"""


from jaxnn.cli import exit_with
from jaxnn.gradcheck import main

if __name__ == "__main__":
    exit_with(main())
