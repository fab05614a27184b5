"""Data: synthetic tropical cyclones, HDF5 windows, classification arrays, text."""
