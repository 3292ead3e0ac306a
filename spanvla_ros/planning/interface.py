"""The planner interface: a scene (with the ego and its history) in, a trajectory of ego-frame poses out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..scene import Scene, Trajectory


@dataclass(frozen=True)
class PlannerConfig:
    """Output sampling shared by every planner: ``num_poses`` poses every ``dt_s`` seconds (default 10 × 0.5 s = 5 s;
    the PDM scorer uses the first 4 s)."""

    num_poses: int = 10
    dt_s: float = 0.5

    def __post_init__(self) -> None:
        if self.num_poses < 1 or not self.dt_s > 0:
            raise ValueError(f"a plan needs num_poses >= 1 and dt_s > 0, got {self.num_poses} and {self.dt_s}")


class Planner(ABC):
    """A planner maps a scene to a trajectory in the ego rear-axle frame at plan time (REP-103 axes).

    Privileged planners (the expert) read the whole scene; sensor-based planners read only what a car has (the ego
    state and history, the command, the cameras attached to the sample) so training and evaluation share one path.
    """

    name: str = "planner"

    def __init__(self, config: PlannerConfig = PlannerConfig()) -> None:
        self.config = config

    @abstractmethod
    def plan(self, scene: Scene) -> Trajectory:
        """Plan from ``scene``; return ``config.num_poses`` poses every ``config.dt_s`` seconds."""
