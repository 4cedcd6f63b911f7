"""infdiff: the infinite-resolution diffusion pipeline (data, mollified diffusion, model, training, sampling)."""
