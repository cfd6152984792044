"""``python -m gvc_jax`` is the ``gvc`` command."""
import sys

from gvc_jax.cli import main

sys.exit(main())
