"""Scenes and plans for the cross-check against NAVSIM's own scorer (``data/navsim_golden.json``).

Deterministic: synthetic straight roads with random traffic, red lights, oncoming lanes, a logged human trajectory on
some, and the embedded world's scenes stored under ``data/navsim_scenes/``. NAVSIM's results for the same inputs were
computed outside this project with its code (see the golden file's ``source``) and are compared in
``test_navsim_crosscheck.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from spanvla_ros.scene import (
    Agent,
    AgentKind,
    Scene,
    TrafficLight,
    TrafficLightState,
    load_scene,
    straight_road_scene,
)

DATA = Path(__file__).parent / "data"
SIM_SCENES = DATA / "navsim_scenes"
PLANS_PER_SCENE = 15
SYNTHETIC_SCENES = 54


def random_plan(rng: np.random.Generator, speed_mps: float, lane_width_m: float = 3.5) -> np.ndarray:
    """``[8, 3]`` ego-frame poses every 0.5 s: a speed profile, a curve and a lateral move, sometimes noisy."""
    t = np.arange(1, 9) * 0.5
    speed = max(speed_mps + rng.normal(0.0, 3.0), 0.0)
    accel = rng.normal(0.0, 1.8)
    distance = speed * t + 0.5 * accel * t**2
    if accel < 0:  # a stop holds its position
        stop_t = speed / -accel
        distance = np.where(t < stop_t, distance, speed * stop_t + 0.5 * accel * stop_t**2)
    curvature = rng.normal(0.0, 0.02) if rng.random() < 0.5 else 0.0
    heading = curvature * distance
    x = np.where(abs(curvature) > 1e-6, np.sin(heading) / (curvature + 1e-12), distance)
    y = np.where(abs(curvature) > 1e-6, (1 - np.cos(heading)) / (curvature + 1e-12), 0.0)
    lateral = rng.choice([0.0, 0.0, lane_width_m, -lane_width_m, rng.normal(0.0, 1.5)])
    shift = lateral * np.clip((t - rng.uniform(0.0, 1.0)) / rng.uniform(1.5, 3.5), 0.0, 1.0)
    y = y + shift
    heading = heading + np.gradient(shift, t) / np.maximum(speed, 1.0) * 0.5
    if rng.random() < 0.2:
        heading = heading + rng.normal(0.0, 0.05, len(t))
    return np.stack([x, y, heading], axis=-1)


def synthetic_scene(index: int) -> Scene:
    rng = np.random.default_rng(1000 + index)
    num_lanes = int(rng.integers(1, 4))
    ego_lane = int(rng.integers(0, num_lanes))
    oncoming = int(rng.integers(0, 2))
    speed = float(rng.uniform(0.0, 16.0))
    agents: list[Agent] = []
    for i in range(int(rng.integers(0, 9))):
        kind = rng.choice(["ahead", "behind", "oncoming", "parked", "cone", "pedestrian", "merger"])
        lane = int(rng.integers(0, num_lanes))
        x = float(rng.uniform(-30.0, 70.0))
        steps = int(rng.choice([41, 51]))
        if kind == "oncoming" and oncoming:
            agents.append(Agent.constant_velocity(f"a{i}", (x + 20, num_lanes * 3.5, np.pi), rng.uniform(5, 15), steps))
        elif kind == "parked":
            agents.append(Agent.static(f"a{i}", (x, lane * 3.5, 0.0), 4.6, 1.9, kind=AgentKind.VEHICLE))
        elif kind == "cone":
            agents.append(Agent.static(f"a{i}", (x, lane * 3.5 + rng.uniform(-1, 1), 0.0)))
        elif kind == "pedestrian":
            agents.append(
                Agent.constant_velocity(
                    f"a{i}",
                    (x, -3.0, np.pi / 2),
                    rng.uniform(0.5, 2.0),
                    steps,
                    kind=AgentKind.PEDESTRIAN,
                    length_m=0.6,
                    width_m=0.6,
                )
            )
        elif kind == "merger":
            agents.append(Agent.constant_velocity(f"a{i}", (x, lane * 3.5 + 1.8, -0.08), rng.uniform(4, 14), steps))
        else:
            sign = 1.0 if kind == "ahead" else -1.0
            agents.append(
                Agent.constant_velocity(f"a{i}", (abs(x) * sign, lane * 3.5, 0.0), rng.uniform(0.0, 15.0), steps)
            )
    red_light = float(rng.uniform(15, 60)) if rng.random() < 0.35 else None
    reference = random_plan(rng, speed)
    scene = straight_road_scene(
        num_lanes=num_lanes,
        ego_lane=ego_lane,
        ego_speed_mps=speed,
        ego_accel_mps2=float(rng.normal(0.0, 0.8)),
        agents=tuple(agents),
        oncoming_lanes=oncoming,
        red_light_at_x_m=red_light,
        reference_poses_ego=reference,
        token=f"synthetic-{index}",
    )
    if red_light is not None and rng.random() < 0.4:
        # A light that turns green part-way, or one on a lane off the route.
        states = (TrafficLightState.RED,) * int(rng.integers(5, 30)) + (TrafficLightState.GREEN,) * 41
        lights = tuple(
            TrafficLight(light.id, light.lane_id, TrafficLightState.RED, states[1:])
            for light in scene.map.traffic_lights
        )
        scene = dataclasses.replace(scene, map=dataclasses.replace(scene.map, traffic_lights=lights))
    ego = scene.ego
    if rng.random() < 0.5:
        history = len(ego.history_poses)
        ego = dataclasses.replace(
            ego,
            yaw_rate_radps=float(rng.normal(0.0, 0.05)),
            history_speeds_mps=np.clip(speed + rng.normal(0.0, 1.0, history), 0.0, None),
            history_accelerations_mps2=rng.normal(0.0, 1.5, history),
        )
    human = random_plan(rng, speed) if rng.random() < 0.6 else None
    return dataclasses.replace(scene, ego=ego, human_poses_ego=human, synthetic=bool(rng.random() < 0.2))


def cases() -> list[tuple[Scene, np.ndarray]]:
    """(scene, plans ``[PLANS_PER_SCENE, 8, 3]``) pairs, always the same."""
    scenes = [synthetic_scene(i) for i in range(SYNTHETIC_SCENES)]
    scenes += [load_scene(path) for path in sorted(SIM_SCENES.glob("*.npz"))]
    result = []
    for index, scene in enumerate(scenes):
        rng = np.random.default_rng(50_000 + index)
        result.append((scene, np.stack([random_plan(rng, scene.ego.speed_mps) for _ in range(PLANS_PER_SCENE)])))
    return result
