"""The tiny default's tokenizer: byte-level BPE trained with ``tokenizers`` on the reasoning corpus, saved as a
``PreTrainedTokenizerFast`` with the Qwen2-VL vision markers, the reasoning markers and the discrete action tokens."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..text_format import (  # noqa: F401  (re-exported)
    FAST_MODE_TEXT,
    IMAGE_PAD,
    THINK_END,
    THINK_START,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
)

PAD = "<|pad|>"
EOS = "<|endoftext|>"
ACTION = "<|action|>"


def action_token(index: int) -> str:
    return f"<|act_{index}|>"


def special_tokens(num_action_tokens: int) -> list[str]:
    base = [PAD, EOS, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD, THINK_START, THINK_END, ACTION]
    return base + [action_token(i) for i in range(num_action_tokens)]


def train_tokenizer(
    corpus: Iterable[str], *, vocab_size: int = 1024, num_action_tokens: int = 256
) -> PreTrainedTokenizerFast:
    """Train byte-level BPE on ``corpus``; specials (vision, reasoning, action tokens) come first in the vocabulary."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = special_tokens(num_action_tokens)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size + len(specials),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS)
    fast.add_special_tokens({"additional_special_tokens": specials[2:]})
    return fast


def action_token_ids(tokenizer: PreTrainedTokenizerFast, num_action_tokens: int) -> list[int]:
    """Vocabulary ids of ``<|act_0|> … <|act_{K-1}|>``."""
    ids = tokenizer.convert_tokens_to_ids([action_token(i) for i in range(num_action_tokens)])
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError("the tokenizer lacks the discrete action tokens; train it with num_action_tokens set")
    return list(ids)
