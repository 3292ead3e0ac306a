"""Hand-made scenes whose answers are known: a straight multi-lane road, optionally two-way and with a signalised
junction. Used by tests, benchmarks and documentation; the simulator builds its own scenes from highway-env."""

from __future__ import annotations

import numpy as np

from .types import (
    Agent,
    DrivingCommand,
    EgoState,
    Lane,
    MapData,
    Scene,
    TrafficLight,
    TrafficLightState,
    VehicleDimensions,
    lane_union,
)


def straight_poses(
    speed_mps: float, num_poses: int, dt_s: float = 0.5, accel_mps2: float = 0.0, lateral_m: float = 0.0
) -> np.ndarray:
    """Ego-frame poses ``[num_poses, 3]`` along +x at ``t = dt, 2dt, ...`` with constant acceleration (stopping at
    zero speed, never reversing) and a constant lateral offset."""
    if not dt_s > 0 or num_poses < 1:
        raise ValueError(f"straight_poses needs dt_s > 0 and num_poses >= 1, got {dt_s} and {num_poses}")
    t = np.arange(1, num_poses + 1) * dt_s
    if accel_mps2 < 0:
        t_stop = speed_mps / -accel_mps2
        tc = np.minimum(t, t_stop)
        x = speed_mps * tc + 0.5 * accel_mps2 * tc**2
    else:
        x = speed_mps * t + 0.5 * accel_mps2 * t**2
    return np.column_stack([x, np.full(num_poses, lateral_m), np.zeros(num_poses)])


def straight_road_scene(
    *,
    num_lanes: int = 3,
    lane_width_m: float = 3.5,
    ego_lane: int = 1,
    ego_x_m: float = 0.0,
    ego_speed_mps: float = 10.0,
    ego_accel_mps2: float = 0.0,
    agents: tuple[Agent, ...] = (),
    oncoming_lanes: int = 0,
    red_light_at_x_m: float | None = None,
    junction_length_m: float = 15.0,
    road_start_x_m: float = -100.0,
    road_end_x_m: float = 300.0,
    horizon_steps: int = 40,
    dt_s: float = 0.1,
    reference_poses_ego: np.ndarray | None = None,
    history_len: int = 4,
    dimensions: VehicleDimensions | None = None,
    token: str = "straight_road",
) -> Scene:
    """A straight road along +x. Lane ``k`` (0 = rightmost) is centred at ``y = k * lane_width_m``; ``oncoming_lanes``
    more lanes above them run in −x. With ``red_light_at_x_m`` every forward lane is split into approach, junction
    (an intersection lane controlled by a red light) and exit pieces.

    The ego drives in lane ``ego_lane`` at ``ego_speed_mps``; its history is a constant-speed approach.
    """
    dims = dimensions or VehicleDimensions()
    lanes: list[Lane] = []
    lights: list[TrafficLight] = []
    route: list[str] = []
    xs = np.array([road_start_x_m, road_end_x_m])
    for k in range(num_lanes):
        y = k * lane_width_m
        left = f"lane_{k + 1}" if k + 1 < num_lanes else None
        right = f"lane_{k - 1}" if k > 0 else None
        if red_light_at_x_m is None:
            lanes.append(Lane(f"lane_{k}", np.column_stack([xs, [y, y]]), lane_width_m, left, right))
            route.append(f"lane_{k}")
            continue
        stop_x, exit_x = red_light_at_x_m, red_light_at_x_m + junction_length_m
        pieces = (
            ("approach", road_start_x_m, stop_x, False),
            ("junction", stop_x, exit_x, True),
            ("exit", exit_x, road_end_x_m, False),
        )
        for i, (name, x0, x1, junction) in enumerate(pieces):
            successor = (f"lane_{k}_{pieces[i + 1][0]}",) if i + 1 < len(pieces) else ()
            lane_id = f"lane_{k}_{name}"
            lanes.append(
                Lane(
                    lane_id,
                    np.array([[x0, y], [x1, y]]),
                    lane_width_m,
                    f"lane_{k + 1}_{name}" if left else None,
                    f"lane_{k - 1}_{name}" if right else None,
                    successor,
                    is_intersection=junction,
                )
            )
            route.append(lane_id)
            if junction:
                lights.append(TrafficLight(f"light_{k}", lane_id, TrafficLightState.RED))
    for j in range(oncoming_lanes):
        y = (num_lanes + j) * lane_width_m
        lanes.append(Lane(f"oncoming_{j}", np.column_stack([xs[::-1], [y, y]]), lane_width_m, oncoming=True))

    ego_y = ego_lane * lane_width_m
    ego_pose = np.array([ego_x_m, ego_y, 0.0])
    history_t = (np.arange(history_len) - (history_len - 1)) * 0.5
    history = np.column_stack([ego_x_m + ego_speed_mps * history_t, np.full(history_len, ego_y), np.zeros(history_len)])
    ego = EgoState(ego_pose, ego_speed_mps, ego_accel_mps2, history, dimensions=dims)
    return Scene(
        map=MapData(tuple(lanes), lane_union(lanes), tuple(lights)),
        agents=tuple(agents),
        ego=ego,
        route_lane_ids=tuple(route),
        route_centerline_xy=np.array([[road_start_x_m, ego_y], [road_end_x_m, ego_y]]),
        command=DrivingCommand.STRAIGHT,
        dt_s=dt_s,
        horizon_steps=horizon_steps,
        reference_poses_ego=reference_poses_ego,
        token=token,
    ).validate()
