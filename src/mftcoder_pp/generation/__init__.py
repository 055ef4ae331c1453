"""Leaf modules of `mftpp generate` (generate.py): prompts, stop rules, batching and the batched decoder."""
