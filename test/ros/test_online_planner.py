"""The online planner core (no ROS): waiting for inputs, planning on the newest reasoning, stop trajectories on stale
or bad inputs, restarts on jumps and clock resets, and the statuses that name each problem."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ros_helpers import road_frame

from spanvla_ros.runtime import SpanVLARuntime
from spanvla_ros.runtime.artefact import default_checkpoint
from spanvla_ros.runtime.online import InputRejected, Level, OnlineConfig, OnlinePlanner

CAMERA = "/cam"


@pytest.fixture(scope="module")
def runtime():
    return SpanVLARuntime.from_checkpoint_or_export("torch", default_checkpoint())


def drive(planner: OnlinePlanner, t0: float, t1: float, speed: float = 10.0, images: bool = True, x0: float = 0.0):
    """Odometry at 10 Hz along +x from ``x0`` at ``speed``; camera frames at 10 Hz."""
    frame = road_frame()
    for t in np.arange(t0, t1 + 1e-9, 0.1):
        planner.add_odometry(float(t), np.array([x0 + speed * (t - t0), 0.0, 0.0]), speed, "odom")
        if images:
            planner.add_image(CAMERA, float(t), frame)


def reason(planner: OnlinePlanner, now: float) -> bool:
    inputs = planner.reasoning_inputs(now)
    if inputs is None:
        return False
    return planner.set_reasoning(inputs, planner.run_reasoning(inputs))


def status(planner, now, name):
    return next(s for s in planner.statuses(now) if s.name == name)


def test_waits_for_the_first_reasoning_then_plans_from_the_newest_odometry(runtime):
    planner = OnlinePlanner(runtime, [CAMERA])
    drive(planner, 0.0, 2.0)
    assert planner.plan(2.0) is None  # no reasoning yet, still within the wait
    assert status(planner, 2.0, "reasoning").level == Level.WARN
    assert reason(planner, 2.0)
    plan = planner.plan(2.0)
    assert plan is not None and not plan.safe_stop
    assert plan.poses_ego.shape == (10, 3) and np.isfinite(plan.poses_ego).all()
    assert plan.stamp_s == pytest.approx(2.0) and np.allclose(plan.origin, [20.0, 0.0, 0.0])
    assert plan.poses_ego[-1, 0] > 5.0  # a 10 m/s ego keeps moving forward
    assert {s.name: s.level for s in planner.statuses(2.0)}["planning"] == Level.OK
    # The cycle at 2.1 waits for its own odometry instead of planning from the 2.0 one.
    assert planner.plan(2.1, 2.1) is None


def test_history_in_the_ego_frame_at_two_hertz(runtime):
    planner = OnlinePlanner(runtime, [CAMERA])
    drive(planner, 0.0, 3.0, speed=10.0, images=False)
    inputs_history = planner._ego_now()[4]
    assert np.allclose(inputs_history[:, 0], [-15.0, -10.0, -5.0, 0.0], atol=1e-6)
    # Before the track covers the span, the ego is assumed to have come at constant speed.
    fresh = OnlinePlanner(runtime, [CAMERA])
    drive(fresh, 0.0, 0.0, speed=8.0, images=False)
    assert np.allclose(fresh._ego_now()[4][:, 0], [-12.0, -8.0, -4.0, 0.0])


def test_a_stale_camera_gives_a_stop_trajectory_and_an_error_until_frames_return(runtime):
    planner = OnlinePlanner(runtime, [CAMERA], OnlineConfig(camera_timeout_s=1.0))
    drive(planner, 0.0, 2.0)
    assert reason(planner, 2.0)
    drive(planner, 2.1, 4.0, images=False)  # the camera stops at 2.0
    plan = planner.plan(4.0)
    assert plan.safe_stop and "camera /cam" in plan.stop_reason
    assert plan.poses_ego[:, 1].tolist() == [0.0] * 10 and np.all(np.diff(plan.poses_ego[:, 0]) >= 0)
    assert plan.poses_ego[-1, 0] == pytest.approx(10.0**2 / (2 * 3.0))  # brakes to a stop at 3 m/s²
    camera = status(planner, 4.0, "camera /cam")
    assert camera.level == Level.ERROR and "stale" in camera.message
    assert status(planner, 4.0, "planning").level == Level.ERROR
    drive(planner, 4.1, 4.5)
    assert reason(planner, 4.5)
    recovered = planner.plan(4.5)
    assert not recovered.safe_stop and status(planner, 4.5, "camera /cam").level == Level.OK


def test_bad_odometry_is_rejected_and_named(runtime):
    planner = OnlinePlanner(runtime, [CAMERA])
    drive(planner, 0.0, 1.0)
    with pytest.raises(InputRejected, match="finite"):
        planner.add_odometry(1.1, np.array([np.nan, 0.0, 0.0]), 10.0)
    with pytest.raises(InputRejected, match="out of order"):
        planner.add_odometry(0.95, np.array([9.5, 0.0, 0.0]), 10.0)
    odometry = status(planner, 1.1, "odometry")
    assert odometry.level == Level.WARN and "out of order" in odometry.message


def test_a_jump_or_a_clock_reset_restarts_the_history_and_the_reasoning(runtime):
    planner = OnlinePlanner(runtime, [CAMERA])
    drive(planner, 0.0, 2.0)
    assert reason(planner, 2.0)
    planner.add_odometry(2.1, np.array([500.0, 0.0, 0.0]), 10.0, "odom")  # relocalised 480 m away
    assert planner.reasoning is None
    assert "jumped" in status(planner, 2.1, "odometry").message
    drive(planner, 3.0, 3.5, x0=500.0)
    planner.add_odometry(0.5, np.array([0.0, 0.0, 0.0]), 1.0, "odom")  # the bag looped: time went back 3 s
    assert "time went back" in status(planner, 0.5, "odometry").message
    assert planner._ego_now()[0] == 0.5


def test_commands_accept_aliases_and_name_unknown_ones(runtime):
    planner = OnlinePlanner(runtime, [CAMERA])
    planner.set_command(0.0, "LaneFollow")
    assert planner._command == "straight"
    with pytest.raises(InputRejected, match="unknown driving command 'fly'"):
        planner.set_command(0.1, "fly")
    command = status(planner, 0.2, "command")
    assert command.level == Level.WARN and "keeping 'straight'" in command.message


def test_a_result_from_before_a_restart_is_dropped(runtime):
    planner = OnlinePlanner(runtime, [CAMERA])
    drive(planner, 0.0, 1.0)
    inputs = planner.reasoning_inputs(1.0)
    result = planner.run_reasoning(inputs)
    planner.add_odometry(1.1, np.array([900.0, 0.0, 0.0]), 10.0, "odom")
    assert not planner.set_reasoning(inputs, result) and planner.reasoning is None


def test_camera_count_must_divide_the_model_images(runtime):
    with pytest.raises(ValueError, match="cannot share evenly"):
        OnlinePlanner(runtime, ["/a", "/b", "/c"])


def test_frames_close_to_a_kept_one_are_counted_not_decoded(runtime):
    planner = OnlinePlanner(runtime, [CAMERA], OnlineConfig(frame_keep_interval_s=0.1))
    layout = ("rgb8", 160, 160, 480, 76800)
    assert planner.frame_needed(CAMERA, 1.0, layout)
    planner.add_image(CAMERA, 1.0, road_frame(), layout)
    assert not planner.frame_needed(CAMERA, 1.05, layout)  # 50 ms later, same layout: count only
    assert planner.frame_needed(CAMERA, 1.05, ("bgr8", 160, 160, 480, 76800))  # a different layout is checked
    assert planner.frame_needed(CAMERA, 1.1, layout)
    planner.note_frame(CAMERA, 1.05)
    assert planner._camera_inputs[CAMERA].last_stamp_s == 1.05
    with pytest.raises(InputRejected, match="out of order"):
        planner.note_frame(CAMERA, 1.02)


class ShiftedPlans:
    """The real runtime, with the action expert's plans moved back to start ``shift_m`` behind the ego on the cycles
    listed in ``bad``: a plan that starts behind an ego driving forward (what unfamiliar camera images caused)."""

    def __init__(self, runtime, bad=(), shift_m=8.0):
        self.runtime, self.bad, self.shift_m, self.calls = runtime, set(bad), shift_m, 0
        self.meta = runtime.meta

    def reason(self, *args, **kwargs):
        return self.runtime.reason(*args, **kwargs)

    def plan(self, reasoning, history):
        poses = np.array(self.runtime.plan(reasoning, history))
        self.calls += 1
        if self.calls in self.bad:
            poses[:, 0] -= poses[0, 0] + self.shift_m  # the first pose shift_m behind the ego
        return poses


class BiasedHeadings:
    """The real runtime, its plans' headings turned by ``bias_rad`` (the positions unchanged)."""

    def __init__(self, runtime, bias_rad):
        self.runtime, self.bias_rad, self.meta, self.last = runtime, bias_rad, runtime.meta, None

    def reason(self, *args, **kwargs):
        return self.runtime.reason(*args, **kwargs)

    def plan(self, reasoning, history):
        self.last = np.array(self.runtime.plan(reasoning, history)) + [0.0, 0.0, self.bias_rad]
        return self.last.copy()


