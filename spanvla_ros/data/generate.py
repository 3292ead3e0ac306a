"""Episodes → training samples: the expert drives a seeded world; some episodes include a flawed-policy segment
(negative samples: hesitating, braking late, drifting out of the lane, cutting in with a short gap) and the expert's
correction from where it left the ego (recovery samples), or an injected displacement (lateral offset, heading error,
overspeed, an aborted lane change) followed by the expert's correction.

Targets are what was actually driven (the logged ego future); agent futures in each sample's scoring scene are the
logged ones (non-reactive replay, as NAVSIM's metric cache).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..eval import score_trajectory
from ..eval.closed_loop import ego_corners, on_road
from ..observation import ObservationSpec
from ..scene import Scene, Trajectory, scene_to_dict, speed_limit_at, world_to_ego
from ..sim import ExpertPlanner, HighwayWorld, WorldConfig
from ..sim.camera import CameraConfig, FrontCamera
from ..sim.camera_style import episode_style
from ..sim.expert import lane_width_at, plan_along_route
from ..sim.world import ENVIRONMENTS
from .dataset import NEGATIVE, POSITIVE, RECOVERY, Sample
from .reasoning import label_sample

log = logging.getLogger(__name__)

FLAWS = {
    "hesitate": "hesitates: crawls along instead of resuming speed with the traffic ahead",
    "late_brake": "brakes late: holds speed towards the traffic ahead and brakes hard at the last moment",
    "drift": "drifts out of its lane",
    "short_gap_cut_in": "cuts into the neighbouring lane with a short gap",
}
INJECTIONS = {
    "lateral_offset": "starts displaced sideways in its lane",
    "heading_error": "starts with a heading error",
    "overspeed": "starts well over the speed it should drive",
    "aborted_lane_change": "starts halfway into a lane change it must abort",
}


@dataclass(frozen=True)
class GenerationConfig:
    envs: tuple[str, ...] = ("highway", "merge", "roundabout", "intersection", "two-way", "exit")
    episode_s: float = 12.0
    warmup_s: float = 1.5
    sample_every_s: float = 0.5
    #: Negative samples every this often while a flaw drives (each: the expert's plan there, the flaw's driven path).
    negative_every_s: float = 0.5
    #: Recovery samples from a flaw's end or an injection on, every ``camera_dt_s``, while the expert corrects.
    recovery_window_s: float = 2.0
    replan_every_ticks: int = 2
    num_poses: int = 10
    pose_dt_s: float = 0.5
    camera_history: int = 2
    camera_dt_s: float = 0.5
    history_len: int = 4
    history_dt_s: float = 0.5
    image_size: int = 112
    flaw_probability: float = 0.6
    injection_probability: float = 0.5
    flaw_duration_s: float = 3.0
    negative_margin_pdms: float = 0.05
    #: The camera's look: "random" (domain randomisation per episode, at ``camera_randomisation`` strength),
    #: "default" (the renderer's), or one of the held-out looks training never sees (``HELD_OUT_STYLES``).
    camera_style: str = "random"
    camera_randomisation: float = 1.0

    @property
    def observation(self) -> ObservationSpec:
        """The spans of the samples' model inputs (one camera)."""
        return ObservationSpec(self.history_len, self.history_dt_s, self.camera_history, self.camera_dt_s)


#: DAgger: the learned planner drives (see ``generate_episode(learner=...)``).
LEARNER = "learner"
LEARNER_LABEL = "drives by the learned planner and leaves the expert's path"


