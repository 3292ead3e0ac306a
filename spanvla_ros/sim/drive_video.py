"""A video of a drive: per tick the front camera with the plan drawn into it, a top-down inset (road, traffic, the
plan and the path driven so far, ego-up) and the newest reasoning text under it. Written as MP4 with OpenCV.

The plan is drawn as the ego sees it now: poses in the ego frame of the current pose (the caller moves a plan made a
few ticks ago into it), projected through the camera that made the frame.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np
import shapely

from ..scene import Scene, box_corners, world_to_ego
from .camera import FrontCamera

PLAN = (40, 220, 90)  # RGB
DRIVEN = (80, 150, 255)
AGENT = (230, 130, 60)
EGO = (240, 240, 240)
ROAD = (70, 70, 76)
PANEL = (22, 22, 26)
TEXT = (235, 235, 235)


class DriveVideo:
    """Frames ``width`` wide: the camera view (scaled to the width) with an inset, above a text panel."""

    def __init__(
        self, path: str | Path, camera: FrontCamera, fps: float = 10.0, width: int = 640, inset_view_m: float = 60.0
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.camera = camera
        self.scale = width / camera.config.width
        self.size = (width, int(round(camera.config.height * self.scale)) + 96)
        self.inset_px = width // 3
        self.inset_view_m = inset_view_m
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
        if not self.writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write MP4 to {self.path}")
        self.frames = 0
        self.driven: list[np.ndarray] = []

    def add(
        self, scene: Scene, camera_rgb: np.ndarray, plan_ego: np.ndarray | None, reasoning: str = "", caption: str = ""
    ) -> np.ndarray:
        """Compose one frame (returned as RGB) and append it to the video. ``plan_ego``: ``[N, 3]`` poses in the
        ego frame of ``scene.ego.pose``."""
        self.driven.append(np.asarray(scene.ego.pose, dtype=np.float64)[:2].copy())
        width, height = self.size
        view_h = height - 96
        frame = np.full((height, width, 3), PANEL, np.uint8)
        frame[:view_h] = cv2.resize(camera_rgb, (width, view_h), interpolation=cv2.INTER_LINEAR)
        if plan_ego is not None and len(plan_ego):
            self._draw_plan_in_view(frame[:view_h], np.asarray(plan_ego, dtype=np.float64))
        inset = self._inset(scene, plan_ego)
        frame[8 : 8 + self.inset_px, width - self.inset_px - 8 : width - 8] = inset
        if caption:
            (text_w, text_h), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
            frame[4 : 12 + text_h, 4 : 12 + text_w] = (0.4 * frame[4 : 12 + text_h, 4 : 12 + text_w]).astype(np.uint8)
            cv2.putText(frame, caption, (8, 8 + text_h), cv2.FONT_HERSHEY_SIMPLEX, 0.5, TEXT, 1, cv2.LINE_AA)
        lines = textwrap.wrap(reasoning or "(no reasoning yet)", width=max(20, width // 8))[:4]
        for k, line in enumerate(lines):
            y = view_h + 20 + 20 * k
            cv2.putText(frame, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT, 1, cv2.LINE_AA)
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1
        return frame

    def close(self) -> Path:
        self.writer.release()
        return self.path

    def __enter__(self) -> DriveVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- drawing ---------------------------------------------------------------------------------------------------

    def _draw_plan_in_view(self, view: np.ndarray, plan_ego: np.ndarray) -> None:
        points = np.vstack([[self.camera.config.mount_x_m + self.camera.config.near_m, 0.0], plan_ego[:, :2]])
        pixels, depth = self.camera.project_ego(points, 0.0)
        ahead = depth > 0.5
        pixels = np.round(pixels[ahead] * self.scale * 4).astype(np.int32)
        if len(pixels) >= 2:
            cv2.polylines(view, [pixels], False, PLAN, 3, cv2.LINE_AA, shift=2)
        for pixel in pixels[1:]:
            cv2.circle(view, tuple(int(v) for v in pixel), 4 * 4, PLAN, -1, cv2.LINE_AA, shift=2)

    def _inset(self, scene: Scene, plan_ego: np.ndarray | None) -> np.ndarray:
        size = self.inset_px
        inset = np.full((size, size, 3), (40, 60, 40), np.uint8)
        metres = self.inset_view_m
        pose = np.asarray(scene.ego.pose, dtype=np.float64)

        def to_px(points_ego: np.ndarray) -> np.ndarray:
            # Ego-up: forward is up, left is left; the ego sits a quarter from the bottom.
            u = size / 2 - points_ego[:, 1] * size / metres
            v = size * 0.75 - points_ego[:, 0] * size / metres
            return np.round(np.column_stack([u, v]) * 4).astype(np.int32)

        def world_px(points_world: np.ndarray) -> np.ndarray:
            local = world_to_ego(np.column_stack([points_world, np.zeros(len(points_world))]), pose)
            return to_px(local[:, :2])

        window = shapely.Point(pose[:2]).buffer(metres)
        area = scene.map.drivable_area.intersection(window)
        for polygon in getattr(area, "geoms", [area]):
            if polygon.geom_type != "Polygon" or polygon.is_empty:
                continue
            cv2.fillPoly(inset, [world_px(np.asarray(polygon.exterior.coords))], ROAD, cv2.LINE_AA, shift=2)
            for hole in polygon.interiors:
                cv2.fillPoly(inset, [world_px(np.asarray(hole.coords))], (40, 60, 40), cv2.LINE_AA, shift=2)
        for agent in scene.agents:
            corners = box_corners(agent.poses[:1], agent.length_m, agent.width_m)[0]
            cv2.fillPoly(inset, [world_px(corners)], AGENT, cv2.LINE_AA, shift=2)
        if len(self.driven) >= 2:
            cv2.polylines(inset, [world_px(np.array(self.driven[-300:]))], False, DRIVEN, 2, cv2.LINE_AA, shift=2)
        dims = scene.ego.dimensions
        ego = box_corners(pose[None], dims.length_m, dims.width_m, dims.rear_axle_to_center_m)[0]
        cv2.fillPoly(inset, [world_px(ego)], EGO, cv2.LINE_AA, shift=2)
        if plan_ego is not None and len(plan_ego):
            plan = np.vstack([[0.0, 0.0], np.asarray(plan_ego, dtype=np.float64)[:, :2]])
            cv2.polylines(inset, [to_px(plan)], False, PLAN, 2, cv2.LINE_AA, shift=2)
        cv2.rectangle(inset, (0, 0), (size - 1, size - 1), (200, 200, 200), 1)
        return inset
