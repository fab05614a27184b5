"""Training loops: classifiers, diffusion teacher, distilled student."""
