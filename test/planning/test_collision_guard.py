"""The collision guard: a plan that would run into a predicted object is braked along its own path, as gently as
keeps it clear; a clear plan, a car closing in from behind and a plan that braking cannot save are handled as the
module says."""

import numpy as np
import pytest

from spanvla_ros.planning import brake_along_path
from spanvla_ros.planning.collision_guard import Obstacles, first_contact, guard_plan, stop_beyond
from spanvla_ros.planning.validator import validate_trajectory
from spanvla_ros.scene import VehicleDimensions

DT = 0.5
DECELERATIONS = (1.0, 2.0, 3.0, 4.5, 6.0, 8.0)
EGO = VehicleDimensions()


def straight_plan(speed: float, num_poses: int = 10) -> np.ndarray:
    x = speed * DT * np.arange(1, num_poses + 1)
    return np.column_stack([x, np.zeros_like(x), np.zeros_like(x)])


def car(x: float, y: float = 0.0, vx: float = 0.0, vy: float = 0.0, heading: float = 0.0) -> Obstacles:
    return Obstacles(np.array([[x, y, heading, 4.5, 1.9]]), np.array([[vx, vy]]))


def nose_gap(poses: np.ndarray, other: Obstacles, times: np.ndarray) -> np.ndarray:
    """Along +x: the object's rear minus the ego's front at each pose."""
    front = poses[:, 0] + EGO.rear_axle_to_center_m + EGO.length_m / 2
    rear = other.boxes[0, 0] + times * other.velocities[0, 0] - other.boxes[0, 3] / 2
    return rear - front


def test_a_clear_road_keeps_the_plan_as_made():
    plan = straight_plan(20.0)
    empty = Obstacles(np.zeros((0, 5)), np.zeros((0, 2)))
    for obstacles in (empty, car(40.0, y=4.0), car(400.0)):  # another lane; beyond a stop at 1 m/s² from 20 m/s
        result = guard_plan(plan, DT, 20.0, obstacles, DECELERATIONS)
        assert result.deceleration_mps2 == 0.0 and result.contact_s is None and not result.unavoidable
        assert np.array_equal(result.poses, plan)


def test_a_standing_car_ahead_is_braked_for_gently_and_the_ego_stops_short_of_it():
    plan = straight_plan(20.0)
    standing = car(80.0)
    assert first_contact(plan, DT, standing) is not None
    result = guard_plan(plan, DT, 20.0, standing, DECELERATIONS)
    assert result.deceleration_mps2 == 3.0  # 2 m/s² would need 100 m; 3 m/s² needs 67 m of the 74 m free
    assert not result.unavoidable and first_contact(result.poses, DT, standing) is None
    gaps = nose_gap(result.poses, standing, DT * np.arange(1, 11))
    assert gaps.min() > 0.5  # never within the clearance
    assert np.allclose(result.poses[:, 1:], 0.0)  # same path, only slower
    assert validate_trajectory(result.poses, DT, 20.0).valid


def test_a_slower_lead_needs_less_braking_than_a_standing_car():
    plan = straight_plan(20.0)
    slower = guard_plan(plan, DT, 20.0, car(40.0, vx=12.0), DECELERATIONS)
    standing = guard_plan(plan, DT, 20.0, car(40.0), DECELERATIONS)
    assert 0 < slower.deceleration_mps2 < standing.deceleration_mps2


def test_a_car_closing_in_from_behind_is_not_braked_for():
    plan = straight_plan(10.0)
    follower = car(-12.0, vx=20.0)  # it would reach the ego's rear within the horizon
    result = guard_plan(plan, DT, 10.0, follower, DECELERATIONS)
    assert result.contact_s is None and result.deceleration_mps2 == 0.0


def test_when_no_braking_keeps_clear_the_plan_that_stays_clear_longest_is_kept():
    plan = straight_plan(15.0)
    oncoming = car(60.0, vx=-15.0, heading=np.pi)  # head-on in the ego's lane
    result = guard_plan(plan, DT, 15.0, oncoming, DECELERATIONS)
    assert result.unavoidable and result.deceleration_mps2 == 8.0
    assert first_contact(result.poses, DT, oncoming) > result.contact_s  # braking delays the contact


def test_braking_along_the_path_reaches_a_standstill_and_holds_it():
    plan = straight_plan(10.0)
    braked = brake_along_path(plan, DT, 10.0, 4.0)
    speeds = np.diff(np.concatenate([[0.0], braked[:, 0]])) / DT
    mid = DT * np.arange(1, 11) - DT / 2  # each step's average is the braking profile's at its middle (till the stop)
    assert np.all(speeds <= np.maximum(10.0 - 4.0 * mid, 0.0) + 0.5 + 1e-9)
    assert braked[-1, 0] == pytest.approx(10.0**2 / (2 * 4.0))  # stops exactly where braking at 4 m/s² does
    assert speeds[-1] == 0.0 and braked[-1, 0] == pytest.approx(braked[-2, 0])
    with pytest.raises(ValueError, match="deceleration"):
        brake_along_path(plan, DT, 10.0, 0.0)


def test_obstacles_need_matching_shapes():
    with pytest.raises(ValueError, match="boxes"):
        Obstacles(np.zeros((2, 5)), np.zeros((3, 2)))


def test_a_time_gap_brakes_for_a_lead_followed_too_closely_while_plain_clearance_does_not():
    plan = straight_plan(20.0)
    lead = car(18.0, vx=20.0)  # 12 m bumper to bumper at the same speed: clear, but 0.6 s behind
    assert guard_plan(plan, DT, 20.0, lead, DECELERATIONS).deceleration_mps2 == 0.0
    kept = guard_plan(plan, DT, 20.0, lead, DECELERATIONS, headway_s=1.0)
    assert kept.deceleration_mps2 > 0 and not kept.unavoidable
    swept = stop_beyond(kept.poses, DT, kept.deceleration_mps2)
    assert first_contact(swept, DT, lead) is None  # clear throughout
    assert first_contact(swept, DT, lead, headway_s=1.0, from_s=2.0) is None  # and a second behind after 2 s
    far = car(40.0, vx=20.0)  # 32 m: more than a second ahead
    assert guard_plan(plan, DT, 20.0, far, DECELERATIONS, headway_s=1.0).deceleration_mps2 == 0.0
