"""Dataset condensation with NCFM."""
