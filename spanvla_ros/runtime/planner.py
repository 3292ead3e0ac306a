"""SpanVLA as a :class:`~spanvla_ros.planning.Planner`: the runtime pipeline on a scene whose camera frames ride in
``scene.metadata["camera_frames"]`` (``[F, H, W, 3]`` uint8, oldest first), as the evaluation harnesses attach
them. The planner reads only what a car has: frames, command, ego speed, acceleration and history."""

from __future__ import annotations

import numpy as np

from ..planning import Planner, PlannerConfig
from ..scene import Scene, Trajectory, world_to_ego
from .pipeline import SpanVLARuntime

CAMERA_FRAMES = "camera_frames"


class RuntimePlanner(Planner):
    name = "spanvla"
    needs_camera = True

    def __init__(self, runtime: SpanVLARuntime, name: str = "spanvla", max_reasoning_tokens: int | None = None) -> None:
        meta = runtime.meta
        super().__init__(PlannerConfig(num_poses=meta["num_poses"], dt_s=meta["dt_s"]))
        self.runtime = runtime
        self.name = name
        self.max_reasoning_tokens = max_reasoning_tokens
        self.last_reasoning: str = ""

    @classmethod
    def from_name(cls, spec: str, backend: str = "torch") -> RuntimePlanner:
        """``model:DIR`` (a checkpoint for torch, an export directory for onnxruntime/tensorrt)."""
        artifact = spec.split(":", 1)[1] if spec.startswith("model:") else spec
        return cls(SpanVLARuntime.from_checkpoint_or_export(backend, artifact), name=f"model:{artifact}")

    def plan(self, scene: Scene) -> Trajectory:
        frames = scene.metadata.get(CAMERA_FRAMES)
        if frames is None:
            raise ValueError("the SpanVLA planner needs camera frames in scene.metadata['camera_frames']")
        history = world_to_ego(np.asarray(scene.ego.history_poses), scene.ego.pose)
        reasoning = self.runtime.reason(
            np.asarray(frames),
            scene.command.value,
            scene.ego.speed_mps,
            scene.ego.acceleration_mps2,
            history,
            self.max_reasoning_tokens,
        )
        self.last_reasoning = reasoning.text
        return Trajectory(self.runtime.plan(reasoning, history), self.config.dt_s)