@pytest.mark.parametrize("headings", ["path", "model"])
def test_published_headings_follow_the_plan_positions_or_the_model_as_configured(runtime, headings):
    from spanvla_ros.planning.validator import path_headings

    biased = BiasedHeadings(runtime, 0.05)
    planner = OnlinePlanner(biased, [CAMERA], OnlineConfig(plan_headings=headings))
    drive(planner, 0.0, 2.0)
    assert reason(planner, 2.0)
    plan = planner.plan(2.0)
    assert not plan.safe_stop
    np.testing.assert_allclose(plan.poses_ego[:, :2], biased.last[:, :2])  # positions are the model's either way
    if headings == "path":
        np.testing.assert_allclose(plan.poses_ego[:, 2], path_headings(biased.last))
        # The plan moves (10 m/s here), so its headings come from its positions alone: the bias is gone.
        unbiased = np.column_stack([biased.last[:, :2], np.zeros(len(biased.last))])
        np.testing.assert_allclose(plan.poses_ego[:, 2], path_headings(unbiased), atol=1e-12)
        assert np.abs(plan.poses_ego[:, 2] - biased.last[:, 2]).max() > 0.02
    else:
        np.testing.assert_allclose(plan.poses_ego[:, 2], biased.last[:, 2])
    with pytest.raises(ValueError, match="plan_headings"):
        OnlineConfig(plan_headings="compass")


