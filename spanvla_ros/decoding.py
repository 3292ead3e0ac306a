"""The one token-decoding loop, shared by the model (``SpanVLA.reason``), every runtime backend
(``SpanVLARuntime.reason``) and the GRPO rollout; numpy or torch logits alike, so a deployment without torch uses it.

The caller owns the cache: ``step(token)`` feeds one token through the model (growing the cache) and returns the
next logits. ``choose(logits)`` picks the token: ``greedy`` for the car, a temperature sampler for GRPO."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any


def greedy(logits: Any) -> int:
    """The most likely token of ``logits [V]`` (numpy array or torch tensor)."""
    return int(logits.argmax())


def decode_tokens(
    logits: Any,
    step: Callable[[int], Any],
    choose: Callable[[Any], int],
    max_tokens: int,
    stop_ids: Collection[int],
) -> list[int]:
    """Generate from the prompt's last ``logits``: choose a token, feed it (so the cache holds every generated
    token, the stop token included), stop after a token in ``stop_ids`` or ``max_tokens`` tokens."""
    generated: list[int] = []
    for _ in range(max_tokens):
        token = choose(logits)
        generated.append(token)
        logits = step(token)
        if token in stop_ids:
            break
    return generated
