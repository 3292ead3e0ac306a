"""Camera domain randomisation (looks differ per draw, the geometry stays) and the drive video (an MP4 OpenCV reads
back, with the plan drawn where the camera sees it)."""

import cv2
import numpy as np
import pytest

from spanvla_ros.sim import HighwayWorld, WorldConfig
from spanvla_ros.sim.camera import CameraConfig, FrontCamera
from spanvla_ros.sim.camera_style import DEFAULT_STYLE, HELD_OUT_STYLES, camera_style, random_style
from spanvla_ros.sim.drive_video import PLAN, DriveVideo


@pytest.fixture(scope="module")
def scene():
    return HighwayWorld(WorldConfig(env="highway")).reset(1)


def render(scene, style, rng=None):
    camera = FrontCamera(style.camera_config(CameraConfig(width=96, height=96)))
    return style.apply(camera.render(scene), rng)


def test_the_default_style_renders_exactly_the_default_camera(scene):
    plain = FrontCamera(CameraConfig(width=96, height=96)).render(scene)
    assert np.array_equal(render(scene, DEFAULT_STYLE), plain)


def test_random_styles_differ_per_draw_and_are_reproducible(scene):
    images = [render(scene, random_style(np.random.default_rng(k)), np.random.default_rng(k)) for k in range(4)]
    again = render(scene, random_style(np.random.default_rng(0)), np.random.default_rng(0))
    assert np.array_equal(images[0], again)
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(images[a].astype(int) - images[b].astype(int)).mean() > 3.0
    # Strength 0 is the default look.
    assert random_style(np.random.default_rng(5), strength=0.0).camera_config(CameraConfig()) == CameraConfig()


def test_held_out_styles_lie_outside_what_training_draws(scene):
    plain = render(scene, DEFAULT_STYLE).astype(int)
    drawn = [render(scene, random_style(np.random.default_rng(k))).astype(int) for k in range(20)]
    typical = np.mean([np.abs(d - plain).mean() for d in drawn])
    for name, style in HELD_OUT_STYLES.items():
        assert camera_style(name, np.random.default_rng(0)) is style
        assert np.abs(render(scene, style, np.random.default_rng(0)).astype(int) - plain).mean() > typical, name
    with pytest.raises(ValueError, match="unknown camera style"):
        camera_style("sepia", np.random.default_rng(0))


def test_the_drive_video_is_a_readable_mp4_with_the_plan_drawn_ahead(scene, tmp_path):
    camera = FrontCamera(CameraConfig(width=128, height=96))
    t = np.arange(1, 11) * 0.5
    plan = np.column_stack([10.0 * t, np.zeros(10), np.zeros(10)])  # straight on at 10 m/s
    with DriveVideo(tmp_path / "drive.mp4", camera, fps=10, width=256) as video:
        for k in range(5):
            frame = video.add(scene, camera.render(scene), plan, "keep the lane; the road ahead is clear", f"t {k}")
    assert video.frames == 5
    capture = cv2.VideoCapture(str(tmp_path / "drive.mp4"))
    read = 0
    while capture.read()[0]:
        read += 1
    assert read == 5
    # The plan is drawn in the camera view: its pixels lie in the middle columns, below the horizon.
    view = frame[: frame.shape[0] - 96]
    green = np.all(np.abs(view.astype(int) - PLAN) < 30, axis=2)
    rows, cols = np.nonzero(green[:, : view.shape[1] - video.inset_px - 8])
    assert len(cols) > 50
    assert abs(np.median(cols) - view.shape[1] / 2) < 20 and np.median(rows) > view.shape[0] / 2
