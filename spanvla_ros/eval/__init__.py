"""Evaluation: the LQR tracker and kinematic bicycle, the PDM scorer (PDMS v1 / EPDMS v2), closed-loop metrics,
open-loop evaluation of planners, and reports with plots."""

from .comfort import ComfortLimits, ComfortVersion, is_comfortable, is_extended_comfortable
from .pdm import (
    EPDMS_METRICS,
    METRIC_NAMES,
    PDMS_METRICS,
    PreviousPlan,
    ScorerConfig,
    ScoreResult,
    history_states,
    score_trajectories,
    score_trajectory,
)
from .tracker import NUM_STATES, StateIndex, TrackerConfig, initial_state, interpolate_plan, simulate, track_poses

__all__ = [
    "EPDMS_METRICS",
    "METRIC_NAMES",
    "PDMS_METRICS",
    "ComfortVersion",
    "NUM_STATES",
    "ComfortLimits",
    "PreviousPlan",
    "ScoreResult",
    "ScorerConfig",
    "StateIndex",
    "TrackerConfig",
    "history_states",
    "initial_state",
    "interpolate_plan",
    "is_comfortable",
    "is_extended_comfortable",
    "score_trajectories",
    "score_trajectory",
    "simulate",
    "track_poses",
]
