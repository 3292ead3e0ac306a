"""The planner interface every planner implements, and the reference planners that need no learning."""

from .interface import Planner, PlannerConfig
from .constant_velocity import ConstantVelocityPlanner

__all__ = ["ConstantVelocityPlanner", "Planner", "PlannerConfig"]
