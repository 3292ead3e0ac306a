"""The one observation builder: timestamped ego poses and camera frames plus the model's input spans (from the
artefact's metadata) → what the model reads — the ego history in the ego frame, speed, acceleration and which camera
frames. The car's planning core, the bag adapter that makes training samples from recordings and the closed-loop
evaluation's camera all build observations here, so training and serving read the same spans. numpy only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .scene import world_to_ego


@dataclass(frozen=True)
class ObservationSpec:
    """The model's input spans: ``history_len`` ego poses every ``history_dt_s`` (the last one now), and per camera
    ``frames_per_camera`` frames every ``frame_dt_s`` (the last one the newest)."""

    history_len: int = 4
    history_dt_s: float = 0.5
    frames_per_camera: int = 1
    frame_dt_s: float = 0.5

    @classmethod
    def from_meta(cls, meta: dict[str, Any], cameras: int = 1) -> ObservationSpec:
        """From an artefact's runtime metadata (``runtime.meta``), the images shared by ``cameras`` cameras."""
        history_dt_s = float(meta["history_dt_s"])
        return cls(
            history_len=int(meta["history_len"]),
            history_dt_s=history_dt_s,
            frames_per_camera=int(meta["num_images"]) // cameras,
            frame_dt_s=float(meta.get("camera_dt_s", history_dt_s)),
        )

    @property
    def history_span_s(self) -> float:
        return (self.history_len - 1) * self.history_dt_s

    @property
    def frame_span_s(self) -> float:
        return (self.frames_per_camera - 1) * self.frame_dt_s


@dataclass(frozen=True)
class EgoInputs:
    """The ego part of an observation at ``stamp_s``: ``pose [3]`` (world), ``history_ego [H, 3]`` (oldest first, the
    last pose the origin), speed and acceleration."""

    stamp_s: float
    pose: np.ndarray
    speed_mps: float
    acceleration_mps2: float
    history_ego: np.ndarray


def poses_at(track: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Poses ``[T, 3]`` of a time-sorted track ``[M, ≥4]`` rows ``(t, x, y, yaw, …)`` at ``times_s``, linearly
    interpolated (yaw unwrapped first; held at the ends)."""
    t, yaw = track[:, 0], np.unwrap(track[:, 3])
    return np.column_stack([np.interp(times_s, t, column) for column in (track[:, 1], track[:, 2], yaw)])


def ego_inputs(track: np.ndarray, spec: ObservationSpec, now_s: float | None = None) -> EgoInputs:
    """From a time-sorted odometry track ``[M, 5]`` rows ``(t, x, y, yaw, speed)`` (yaw unwrapped or not), the ego
    inputs at ``now_s`` (default: the newest row), interpolated. Before the track covers the history span the ego is
    assumed to have come at its oldest known speed and heading; the acceleration is the speed change over the last
    ``history_dt_s`` (0 until the track covers it)."""
    t, x, y, speed = track[:, 0], track[:, 1], track[:, 2], track[:, 4]
    yaw = np.unwrap(track[:, 3])
    now = float(t[-1] if now_s is None else now_s)
    pose = poses_at(track, np.array([now]))[0]
    times = now - np.arange(spec.history_len - 1, -1, -1) * spec.history_dt_s
    history = poses_at(track, times)
    before = times < t[0]
    if before.any():
        back = (t[0] - times[before]) * speed[0]
        history[before, 0] = x[0] - back * np.cos(yaw[0])
        history[before, 1] = y[0] - back * np.sin(yaw[0])
        history[before, 2] = yaw[0]
    half = spec.history_dt_s
    speed_now = float(np.interp(now, t, speed))
    acceleration = (speed_now - float(np.interp(now - half, t, speed))) / half if now - t[0] >= half else 0.0
    return EgoInputs(now, pose, speed_now, float(acceleration), world_to_ego(history, pose))


def frame_times(spec: ObservationSpec, now_s: float) -> np.ndarray:
    """When the frames the model reads should have been taken: ``now_s − k·frame_dt_s``, oldest first."""
    return now_s - np.arange(spec.frames_per_camera - 1, -1, -1) * spec.frame_dt_s


def frame_picks(stamps: np.ndarray, spec: ObservationSpec, now_s: float | None = None) -> list[int]:
    """Indices into one camera's time-sorted frame ``stamps`` nearest to ``frame_times`` (default ``now_s``: the
    newest frame), oldest first."""
    stamps = np.asarray(stamps, dtype=np.float64)
    now = float(stamps[-1] if now_s is None else now_s)
    return [int(np.argmin(np.abs(stamps - wanted))) for wanted in frame_times(spec, now)]
