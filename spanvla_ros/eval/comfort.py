"""Comfort metrics on simulated ego states with NAVSIM's semantics: Savitzky-Golay-smoothed accelerations, jerks,
yaw rate and yaw acceleration checked against fixed bounds, and the two-frame extended comfort between consecutive
plans.

NAVSIM v1.1 (PDMS) and v2 (EPDMS) filter differently: v1.1 smooths the accelerations over the whole horizon and
differentiates them over it; v2 smooths over 8 samples, differentiates over 15 and first moves the longitudinal
acceleration from the rear axle to the box centre (NAVSIM adds ``d·(ω² + ω̇)`` along the car's axis).

NAVSIM's kinematic bicycle leaves the lateral acceleration at 0, so its lateral-acceleration check never fires on a
simulated plan. That is the default here, for comparable scores; ``physical_lateral_acceleration=True`` uses
``speed × yaw rate`` instead (a stricter, physical check that NAVSIM's numbers do not include).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import numpy as np
from scipy.signal import savgol_filter

from .tracker import StateIndex


class ComfortVersion(StrEnum):
    """Which NAVSIM's filter windows to use."""

    V1 = "v1.1"
    V2 = "v2"


@dataclass(frozen=True)
class ComfortLimits:
    """NAVSIM's comfort bounds (strict inequalities) and extended-comfort RMS thresholds."""

    min_lon_accel_mps2: float = -4.05
    max_lon_accel_mps2: float = 2.40
    max_abs_lat_accel_mps2: float = 4.89
    max_abs_jerk_mps3: float = 8.37
    max_abs_lon_jerk_mps3: float = 4.13
    max_abs_yaw_rate_radps: float = 0.95
    max_abs_yaw_accel_radps2: float = 1.93
    ec_max_accel_rms_mps2: float = 0.7
    ec_max_jerk_rms_mps3: float = 0.5
    ec_max_yaw_rate_rms_radps: float = 0.1
    ec_max_yaw_accel_rms_radps2: float = 0.1
    physical_lateral_acceleration: bool = False


def comfort_signals(
    states: np.ndarray,
    dt_s: float,
    version: ComfortVersion = ComfortVersion.V1,
    rear_axle_to_center_m: float = 0.0,
    physical_lateral_acceleration: bool = False,
) -> dict[str, np.ndarray]:
    """The six smoothed signals ``[B, T]`` of states ``[B, T, NUM_STATES]`` that the comfort bounds apply to."""
    n_time = states.shape[1]
    lon, lat = _accelerations(states, physical_lateral_acceleration)
    magnitude = np.hypot(lon, lat)
    heading = np.unwrap(states[..., StateIndex.HEADING], axis=-1)
    if version is ComfortVersion.V1:
        lon_at_center, smooth_window, jerk_window = lon, n_time, n_time
    else:
        spin = states[..., StateIndex.YAW_RATE] ** 2 + states[..., StateIndex.YAW_ACCELERATION]
        lon_at_center, smooth_window, jerk_window = lon + rear_axle_to_center_m * spin, 8, 15
    return {
        "lon_accel": _smooth(lon_at_center, smooth_window),
        "lat_accel": _smooth(lat, smooth_window),
        "jerk": _derivative(_smooth(magnitude, 8), dt_s, jerk_window),
        "lon_jerk": _derivative(_smooth(lon_at_center, 8), dt_s, jerk_window),
        "yaw_rate": _derivative(heading, dt_s, 5),
        "yaw_accel": _derivative(heading, dt_s, 5, order=2, poly=3),
    }


def extended_comfort_features(
    states: np.ndarray, dt_s: float, physical_lateral_acceleration: bool = False
) -> dict[str, np.ndarray]:
    """The four signals ``[B, T]`` compared between consecutive plans (NAVSIM v2's windows)."""
    lon, lat = _accelerations(states, physical_lateral_acceleration)
    magnitude = _smooth(np.hypot(lon, lat), 8)
    heading = np.unwrap(states[..., StateIndex.HEADING], axis=-1)
    return {
        "acceleration": magnitude,
        "jerk": _derivative(magnitude, dt_s, 15),
        "yaw_rate": _derivative(heading, dt_s, 5),
        "yaw_accel": _derivative(heading, dt_s, 5, order=2),
    }


