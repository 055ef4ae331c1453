"""Training data: canonical records, readers, the preprocessing pipeline, sampling and curriculum."""
