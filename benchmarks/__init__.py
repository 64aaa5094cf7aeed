"""Benchmarks of pytest-kvmi against the official SDK; run with ``tox -e bench`` (see README)."""