def is_comfortable(
    states: np.ndarray,
    dt_s: float,
    limits: ComfortLimits = ComfortLimits(),
    version: ComfortVersion = ComfortVersion.V1,
    rear_axle_to_center_m: float = 0.0,
) -> np.ndarray:
    """Per proposal ``[B]``: all six comfort criteria hold over the whole sequence."""
    s = comfort_signals(states, dt_s, version, rear_axle_to_center_m, limits.physical_lateral_acceleration)
    checks = [
        _within(s["lon_accel"], limits.min_lon_accel_mps2, limits.max_lon_accel_mps2),
        _within(s["lat_accel"], -limits.max_abs_lat_accel_mps2, limits.max_abs_lat_accel_mps2),
        _within(s["jerk"], -limits.max_abs_jerk_mps3, limits.max_abs_jerk_mps3),
        _within(s["lon_jerk"], -limits.max_abs_lon_jerk_mps3, limits.max_abs_lon_jerk_mps3),
        _within(s["yaw_rate"], -limits.max_abs_yaw_rate_radps, limits.max_abs_yaw_rate_radps),
        _within(s["yaw_accel"], -limits.max_abs_yaw_accel_radps2, limits.max_abs_yaw_accel_radps2),
    ]
    return np.all(np.stack(checks, axis=-1), axis=-1)


def is_extended_comfortable(
    previous_states: np.ndarray, current_states: np.ndarray, dt_s: float, limits: ComfortLimits = ComfortLimits()
) -> np.ndarray:
    """Two-frame extended comfort ``[B]``: on the time span both plans cover (arrays ``[B, T, NUM_STATES]`` already
    aligned), the RMS difference of acceleration, jerk, yaw rate and yaw acceleration stays under the thresholds."""
    if previous_states.shape != current_states.shape:
        raise ValueError(f"aligned plans must have one shape, got {previous_states.shape} and {current_states.shape}")
    a = extended_comfort_features(previous_states, dt_s, limits.physical_lateral_acceleration)
    b = extended_comfort_features(current_states, dt_s, limits.physical_lateral_acceleration)

    def rms(key: str) -> np.ndarray:
        return np.sqrt(np.mean((a[key] - b[key]) ** 2, axis=-1))

    return (
        (rms("acceleration") <= limits.ec_max_accel_rms_mps2)
        & (rms("jerk") <= limits.ec_max_jerk_rms_mps3)
        & (rms("yaw_rate") <= limits.ec_max_yaw_rate_rms_radps)
        & (rms("yaw_accel") <= limits.ec_max_yaw_accel_rms_radps2)
    )


def _accelerations(states: np.ndarray, physical_lateral_acceleration: bool) -> tuple[np.ndarray, np.ndarray]:
    lon = states[..., StateIndex.ACCELERATION]
    if physical_lateral_acceleration:
        lat = states[..., StateIndex.SPEED] * states[..., StateIndex.YAW_RATE]
    else:
        lat = states[..., StateIndex.LATERAL_ACCELERATION]
    return lon, lat


def _smooth(values: np.ndarray, window: int, poly: int = 2) -> np.ndarray:
    window = min(window, values.shape[-1])
    if window <= poly:
        return values
    return np.round(values @ _savgol_matrix(values.shape[-1], window, poly, 0, 1.0).T, 8)


def _derivative(values: np.ndarray, dt_s: float, window: int, order: int = 1, poly: int = 2) -> np.ndarray:
    window = min(window, values.shape[-1])
    if window <= poly:
        # Too few samples for the filter: plain finite differences.
        result = values
        for _ in range(order):
            result = np.gradient(result, dt_s, axis=-1) if result.shape[-1] > 1 else np.zeros_like(result)
        return result
    return np.round(values @ _savgol_matrix(values.shape[-1], window, poly, order, dt_s).T, 8)


@lru_cache(maxsize=64)
def _savgol_matrix(length: int, window: int, poly: int, deriv: int, delta: float) -> np.ndarray:
    """The Savitzky-Golay filter (edges fitted by polynomial, scipy's ``mode="interp"``) as a ``[length, length]``
    matrix: the filter is linear, so filtering a batch is one matrix product instead of a polynomial fit per row."""
    identity = np.eye(length)
    return savgol_filter(identity, window_length=window, polyorder=poly, deriv=deriv, delta=delta, axis=0)


def _within(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.all((values > low) & (values < high), axis=-1)
