"""Plans scored against a recorded drive (bag replay): where the vehicle really went is the reference. Open-loop
displacement errors, the comfort of each plan as the tracker would drive it, and a plot of plans over the track.

A track is ``[T, 5]`` rows ``(t, x, y, yaw, speed)`` of recorded odometry; a plan record is ``(stamp_s, origin [3],
poses_ego [N, 3], stopped)``, its i-th pose at ``stamp_s + (i+1)·dt_s``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..observation import poses_at
from ..scene import PACIFICA, VehicleDimensions, ego_to_world, world_to_ego
from .comfort import ComfortLimits, is_comfortable
from .report import percentiles, save_figure
from .tracker import initial_state, track_poses

PlanRecord = tuple[float, np.ndarray, np.ndarray, bool]


def pose_at(track: np.ndarray, stamp_s: float) -> np.ndarray | None:
    """The recorded pose ``[3]`` at ``stamp_s`` (interpolated; None outside the recording)."""
    if track.size == 0 or stamp_s < track[0, 0] - 1e-6 or stamp_s > track[-1, 0] + 1e-6:
        return None
    return poses_at(track, np.array([stamp_s]))[0]


def displacement_errors(
    track: np.ndarray, stamp_s: float, origin: np.ndarray, poses_ego: np.ndarray, dt_s: float
) -> tuple[float, float] | None:
    """(ADE, FDE) of a plan against the recorded future in the plan's ego frame, or None where the recording ends
    before the plan's horizon."""
    times = stamp_s + np.arange(1, len(poses_ego) + 1) * dt_s
    if track.size == 0 or times[-1] > track[-1, 0] + 1e-6:
        return None
    future = np.column_stack([np.interp(times, track[:, 0], track[:, c]) for c in (1, 2)])
    future_ego = world_to_ego(np.column_stack([future, np.zeros(len(times))]), origin)[:, :2]
    errors = np.linalg.norm(poses_ego[:, :2] - future_ego, axis=1)
    return float(errors.mean()), float(errors[-1])


def plan_is_comfortable(
    track: np.ndarray,
    stamp_s: float,
    origin: np.ndarray,
    poses_ego: np.ndarray,
    dt_s: float,
    vehicle: VehicleDimensions = PACIFICA,
) -> bool:
    """Whether the tracker, starting at the recorded speed, drives the plan within the comfort limits."""
    speed = float(np.interp(stamp_s, track[:, 0], track[:, 4]))
    steps = int(round(len(poses_ego) * dt_s / 0.1))
    states = track_poses(ego_to_world(poses_ego, origin)[None], dt_s, initial_state(origin, speed), vehicle, steps)
    return bool(is_comfortable(states, 0.1, ComfortLimits())[0])


def recording_metrics(records: list[PlanRecord], track: np.ndarray, dt_s: float) -> dict[str, Any]:
    """ADE/FDE (means) and comfort rate of the plans that are not stops and whose horizon the recording covers;
    ``ade_per_plan`` in plan order."""
    ade, fde, comfortable = [], [], []
    for stamp, origin, poses_ego, stopped in records:
        errors = displacement_errors(track, stamp, origin, poses_ego, dt_s)
        if errors is None or stopped:
            continue
        ade.append(errors[0])
        fde.append(errors[1])
        comfortable.append(plan_is_comfortable(track, stamp, origin, poses_ego, dt_s))
    return {
        "plans_with_future": len(ade),
        "ade_m": float(np.mean(ade)) if ade else None,
        "fde_m": float(np.mean(fde)) if fde else None,
        "ade_m_percentiles": percentiles(ade),
        "comfort_rate": float(np.mean(comfortable)) if comfortable else None,
        "ade_per_plan": ade,
    }


def plot_plans_over_track(records: list[PlanRecord], track: np.ndarray, ade: list[float], path: Path) -> Path:
    """The recorded track with every ~25th plan on top (stops in red), and ADE per plan below."""
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), dpi=110, gridspec_kw={"height_ratios": [2, 1]})
    top.plot(track[:, 1], track[:, 2], "k-", lw=2, label="recorded odometry")
    for i, (_, origin, poses_ego, stopped) in enumerate(records[:: max(1, len(records) // 25)]):
        world = ego_to_world(poses_ego, origin)
        top.plot(world[:, 0], world[:, 1], "-", color="red" if stopped else "tab:green", alpha=0.6, lw=1,
                 label="plans" if i == 0 else None)  # fmt: skip
    top.set_aspect("equal", adjustable="datalim")
    top.set_xlabel("x [m]")
    top.set_ylabel("y [m]")
    top.legend()
    bottom.plot(ade, ".-")
    bottom.set_xlabel("plan (with recorded future)")
    bottom.set_ylabel("ADE [m]")
    return save_figure(fig, path)
