"""Message conversions: every supported encoding, padded rows, compressed images, and clear errors for bad ones."""

import cv2
import numpy as np
import pytest
from ros_helpers import image_message, odometry_message

from spanvla_ros.ros.conversions import (
    ImageConversionError,
    image_to_rgb,
    odometry_to_pose,
    path_message,
    path_to_poses,
)
from spanvla_ros.runtime.online import PlanOutput

RGB = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("encoding", "pixels"),
    [
        ("rgb8", RGB),
        ("bgr8", RGB[..., ::-1]),
        ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])),
        ("bgra8", np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 7, np.uint8)])),
    ],
)
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_and_padded_rows_give_the_same_rgb(encoding, pixels, pad):
    assert np.array_equal(image_to_rgb(image_message(1.0, pixels, encoding, pad=pad)), RGB)


def test_mono8_and_mono16_become_grey_rgb():
    grey = RGB[..., 0]
    assert np.array_equal(image_to_rgb(image_message(1.0, grey, "mono8")), np.dstack([grey] * 3))
    wide = grey.astype(np.uint16) * 257  # 16-bit full range
    out = image_to_rgb(image_message(1.0, wide, "mono16", pad=3))
    assert out.dtype == np.uint8 and np.abs(out[..., 0].astype(int) - grey).max() <= 1


@pytest.mark.parametrize(("extension", "lossless"), [(".png", True), (".jpg", False)])
def test_compressed_png_and_jpeg(extension, lossless):
    from sensor_msgs.msg import CompressedImage

    big = cv2.resize(RGB, (64, 48), interpolation=cv2.INTER_NEAREST)
    ok, encoded = cv2.imencode(extension, cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    msg = CompressedImage(format=extension[1:])
    msg.data = encoded.tobytes()
    out = image_to_rgb(msg)
    assert out.shape == big.shape
    assert np.array_equal(out, big) if lossless else np.abs(out.astype(int) - big).mean() < 25


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: setattr(m, "encoding", "yuv422_weird"), "unsupported image encoding"),
        (lambda m: setattr(m, "step", 3), "shorter than"),
        (lambda m: setattr(m, "data", m.data[:-10]), "bytes"),
        (lambda m: (setattr(m, "width", 0), setattr(m, "step", 0)), "zero size"),
        (lambda m: (setattr(m, "width", 100_000), setattr(m, "step", 300_000)), "limit"),
    ],
)
def test_bad_raw_images_raise_a_clear_error(mutate, message):
    msg = image_message(1.0, RGB)
    mutate(msg)
    with pytest.raises(ImageConversionError, match=message):
        image_to_rgb(msg)


@pytest.mark.parametrize("payload", [b"", b"\xff\xd8\xff\xe0garbage", None])
def test_garbage_or_truncated_compressed_images_raise(payload):
    from sensor_msgs.msg import CompressedImage

    if payload is None:  # a real JPEG cut in half
        payload = cv2.imencode(".jpg", RGB)[1].tobytes()[:40]
    msg = CompressedImage(format="jpeg")
    msg.data = payload
    with pytest.raises(ImageConversionError):
        image_to_rgb(msg)


def test_odometry_yaw_and_quaternion_checks():
    pose, speed = odometry_to_pose(odometry_message(1.0, 3.0, -2.0, 0.7, 5.0))
    assert np.allclose(pose, [3.0, -2.0, 0.7]) and speed == pytest.approx(5.0)
    bad = odometry_message(1.0, 0, 0, 0, 1)
    bad.pose.pose.orientation.w = 3.0
    with pytest.raises(ValueError, match="unit quaternion"):
        odometry_to_pose(bad)
    bad.pose.pose.orientation.w = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        odometry_to_pose(bad)


def test_path_in_the_odometry_frame_round_trips_and_stamps_each_pose():
    poses = np.column_stack([np.arange(1, 11) * 5.0, np.linspace(0, 2, 10), np.linspace(0, 0.3, 10)])
    origin = np.array([100.0, 50.0, np.pi / 2])
    plan = PlanOutput(7.25, poses, 0.5, origin, "odom", False, "", "", 0.1, 1.0)
    stamp, frame, world = path_to_poses(path_message(plan, "odom", "base_link"))
    assert (stamp, frame) == (7.25, "odom")
    assert np.allclose(world[0, :2], [100.0, 55.0], atol=1e-9)  # 5 m ahead of an ego facing +y
    stamp, frame, ego = path_to_poses(path_message(plan, "base_link", "base_link"))
    assert frame == "base_link" and np.allclose(ego, poses)
    msg = path_message(plan, "base_link", "base_link")
    pose_times = [p.header.stamp.sec + p.header.stamp.nanosec * 1e-9 for p in msg.poses]
    assert np.allclose(pose_times, 7.25 + 0.5 * np.arange(1, 11))
