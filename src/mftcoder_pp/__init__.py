"""mftcoder_pp: multitask, multilingual instruction fine-tuning of code LLMs, judged by executing code."""

__version__ = "0.1.0"
