"""ROS 2 bags written with ``rosbags`` (sqlite3 or MCAP), from rclpy messages: CDR comes from rclpy's own
serialiser, the message definitions from the rosbags Kilted type store. ``BagRecorder`` records live topics."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

STORAGES = ("mcap", "sqlite3")


def type_name(msg_type: type) -> str:
    """``nav_msgs.msg.Path`` → ``nav_msgs/msg/Path``."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


class BagWriter:
    """A bag opened for writing rclpy messages; a connection per topic, created on first use."""

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        if storage not in STORAGES:
            raise ValueError(f"unknown bag storage '{storage}': choose one of {', '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists: rosbag2 writes a new directory")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._typestore = get_typestore(Stores.ROS2_KILTED)
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.count = 0

    def write_raw(self, topic: str, msgtype: str, timestamp_ns: int, cdr: bytes) -> None:
        with self._lock:
            connection = self._connections.get(topic)
            if connection is None:
                connection = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
                self._connections[topic] = connection
            self._writer.write(connection, int(timestamp_ns), bytes(cdr))
            self.count += 1

    def write(self, topic: str, msg: Any, timestamp_ns: int) -> None:
        from rclpy.serialization import serialize_message

        self.write_raw(topic, type_name(type(msg)), timestamp_ns, serialize_message(msg))

    def close(self) -> None:
        with self._lock:
            self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BagRecorder:
    """Records ``topics`` (name → rclpy message class) from the ROS graph into a bag, stamped on receipt with the
    node's clock (sim time under ``use_sim_time``)."""

    def __init__(self, node, topics: dict[str, type], writer: BagWriter) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.writer = writer
        self._node = node
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self._subscriptions = [
            node.create_subscription(
                msg_type, topic, lambda raw, t=topic, m=type_name(msg_type): self._on_message(t, m, raw), qos, raw=True
            )
            for topic, msg_type in topics.items()
        ]

    def _on_message(self, topic: str, msgtype: str, raw: bytes) -> None:
        self.writer.write_raw(topic, msgtype, self._node.get_clock().now().nanoseconds, raw)
