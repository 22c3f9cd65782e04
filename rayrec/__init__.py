"""rayrec: distributed training of review-based recommenders on Ray."""

__version__ = "0.1.0"
