"""ROS 2 bags written with ``rosbags`` (sqlite3 or MCAP), from rclpy messages: CDR comes from rclpy's own
serialiser, the message definitions from the rosbags Kilted type store. ``BagRecorder`` records live topics."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

STORAGES = ("mcap", "sqlite3")


def type_name(msg_type: type) -> str:
    """``nav_msgs.msg.Path`` → ``nav_msgs/msg/Path``."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


class BagWriter:
    """A bag opened for writing rclpy messages; a connection per topic, created on first use.

    Writes may come from any thread (a recorder's callbacks run in an executor's thread): one thread of the writer's
    own opens, writes and closes the storage, since sqlite3 objects may only be used in the thread that made them.
    ``close`` writes everything queued before it returns."""

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise ValueError(f"unknown bag storage '{storage}': choose one of {', '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists: rosbag2 writes a new directory")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self._closed = False
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, str, int, bytes] | None] = queue.Queue()
        opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(storage, opened), name="bag-writer", daemon=True)
        self._thread.start()
        opened.wait()
        if self._error is not None:
            raise self._error

    def _run(self, storage: str, opened: threading.Event) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        try:
            typestore = get_typestore(Stores.ROS2_KILTED)
            plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
            writer = Writer(self.path, version=9, storage_plugin=plugin)
            writer.open()
        except BaseException as exc:  # reported to the caller of __init__
            self._error = exc
            opened.set()
            return
        opened.set()
        connections: dict[str, Any] = {}
        while (item := self._queue.get()) is not None:
            topic, msgtype, timestamp_ns, cdr = item
            try:
                connection = connections.get(topic)
                if connection is None:
                    connection = connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
                writer.write(connection, timestamp_ns, cdr)
            except Exception as exc:  # the first failure is raised by close()
                self._error = self._error or exc
        writer.close()

    def write_raw(self, topic: str, msgtype: str, timestamp_ns: int, cdr: bytes) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.path}: the bag is closed")
            self._queue.put((topic, msgtype, int(timestamp_ns), bytes(cdr)))
            self.count += 1

    def write(self, topic: str, msg: Any, timestamp_ns: int) -> None:
        from rclpy.serialization import serialize_message

        self.write_raw(topic, type_name(type(msg)), timestamp_ns, serialize_message(msg))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"{self.path}: writing the bag failed: {self._error}") from self._error

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
        try:
            self.writer.write_raw(topic, msgtype, self._node.get_clock().now().nanoseconds, raw)
        except RuntimeError:
            pass  # a late message after the bag closed
