"""Checkpoints and HDF5 feature caches: atomic writes, safe loads."""
