"""Errors raised for malformed scenes and trajectories."""


class SceneError(ValueError):
    """A scene is malformed: missing map, NaN values, wrong shapes, too short agent futures, no ego history."""


class TrajectoryError(ValueError):
    """A trajectory is malformed: wrong shape, NaN/inf values, or too short for the requested horizon."""
