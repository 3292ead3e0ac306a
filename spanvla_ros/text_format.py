"""The reasoning text format shared by the dataset labels and the model's tokenizer (no heavy imports)."""

THINK_START = "<think>"
THINK_END = "</think>"
#: Fast-mode reasoning: the VLM skips the chain of thought.
FAST_MODE_TEXT = "Directly predict the final action"

# Qwen2-VL's vision markers (their ids come from the tokenizer).
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
