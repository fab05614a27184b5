"""Analysis: feature extraction, t-SNE, alignment metrics, AGOP/H/G/M statistics."""
