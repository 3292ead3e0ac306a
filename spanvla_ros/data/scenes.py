"""Seeded evaluation scenes: clean expert drives (no flaws, no injections) on held-out seeds, one or more scoring
scenes per episode with logged agent futures and the expert's driven trajectory as reference.

Like NAVSIM's navtest, which drops near-trivial scenes (standing still, driving straight on at constant speed), each
episode contributes its least trivial moments — where the expert's driven trajectory departs most from holding speed
and heading 4 s ahead — and only when that departure is at least ``min_departure_m``; seeds whose episodes have no such
moment are skipped (the report lists the seeds used).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from ..eval.open_loop import PREVIOUS_FRAME, PREVIOUS_FRAME_S
from ..scene import Scene, scene_from_dict
from .generate import GenerationConfig, generate_episode

#: The held-out mix weights the junction scenes (roundabout, intersection) double, as urban benchmarks like NAVSIM's
#: navtest are dominated by them; reports break results down per environment.
EVALUATION_ENVS = ("highway", "roundabout", "merge", "intersection", "two-way", "roundabout", "exit", "intersection")
#: Evaluation seeds start here; training data generated with ``spanvla data generate`` uses lower seeds by default.
HELD_OUT_SEED = 100_000


def evaluation_scenes(
    episodes: int,
    seed: int = HELD_OUT_SEED,
    per_episode: int = 1,
    config: GenerationConfig | None = None,
    min_departure_m: float = 3.0,
    max_seeds: int | None = None,
    kind: str = "positive",
    camera_style: str = "default",
) -> Iterator[Scene]:
    """``per_episode`` scenes from each of ``episodes`` seeded episodes that have non-trivial moments (seeds from
    ``seed`` upwards, at most ``max_seeds`` tried; default 4 × episodes). ``kind="recovery"``: the recovery moments
    of episodes with an injected displacement (lateral offset, heading error, overspeed, aborted lane change).
    ``camera_style``: the renderer's look (default), or a held-out look training never saw."""
    config = config or GenerationConfig(envs=EVALUATION_ENVS)
    recovery = kind == "recovery"
    # Every 0.5 s, so each moment has the frame before it: NAVSIM's extended comfort compares the plans of both.
    config = dataclasses.replace(
        config,
        flaw_probability=0.0,
        injection_probability=1.0 if recovery else 0.0,
        sample_every_s=min(config.sample_every_s, PREVIOUS_FRAME_S),
        camera_style=camera_style,
    )
    if recovery:
        min_departure_m = 0.0  # a recovery moment is never trivial
    used = 0
    for episode_seed in range(seed, seed + (max_seeds or 4 * episodes)):
        if used == episodes:
            return
        samples = generate_episode(episode_seed, config)
        by_time = {round(s.time_s, 3): s for s in samples}
        candidates = [s for s in samples if s.kind == kind]
        ranked = sorted(candidates, key=lambda s: -_departure_from_constant_velocity(s))
        chosen = [s for s in ranked[:per_episode] if _departure_from_constant_velocity(s) >= min_departure_m]
        if not chosen:
            continue
        used += 1
        for sample in sorted(chosen, key=lambda s: s.time_s):
            scene = _scene_of(sample)
            previous = by_time.get(round(sample.time_s - PREVIOUS_FRAME_S, 3))
            if previous is not None:
                scene.metadata[PREVIOUS_FRAME] = _scene_of(previous)
            yield scene


def _scene_of(sample) -> Scene:
    scene = scene_from_dict(sample.scene)
    # The camera frames of the moment travel with the scene for sensor-based planners.
    return dataclasses.replace(
        scene, metadata={**scene.metadata, "camera_frames": sample.images, "time_s": float(sample.time_s)}
    )


def _departure_from_constant_velocity(sample) -> float:
    """Distance at 4 s between the driven trajectory and straight-on at the current speed."""
    index = min(7, len(sample.target) - 1)
    t = (index + 1) * 0.5
    return float(np.hypot(sample.target[index, 0] - sample.speed_mps * t, sample.target[index, 1]))
