"""``python -m kvloop``: the ``kvloop`` console command (``kvloop.cli:main``) without the script,
e.g. under ``accelerate launch -m kvloop`` or ``torchrun -m kvloop``."""

import sys

from kvloop.cli import main

if __name__ == "__main__":  # not when a spawned worker re-imports this as ``__mp_main__``
    sys.exit(main())
