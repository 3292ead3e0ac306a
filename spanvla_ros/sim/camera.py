"""A front pinhole camera rendered from scene geometry with OpenCV (painter's order): sky, grass, road surface, lane
markings, road edges, traffic lights and vehicles as shaded boxes.

Frames: the camera sits ``mount_x_m`` ahead of the rear axle at ``mount_height_m``, looks along the ego's x axis and is
pitched down by ``pitch_deg``; pixels follow OpenCV (x right, y down). ``intrinsics()`` gives the matching
``sensor_msgs/CameraInfo`` fields (K, D, R, P, plumb_bob).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import shapely

from ..scene import Scene, TrafficLightState, box_corners, ego_to_world, world_to_ego

SKY, GRASS, ASPHALT, MARKING = (150, 190, 235), (70, 120, 60), (90, 90, 95), (235, 235, 235)
LIGHT_COLOURS = {
    TrafficLightState.RED: (230, 30, 30),
    TrafficLightState.YELLOW: (240, 200, 30),
    TrafficLightState.GREEN: (40, 200, 70),
    TrafficLightState.UNKNOWN: (120, 120, 120),
}


@dataclass(frozen=True)
class CameraConfig:
    width: int = 256
    height: int = 256
    horizontal_fov_deg: float = 90.0
    mount_x_m: float = 1.5
    mount_height_m: float = 1.6
    pitch_deg: float = 4.0
    near_m: float = 1.0
    far_m: float = 120.0
    frame_id: str = "front_camera_optical"
    vehicle_height_m: float = 1.5
    #: The scene's palette (RGB); domain randomisation varies it per episode.
    sky: tuple[int, int, int] = SKY
    grass: tuple[int, int, int] = GRASS
    asphalt: tuple[int, int, int] = ASPHALT
    marking: tuple[int, int, int] = MARKING


@dataclass(frozen=True)
class CameraIntrinsics:
    """The ``sensor_msgs/CameraInfo`` fields of the camera (no distortion)."""

    width: int
    height: int
    k: tuple[float, ...]
    d: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]
    distortion_model: str
    frame_id: str


def intrinsics(config: CameraConfig) -> CameraIntrinsics:
    fx = config.width / 2.0 / np.tan(np.deg2rad(config.horizontal_fov_deg) / 2.0)
    cx, cy = config.width / 2.0, config.height / 2.0
    return CameraIntrinsics(
        width=config.width,
        height=config.height,
        k=(fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0),
        d=(0.0, 0.0, 0.0, 0.0, 0.0),
        r=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        p=(fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0),
        distortion_model="plumb_bob",
        frame_id=config.frame_id,
    )


class FrontCamera:
    """Renders ``[H, W, 3]`` uint8 RGB frames of a scene from the ego's front camera."""

    def __init__(self, config: CameraConfig = CameraConfig()) -> None:
        self.config = config
        self.info = intrinsics(config)
        self._fx = self.info.k[0]
        pitch = np.deg2rad(config.pitch_deg)
        self._cos_p, self._sin_p = np.cos(pitch), np.sin(pitch)

    def render(self, scene: Scene) -> np.ndarray:
        cfg = self.config
        image = np.empty((cfg.height, cfg.width, 3), np.uint8)
        horizon = int(np.clip(cfg.height / 2 - self._fx * np.tan(np.deg2rad(cfg.pitch_deg)), 0, cfg.height))
        image[:horizon] = cfg.sky
        image[horizon:] = cfg.grass
        view = self._view_polygon(scene)
        road = scene.map.drivable_area.intersection(view)
        for polygon in _polygons(road):
            self._fill_ground(image, np.asarray(polygon.exterior.coords), cfg.asphalt, scene)
            for hole in polygon.interiors:
                self._fill_ground(image, np.asarray(hole.coords), cfg.grass, scene)
        self._draw_markings(image, scene, view)
        for polygon in _polygons(road):
            self._draw_ground_line(image, np.asarray(polygon.exterior.coords), scene, cfg.marking, 2)
        self._draw_boxes(image, scene)
        return image

    # --- geometry --------------------------------------------------------------------------------------------------

    def _view_polygon(self, scene: Scene) -> shapely.Polygon:
        """The ground area the camera can see (ego frame trapezoid, returned in world coordinates)."""
        cfg = self.config
        spread = np.tan(np.deg2rad(cfg.horizontal_fov_deg) / 2.0) * 1.2
        near, far = cfg.mount_x_m + cfg.near_m, cfg.mount_x_m + cfg.far_m
        local = np.array(
            [
                [near, -near * spread - 2],
                [far, -far * spread],
                [far, far * spread],
                [near, near * spread + 2],
                [near, -near * spread - 2],
            ]
        )
        world = ego_to_world(np.column_stack([local, np.zeros(len(local))]), scene.ego.pose)
        return shapely.Polygon(world[:, :2])

    def _project(
        self, points_world: np.ndarray, heights: np.ndarray | float, scene: Scene
    ) -> tuple[np.ndarray, np.ndarray]:
        """World points ``[N, 2]`` at ``heights`` → pixels ``[N, 2]`` and depth ``[N]`` (camera z)."""
        local = world_to_ego(np.column_stack([points_world, np.zeros(len(points_world))]), scene.ego.pose)
        return self.project_ego(local[:, :2], heights)

    def project_ego(self, points_ego: np.ndarray, heights: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Ego-frame points ``[N, 2]`` (rear axle, REP-103) at ``heights`` → pixels ``[N, 2]`` and depth ``[N]``;
        points with depth ≤ 0 are behind the camera."""
        local = np.asarray(points_ego, dtype=np.float64).reshape(-1, 2)
        dx = local[:, 0] - self.config.mount_x_m
        dy = local[:, 1]
        dz = np.asarray(heights, dtype=np.float64) - self.config.mount_height_m
        xc, yc, zc = -dy, -dz, dx
        y_p = yc * self._cos_p - zc * self._sin_p
        z_p = zc * self._cos_p + yc * self._sin_p
        safe = np.maximum(z_p, 1e-3)
        u = self._fx * xc / safe + self.config.width / 2.0
        v = self._fx * y_p / safe + self.config.height / 2.0
        return np.column_stack([u, v]), z_p

    def _fill_ground(self, image: np.ndarray, ring: np.ndarray, colour, scene: Scene) -> None:
        ring = _densify(ring, 4.0)
        pixels, depth = self._project(ring, 0.0, scene)
        if (depth <= 0.05).any():
            return
        cv2.fillPoly(image, [np.round(pixels * 4).astype(np.int32)], colour, lineType=cv2.LINE_AA, shift=2)

    def _draw_ground_line(self, image, line: np.ndarray, scene: Scene, colour, thickness: int) -> None:
        line = _densify(line, 2.0)
        pixels, depth = self._project(line, 0.02, scene)
        ok = depth > 0.3
        for run in _runs(ok):
            if len(run) >= 2:
                cv2.polylines(
                    image, [np.round(pixels[run] * 4).astype(np.int32)], False, colour, thickness, cv2.LINE_AA, shift=2
                )

    def _draw_markings(self, image: np.ndarray, scene: Scene, view: shapely.Polygon) -> None:
        """Dashed lines between neighbouring lanes (each lane draws its left boundary when it has a left lane)."""
        for lane in scene.map.lanes:
            if lane.left_id is None:
                continue
            clipped = lane.left_boundary.intersection(view)
            for piece in _lines(clipped):
                coords = _densify(np.asarray(piece.coords), 1.0)
                arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(coords, axis=0), axis=1))])
                dash = (arc % 9.0) < 3.0
                for run in _runs(dash):
                    if len(run) >= 2:
                        self._draw_ground_line(image, coords[run], scene, self.config.marking, 1)

    def _draw_boxes(self, image: np.ndarray, scene: Scene) -> None:
        """Vehicles and traffic lights as shaded boxes, farthest first."""
        cfg = self.config
        boxes = []
        for agent in scene.agents:
            boxes.append(
                (agent.poses[0], agent.length_m, agent.width_m, 0.0, cfg.vehicle_height_m, _agent_colour(agent.id))
            )
        for light in scene.map.traffic_lights:
            lane = scene.map.lane(light.lane_id)
            start, nxt = lane.centerline_xy[0], lane.centerline_xy[1]
            heading = np.arctan2(*(nxt - start)[::-1])
            side = start + (lane.width_m / 2 + 0.5) * np.array([np.sin(heading), -np.cos(heading)])
            boxes.append((np.array([*side, heading]), 0.4, 0.4, 3.0, 4.0, LIGHT_COLOURS[light.state]))
        ego_xy = scene.ego.pose[:2]
        # Cull what lies beyond the far plane before any projection.
        reach = cfg.far_m + cfg.mount_x_m + 5.0
        boxes = [b for b in boxes if float(np.hypot(*(b[0][:2] - ego_xy))) < reach]
        boxes.sort(key=lambda b: -float(np.linalg.norm(b[0][:2] - ego_xy)))
        for pose, length, width, bottom, top, colour in boxes:
            corners = box_corners(np.asarray(pose)[None], length, width)[0]  # FL, RL, RR, FR
            ground, depth_g = self._project(corners, bottom, scene)
            roof, depth_r = self._project(corners, top, scene)
            if (depth_g < self.config.near_m).any() or (depth_r < self.config.near_m).any():
                continue
            if not _on_screen(np.vstack([ground, roof]), self.config):
                continue
            center = corners.mean(axis=0)
            faces = []
            for a, b in ((0, 1), (1, 2), (2, 3), (3, 0)):
                mid = (corners[a] + corners[b]) / 2
                outward = mid - center
                to_camera = self._camera_xy(scene) - mid
                if float(np.dot(outward, to_camera)) <= 0:
                    continue  # back face
                shade = 0.55 + 0.45 * abs(
                    np.dot(outward / (np.linalg.norm(outward) + 1e-9), to_camera / (np.linalg.norm(to_camera) + 1e-9))
                )
                depth = float(np.linalg.norm(to_camera))
                faces.append((depth, np.array([ground[a], ground[b], roof[b], roof[a]]), shade))
            for _, quad, shade in sorted(faces, key=lambda f: -f[0]):
                cv2.fillPoly(
                    image,
                    [np.round(quad * 4).astype(np.int32)],
                    tuple(int(c * shade) for c in colour),
                    cv2.LINE_AA,
                    shift=2,
                )
            cv2.fillPoly(
                image,
                [np.round(roof * 4).astype(np.int32)],
                tuple(min(255, int(c * 1.1)) for c in colour),
                cv2.LINE_AA,
                shift=2,
            )

    def _camera_xy(self, scene: Scene) -> np.ndarray:
        return ego_to_world(np.array([[self.config.mount_x_m, 0.0, 0.0]]), scene.ego.pose)[0, :2]


def _agent_colour(agent_id: str) -> tuple[int, int, int]:
    palette = [(200, 60, 50), (50, 90, 190), (220, 220, 220), (40, 40, 45), (200, 170, 40), (90, 150, 90)]
    return palette[zlib.crc32(agent_id.encode()) % len(palette)]


def _polygons(geometry) -> list[shapely.Polygon]:
    if geometry.is_empty:
        return []
    if geometry.geom_type == "Polygon":
        return [geometry]
    return [g for g in getattr(geometry, "geoms", []) if g.geom_type == "Polygon"]


def _lines(geometry) -> list[shapely.LineString]:
    if geometry.is_empty:
        return []
    if geometry.geom_type == "LineString":
        return [geometry]
    return [g for g in getattr(geometry, "geoms", []) if g.geom_type == "LineString"]


def _densify(points: np.ndarray, step_m: float) -> np.ndarray:
    """Insert points so no segment is longer than ``step_m`` (straight ground lines bend under perspective)."""
    out = [points[:1]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        n = max(int(np.ceil(np.linalg.norm(b - a) / step_m)), 1)
        out.append(a + (b - a) * (np.arange(1, n + 1) / n)[:, None])
    return np.vstack(out)


def _runs(mask: np.ndarray) -> list[np.ndarray]:
    """Index arrays of consecutive True runs."""
    indices = np.flatnonzero(mask)
    if len(indices) == 0:
        return []
    return np.split(indices, np.flatnonzero(np.diff(indices) > 1) + 1)


def _on_screen(pixels: np.ndarray, config: CameraConfig) -> bool:
    return bool(
        (pixels[:, 0].max() >= 0)
        and (pixels[:, 0].min() < config.width)
        and (pixels[:, 1].max() >= 0)
        and (pixels[:, 1].min() < config.height)
    )
