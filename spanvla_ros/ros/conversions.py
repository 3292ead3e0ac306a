"""ROS messages ↔ numpy, checked: camera images (raw and compressed), odometry, stamps, and the planner's outputs
(``nav_msgs/Path``, RViz markers, ``diagnostic_msgs``).

Readers are duck-typed so they take rclpy messages and ``rosbags``-deserialised ones alike. Images decode through the
ROS distribution's ``cv_bridge`` when the node runs inside a ROS install, else through ``rosbags-image`` (the PyPI
``cv-bridge`` is broken with OpenCV 5 / numpy ≥ 2.3). Row padding (``step``) is removed here first, because
``rosbags-image`` assumes unpadded rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime.online import MAX_IMAGE_SIDE_PX, PlanOutput, Status

RAW_ENCODINGS = {  # encoding → (channels, bytes per channel)
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "rgb16": (3, 2),
    "bgr16": (3, 2),
    "rgba16": (4, 2),
    "bgra16": (4, 2),
    "mono16": (1, 2),
}


class ImageConversionError(ValueError):
    """The image message cannot be turned into an RGB frame; the message says why."""


def stamp_seconds(stamp: Any) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_stamp(seconds: float, stamp_type: Any) -> Any:
    nanoseconds = int(round(seconds * 1e9))
    return stamp_type(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


# --- images ------------------------------------------------------------------------------------------------------


def image_layout(msg: Any) -> tuple:
    """What must match for a frame to share the last decoded frame's checks: encoding and size. A compressed
    image's byte count changes with every frame, so compressed frames are all decoded (and checked)."""
    if hasattr(msg, "format"):
        return ("compressed", str(msg.format), len(msg.data))
    return (str(msg.encoding), int(msg.height), int(msg.width), int(msg.step), len(msg.data))


