"""Losses: denoising score matching, distillation terms, causal MI, NCFM, MMD."""
