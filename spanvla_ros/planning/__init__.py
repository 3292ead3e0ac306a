"""The planner interface every planner implements, and the reference planners that need no learning."""

from .constant_velocity import ConstantVelocityPlanner
from .interface import Planner, PlannerConfig

__all__ = ["ConstantVelocityPlanner", "Planner", "PlannerConfig"]