def image_to_rgb(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` or ``CompressedImage`` → ``[H, W, 3]`` uint8 RGB; raises ImageConversionError."""
    if hasattr(msg, "format"):
        return _compressed_to_rgb(msg)
    encoding = str(msg.encoding).lower()
    if encoding not in RAW_ENCODINGS:
        raise ImageConversionError(f"unsupported image encoding '{msg.encoding}' (supported: {sorted(RAW_ENCODINGS)})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < 1 or width < 1:
        raise ImageConversionError(f"image has zero size {width}x{height}")
    if height > MAX_IMAGE_SIDE_PX or width > MAX_IMAGE_SIDE_PX:
        raise ImageConversionError(f"image {width}x{height} exceeds the {MAX_IMAGE_SIDE_PX} px limit")
    channels, depth = RAW_ENCODINGS[encoding]
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is shorter than a {encoding} row of width {width} ({row_bytes} bytes)")
    data = np.frombuffer(msg.data, dtype=np.uint8) if len(msg.data) else np.zeros(0, np.uint8)
    needed = step * (height - 1) + row_bytes
    if data.size < needed:
        raise ImageConversionError(f"image data has {data.size} bytes, {needed} needed for {width}x{height} {encoding}")
    # Drop row padding, then let the decoder see a tightly packed image.
    packed = np.lib.stride_tricks.as_strided(data, shape=(height, row_bytes), strides=(step, 1)).copy()
    bridge = _ros_cv_bridge()
    if bridge is not None:
        from sensor_msgs.msg import Image

        tight = Image(height=height, width=width, encoding=encoding, is_bigendian=msg.is_bigendian, step=row_bytes)
        tight.data = packed.tobytes()
        return np.ascontiguousarray(bridge.imgmsg_to_cv2(tight, "rgb8"))
    from rosbags.image import ImageError, image_to_cvimage

    tight = _PackedImage(height, width, encoding, bool(msg.is_bigendian), row_bytes, packed.reshape(-1))
    try:
        return np.ascontiguousarray(image_to_cvimage(tight, "rgb8"))
    except (ImageError, ValueError) as exc:
        raise ImageConversionError(f"cannot convert {encoding} to rgb8: {exc}") from exc


def _compressed_to_rgb(msg: Any) -> np.ndarray:
    import cv2

    data = np.frombuffer(msg.data, dtype=np.uint8) if len(msg.data) else np.zeros(0, np.uint8)
    if data.size == 0:
        raise ImageConversionError(f"compressed image ({msg.format}) has no data")
    # Read the header first: a tiny JPEG can declare a huge image.
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageConversionError(f"cannot decode the {msg.format or 'compressed'} image ({data.size} bytes)")
    if max(image.shape[:2]) > MAX_IMAGE_SIDE_PX:
        raise ImageConversionError(f"decoded image {image.shape[1]}x{image.shape[0]} exceeds the limit")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class _PackedImage:
    """The fields ``rosbags.image.image_to_cvimage`` reads."""

    def __init__(self, height, width, encoding, is_bigendian, step, data) -> None:
        self.height, self.width, self.encoding = height, width, encoding
        self.is_bigendian, self.step, self.data = is_bigendian, step, data


_BRIDGE: list[Any] = []


def _ros_cv_bridge() -> Any | None:
    """The ROS install's cv_bridge, when the node runs in one (never the PyPI package: see the module docstring)."""
    if not _BRIDGE:
        bridge = None
        try:
            import cv_bridge

            if "site-packages" not in (cv_bridge.__file__ or ""):
                bridge = cv_bridge.CvBridge()
        except Exception:  # absent or broken: rosbags-image does the job
            bridge = None
        _BRIDGE.append(bridge)
    return _BRIDGE[0]


# --- odometry ----------------------------------------------------------------------------------------------------


def odometry_to_pose(msg: Any) -> tuple[np.ndarray, float]:
    """``nav_msgs/Odometry`` → (pose ``(x, y, yaw)``, speed). A quaternion whose norm is off by more than 10 % is an
    error; a slightly off one is normalised."""
    q = msg.pose.pose.orientation
    quaternion = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    position = msg.pose.pose.position
    twist = msg.twist.twist.linear
    values = np.array([position.x, position.y, twist.x, twist.y], dtype=np.float64)
    if not (np.isfinite(quaternion).all() and np.isfinite(values).all()):
        raise ValueError("odometry contains NaN or inf")
    norm = float(np.linalg.norm(quaternion))
    if abs(norm - 1.0) > 0.1:
        raise ValueError(f"odometry orientation is not a unit quaternion (norm {norm:.3f})")
    x, y, z, w = quaternion / norm
    yaw = float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
    return np.array([position.x, position.y, yaw]), float(np.hypot(twist.x, twist.y)) * float(np.sign(twist.x) or 1.0)


def odometry_message(
    stamp: Any, pose: np.ndarray, speed_mps: float, frame_id: str, child_frame_id: str = "", yaw_rate_radps: float = 0.0
):
    """``nav_msgs/Odometry`` at ``stamp`` (a ``builtin_interfaces/Time``) for the rear-axle ``pose (x, y, yaw)`` in
    ``frame_id``, moving forward at ``speed_mps`` (the inverse of ``odometry_to_pose``)."""
    from nav_msgs.msg import Odometry

    msg = Odometry()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, frame_id, child_frame_id
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(pose[0]), float(pose[1])
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = yaw_to_quaternion(float(pose[2]))
    msg.twist.twist.linear.x = float(speed_mps)
    msg.twist.twist.angular.z = float(yaw_rate_radps)
    return msg


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by ``yaw`` about z."""
    return 0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2))


# --- outputs -----------------------------------------------------------------------------------------------------


def plan_poses_in_frame(plan: PlanOutput, output_frame: str, base_frame: str) -> tuple[str, np.ndarray]:
    """The plan's poses ``[N, 3]`` in ``output_frame``: the ego frame (``base_frame``) or the odometry frame."""
    if output_frame == base_frame or plan.origin is None:
        return base_frame, plan.poses_ego
    from ..scene import ego_to_world

    return plan.odom_frame or output_frame, ego_to_world(plan.poses_ego, plan.origin)


def path_message(plan: PlanOutput, output_frame: str, base_frame: str):
    """``nav_msgs/Path`` stamped at the plan's odometry time; pose i stamped ``t0 + (i+1)·dt``."""
    frame, poses = plan_poses_in_frame(plan, output_frame, base_frame)
    return _path(frame, plan.stamp_s, poses, plan.stamp_s + plan.dt_s * np.arange(1, len(poses) + 1))


def latched_qos():
    """The QoS of a route: reliable and transient local, so that a subscriber that starts late still gets the route
    (CARLA's waypoint publisher sends it once)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def route_message(stamp_s: float, frame: str, xy: np.ndarray):
    """A route as ``nav_msgs/Path`` (CARLA's ``/carla/<ego>/waypoints``): points ``xy [K, 2]`` in driving order, each
    heading towards the next, every pose stamped ``stamp_s``."""
    xy = np.asarray(xy, dtype=np.float64)
    step = np.diff(xy, axis=0)
    headings = np.arctan2(step[:, 1], step[:, 0])
    headings = np.append(headings, headings[-1]) if len(headings) else np.zeros(len(xy))
    return _path(frame, stamp_s, np.column_stack([xy, headings]), np.full(len(xy), stamp_s))


def _path(frame: str, stamp_s: float, poses: np.ndarray, pose_stamps_s: np.ndarray):
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path

    path = Path()
    path.header.frame_id = frame
    path.header.stamp = seconds_to_stamp(stamp_s, Time)
    for (x, y, yaw), pose_stamp in zip(poses, pose_stamps_s, strict=True):
        pose = PoseStamped()
        pose.header.frame_id = frame
        pose.header.stamp = seconds_to_stamp(float(pose_stamp), Time)
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = yaw_to_quaternion(float(yaw))
        path.poses.append(pose)
    return path


def path_to_poses(msg: Any) -> tuple[float, str, np.ndarray]:
    """``nav_msgs/Path`` → (stamp, frame, poses ``[N, 3]``)."""
    poses = []
    for stamped in msg.poses:
        q = stamped.pose.orientation
        yaw = float(np.arctan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z)))
        poses.append((stamped.pose.position.x, stamped.pose.position.y, yaw))
    return stamp_seconds(msg.header.stamp), msg.header.frame_id, np.array(poses, dtype=np.float64).reshape(-1, 3)


def path_dt_s(msg: Any, default: float = 0.5) -> float:
    """The pose spacing of a path published as ``planner_node`` does (pose i at ``t0 + (i+1)·dt``)."""
    if not msg.poses:
        return default
    dt = stamp_seconds(msg.poses[0].header.stamp) - stamp_seconds(msg.header.stamp)
    return dt if dt > 1e-6 else default


def markers_to_objects(msg: Any) -> tuple[float, str, list[str], np.ndarray]:
    """``visualization_msgs/MarkerArray`` of perceived objects (CUBE markers, as CARLA-ROS-bridge's ``/carla/markers``)
    → (stamp, frame, ids ``ns/id``, boxes ``[M, 5]``: centre x, y, heading, length, width). Other marker types and
    actions are skipped; markers in different frames, or non-finite, are an error."""
    cube, add = 1, 0  # visualization_msgs/Marker.CUBE, .ADD
    ids: list[str] = []
    rows: list[list[float]] = []
    frames: set[str] = set()
    stamp = 0.0
    for marker in msg.markers:
        if marker.type != cube or marker.action != add:
            continue
        frames.add(marker.header.frame_id)
        stamp = max(stamp, stamp_seconds(marker.header.stamp))
        q = marker.pose.orientation
        x, y, z, w = q.x, q.y, q.z, q.w
        norm = float(np.sqrt(x * x + y * y + z * z + w * w))
        if not norm > 0:
            raise ValueError(f"object marker {marker.ns}/{marker.id} has no orientation (zero quaternion)")
        yaw = float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
        p = marker.pose.position
        ids.append(f"{marker.ns}/{marker.id}")
        rows.append([p.x, p.y, yaw, marker.scale.x, marker.scale.y])
    if len(frames) > 1:
        raise ValueError(f"object markers come in several frames ({', '.join(sorted(frames))})")
    boxes = np.array(rows, dtype=np.float64).reshape(-1, 5)
    if not np.isfinite(boxes).all():
        raise ValueError("an object marker contains NaN or inf")
    return stamp, (frames.pop() if frames else ""), ids, boxes


def objects_marker_array(stamp_s: float, frame: str, ids: list[int], boxes: np.ndarray, namespace: str = "objects"):
    """Objects as CUBE markers (the layout of CARLA-ROS-bridge's ``/carla/markers``): box centre, heading, size."""
    from builtin_interfaces.msg import Time
    from visualization_msgs.msg import Marker, MarkerArray

    markers = MarkerArray()
    for marker_id, (x, y, yaw, length, width) in zip(ids, np.asarray(boxes, dtype=np.float64), strict=True):
        marker = Marker()
        marker.header.frame_id, marker.header.stamp = frame, seconds_to_stamp(stamp_s, Time)
        marker.ns, marker.id, marker.type, marker.action = namespace, int(marker_id), Marker.CUBE, Marker.ADD
        marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = float(x), float(y), 0.8
        qx, qy, qz, qw = yaw_to_quaternion(float(yaw))
        o = marker.pose.orientation
        o.x, o.y, o.z, o.w = qx, qy, qz, qw
        marker.scale.x, marker.scale.y, marker.scale.z = float(length), float(width), 1.6
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = 0.2, 0.4, 0.9, 0.8
        markers.markers.append(marker)
    return markers


def marker_array(plan: PlanOutput, output_frame: str, base_frame: str, namespace: str = "spanvla"):
    """RViz markers: the path as a line strip (green; red for a stop trajectory), its poses as spheres, and the
    reasoning's first line as text above the ego."""
    from builtin_interfaces.msg import Duration, Time
    from geometry_msgs.msg import Point
    from visualization_msgs.msg import Marker, MarkerArray

    frame, poses = plan_poses_in_frame(plan, output_frame, base_frame)
    stamp = seconds_to_stamp(plan.stamp_s, Time)
    colour = (0.9, 0.1, 0.1) if plan.safe_stop else (0.1, 0.8, 0.2)
    markers = MarkerArray()
    for marker_id, kind in enumerate((Marker.LINE_STRIP, Marker.SPHERE_LIST, Marker.TEXT_VIEW_FACING)):
        marker = Marker()
        marker.header.frame_id, marker.header.stamp = frame, stamp
        marker.ns, marker.id, marker.type, marker.action = namespace, marker_id, kind, Marker.ADD
        marker.lifetime = Duration(sec=1)
        marker.pose.orientation.w = 1.0
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = (*colour, 1.0)
        if kind == Marker.TEXT_VIEW_FACING:
            origin = poses[0] if len(poses) else np.zeros(3)
            position = marker.pose.position
            position.x, position.y, position.z = float(origin[0]), float(origin[1]), 3.0
            marker.scale.z = 0.8
            text = plan.stop_reason if plan.safe_stop else plan.reasoning_text
            marker.text = (text.strip().splitlines() or [""])[0][:80]
        else:
            marker.scale.x = marker.scale.y = marker.scale.z = 0.3 if kind == Marker.LINE_STRIP else 0.5
            marker.points = [Point(x=float(x), y=float(y), z=0.2) for x, y, _ in poses]
        markers.markers.append(marker)
    return markers


def diagnostic_array(statuses: list[Status], stamp_s: float, node_name: str):
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray

    array = DiagnosticArray()
    array.header.stamp = seconds_to_stamp(stamp_s, Time)
    array.status.extend(diagnostic_status(status, node_name) for status in statuses)
    return array


def diagnostic_status(status: Status, node_name: str):
    """One ``diagnostic_msgs/DiagnosticStatus`` named ``node: status``, its values as key/value pairs."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    return DiagnosticStatus(
        level=bytes([int(status.level)]),
        name=f"{node_name}: {status.name}",
        message=status.message,
        hardware_id=node_name,
        values=[KeyValue(key=k, value=v) for k, v in status.values.items()],
    )
