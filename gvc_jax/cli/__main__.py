"""``python -m gvc_jax.cli`` is ``gvc``."""
import sys

from gvc_jax.cli.main import main

sys.exit(main())
