"""The embedded world: highway-env scenes as the project's scene model, the front camera, and the expert planner."""

from .world import ENVIRONMENTS, HighwayWorld, UnknownEnvironmentError, WorldConfig

__all__ = ["ENVIRONMENTS", "HighwayWorld", "UnknownEnvironmentError", "WorldConfig"]
from .expert import ExpertConfig, ExpertPlanner  # noqa: E402

__all__ += ["ExpertConfig", "ExpertPlanner"]
