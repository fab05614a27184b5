"""Matplotlib (Agg) figures."""
