"""The performance benchmarks: `uv run python -m bench [--quick] [--out PATH]`."""
