"""reengage: timed follow-ups for leads that never answered (the Lambda layer's package)."""

__version__ = "0.1.0"
