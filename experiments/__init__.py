"""Command-line experiments reproducing the paper's tables; run from a clone, not installed."""
