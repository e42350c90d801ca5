"""Check the hand-written MLP gradient against autodiff and finite differences.

Example: python scripts/gradcheck.py --sizes 4,16,16,3 --activation tanh --batch-norm --l2 1e-3
"""

import sys

from jaxnn.gradcheck import main

if __name__ == "__main__":
    sys.exit(main())