def generate_episode(seed: int, config: GenerationConfig = GenerationConfig(), learner=None) -> list[Sample]:
    """Drive one seeded episode and return its samples (deterministic for a seed).

    With ``learner`` (a :class:`~spanvla_ros.planning.Planner` that reads the camera), a DAgger episode: after the
    warm-up the learner drives, and every ``negative_every_s`` the state it reached is labelled with the expert's plan
    (a recovery sample; its own driven path is the negative when the scorer marks it down). When it leaves the road
    the expert takes over and its correction gives recovery samples as after a flaw."""
    rng = np.random.default_rng(seed)
    env = config.envs[seed % len(config.envs)]
    world = HighwayWorld(
        WorldConfig(
            env=env,
            duration_s=config.episode_s + config.num_poses * config.pose_dt_s,
            history_len=config.history_len,
            history_dt_s=config.history_dt_s,
        )
    )
    style, style_rng = episode_style(config.camera_style, seed, config.camera_randomisation)
    camera = FrontCamera(style.camera_config(CameraConfig(width=config.image_size, height=config.image_size)))
    expert = ExpertPlanner()
    dt = world.config.dt_s
    ticks = int(round(config.episode_s / dt))
    tail = int(round(config.num_poses * config.pose_dt_s / dt))
    flaw = str(rng.choice(list(FLAWS))) if rng.random() < config.flaw_probability else None
    flaw_start = int(round(rng.uniform(config.warmup_s + 1.0, config.episode_s / 2) / dt)) if flaw else -1
    flaw_end = flaw_start + int(round(config.flaw_duration_s / dt)) if flaw else -1
    injection = str(rng.choice(list(INJECTIONS))) if not flaw and rng.random() < config.injection_probability else None
    injection_tick = int(round(rng.uniform(config.warmup_s + 1.0, config.episode_s / 2) / dt)) if injection else -1
    sample_stride = int(round(config.sample_every_s / dt))
    camera_stride = int(round(config.camera_dt_s / dt))
    negative_stride = max(int(round(config.negative_every_s / dt)), camera_stride)
    recovery_ticks = int(round(config.recovery_window_s / dt))
    if learner is not None:
        flaw, injection, injection_tick = LEARNER, None, -1
        flaw_start, flaw_end = int(round(config.warmup_s / dt)) + camera_stride, ticks + 1
    # Event ticks fall on camera ticks so every sample has its frame history.
    flaw_start, flaw_end, injection_tick = (
        (t // camera_stride) * camera_stride if t >= 0 else t for t in (flaw_start, flaw_end, injection_tick)
    )

    scene = world.reset(seed)
    ego_log: list[np.ndarray] = []
    agent_log: list[dict[str, np.ndarray]] = []
    frames: dict[int, np.ndarray] = {}
    pending: list[dict[str, Any]] = []
    plan, plan_tick, plan_origin = None, 0, None
    flaw_side = float(rng.choice([-1.0, 1.0]))
    for tick in range(ticks + tail + 1):
        if tick == injection_tick:
            scene = _inject(world, scene, injection, rng)
            plan = None
        ego_log.append(world.ego_state)
        agent_log.append(world.agent_states())
        if tick % camera_stride == 0 and tick <= ticks:
            frames[tick] = style.apply(camera.render(scene), style_rng)
        in_flaw = flaw is not None and flaw_start <= tick < flaw_end
        recovering_from = flaw_end if flaw is not None else injection_tick
        recovering = injection is not None or flaw is not None
        recovering = recovering and 0 <= tick - recovering_from <= recovery_ticks and tick % camera_stride == 0
        if tick <= ticks and tick >= int(config.warmup_s / dt):
            if in_flaw and (tick - flaw_start) % negative_stride == 0:
                pending.append(
                    {
                        "tick": tick,
                        "kind": RECOVERY if flaw == LEARNER else NEGATIVE,
                        "scene": scene,
                        "expert_plan": expert.plan(scene).poses,
                        "label": LEARNER_LABEL if flaw == LEARNER else FLAWS[flaw],
                    }
                )
            elif recovering:
                flaw_text = LEARNER_LABEL if flaw == LEARNER else FLAWS.get(flaw, "")
                label = f"the ego {flaw_text}" if flaw is not None else f"the ego {INJECTIONS[injection]}"
                pending.append({"tick": tick, "kind": RECOVERY, "scene": scene, "label": label})
            elif not in_flaw and tick % sample_stride == 0 and tick % camera_stride == 0:
                pending.append({"tick": tick, "kind": POSITIVE, "scene": scene})
        # The expert replans every few ticks (the world follows the aging plan in between); a flaw replans every tick.
        if in_flaw and flaw == LEARNER:
            seen = [frames[t] for t in sorted(frames)[-config.camera_history :]]
            seen = [seen[0]] * (config.camera_history - len(seen)) + seen
            metadata = {**scene.metadata, "camera_frames": np.stack(seen), "time_s": tick * dt}
            plan, plan_tick, plan_origin = learner.plan(dataclasses.replace(scene, metadata=metadata)), tick, None
        elif in_flaw:
            try:
                plan, plan_tick, plan_origin = Trajectory(_flawed_plan(flaw, scene, flaw_side, config)), tick, None
            except ValueError:  # the flaw cannot be planned here (the route ends): it ends, the expert corrects
                flaw_end = (tick // camera_stride + 1) * camera_stride
                plan, plan_tick, plan_origin = expert.plan(scene), tick, None
        elif plan is None or tick == flaw_end or tick - plan_tick >= config.replan_every_ticks:
            plan, plan_tick, plan_origin = expert.plan(scene), tick, None
        if plan_origin is None:
            plan_origin = world.ego_state[:3]
        scene = world.step(plan, plan_origin=plan_origin, plan_age_s=(tick - plan_tick) * dt)
        if in_flaw and flaw == LEARNER and not on_road(scene, ego_corners(scene)):
            # The learner left the road: the expert takes over from the next camera tick (its correction follows).
            flaw_end = (tick // camera_stride + 1) * camera_stride

    samples = []
    for item in pending:
        sample = _make_sample(item, ego_log, agent_log, frames, world, seed, env, config, rng)
        if sample is not None:
            samples.append(sample)
    return samples


def _flawed_plan(flaw: str, scene: Scene, side: float, config: GenerationConfig) -> np.ndarray:
    limit = speed_limit_at(scene, 25.0)
    common = {"num_poses": config.num_poses, "dt_s": config.pose_dt_s}
    if flaw == "hesitate":
        return plan_along_route(scene, lateral_target_m=0.0, target_speed_mps=1.0, **common)
    if flaw == "late_brake":
        poses = plan_along_route(
            scene, lateral_target_m=0.0, target_speed_mps=max(scene.ego.speed_mps, limit), follow_lead=False, **common
        )
        return poses
    if flaw == "drift":
        return plan_along_route(
            scene, lateral_target_m=side * 2.6, target_speed_mps=scene.ego.speed_mps, transition_s=6.0, **common
        )
    return plan_along_route(
        scene,
        lateral_target_m=side * lane_width_at(scene),
        target_speed_mps=scene.ego.speed_mps,
        follow_lead=False,
        transition_s=2.0,
        **common,
    )


def _inject(world: HighwayWorld, scene: Scene, injection: str, rng: np.random.Generator) -> Scene:
    side = float(rng.choice([-1.0, 1.0]))
    if injection == "lateral_offset":
        return world.perturb_ego(lateral_m=side * rng.uniform(0.8, 1.4))
    if injection == "heading_error":
        return world.perturb_ego(heading_rad=side * rng.uniform(0.08, 0.15))
    if injection == "overspeed":
        return world.perturb_ego(speed_scale=rng.uniform(1.25, 1.4))
    return world.perturb_ego(lateral_m=side * lane_width_at(scene) * 0.5, heading_rad=side * 0.06)


def _make_sample(item: dict[str, Any], ego_log, agent_log, frames, world, seed, env, config, rng) -> Sample | None:
    tick = item["tick"]
    dt = world.config.dt_s
    stride = int(round(config.pose_dt_s / dt))
    future_ticks = tick + stride * np.arange(1, config.num_poses + 1)
    if future_ticks[-1] >= len(ego_log):
        return None
    frame_ticks = [tick - k * int(round(config.camera_dt_s / dt)) for k in range(config.camera_history - 1, -1, -1)]
    if any(t not in frames for t in frame_ticks):
        return None
    base: Scene = item["scene"]
    origin = ego_log[tick][:3]
    driven = world_to_ego(np.array([ego_log[t][:3] for t in future_ticks]), origin)
    scoring_scene = _with_logged_futures(base, agent_log, tick, world.config.horizon_steps)
    if "expert_plan" in item:  # a flaw's or the learner's state, labelled with the expert's plan
        target, negatives = np.asarray(item["expert_plan"]), [driven]
    else:
        target, negatives = driven, []
    # What the ego drove next is the log NAVSIM's human filter reads; a flaw the generator injected is no such log.
    human = None if "expert_plan" in item else driven
    scoring_scene = dataclasses.replace(scoring_scene, reference_poses_ego=target, human_poses_ego=human)
    negative_scores, labels = [], []
    if negatives:
        score = score_trajectory(scoring_scene, negatives[0], config.pose_dt_s)
        reference = score_trajectory(scoring_scene, target, config.pose_dt_s)
        # Marked down by either score: PDMS (NAVSIM v1.1) does not see red lights, driving direction or lane keeping.
        drop = max(reference["pdms"] - score["pdms"], reference["epdms"] - score["epdms"])
        if drop < config.negative_margin_pdms:
            # The scorer does not mark this flaw down here: keep it as an ordinary positive sample instead.
            negatives, item = [], {**item, "kind": POSITIVE}
        else:
            negative_scores, labels = [score], [item["label"]]
    reasoning = label_sample(scoring_scene, target, rng, config.pose_dt_s)
    history = world_to_ego(np.asarray(base.ego.history_poses), origin)
    return Sample(
        token=f"{env}-s{seed}-t{tick * dt:05.1f}-{item['kind']}",
        kind=item["kind"],
        env=env,
        seed=seed,
        time_s=round(tick * dt, 3),
        images=np.stack([frames[t] for t in frame_ticks]),
        ego_history=history,
        speed_mps=float(base.ego.speed_mps),
        acceleration_mps2=float(base.ego.acceleration_mps2),
        command=base.command.value,
        target=target,
        reasoning=reasoning.to_dict(),
        scene=scene_to_dict(scoring_scene),
        negatives=negatives,
        negative_labels=labels,
        negative_scores=negative_scores,
        recovery_label=item.get("label", "") if item["kind"] == RECOVERY else "",
    )


def _with_logged_futures(scene: Scene, agent_log: list[dict[str, np.ndarray]], tick: int, horizon: int) -> Scene:
    """The scene with each agent's future replaced by its logged motion (held at its last logged state)."""
    agents = []
    for agent in scene.agents:
        states = []
        for k in range(horizon + 1):
            t = min(tick + k, len(agent_log) - 1)
            state = agent_log[t].get(agent.id)
            states.append(state if state is not None else states[-1] if states else None)
        if states[0] is None:
            continue
        states = np.array(states)
        velocities = states[:, 3:4] * np.column_stack([np.cos(states[:, 2]), np.sin(states[:, 2])])
        agents.append(type(agent)(agent.id, agent.kind, agent.length_m, agent.width_m, states[:, :3], velocities))
    return dataclasses.replace(scene, agents=tuple(agents))


__all__ = ["ENVIRONMENTS", "FLAWS", "INJECTIONS", "GenerationConfig", "Sample", "generate_episode"]


def generate_dataset(
    out_dir,
    *,
    episodes: int,
    seed: int,
    workers: int = 1,
    config: GenerationConfig = GenerationConfig(),
    progress: bool = True,
    learner: Callable[[], Any] | None = None,
    resume: bool = False,
    shard_size: int = 64,
) -> dict[str, Any]:
    """Generate ``episodes`` episodes (seeds ``seed .. seed + episodes - 1``) with ``workers`` processes and write
    the dataset; returns the manifest plus ``samples_per_s`` and ``seconds``. ``learner``: a picklable factory of the
    planner that drives DAgger episodes (built once per process). ``resume``: continue a generation of the same
    seeds and config that was interrupted in ``out_dir`` (shards close between episodes, so none is lost)."""
    import multiprocessing
    import time

    from tqdm import tqdm

    from ..config import config_to_dict
    from .dataset import DatasetWriter

    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    seeds = list(range(seed, seed + episodes))
    writer = DatasetWriter(out_dir, seeds=seeds, config=config_to_dict(config), shard_size=shard_size, resume=resume)
    todo = seeds[writer.done :]
    if writer.done:
        log.info("%s: resuming after %d of %d episodes", out_dir, writer.done, episodes)
    start = time.perf_counter()
    bar = tqdm(total=episodes, initial=writer.done, desc="episodes", unit="ep", disable=not progress)
    produced = 0
    if workers <= 1:
        results = (_generate_one((s, config, learner)) for s in todo)
        pool = None
    else:
        # spawn: highway-env/pygame state must not be forked mid-use.
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap(_generate_one, [(s, config, learner) for s in todo])
    try:
        for episode_seed, (episode_samples, error) in zip(todo, results, strict=True):
            if error:
                log.warning("episode %d failed and is left out: %s", episode_seed, error)
            writer.add_group(episode_samples, error)
            produced += len(episode_samples)
            bar.update(1)
            bar.set_postfix(samples=produced, per_s=f"{produced / (time.perf_counter() - start):.1f}")
    except BaseException:
        if pool is not None:
            pool.terminate()  # do not wait for the queued episodes after a failure
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        bar.close()
    manifest = writer.finish()
    seconds = time.perf_counter() - start
    return {**manifest, "seconds": seconds, "samples_per_s": produced / seconds}


def ensure_generated(out_dir, **kwargs: Any) -> bool:
    """Generate the dataset ``out_dir`` with :func:`generate_dataset`'s ``kwargs`` unless it is finished: from the
    start when it does not exist, continuing where it stopped when it was interrupted. Returns whether it ran."""
    from pathlib import Path

    from .dataset import INCOMPLETE

    root = Path(out_dir)
    interrupted = (root / INCOMPLETE).exists()
    if root.exists() and not interrupted:
        return False
    if interrupted:
        log.warning("%s: an interrupted generation; continuing it", root)
    generate_dataset(root, resume=interrupted, **kwargs)
    return True


_LEARNERS: dict[Any, Any] = {}


def _generate_one(args: tuple[int, GenerationConfig, Callable[[], Any] | None]) -> tuple[list[Sample], str]:
    """One episode's samples, or none and the reason it failed (one bad episode must not end a long generation)."""
    seed, config, factory = args
    try:
        if factory is None:
            return generate_episode(seed, config), ""
        if factory not in _LEARNERS:  # one planner per process: loading a checkpoint per episode would dominate
            _LEARNERS[factory] = factory()
        return generate_episode(seed, config, learner=_LEARNERS[factory]), ""
    except Exception as exc:  # noqa: BLE001 - reported in the manifest and the log
        return [], f"{type(exc).__name__}: {exc}"
