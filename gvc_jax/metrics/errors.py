"""Errors raised by the quality metrics."""


class MetricUnavailable(ValueError):
    """A metric cannot be evaluated on this input (e.g. frames too small for 5-scale MS-SSIM)."""
