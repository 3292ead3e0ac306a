"""Dataset generation, files, reader and bad input."""

import dataclasses
import json

import numpy as np
import pytest

from spanvla_ros.data.dataset import INCOMPLETE, DatasetError, SampleReader, read_manifest, torch_dataset
from spanvla_ros.data.export import export_reasoning
from spanvla_ros.data.generate import GenerationConfig, generate_dataset, generate_episode
from spanvla_ros.eval import score_trajectory
from spanvla_ros.scene import scene_from_dict

SHORT = GenerationConfig(episode_s=6.0, warmup_s=1.0, envs=("highway", "two-way"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "ds"
    manifest = generate_dataset(out, episodes=2, seed=5, workers=1, config=SHORT, progress=False)
    return out, manifest


def test_generated_dataset_round_trips_through_the_reader(dataset):
    out, manifest = dataset
    assert manifest["counts"]["total"] == len(SampleReader(out)) > 4
    assert manifest["samples_per_s"] > 0
    data = torch_dataset(out)
    item = data[0]
    assert item["images"].shape == (SHORT.camera_history, SHORT.image_size, SHORT.image_size, 3)
    assert item["target"].shape == (SHORT.num_poses, 3) and item["ego_history"].shape == (4, 3)
    assert item["kind"] in ("positive", "negative", "recovery")
    assert item["reasoning"]["text"]
    scene = scene_from_dict(item["scene"])  # the scoring scene travels with the sample
    assert score_trajectory(scene, item["target"].numpy())["pdms"] > 0.5  # the expert's own drive scores well


def test_reads_return_what_the_shards_store_in_any_order_with_or_without_the_scene(dataset, tmp_path):
    from spanvla_ros.data.dataset import write_dataset

    # Several shards, read in an order that hops between them: every read gives the stored arrays and metadata.
    samples = generate_episode(5, SHORT) + generate_episode(6, SHORT)
    write_dataset(samples, tmp_path / "ds", seeds=[5, 6], config={}, shard_size=3)
    reader = SampleReader(tmp_path / "ds")
    assert len(reader) == len(samples) > 6
    order = np.random.default_rng(0).permutation(len(samples))
    for index in order:
        stored, item = samples[index], reader[int(index)]
        assert item["token"] == stored.token and item["kind"] == stored.kind
        assert item["scene"] == json.loads(json.dumps(stored.scene))
        np.testing.assert_array_equal(item["images"], stored.images)
        np.testing.assert_array_equal(item["target"], stored.target.astype(np.float32))
        assert item["has_scene"] is True
    light = reader.sample(int(order[0]), scene=False)
    assert "scene" not in light and light["token"] == samples[order[0]].token
    # Metadata stays light: no scene text kept beside it.
    assert "scene" not in reader.metadata(0) and reader.metadata(0)["has_scene"]


def test_same_seed_gives_identical_shards(dataset, tmp_path):
    out, manifest = dataset
    again = generate_dataset(tmp_path / "again", episodes=2, seed=5, workers=2, config=SHORT, progress=False)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in manifest["shards"]]


def test_flawed_episodes_yield_labelled_negatives_and_recoveries():
    config = dataclasses.replace(SHORT, episode_s=10.0, flaw_probability=1.0, envs=("highway",))
    kinds = {}
    for seed in range(3):
        for sample in generate_episode(seed, config):
            kinds.setdefault(sample.kind, []).append(sample)
    assert kinds.get("recovery"), "a flaw segment ends in a recovery sample"
    for negative in kinds.get("negative", []):
        assert negative.negative_labels and negative.negatives[0].shape == (10, 3)
        # The scorer marks the flawed drive down against the expert's plan.
        assert negative.negative_scores[0]["pdms"] < 1.0


def test_a_dagger_episode_labels_the_states_the_learner_reaches_with_the_expert(dataset, tmp_path):
    from spanvla_ros.data.dataset import ConcatReader
    from spanvla_ros.runtime.artefact import default_checkpoint
    from spanvla_ros.runtime.planner import DeployedPlanner

    config = dataclasses.replace(SHORT, episode_s=6.0, envs=("roundabout",))
    learner = DeployedPlanner.from_name(str(default_checkpoint()))
    samples = generate_episode(7, config, learner=learner)
    learned = [s for s in samples if s.recovery_label.startswith("the ego drives by the learned planner")]
    assert learned, [s.token for s in samples]
    assert learner.core.counters["plans"] > 20  # the learner drove, tick by tick, through the planning core
    for sample in learned:
        assert sample.kind == "recovery" and sample.target.shape == (10, 3)
        if sample.negatives:  # the learner's own path, marked down against the expert's plan
            assert (
                sample.negative_scores[0]["pdms"]
                <= score_trajectory(scene_from_dict(sample.scene), sample.target)["pdms"]
            )
    # A DAgger round is read together with the base dataset.
    from spanvla_ros.data.dataset import write_dataset

    write_dataset(samples, tmp_path / "dagger", seeds=[7], config={})
    base, _ = dataset
    joined = ConcatReader([SampleReader(base), SampleReader(tmp_path / "dagger")])
    assert len(joined) == len(SampleReader(base)) + len(samples)
    assert joined.manifest["counts"]["recovery"] >= len(learned)
    assert joined[len(joined) - 1]["token"] == samples[-1].token
    assert joined.metadata(0)["token"] == SampleReader(base).metadata(0)["token"]


def test_tampered_shard_and_incomplete_or_empty_datasets_are_refused(dataset, tmp_path):
    out, manifest = dataset
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in out.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    shard = copy / manifest["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="sha256 does not match"):
        read_manifest(copy)
    (copy / INCOMPLETE).write_text("")
    with pytest.raises(DatasetError, match="incomplete"):
        read_manifest(copy)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps({"format": "spanvla-dataset", "shards": [], "counts": {}}))
    with pytest.raises(DatasetError, match="empty"):
        read_manifest(empty)
    with pytest.raises(DatasetError, match="not found"):
        read_manifest(tmp_path / "nowhere")


def test_export_reasoning_writes_jsonl_with_images(dataset, tmp_path):
    out, manifest = dataset
    jsonl = tmp_path / "mreasoning.jsonl"
    count = export_reasoning(out, jsonl)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert count == len(lines) == manifest["counts"]["total"]
    first = lines[0]
    assert (tmp_path / first["image"]).is_file()
    assert {"question", "reasoning", "trajectory", "negatives", "kind"} <= set(first)
    assert np.asarray(first["trajectory"]).shape == (10, 3)


def test_a_crash_mid_generation_leaves_the_dataset_marked_incomplete(dataset, tmp_path):
    from spanvla_ros.data.dataset import write_dataset

    reader = SampleReader(dataset[0])
    first = generate_episode(5, SHORT)

    def crashing():
        yield from first
        raise RuntimeError("worker died")

    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="worker died"):
        write_dataset(crashing(), out, seeds=[5], config={}, shard_size=2)
    assert (out / INCOMPLETE).exists() and not (out / "manifest.json").exists()
    with pytest.raises(DatasetError, match="incomplete"):
        SampleReader(out)
    assert len(reader) > 0


