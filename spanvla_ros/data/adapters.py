"""Real-data adapters into the same samples the simulator produces.

(a) ROS 2 bags (sqlite3 or MCAP, read with ``rosbags``): a camera topic (``sensor_msgs/Image`` or
``CompressedImage``) and odometry (``nav_msgs/Odometry``); the history and the future trajectory come from the
recorded odometry. (b) NAVSIM / OpenScene logs in their published layout: ``<logs>/<log>.pkl`` (a list of 2 Hz frame
dicts) and ``<sensor_blobs>/<data_path>`` camera files. The log pickles are read with an unpickler that only admits
plain containers and numpy arrays, so a log cannot run code.

Real samples carry no map: their ``scene`` is empty and their reasoning is unlabelled.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..inputs import square_image
from ..observation import ego_inputs, frame_picks, frame_times, poses_at
from ..scene import world_to_ego
from ..text_format import FAST_MODE_TEXT
from .dataset import POSITIVE, Sample
from .generate import GenerationConfig

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
NAVSIM_COMMANDS = ("left", "straight", "right", "unknown")  # one-hot order of NAVSIM's driving_command


class AdapterError(ValueError):
    """The recording lacks what a sample needs (a camera topic, odometry, sensor files) or is malformed."""


# --- shared ------------------------------------------------------------------------------------------------------


def _unlabelled() -> dict[str, Any]:
    return {
        "mode": "unlabelled",
        "components": [],
        "decision": {"longitudinal": "", "lateral": ""},
        "trace": "",
        "text": FAST_MODE_TEXT,
    }


def _command_from_future(future_ego: np.ndarray) -> str:
    heading = float(future_ego[-1, 2])
    return "left" if heading > 0.5 else "right" if heading < -0.5 else "straight"


# --- (a) ROS 2 bags ----------------------------------------------------------------------------------------------


def samples_from_bag(
    bag: str | Path,
    *,
    camera_topic: str | None = None,
    odometry_topic: str | None = None,
    config: GenerationConfig = GenerationConfig(),
) -> list[Sample]:
    """Samples every ``pose_dt_s`` along a bag's odometry, where history, camera frames and the full future exist."""
    from rosbags.highlevel import AnyReader

    bag = Path(bag)
    if not bag.exists():
        raise AdapterError(f"bag not found: {bag}")
    with AnyReader([bag]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        camera_topic = camera_topic or next((t for t, m in sorted(topics.items()) if m in IMAGE_TYPES), None)
        odometry_topic = odometry_topic or next((t for t, m in sorted(topics.items()) if m == ODOMETRY_TYPE), None)
        if camera_topic is None or camera_topic not in topics:
            raise AdapterError(f"{bag}: no camera topic (sensor_msgs/Image or CompressedImage); topics: {topics}")
        if odometry_topic is None or odometry_topic not in topics:
            raise AdapterError(f"{bag}: no odometry topic (nav_msgs/Odometry); topics: {topics}")
        images: list[tuple[float, np.ndarray]] = []
        odometry: list[tuple[float, float, float, float, float]] = []
        wanted = [c for c in reader.connections if c.topic in (camera_topic, odometry_topic)]
        for connection, _, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if connection.topic == camera_topic:
                images.append((stamp, _decode_image(msg, connection.msgtype)))
            else:
                q = msg.pose.pose.orientation
                yaw = float(np.arctan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z)))
                odometry.append(
                    (
                        stamp,
                        msg.pose.pose.position.x,
                        msg.pose.pose.position.y,
                        yaw,
                        float(np.hypot(msg.twist.twist.linear.x, msg.twist.twist.linear.y)),
                    )
                )
    if len(odometry) < 2 or not images:
        raise AdapterError(f"{bag}: needs odometry and camera messages (got {len(odometry)} and {len(images)})")
    odometry.sort()
    images.sort(key=lambda item: item[0])
    return _samples_from_tracks(np.array(odometry), images, f"bag:{bag.stem}", config)


def _decode_image(msg: Any, msgtype: str) -> np.ndarray:
    from rosbags.image import compressed_image_to_cvimage, message_to_cvimage

    if msgtype.endswith("CompressedImage"):
        image = compressed_image_to_cvimage(msg, "rgb8")
    else:
        image = message_to_cvimage(msg, "rgb8")
    return np.ascontiguousarray(image)


