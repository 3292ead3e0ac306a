"""Seeded evaluation scenes: clean expert drives (no flaws, no injections) on held-out seeds, one or more scoring
scenes per episode with logged agent futures and the expert's driven trajectory as reference.

Like NAVSIM's navtest, which drops near-trivial scenes, each episode contributes its least trivial moments: those
where the expert's driven trajectory departs most from holding speed and heading (4 s ahead).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from ..scene import Scene, scene_from_dict
from .generate import GenerationConfig, generate_episode

#: Evaluation seeds start here; training data generated with ``spanvla data generate`` uses lower seeds by default.
HELD_OUT_SEED = 100_000


def evaluation_scenes(
    episodes: int, seed: int = HELD_OUT_SEED, per_episode: int = 1, config: GenerationConfig | None = None
) -> Iterator[Scene]:
    """``per_episode`` scenes (spread over the episode) from each of ``episodes`` seeded episodes."""
    config = config or GenerationConfig()
    config = dataclasses.replace(config, flaw_probability=0.0, injection_probability=0.0)
    for episode_seed in range(seed, seed + episodes):
        samples = [s for s in generate_episode(episode_seed, config) if s.kind == "positive"]
        if not samples:
            continue
        ranked = sorted(samples, key=lambda s: -_departure_from_constant_velocity(s))
        for sample in sorted(ranked[:per_episode], key=lambda s: s.time_s):
            yield scene_from_dict(sample.scene)


def _departure_from_constant_velocity(sample) -> float:
    """Distance at 4 s between the driven trajectory and straight-on at the current speed."""
    index = min(7, len(sample.target) - 1)
    t = (index + 1) * 0.5
    return float(np.hypot(sample.target[index, 0] - sample.speed_mps * t, sample.target[index, 1]))
