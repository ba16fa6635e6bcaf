"""Benchmarks for issue 4 (performance): `uv run python -m bench [--quick] [--out PATH]`."""
