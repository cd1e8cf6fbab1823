"""``python -m vqvae_lessons``: the command line, :mod:`vqvae_lessons.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
