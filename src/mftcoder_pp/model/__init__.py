"""Model building and loading: tiny Qwen2 models from a config, local Hugging Face checkpoints, adapters."""
