"""Training loop pieces: task scheduling, optimisers, the trainer."""
