"""Typed scene data (numpy + shapely only): map, agents, ego, route, command, trajectories, and their files."""

from .builders import straight_poses, straight_road_scene
from .errors import SceneError, TrajectoryError
from .geometry import box_centers, box_corners, ego_to_world, lateral_offset, world_to_ego, wrap_angle
from .io import load_scene, load_trajectory, save_scene, save_trajectory, scene_from_dict, scene_to_dict
from .types import (
    MOVING_AGENT_KINDS,
    PACIFICA,
    Agent,
    AgentKind,
    DrivingCommand,
    EgoState,
    Lane,
    MapData,
    Scene,
    TrafficLight,
    TrafficLightState,
    Trajectory,
    VehicleDimensions,
    lane_union,
    validate_poses,
)

__all__ = [
    "MOVING_AGENT_KINDS",
    "Agent",
    "AgentKind",
    "DrivingCommand",
    "EgoState",
    "Lane",
    "MapData",
    "Scene",
    "SceneError",
    "TrafficLight",
    "TrafficLightState",
    "Trajectory",
    "TrajectoryError",
    "PACIFICA",
    "VehicleDimensions",
    "box_centers",
    "box_corners",
    "ego_to_world",
    "lane_union",
    "lateral_offset",
    "load_scene",
    "load_trajectory",
    "save_scene",
    "save_trajectory",
    "scene_from_dict",
    "scene_to_dict",
    "straight_poses",
    "straight_road_scene",
    "validate_poses",
    "world_to_ego",
    "wrap_angle",
]
