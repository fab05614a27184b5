"""Forecast evaluation: storm summaries, controls, skill, responses."""