def test_an_interrupted_generation_resumes_to_the_same_dataset(tmp_path):
    from spanvla_ros.config import config_to_dict
    from spanvla_ros.data.dataset import DatasetWriter

    clean = generate_dataset(tmp_path / "clean", episodes=3, seed=5, config=SHORT, progress=False, shard_size=8)
    out = tmp_path / "interrupted"
    writer = DatasetWriter(out, seeds=[5, 6, 7], config=config_to_dict(SHORT), shard_size=8)
    writer.add_group(generate_episode(5, SHORT))  # one episode recorded, then the process is killed mid-shard
    (out / "shard_00099.npz").write_bytes(b"half a shard")
    assert (out / INCOMPLETE).exists()
    resumed = generate_dataset(out, episodes=3, seed=5, config=SHORT, progress=False, shard_size=8, resume=True)
    assert [s["sha256"] for s in resumed["shards"]] == [s["sha256"] for s in clean["shards"]]
    assert resumed["counts"] == clean["counts"] and not (out / "shard_00099.npz").exists()
    assert len(SampleReader(out)) == clean["counts"]["total"]
    other = tmp_path / "other"
    other.mkdir()
    (other / INCOMPLETE).write_text("")
    (other / "progress.json").write_text(json.dumps({"seeds": [5], "config": {}, "done": 0, "shards": []}))
    with pytest.raises(DatasetError, match="other seeds"):
        DatasetWriter(other, seeds=[6], config={}, resume=True)
