"""The planner interface every planner implements, and the reference planners that need no learning."""

from .constant_velocity import ConstantVelocityPlanner
from .interface import Planner, PlannerConfig
from .speed_limit import brake_along_path, limit_speed
from .stop import stop_poses

__all__ = ["ConstantVelocityPlanner", "Planner", "PlannerConfig", "brake_along_path", "limit_speed", "stop_poses"]
