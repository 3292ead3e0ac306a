"""NAVSIM's weakest baseline: keep the current speed and heading."""

from __future__ import annotations

import numpy as np

from ..scene import Scene, Trajectory
from .interface import Planner


class ConstantVelocityPlanner(Planner):
    """Drive straight on at the current speed: ``x = v·t`` along the current heading, no lateral motion."""

    name = "constant-velocity"

    def plan(self, scene: Scene) -> Trajectory:
        t = np.arange(1, self.config.num_poses + 1) * self.config.dt_s
        speed = max(float(scene.ego.speed_mps), 0.0)
        poses = np.column_stack([speed * t, np.zeros_like(t), np.zeros_like(t)])
        return Trajectory(poses, self.config.dt_s)
