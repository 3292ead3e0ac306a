"""Benchmarks behind ``spanvla bench``: each writes a JSON of medians measured side by side in one run."""