def planning_at(planner, times):
    outputs = []
    for t in times:
        drive(planner, t, t, x0=10.0 * t)
        outputs.append(planner.plan(t))
    return outputs


def test_a_republished_plan_goes_on_at_its_final_speed_past_its_end():
    from spanvla_ros.runtime.online import PlanOutput, _resampled_from

    poses = np.column_stack([6.0 * np.arange(1, 11), np.zeros(10), np.zeros(10)])  # 12 m/s along x
    plan = PlanOutput(2.0, poses, 0.5, np.array([20.0, 0.0, 0.0]), "odom", False, "", "", 0.0, 0.0)
    later = _resampled_from(plan, 2.2, np.array([22.4, 0.0, 0.0]))  # where the ego is 0.2 s later
    np.testing.assert_allclose(np.diff(np.concatenate([[0.0], later[:, 0]])), 6.0, atol=1e-9)  # no stop at the end
    np.testing.assert_allclose(later[:, 1:], 0.0, atol=1e-12)


@pytest.mark.parametrize("handling", ["last_valid", "stop", "publish"])
def test_an_invalid_plan_is_handled_as_configured_and_counted(runtime, handling):
    config = OnlineConfig(invalid_plan_handling=handling, last_valid_max_age_s=0.25)
    planner = OnlinePlanner(ShiftedPlans(runtime, bad={2, 3, 4}), [CAMERA], config)
    drive(planner, 0.0, 2.0)
    assert reason(planner, 2.0)
    first, second, third, fourth = [planner.plan(2.0)] + planning_at(planner, [2.1, 2.2, 2.3])
    assert first.validation.valid and first.fallback == ""
    assert not second.validation.valid
    assert {c.name for c in second.validation.failures} >= {"backward_motion", "first_pose_deviation"}
    if handling == "last_valid":
        # The last valid plan (0.1 s and 0.2 s old) is republished, then at 0.3 s a stop. It keeps its path but is
        # stamped with its cycle, seen from the ego there: 0.1 s later the ego (10 m/s) has driven 1 m of it.
        assert second.fallback == third.fallback == "last_valid" and not second.safe_stop
        assert second.stamp_s == pytest.approx(2.1) and np.allclose(second.origin, [21.0, 0.0, 0.0])
        first_world = first.poses_ego[:, :2] + first.origin[:2]
        second_world = second.poses_ego[:, :2] + second.origin[:2]
        between = 0.8 * first_world[:-1] + 0.2 * first_world[1:]  # the first plan 0.1 s (a fifth of a step) later
        assert np.allclose(second_world[:-1], between, atol=1e-6)
        assert fourth.safe_stop and "failed validation" in fourth.stop_reason
    elif handling == "stop":
        assert second.safe_stop and second.fallback == "stop" and "backward_motion" in second.stop_reason
    else:
        assert not second.safe_stop and second.fallback == "" and second.poses_ego[0, 0] < 0
    assert planner.counters["validator_rejections"] == 3
    assert planner.counters["plans"] == 4
    validation = status(planner, 2.3, "trajectory validation")
    assert validation.level == Level.WARN and "backward_motion" in validation.message
    assert validation.values["validator_rejections"] == "3"


