"""``sim_node``: the embedded highway-env world as a ROS 2 node speaking the carla-ros-bridge conventions.

Publishes ``/clock`` (for ``use_sim_time``), ``/carla/<ego>/rgb_front/image`` + ``camera_info``,
``/carla/<ego>/odometry`` (rear axle, frame ``map``, child ``<ego>``), the route's driving command on
``/carla/<ego>/driving_command`` and the speed limit of the lane under the ego (m/s, what a map gives) on
``/carla/<ego>/speed_limit``, every road user, the ego included, as CUBE markers on ``/carla/markers`` (the
object list the planner's collision guard reads, as the bridge publishes it), and the route ahead along the ego's lane
as ``nav_msgs/Path`` on ``/carla/<ego>/waypoints`` (transient local, as CARLA's waypoint publisher; it follows the
lane the ego is in, so it is sent again each tick); subscribes to the planned
``nav_msgs/Path`` and tracks it with the LQR + bicycle.
Synchronous mode, as the bridge's ``synchronous_mode_wait_for_vehicle_control_command``: each 0.1 s tick waits
(up to ``plan_timeout_s`` wall time) for the plan stamped at that tick before stepping; a late plan is counted, and
the previous plan is followed meanwhile. ``real_time_factor`` paces ticks against the wall clock so reasoning runs
at its real rate. Per episode it scores the published plans (PDMS against the sim's scene), records closed-loop
metrics, and writes ``episode_<seed>.json`` + a PNG under ``output_dir``; ``/sim/episode`` carries the same JSON.
With ``video``, each episode is also an MP4 there: the camera with the plan drawn in, a top-down inset, and the newest
text on ``reasoning_topic``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float64, String
from visualization_msgs.msg import MarkerArray

from ..eval import score_trajectory
from ..scene import Trajectory, box_centers, ego_to_world, object_list, speed_limit_at, world_to_ego
from ..sim.camera import CameraConfig, FrontCamera
from ..sim.closed_loop import ClosedLoopConfig, episode_monitor, episode_world, plot_episode
from ..sim.world import ENVIRONMENTS
from .conversions import (
    latched_qos,
    objects_marker_array,
    odometry_message,
    path_dt_s,
    path_to_poses,
    route_message,
    seconds_to_stamp,
)
from .parameters import Param, declare
from .processes import run_node

NODE_NAME = "spanvla_sim"
START_TIME_S = 1.0  # sim time of the first tick (a zero stamp reads as "unset" to many tools)

PARAMETERS = [
    Param("envs", list(ClosedLoopConfig().envs), f"Scenes the episodes take turns over ({', '.join(ENVIRONMENTS)})"),
    Param("seed", 0, "Seed of the first episode (episode k uses seed + k)", 0, 2**31 - 1),
    Param("episodes", 4, "Episodes to drive", 1, 10000),
    Param("duration_s", 15.0, "Sim seconds per episode", 1.0, 600.0),
    Param("ego_name", "ego_vehicle", "Role name of the ego in the topic names (carla-ros-bridge convention)"),
    Param("camera_width", 224, "Camera image width [px]", 16, 4096),
    Param("camera_height", 224, "Camera image height [px]", 16, 4096),
    Param("camera_rate_hz", 10.0, "Camera rate (a divisor of the 10 Hz tick rate)", 0.5, 10.0),
    Param("plan_topic", "/spanvla_planner/output/trajectory", "The planned path to track (nav_msgs/Path)"),
    Param("synchronous", True, "Wait for each tick's plan before stepping"),
    Param("plan_timeout_s", 1.0, "Wall seconds a tick waits for its plan", 0.01, 60.0),
    Param("startup_timeout_s", 120.0, "Wall seconds the first tick waits for the first plan", 1.0, 3600.0),
    Param("real_time_factor", 1.0, "Sim seconds per wall second (0 = as fast as plans arrive)", 0.0, 100.0),
    Param("score_plans", True, "Score every received plan with the PDM scorer (the report's pdms)"),
    Param("output_dir", "", "Where episode reports and plots go ('' = nowhere)"),
    Param("exit_when_done", True, "Shut down after the last episode"),
    Param("video", False, "Write episode_<seed>.mp4 under output_dir: camera, plan, top-down inset, reasoning"),
    Param("reasoning_topic", "/spanvla_planner/output/reasoning", "The planner's reasoning text (for the video)"),
]


class SimNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.params = p = declare(self, PARAMETERS)
        unknown = [env for env in p["envs"] if env not in ENVIRONMENTS]
        if unknown:
            raise ValueError(f"unknown envs {unknown}: choose from {', '.join(ENVIRONMENTS)}")
        prefix = f"/carla/{p['ego_name']}"
        self.ego_frame = p["ego_name"]
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.image_pub = self.create_publisher(Image, f"{prefix}/rgb_front/image", 10)
        self.info_pub = self.create_publisher(CameraInfo, f"{prefix}/rgb_front/camera_info", 10)
        self.odom_pub = self.create_publisher(Odometry, f"{prefix}/odometry", 10)
        self.command_pub = self.create_publisher(String, f"{prefix}/driving_command", 10)
        self.speed_limit_pub = self.create_publisher(Float64, f"{prefix}/speed_limit", 10)
        self.markers_pub = self.create_publisher(MarkerArray, "/carla/markers", 10)
        self.route_pub = self.create_publisher(PathMsg, f"{prefix}/waypoints", latched_qos())
        self._marker_ids: dict[str, int] = {}  # agent id → marker id, stable over an episode (the ego is 0)
        self.episode_pub = self.create_publisher(String, "/sim/episode", 10)
        self.create_subscription(PathMsg, p["plan_topic"], self._on_plan, 10)
        self.reasoning = ""
        if p["video"]:
            self.create_subscription(String, p["reasoning_topic"], self._on_reasoning, 10)
        self.camera = FrontCamera(
            CameraConfig(width=p["camera_width"], height=p["camera_height"], frame_id=f"{p['ego_name']}/rgb_front")
        )
        self._plans: dict[int, tuple] = {}  # stamp ns → (stamp, frame, poses, dt, wall receipt)
        self._plan_arrived = threading.Condition()
        self.results: list[dict[str, Any]] = []
        self.finished = threading.Event()

    def _on_plan(self, msg: PathMsg) -> None:
        stamp, frame, poses = path_to_poses(msg)
        if len(poses) == 0 or not np.isfinite(poses).all():
            self.get_logger().error(f"ignoring an empty or non-finite plan stamped {stamp:.2f}")
            return
        with self._plan_arrived:
            self._plans[int(round(stamp * 1e9))] = (stamp, frame, poses, path_dt_s(msg), time.monotonic())
            self._plan_arrived.notify_all()

    def _on_reasoning(self, msg: String) -> None:
        self.reasoning = msg.data

    def _wait_plan(self, stamp_ns: int, timeout_s: float) -> tuple | None:
        deadline = time.monotonic() + timeout_s
        with self._plan_arrived:
            for old in [s for s in self._plans if s < stamp_ns]:
                del self._plans[old]
            while stamp_ns not in self._plans:
                left = deadline - time.monotonic()
                if left <= 0 or not rclpy.ok():
                    return None
                self._plan_arrived.wait(left)
            return self._plans.pop(stamp_ns)

    # --- the drive -------------------------------------------------------------------------------------------------

    def run(self) -> None:
        p = self.params
        config = ClosedLoopConfig(envs=tuple(p["envs"]), duration_s=p["duration_s"])
        clock_s = START_TIME_S
        if p["synchronous"]:
            self._wait_for_planner(p["startup_timeout_s"])
        for k in range(p["episodes"]):
            if not rclpy.ok():
                break
            result, clock_s = self._episode(p["seed"] + k, config, clock_s, first_episode=k == 0)
            self.results.append(result)
            self.episode_pub.publish(String(data=json.dumps(result)))
            self.get_logger().info(
                f"episode {p['seed'] + k} ({result['env']}): DS {result['driving_score']:.3f}, RC "
                f"{result['route_completion']:.3f}, collisions {result['collisions']}, PDMS {result['pdms']:.3f}, "
                f"late plans {result['late_plans']}/{result['ticks']}"
            )
        self.finished.set()

    def _wait_for_planner(self, timeout_s: float) -> None:
        """Hold the first tick until a planner publishes on the plan topic and has had time to subscribe, so the
        first sensor messages are not sent into the void."""
        deadline = time.monotonic() + timeout_s
        while rclpy.ok() and time.monotonic() < deadline:
            if self.count_publishers(self.params["plan_topic"]) > 0 and self.odom_pub.get_subscription_count() > 0:
                time.sleep(1.0)  # discovery of the planner's subscriptions settles
                return
            time.sleep(0.1)
        self.get_logger().warning(f"no planner publishes {self.params['plan_topic']} after {timeout_s} s: starting")

    def _episode(self, seed: int, config: ClosedLoopConfig, clock_s: float, first_episode: bool):
        p = self.params
        world = episode_world(seed, config)
        dt = world.config.dt_s
        camera_every = max(1, int(round(1.0 / (p["camera_rate_hz"] * dt))))
        scene = first = world.reset(seed)
        monitor = episode_monitor(scene, config)
        driven = [scene.ego.pose.copy()]
        origins: dict[int, np.ndarray] = {}
        plan = Trajectory(np.zeros((10, 3)), 0.5)
        plan_origin, plan_stamp_s = world.ego_state[:3], clock_s
        latencies_ms, pdms, late, tick = [], [], 0, 0
        video = self._video(seed)
        wall_start = time.monotonic()
        while not world.done and rclpy.ok():
            stamp_ns = int(round(clock_s * 1e9))
            origins[stamp_ns] = world.ego_state[:3]
            published = time.monotonic()
            camera_rgb = self._publish_tick(scene, world.ego_state, clock_s, tick % camera_every == 0)
            timeout = p["startup_timeout_s"] if first_episode and tick == 0 else p["plan_timeout_s"]
            received = self._wait_plan(stamp_ns, timeout) if p["synchronous"] else self._newest_plan()
            if received is not None:
                plan_stamp_s, frame, poses, dt_s, arrived = received
                origin = origins.get(int(round(plan_stamp_s * 1e9)), world.ego_state[:3])
                if frame != self.ego_frame and frame != "base_link":
                    poses = world_to_ego(poses, origin)  # a path in the map frame
                plan, plan_origin = Trajectory(poses, dt_s), origin
                latencies_ms.append(1e3 * (arrived - published))
                if p["score_plans"]:
                    pdms.append(score_trajectory(scene, poses, dt_s)["pdms"])
            else:
                late += 1
            if video is not None:
                video = self._add_video_frame(video, scene, first, seed, world, plan, plan_origin, camera_rgb)
            scene = world.step(plan, plan_origin=plan_origin, plan_age_s=max(clock_s - plan_stamp_s, 0.0))
            monitor.update(scene, world.time_s)
            driven.append(scene.ego.pose.copy())
            tick += 1
            clock_s += dt
            if p["real_time_factor"] > 0:
                time.sleep(max(0.0, wall_start + tick * dt / p["real_time_factor"] - time.monotonic()))
        episode = monitor.result()
        if video is not None:
            video.close()
        result = {
            "seed": seed,
            "env": first.metadata.get("env"),
            **episode.to_dict(),
            "collisions": int(episode.collided),
            "pdms": float(np.mean(pdms)) if pdms else 0.0,
            "plans_scored": len(pdms),
            "ticks": tick,
            "late_plans": late,
            "plan_latency_ms": [round(v, 3) for v in latencies_ms],
            "wall_s": round(time.monotonic() - wall_start, 2),
        }
        if p["output_dir"]:
            out = Path(p["output_dir"])
            out.mkdir(parents=True, exist_ok=True)
            (out / f"episode_{seed}.json").write_text(json.dumps(result, indent=2))
            plot_episode(first, np.array(driven), episode, out / f"episode_{seed}.png")
        # The next episode starts on a fresh clock second, so the planner sees the jump as a new drive.
        return result, float(np.ceil(clock_s + 1.0))

    def _newest_plan(self) -> tuple | None:
        with self._plan_arrived:
            if not self._plans:
                return None
            newest = max(self._plans)
            plan = self._plans[newest]
            self._plans.clear()
            return plan

    def _add_video_frame(self, video, scene, first, seed, world, plan, plan_origin, camera_rgb):
        """Add this tick to the episode's video; a failure ends the video (logged), never the drive."""
        try:
            now = world.ego_state[:3]
            plan_now = world_to_ego(ego_to_world(plan.poses, plan_origin), now)
            caption = (
                f"{first.metadata.get('env')} seed {seed}  t {world.time_s:4.1f} s  {scene.ego.speed_mps:4.1f} m/s"
            )
            image = camera_rgb if camera_rgb is not None else self.camera.render(scene)
            video.add(scene, image, plan_now, self.reasoning, caption)
            return video
        except Exception as exc:  # noqa: BLE001 - the drive and its metrics matter more than the video
            self.get_logger().error(f"episode {seed}: the video stops here: {type(exc).__name__}: {exc}")
            video.close()
            return None

    def _video(self, seed: int):
        if not (self.params["video"] and self.params["output_dir"]):
            return None
        from ..sim.drive_video import DriveVideo

        return DriveVideo(Path(self.params["output_dir"]) / f"episode_{seed}.mp4", self.camera)

    def _publish_tick(self, scene, state: np.ndarray, clock_s: float, with_camera: bool) -> np.ndarray | None:
        """Publish one tick's clock, odometry, command, speed limit, road users, route and (``with_camera``) image;
        return the image rendered."""
        from builtin_interfaces.msg import Time

        stamp = seconds_to_stamp(clock_s, Time)
        self.clock_pub.publish(Clock(clock=stamp))
        odom = odometry_message(stamp, state[:3], scene.ego.speed_mps, "map", self.ego_frame, scene.ego.yaw_rate_radps)
        self.odom_pub.publish(odom)
        self.command_pub.publish(String(data=scene.command.value))
        limit = speed_limit_at(scene, None)
        if limit is not None:  # off the road there is no lane and so no limit to give
            self.speed_limit_pub.publish(Float64(data=limit))
        self.markers_pub.publish(self._road_users(scene, state, clock_s))
        self.route_pub.publish(route_message(clock_s, "map", scene.route_centerline_xy))
        if with_camera:
            frame = self.camera.render(scene)
            image = Image(height=frame.shape[0], width=frame.shape[1], encoding="rgb8", step=frame.shape[1] * 3)
            image.header.stamp, image.header.frame_id = stamp, self.camera.info.frame_id
            image.data = frame.tobytes()
            self.image_pub.publish(image)
            self.info_pub.publish(camera_info_message(self.camera, image.header))
            return frame
        return None

    def _road_users(self, scene, state: np.ndarray, clock_s: float):
        dims = scene.ego.dimensions
        centre = box_centers(np.asarray(state[:3])[None], dims.rear_axle_to_center_m)[0]
        ids, boxes, _ = object_list(scene)
        marker_ids = [self._marker_ids.setdefault(name, len(self._marker_ids) + 1) for name in ids]
        ego_box = np.array([[*centre, state[2], dims.length_m, dims.width_m]])
        return objects_marker_array(clock_s, "map", [0, *marker_ids], np.vstack([ego_box, boxes]))


def camera_info_message(camera: FrontCamera, header) -> CameraInfo:
    info = camera.info
    return CameraInfo(
        header=header, height=info.height, width=info.width, distortion_model=info.distortion_model,
        d=list(info.d), k=list(info.k), r=list(info.r), p=list(info.p),
    )  # fmt: skip


def main(args: list[str] | None = None) -> int:
    def spin(node: SimNode) -> None:
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        threading.Thread(target=node.run, name="sim-drive", daemon=True).start()
        while rclpy.ok() and not (node.finished.is_set() and node.params["exit_when_done"]):
            executor.spin_once(timeout_sec=0.1)

    return run_node(SimNode, NODE_NAME, spin, args)


if __name__ == "__main__":
    sys.exit(main())
