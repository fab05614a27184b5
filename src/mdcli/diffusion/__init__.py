"""Diffusion noise schedules and samplers."""
