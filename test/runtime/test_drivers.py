"""The planning core's drivers without ROS: the synchronous driver opens a cycle per planning period and runs due
reasoning inline (deterministic); the threaded driver plans from its worker's reasoning, reports failures and
replaces a hung worker."""

import time

import numpy as np
import pytest

from spanvla_ros.runtime import SpanVLARuntime
from spanvla_ros.runtime.artefact import default_checkpoint
from spanvla_ros.runtime.drivers import SyncDriver, ThreadedDriver
from spanvla_ros.runtime.online import OnlinePlanner

CAMERA = "/cam"


@pytest.fixture(scope="module")
def frame():
    """The embedded world's straight road, as the front camera sees it."""
    from spanvla_ros.scene.builders import straight_road_scene
    from spanvla_ros.sim.camera import CameraConfig, FrontCamera

    return FrontCamera(CameraConfig(width=160, height=160)).render(straight_road_scene())


@pytest.fixture(scope="module")
def runtime():
    return SpanVLARuntime.from_checkpoint_or_export("torch", default_checkpoint(), threads=1)


def feed(core: OnlinePlanner, t: float, frame: np.ndarray, speed: float = 8.0) -> None:
    core.add_odometry(t, np.array([speed * t, 0.0, 0.0]), speed, "odom")
    core.add_image(CAMERA, t, frame)


def sync_run(runtime, frame) -> list[np.ndarray]:
    core = OnlinePlanner(runtime, [CAMERA])
    driver = SyncDriver(core)
    plans, reasonings = [], 0
    for t in np.arange(0.0, 3.0, 0.05):  # odometry at 20 Hz, planning at 10 Hz
        feed(core, float(t), frame)
        cycle = driver.cycle(float(t))
        reasonings += cycle.reasoning is not None
        if cycle.plan is not None:
            plans.append(cycle.plan)
    stamps = np.array([p.stamp_s for p in plans])
    assert len(plans) == 30 and np.allclose(np.diff(stamps), 0.1)  # one cycle per period, not per odometry
    assert reasonings == 6  # 2 Hz
    assert core.counters["plans"] == 30 and len(core.timings["planning_ms"]) == 30
    assert len(core.timings["reasoning_ms"]) == 6 and all(d == 0.0 for d in core.timings["cycle_delay_ms"])
    return [p.poses_ego for p in plans]


def test_the_sync_driver_plans_once_per_period_and_is_deterministic(runtime, frame):
    first, second = sync_run(runtime, frame), sync_run(runtime, frame)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("fault", ["", "reasoning_raise", "reasoning_hang"])
def test_the_threaded_driver_plans_reports_failures_and_restarts_a_hung_worker(runtime, frame, fault):
    core = OnlinePlanner(runtime, [CAMERA])
    start = time.monotonic()
    plans, reasonings, failures = [], [], []
    driver = ThreadedDriver(
        core, lambda: time.monotonic() - start, plans.append, lambda r, ms: reasonings.append(ms), failures.append,
        hang_s=0.5, fault=fault,
    )  # fmt: skip
    driver.open_cycle(0.0)  # not started: ignored
    assert not core.cycle_open
    done = {
        "": lambda: len(reasonings) >= 2 and any(not p.safe_stop for p in plans),
        "reasoning_raise": lambda: len(failures) >= 3 and len(reasonings) >= 2,
        "reasoning_hang": lambda: driver.worker_restarts == 1 and len(reasonings) >= 2,
    }[fault]
    driver.start()
    try:
        # Inputs at 10 Hz of wall time, as a car's; the deadline is generous for a busy machine.
        while not done() and time.monotonic() - start < 60.0:
            now = time.monotonic() - start
            feed(core, now, frame)
            driver.wake()
            driver.open_cycle(now)
            driver.check_worker()
            time.sleep(0.1)
    finally:
        driver.stop()
    assert done(), (len(plans), reasonings, failures, driver.worker_restarts)
    assert plans and all(p.poses_ego.shape == (core.num_poses, 3) for p in plans)
    assert core.counters["plans"] >= len(plans) > 0
    if fault == "":
        assert not failures and driver.worker_restarts == 0
    elif fault == "reasoning_raise":
        assert all("injected fault" in f for f in failures) and driver.worker_restarts == 0
    else:
        assert any("hung for more than 0.5 s" in f for f in failures)
