"""Regenerate the pictures under docs/images (run: .venv/bin/python docs/make_images.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from spanvla_ros.data.generate import GenerationConfig, generate_episode
from spanvla_ros.eval.report import plot_scene
from spanvla_ros.scene import scene_from_dict
from spanvla_ros.sim import HighwayWorld, WorldConfig
from spanvla_ros.sim.camera import CameraConfig, FrontCamera

OUT = Path(__file__).parent / "images"


def camera_frames() -> None:
    """Front-camera frames of four scene kinds, side by side."""
    camera = FrontCamera(CameraConfig(width=256, height=256))
    frames = []
    for env, seed in (("highway", 1), ("roundabout", 4), ("intersection", 2), ("two-way", 3)):
        world = HighwayWorld(WorldConfig(env=env))
        world.reset(seed)
        from spanvla_ros.sim import ExpertPlanner

        scene = world.snapshot()
        expert = ExpertPlanner()
        for _ in range(12):
            scene = world.step(expert.plan(scene))
        frames.append(camera.render(scene))
    cv2.imwrite(str(OUT / "camera_frames.png"), cv2.cvtColor(np.hstack(frames), cv2.COLOR_RGB2BGR))


def negative_and_recovery() -> None:
    """A flawed-policy episode: the expert's plan against the negative drive, then the expert's recovery."""
    config = dataclasses.replace(GenerationConfig(), flaw_probability=1.0, envs=("highway",), episode_s=12.0)
    for seed in range(40):
        samples = generate_episode(seed, config)
        negative = next((s for s in samples if s.kind == "negative"), None)
        recovery = next((s for s in samples if s.kind == "recovery"), None)
        if negative is not None and recovery is not None:
            break
    scene = scene_from_dict(negative.scene)
    plot_scene(scene, OUT / "negative_sample.png",
               plans_ego={"expert (target)": negative.target, f"negative: {negative.negative_labels[0][:40]}":
                          negative.negatives[0]},
               title=f"negative sample, seed {seed}: flawed drive PDMS {negative.negative_scores[0]['pdms']:.2f}")
    scene = scene_from_dict(recovery.scene)
    plot_scene(scene, OUT / "recovery_sample.png", plans_ego={"expert recovery (target)": recovery.target},
               title=f"recovery sample: {recovery.recovery_label[:60]}")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    camera_frames()
    negative_and_recovery()
