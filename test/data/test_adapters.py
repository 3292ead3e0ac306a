"""Real-data adapters on recordings the tests write themselves: ROS 2 bags (rosbags) and a NAVSIM log layout."""

import pickle

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from spanvla_ros.data.adapters import AdapterError, load_navsim_log, samples_from_bag, samples_from_navsim_log

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
SPEED = 8.0


def _header(t: float, frame: str):
    Header = TYPESTORE.types["std_msgs/msg/Header"]
    Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
    return Header(stamp=Time(sec=int(t), nanosec=int(round((t % 1) * 1e9))), frame_id=frame)


def write_bag(path, storage, *, with_camera=True, compressed=False, seconds=10.0):
    """A straight drive at 8 m/s: odometry at 20 Hz, a 64x48 camera at 10 Hz."""
    t_ns0 = 1_700_000_000
    with Writer(path, version=9, storage_plugin=storage) as writer:
        odom_type = "nav_msgs/msg/Odometry"
        odom_conn = writer.add_connection("/carla/ego_vehicle/odometry", odom_type, typestore=TYPESTORE)
        image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        camera_conn = writer.add_connection("/carla/ego_vehicle/rgb_front/image", image_type, typestore=TYPESTORE)
        Odometry = TYPESTORE.types[odom_type]
        P = TYPESTORE.types
        for k in range(int(seconds * 20)):
            t = k / 20
            pose = P["geometry_msgs/msg/PoseWithCovariance"](
                pose=P["geometry_msgs/msg/Pose"](
                    position=P["geometry_msgs/msg/Point"](x=SPEED * t, y=0.0, z=0.0),
                    orientation=P["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                ),
                covariance=np.zeros(36),
            )
            twist = P["geometry_msgs/msg/TwistWithCovariance"](
                twist=P["geometry_msgs/msg/Twist"](
                    linear=P["geometry_msgs/msg/Vector3"](x=SPEED, y=0.0, z=0.0),
                    angular=P["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                ),
                covariance=np.zeros(36),
            )
            msg = Odometry(header=_header(t, "odom"), child_frame_id="base_link", pose=pose, twist=twist)
            writer.write(odom_conn, t_ns0 + int(t * 1e9), TYPESTORE.serialize_cdr(msg, odom_type))
            if with_camera and k % 2 == 0:
                rgb = np.full((48, 64, 3), (k % 255, 100, 50), np.uint8)
                if compressed:
                    data = cv2.imencode(".png", rgb)[1].reshape(-1)
                    image = P[image_type](header=_header(t, "camera"), format="png", data=data)
                else:
                    image = P[image_type](
                        header=_header(t, "camera"),
                        height=48,
                        width=64,
                        encoding="rgb8",
                        is_bigendian=0,
                        step=64 * 3,
                        data=rgb.reshape(-1),
                    )
                writer.write(camera_conn, t_ns0 + int(t * 1e9), TYPESTORE.serialize_cdr(image, image_type))
            elif not with_camera:
                pass
    return path


@pytest.mark.parametrize("storage, compressed", [(StoragePlugin.SQLITE3, False), (StoragePlugin.MCAP, True)])
def test_bag_becomes_samples_with_future_from_odometry(tmp_path, storage, compressed):
    bag = write_bag(tmp_path / "drive", storage, compressed=compressed)
    samples = samples_from_bag(bag)
    assert len(samples) >= 5
    sample = samples[0]
    np.testing.assert_allclose(sample.target[:, 0], SPEED * 0.5 * np.arange(1, 11), atol=1e-6)
    np.testing.assert_allclose(sample.ego_history[:, 0], [-12.0, -8.0, -4.0, 0.0], atol=1e-6)
    assert sample.images.shape == (2, 112, 112, 3) and sample.speed_mps == pytest.approx(SPEED)
    assert sample.command == "straight" and sample.scene == {}


def test_bag_without_a_camera_topic_is_a_clear_error(tmp_path):
    bag = write_bag(tmp_path / "no_camera", StoragePlugin.SQLITE3, with_camera=False)
    # The camera connection exists but has no messages; naming a topic that is absent fails clearly too.
    with pytest.raises(AdapterError, match="no camera topic"):
        samples_from_bag(bag, camera_topic="/missing/image")
    with pytest.raises(AdapterError, match="camera messages"):
        samples_from_bag(bag)


def write_navsim(root, frames=20, drop_file=None):
    """A NAVSIM log (2 Hz frames) and its CAM_F0 sensor blobs."""
    logs, sensors = root / "navsim_logs" / "mini", root / "sensor_blobs" / "mini"
    logs.mkdir(parents=True)
    log = []
    for i in range(frames):
        path = f"log0/CAM_F0/{i:04d}.jpg"
        file = sensors / path
        file.parent.mkdir(parents=True, exist_ok=True)
        if i != drop_file:
            cv2.imwrite(str(file), np.full((90, 160, 3), 40 + i, np.uint8))
        log.append(
            {
                "token": f"tok{i}",
                "timestamp": 1_000_000 + i * 500_000,
                "ego2global_translation": np.array([100.0 + 5.0 * i, 50.0, 0.0]),
                "ego2global_rotation": np.array([1.0, 0.0, 0.0, 0.0]),
                "ego_dynamic_state": [10.0, 0.0, 0.2, 0.0],
                "driving_command": np.array([0, 1, 0, 0]),
                "cams": {"CAM_F0": {"data_path": path}},
            }
        )
    (logs / "log0.pkl").write_bytes(pickle.dumps(log))
    return logs / "log0.pkl", sensors


def test_navsim_log_becomes_samples(tmp_path):
    log, sensors = write_navsim(tmp_path)
    samples = samples_from_navsim_log(log, sensors)
    assert len(samples) == 20 - 3 - 10
    sample = samples[0]
    np.testing.assert_allclose(sample.target[:, 0], 5.0 * np.arange(1, 11))
    np.testing.assert_allclose(sample.ego_history[:, 0], [-15.0, -10.0, -5.0, 0.0])
    assert sample.command == "straight" and sample.speed_mps == 10.0
    assert sample.images.shape == (2, 112, 112, 3)


def test_navsim_log_with_a_missing_sensor_file_names_it(tmp_path):
    log, sensors = write_navsim(tmp_path, drop_file=6)
    with pytest.raises(AdapterError, match="sensor file missing: .*0006.jpg"):
        samples_from_navsim_log(log, sensors)


def test_navsim_log_reader_refuses_code_in_a_pickle(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps([{"x": __import__("os").getcwd}]))
    with pytest.raises(AdapterError, match="refusing to load"):
        load_navsim_log(evil)