def test_the_stop_trajectory_passes_the_validator_it_replaces_plans_for(runtime):
    planner = OnlinePlanner(runtime, [CAMERA], OnlineConfig(camera_timeout_s=0.2))
    drive(planner, 0.0, 1.0, speed=40.0, images=False)
    stop = planner.plan(1.0)
    assert stop.safe_stop
    from spanvla_ros.planning.validator import validate_trajectory

    assert validate_trajectory(stop.poses_ego, stop.dt_s, 40.0, planner.config.validator).valid
    assert planner.counters["stop_trajectories"] == 1


def test_implausible_odometry_is_dropped_or_restarts_the_history(runtime):
    planner = OnlinePlanner(runtime, [CAMERA])
    drive(planner, 0.0, 1.0)
    with pytest.raises(InputRejected, match="beyond max_speed_mps"):
        planner.add_odometry(1.1, np.array([11.0, 0.0, 0.0]), 1e9, "odom")  # finite, but no car drives 1e9 m/s
    planner.add_odometry(1.1, np.array([11.0, 0.0, 0.0]), 40.0, "odom")  # 10 → 40 m/s in 0.1 s
    assert "implausible speed change" in status(planner, 1.1, "odometry").message
    assert len(planner._odometry) == 1
    planner.add_odometry(1.2, np.array([15.0, 0.0, 1.0]), 40.0, "odom")  # 1 rad in 0.1 s
    assert "implausible turn" in status(planner, 1.2, "odometry").message
    stop = planner.plan(3.0)
    assert stop.safe_stop and stop.poses_ego[:, 0].max() < 40.0**2 / (2 * 3.0) + 1e-6


def test_a_stop_braking_harder_than_the_validator_allows_is_refused():
    with pytest.raises(ValueError, match="braking limit"):
        OnlineConfig(stop_deceleration_mps2=9.0)
    with pytest.raises(ValueError, match="invalid_plan_handling"):
        OnlineConfig(invalid_plan_handling="ignore")