def _samples_from_tracks(
    odometry: np.ndarray, images: list[tuple[float, np.ndarray]], source: str, config: GenerationConfig
) -> list[Sample]:
    """odometry ``[M, 5]`` (t, x, y, yaw, speed), time-sorted; images (t, rgb) time-sorted."""
    t = odometry[:, 0]
    spec = config.observation
    image_times = np.array([stamp for stamp, _ in images])
    step = config.pose_dt_s
    samples = []
    # From the first moment with a full history (and a measured acceleration) and frames, to the last with a future.
    first = t[0] + max(spec.history_span_s, spec.frame_span_s, spec.history_dt_s)
    for now in np.arange(first, t[-1] - config.num_poses * step + 1e-6, step):
        ego = ego_inputs(odometry, spec, now)
        future = world_to_ego(poses_at(odometry, now + step * np.arange(1, config.num_poses + 1)), ego.pose)
        nearest = frame_picks(image_times, spec, now)
        if np.any(np.abs(image_times[nearest] - frame_times(spec, now)) > 0.25):
            continue  # no camera frame near this time
        history, v_now, accel = ego.history_ego, ego.speed_mps, ego.acceleration_mps2
        samples.append(
            Sample(
                token=f"{source}-t{now - t[0]:07.2f}",
                kind=POSITIVE,
                env=source.split(":")[0],
                seed=-1,
                time_s=round(float(now - t[0]), 3),
                images=np.stack([square_image(images[i][1], config.image_size) for i in nearest]),
                ego_history=history,
                speed_mps=v_now,
                acceleration_mps2=accel,
                command=_command_from_future(future),
                target=future,
                reasoning=_unlabelled(),
                scene={},
            )
        )
    return samples


# --- (b) NAVSIM / OpenScene logs ---------------------------------------------------------------------------------


class _LogUnpickler(pickle.Unpickler):
    """Admits only builtin containers and numpy arrays/scalars: a log file cannot name code to run."""

    ALLOWED = {
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "set"),
        ("collections", "OrderedDict"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise AdapterError(f"log pickle refers to {module}.{name}, which a NAVSIM log never needs; refusing to load")


def load_navsim_log(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"NAVSIM log not found: {path}")
    frames = _LogUnpickler(io.BytesIO(path.read_bytes())).load()
    if not isinstance(frames, list) or not frames or not isinstance(frames[0], dict):
        raise AdapterError(f"{path}: expected a list of frame dicts (NAVSIM log layout)")
    return frames


def samples_from_navsim_log(
    log: str | Path, sensor_root: str | Path, *, camera: str = "CAM_F0", config: GenerationConfig = GenerationConfig()
) -> list[Sample]:
    """Samples from one NAVSIM log (2 Hz frames): front camera, ego status, driving command, future poses."""
    frames = load_navsim_log(log)
    sensor_root = Path(sensor_root)
    required = ("timestamp", "ego2global_translation", "ego2global_rotation", "ego_dynamic_state", "cams")
    for i, frame in enumerate(frames):
        missing = [key for key in required if key not in frame]
        if missing:
            raise AdapterError(f"{log}: frame {i} lacks {missing}")
    poses = []
    for frame in frames:
        w, qx, qy, qz = (float(v) for v in frame["ego2global_rotation"])
        yaw = np.arctan2(2 * (w * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
        poses.append((frame["ego2global_translation"][0], frame["ego2global_translation"][1], yaw))
    poses = np.array(poses, dtype=np.float64)
    poses[:, 2] = np.unwrap(poses[:, 2])
    if abs(config.history_dt_s - 0.5) > 1e-9:
        raise AdapterError(f"NAVSIM logs are 2 Hz: history_dt_s must be 0.5, got {config.history_dt_s}")
    history_frames, samples = config.history_len, []
    for now in range(history_frames - 1, len(frames) - config.num_poses):
        frame = frames[now]
        camera_files = []
        for k in range(config.camera_history - 1, -1, -1):
            cams = frames[now - k]["cams"]
            if camera not in cams:
                raise AdapterError(f"{log}: frame {now - k} has no {camera} camera")
            file = sensor_root / cams[camera]["data_path"]
            if not file.is_file():
                raise AdapterError(f"{log}: sensor file missing: {file}")
            camera_files.append(file)
        images = []
        for file in camera_files:
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                raise AdapterError(f"{file}: not a readable image")
            images.append(square_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), config.image_size))
        origin = poses[now]
        dynamic = np.asarray(frame["ego_dynamic_state"], dtype=np.float64)
        command_onehot = np.asarray(frame.get("driving_command", [0, 0, 0, 1]))
        samples.append(
            Sample(
                token=f"navsim:{frame.get('token', now)}",
                kind=POSITIVE,
                env="navsim",
                seed=-1,
                time_s=round((frame["timestamp"] - frames[0]["timestamp"]) * 1e-6, 3),
                images=np.stack(images),
                ego_history=world_to_ego(poses[now - history_frames + 1 : now + 1], origin),
                speed_mps=float(np.hypot(dynamic[0], dynamic[1])),
                acceleration_mps2=float(dynamic[2]) if len(dynamic) > 2 else 0.0,
                command=NAVSIM_COMMANDS[int(np.argmax(command_onehot))],
                target=world_to_ego(poses[now + 1 : now + 1 + config.num_poses], origin),
                reasoning=_unlabelled(),
                scene={},
            )
        )
    return samples
