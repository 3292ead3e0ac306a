"""SpanVLA as a :class:`~spanvla_ros.planning.Planner`, on a scene whose camera frames ride in
``scene.metadata["camera_frames"]`` (``[F, H, W, 3]`` uint8, oldest first), as the evaluation harnesses attach
them; the planner reads only what a car has: frames, command, ego speed, acceleration and history.

``RuntimePlanner`` runs the pipeline on one scene (open loop: independent moments). ``DeployedPlanner`` drives the
planning core that runs on the car (:class:`~spanvla_ros.runtime.online.OnlinePlanner`: odometry track and frame
history, reasoning at its rate, validation and stop trajectories) synchronously, one call per tick of a drive."""

from __future__ import annotations

import numpy as np

from ..planning import Planner, PlannerConfig, stop_poses
from ..scene import Scene, Trajectory, object_list, speed_limit_at, world_to_ego
from .drivers import SyncDriver
from .online import OnlineConfig, OnlinePlanner, PlanOutput
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


class DeployedPlanner(Planner):
    """The node's planning core on a drive, with the drive's clock: each ``plan(scene)`` is one planning cycle at
    ``scene.metadata["time_s"]``. The scene's ego pose and speed arrive as odometry, its newest camera frame as an
    image and (``map_speed_limit``) the limit of the lane under the ego as the speed limit a car's map gives; a
    reasoning pass runs when one is due (at ``reasoning_rate_hz`` of the drive's time, inline), and the core plans —
    validating the plan and falling back as on the car. With ``object_list``, the scene's other road users arrive as
    the object list a car's perception reports (boxes and velocities), for the core's collision guard; with ``route``,
    the scene's route centre line arrives as the route a car's navigation gives (CARLA's waypoints), for the core's
    route keeping. Call it every tick (the node's 10 Hz)."""

    needs_camera = True
    CAMERA = "front"

    def __init__(
        self,
        runtime: SpanVLARuntime,
        name: str = "spanvla",
        config: OnlineConfig = OnlineConfig(),
        map_speed_limit: bool = True,
        object_list: bool = True,
        route: bool = True,
    ) -> None:
        meta = runtime.meta
        super().__init__(PlannerConfig(num_poses=meta["num_poses"], dt_s=meta["dt_s"]))
        self.runtime = runtime
        self.name = name
        self.map_speed_limit = map_speed_limit
        self.object_list = object_list
        self.route = route
        self.core = OnlinePlanner(runtime, [self.CAMERA], config)
        self.driver = SyncDriver(self.core)
        self.last_output: PlanOutput | None = None

    @classmethod
    def from_name(
        cls,
        spec: str,
        backend: str = "torch",
        config: OnlineConfig = OnlineConfig(),
        map_speed_limit: bool = True,
        object_list: bool = True,
        route: bool = True,
    ) -> DeployedPlanner:
        artifact = spec.split(":", 1)[1] if spec.startswith("model:") else spec
        runtime = SpanVLARuntime.from_checkpoint_or_export(backend, artifact, threads=1)
        return cls(
            runtime, name=f"model:{artifact}", config=config, map_speed_limit=map_speed_limit,
            object_list=object_list, route=route,
        )  # fmt: skip

    def plan(self, scene: Scene) -> Trajectory:
        frames = scene.metadata.get(CAMERA_FRAMES)
        if frames is None or "time_s" not in scene.metadata:
            raise ValueError("the deployed planner needs scene.metadata['camera_frames'] and ['time_s'] (a drive)")
        now = float(scene.metadata["time_s"])
        core = self.core
        core.add_odometry(now, np.asarray(scene.ego.pose), scene.ego.speed_mps, "map")
        core.add_image(self.CAMERA, now, np.asarray(frames)[-1])
        core.set_command(now, scene.command.value)
        limit = speed_limit_at(scene, None) if self.map_speed_limit else None
        if limit is not None:  # off the map the last limit holds, as on a car between map updates
            core.set_speed_limit(now, limit)
        if self.object_list:
            core.set_objects(now, "map", *object_list(scene))
        if self.route:
            core.set_route(now, "map", scene.route_centerline_xy)
        output = self.driver.cycle(now).plan
        self.last_output = output
        if output is None:  # only before the first reasoning pass, which ran above: brake gently meanwhile
            braking = core.config.stop_deceleration_mps2
            return Trajectory(stop_poses(scene.ego.speed_mps, self.config.num_poses, self.config.dt_s, braking))
        return Trajectory(output.poses_ego, output.dt_s)

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.core.counters)
