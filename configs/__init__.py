"""Model and codec configurations: one module per family, each with ``get_config(arg)``."""
