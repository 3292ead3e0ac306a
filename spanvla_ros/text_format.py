"""The reasoning text format shared by the dataset labels and the model's tokenizer (no heavy imports)."""

THINK_START = "<think>"
THINK_END = "</think>"
#: Fast-mode reasoning: the VLM skips the chain of thought.
FAST_MODE_TEXT = "Directly predict the final action"
