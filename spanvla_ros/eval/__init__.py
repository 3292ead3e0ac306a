"""Evaluation: the LQR tracker and kinematic bicycle, the PDM scorer (PDMS v1 / EPDMS v2), closed-loop metrics,
open-loop evaluation of planners, and reports with plots."""

from .comfort import ComfortLimits, is_comfortable, is_extended_comfortable
from .pdm import METRIC_NAMES, PreviousPlan, ScorerConfig, ScoreResult, score_trajectories, score_trajectory
from .tracker import NUM_STATES, StateIndex, TrackerConfig, track_poses

__all__ = [
    "METRIC_NAMES",
    "NUM_STATES",
    "ComfortLimits",
    "PreviousPlan",
    "ScoreResult",
    "ScorerConfig",
    "StateIndex",
    "TrackerConfig",
    "is_comfortable",
    "is_extended_comfortable",
    "score_trajectories",
    "score_trajectory",
    "track_poses",
]
