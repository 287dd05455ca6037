"""`python -m segspaste_jax`: the `segspaste-jax` command line."""

import sys

from segspaste_jax.cli import main

sys.exit(main())