@settings(
    deadline=None, max_examples=120, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    messages=st.lists(
        st.tuples(
            st.floats(-1e3, 1e3) | st.sampled_from([float("nan"), float("inf")]),  # stamp step
            st.floats(allow_nan=True, allow_infinity=True, width=32),  # x
            st.floats(allow_nan=True, allow_infinity=True, width=32),  # y
            st.floats(allow_nan=True, allow_infinity=True, width=32),  # yaw
            st.floats(allow_nan=True, allow_infinity=True),  # speed
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_odometry_is_accepted_plausibly_or_refused_and_the_stop_stays_valid(runtime, messages):
    from spanvla_ros.planning.validator import validate_trajectory

    planner = OnlinePlanner(runtime, [CAMERA])
    stamp = 0.0
    for step, x, y, yaw, speed in messages:
        stamp = stamp + step if np.isfinite(step) else step
        try:
            planner.add_odometry(stamp, np.array([x, y, yaw]), speed, "odom")
        except InputRejected:
            continue
        assert abs(planner._odometry[-1][4]) <= planner.config.max_speed_mps
    if planner._odometry and np.isfinite(planner._odometry[-1][0]):
        stop = planner.plan(float(planner._odometry[-1][0]) + 5.0)  # no camera: a stop trajectory
        assert stop.safe_stop and np.isfinite(stop.poses_ego).all()
        speed = float(np.clip(planner._odometry[-1][4], 0.0, planner.config.max_speed_mps))
        assert validate_trajectory(stop.poses_ego, stop.dt_s, speed, planner.config.validator).valid


def test_a_last_valid_plan_that_no_longer_fits_the_ego_gives_a_stop(runtime):
    from spanvla_ros.planning.validator import ValidatorConfig
    from spanvla_ros.scene import straight_poses

    class Cruise(ShiftedPlans):
        """Plans straight on at 10 m/s (what the ego does), moved back on the bad cycles."""

        def plan(self, reasoning, history):
            self.calls += 1
            poses = straight_poses(10.0, 10)
            if self.calls in self.bad:
                poses[:, 0] -= self.shift_m
            return poses

    config = OnlineConfig(validator=ValidatorConfig(max_first_pose_deviation_m=0.5), last_valid_max_age_s=1.0)
    planner = OnlinePlanner(Cruise(runtime, bad={2}), [CAMERA], config)
    drive(planner, 0.0, 2.0)
    assert reason(planner, 2.0)
    assert planner.plan(2.0).validation.valid
    # 0.1 s later the ego is 1 m to the side of where the last valid plan goes (a lane change it did not plan).
    planner.add_odometry(2.1, np.array([21.0, 1.0, 0.0]), 10.0, "odom")
    planner.add_image(CAMERA, 2.1, road_frame())
    second = planner.plan(2.1)
    assert second.safe_stop and "no longer fits" in second.stop_reason
    assert planner.counters["last_valid_republished"] == 0


def test_a_speed_limit_holds_plans_to_it_and_a_bad_one_is_refused(runtime):
    planner = OnlinePlanner(runtime, [CAMERA], OnlineConfig(speed_limit_deceleration_mps2=2.0))
    assert "no speed limit" in status(planner, 0.0, "speed limit").message
    drive(planner, 0.0, 2.0, speed=25.0)
    assert reason(planner, 2.0)
    free = planner.plan(2.0)
    assert free.poses_ego[1, 0] > 2 * 20.0 * 0.5  # unlimited, the model keeps near the ego's 25 m/s
    planner.set_speed_limit(2.0, 10.0)
    drive(planner, 2.1, 2.1, speed=25.0, x0=52.5)
    held = planner.plan(2.1)
    assert not held.safe_stop and held.validation.valid
    steps = np.hypot(*np.diff(np.vstack([np.zeros(2), held.poses_ego[:, :2]]), axis=0).T) / 0.5
    mid = 0.5 * np.arange(1, 11) - 0.25  # each step's average speed is the braking profile's at its middle
    assert np.all(steps <= np.maximum(10.0, 25.0 - 2.0 * mid) + 2.0 * 0.5 / 8 + 1e-3)  # a·dt/8: the step meeting it
    assert planner.counters["speed_limited"] == 1
    assert status(planner, 2.1, "speed limit").message == "plans held to 10.0 m/s"
    for bad in (float("nan"), 0.0, -3.0, 500.0):
        with pytest.raises(InputRejected, match="keeping 10.0 m/s"):
            planner.set_speed_limit(2.1, bad)
    assert status(planner, 2.1, "speed limit").level == Level.WARN
    assert planner._speed_limit_mps == 10.0  # the last good limit holds


def test_an_object_list_brakes_plans_that_would_hit_a_car_and_a_bad_or_stale_one_is_not_used(runtime):
    planner = OnlinePlanner(runtime, [CAMERA])
    assert "no object list" in status(planner, 0.0, "objects").message
    drive(planner, 0.0, 2.0, speed=15.0)
    assert reason(planner, 2.0)
    free = planner.plan(2.0)
    assert free.poses_ego[-1, 0] > 50.0  # the model keeps near the ego's 15 m/s
    # A car standing in the lane 35 m ahead of the rear axle (world frame: the ego is at x = 30).
    planner.set_objects(2.0, "odom", ["parked"], np.array([[65.0, 0.0, 0.0, 4.5, 1.9]]), np.zeros((1, 2)))
    drive(planner, 2.1, 2.1, speed=15.0, x0=31.5)
    braked = planner.plan(2.1)
    assert not braked.safe_stop and braked.validation.valid
    front = braked.poses_ego[:, 0] + 1.4 + 2.4  # the ego box's front
    assert front.max() < 65.0 - 31.5 - 2.25  # stops short of the car's rear
    assert planner.counters["collision_guarded"] == 1
    assert "braking at" in status(planner, 2.1, "objects").message
    # Positions without velocities: the id's previous position gives it (1 m in 0.2 s).
    planner.set_objects(2.2, "odom", ["parked"], np.array([[66.0, 0.0, 0.0, 4.5, 1.9]]))
    assert np.allclose(planner._objects.velocities, [[5.0, 0.0]])
    for bad in (np.array([[np.nan, 0, 0, 4.5, 1.9]]), np.array([[70.0, 0, 0, -1.0, 1.9]])):
        with pytest.raises(InputRejected):
            planner.set_objects(2.3, "odom", ["x"], bad)
    with pytest.raises(InputRejected, match="frame 'map'"):
        planner.set_objects(2.3, "map", ["x"], np.array([[70.0, 0, 0, 4.5, 1.9]]))
    assert status(planner, 2.3, "objects").level == Level.WARN
    # The last good list ages out: plans go out unchecked, and the status says so.
    drive(planner, 2.2, 3.0, speed=15.0, x0=33.0)
    assert reason(planner, 3.0)
    late = planner.plan(3.0)
    assert late.poses_ego[-1, 0] > 50.0 and planner.counters["collision_guarded"] == 1
    assert "plans go out unchecked" in status(planner, 4.5, "objects").message  # after the dropped list's WARN


def test_a_route_puts_plans_back_in_its_lane_and_a_bad_one_is_refused(runtime):
    planner = OnlinePlanner(runtime, [CAMERA])
    assert "no route" in status(planner, 0.0, "route").message
    drive(planner, 0.0, 2.0, speed=10.0)
    assert reason(planner, 2.0)
    own = planner.plan(2.0)
    assert np.abs(own.poses_ego[:, 1]).max() < 1.0  # the model drives straight on where it is
    # The lane's centre line runs 1.5 m to the ego's right (world frame: y = -1.5).
    lane = np.column_stack([np.arange(-50.0, 400.0, 2.0), np.full(225, -1.5)])
    planner.set_route(2.0, "odom", lane)
    drive(planner, 2.1, 2.1, speed=10.0, x0=21.0)
    kept = planner.plan(2.1)
    assert not kept.safe_stop and kept.validation.valid
    assert kept.poses_ego[-1, 1] == pytest.approx(-1.5, abs=0.05) and kept.poses_ego[0, 1] > -0.3  # eases over
    own_progress = np.hypot(*np.diff(np.vstack([np.zeros(2), own.poses_ego[:, :2]]), axis=0).T).sum()
    kept_progress = np.hypot(*np.diff(np.vstack([np.zeros(2), kept.poses_ego[:, :2]]), axis=0).T).sum()
    assert kept_progress == pytest.approx(own_progress, rel=0.1)  # the model's speed, the route's path
    assert planner.counters["route_kept"] == 1
    route = status(planner, 2.1, "route")
    assert route.message == "plans follow the route" and route.values["offset_m"] == "1.50"
    for bad, match in (
        (np.array([[0.0, np.nan], [5.0, 0.0]]), "not finite"),
        (np.array([[0.0, 0.0]]), "at least 2 points"),
        (np.array([[0.0, 0.0], [0.1, 0.0]]), "shorter than 1 m"),
    ):
        with pytest.raises(InputRejected, match=match):
            planner.set_route(2.1, "odom", bad)
    with pytest.raises(InputRejected, match="frame 'map'"):
        planner.set_route(2.1, "map", lane)
    assert status(planner, 2.1, "route").level == Level.WARN
    assert np.array_equal(planner._route.xy, lane)  # the last good route holds
    # A route the ego has left far behind is not followed, and the status says why.
    planner.set_route(2.2, "odom", lane + [0.0, 20.0])
    drive(planner, 2.2, 2.2, speed=10.0, x0=22.0)
    away = planner.plan(2.2)
    assert np.abs(away.poses_ego[:, 1]).max() < 1.0 and planner.counters["route_kept"] == 1
    assert "18.5 m off the route" in status(planner, 4.5, "route").message
