"""The dataset on disk: shards of samples (deterministic ``.npz`` zips: arrays + one JSON metadata string each) and a
``manifest.json`` (counts, seeds, generation config, sha256 of every shard). A dataset being written carries an
``.incomplete`` marker until its manifest is in place; readers refuse it, and refuse a shard whose hash differs.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import file_sha256

#: The kinds of sample.
POSITIVE, NEGATIVE, RECOVERY = "positive", "negative", "recovery"


@dataclass
class Sample:
    """One training sample (arrays in the ego frame at sample time; images oldest first)."""

    token: str
    kind: str
    env: str
    seed: int
    time_s: float
    images: np.ndarray  # [F, H, W, 3] uint8
    ego_history: np.ndarray  # [H, 3]
    speed_mps: float
    acceleration_mps2: float
    command: str
    target: np.ndarray  # [N, 3]
    reasoning: dict[str, Any]
    scene: dict[str, Any]
    negatives: list[np.ndarray] = field(default_factory=list)
    negative_labels: list[str] = field(default_factory=list)
    negative_scores: list[dict[str, float]] = field(default_factory=list)
    recovery_label: str = ""

    def metadata(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-ready."""
        return {
            "token": self.token,
            "kind": self.kind,
            "env": self.env,
            "seed": self.seed,
            "time_s": self.time_s,
            "speed_mps": self.speed_mps,
            "acceleration_mps2": self.acceleration_mps2,
            "command": self.command,
            "reasoning": self.reasoning,
            "negative_labels": self.negative_labels,
            "negative_scores": self.negative_scores,
            "recovery_label": self.recovery_label,
            "num_negatives": len(self.negatives),
            "scene": json.dumps(self.scene),
        }


FORMAT = "spanvla-dataset"
VERSION = 1
INCOMPLETE = ".incomplete"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: a seed reproduces byte-identical shards


class DatasetError(ValueError):
    """A dataset directory is missing, incomplete, empty, or a shard does not match its manifest."""


PROGRESS = "progress.json"


class DatasetWriter:
    """Writes a dataset shard by shard, resumably: samples arrive in groups (an episode each) and a shard is closed
    only between groups, after which ``progress.json`` records the shards and the groups done. A writer opened on a
    directory left incomplete with the same seeds and config continues after the last recorded group (``done``);
    anything written after that record is discarded."""

    def __init__(
        self,
        out_dir: str | Path,
        *,
        seeds: list[int],
        config: dict[str, Any],
        shard_size: int = 64,
        resume: bool = False,
    ) -> None:
        self.out = Path(out_dir)
        self.seeds, self.config, self.shard_size = seeds, json.loads(json.dumps(config)), shard_size
        self.shards: list[dict[str, Any]] = []
        self.done = 0
        self.counts: Counter = Counter()
        self.envs: Counter = Counter()
        self.failed: dict[str, str] = {}
        self.buffer: list[Sample] = []
        progress = self.out / PROGRESS
        if resume and (self.out / INCOMPLETE).exists() and progress.is_file():
            self._resume(json.loads(progress.read_text()))
        else:
            if self.out.exists() and any(self.out.iterdir()):
                raise DatasetError(f"{self.out} exists and is not empty; choose a new output directory")
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / INCOMPLETE).write_text("generation in progress\n")

    def _resume(self, progress: dict[str, Any]) -> None:
        if progress.get("seeds") != self.seeds or progress.get("config") != self.config:
            raise DatasetError(f"{self.out}: an interrupted generation with other seeds or config; delete it")
        self.shards = progress["shards"]
        for shard in self.shards:
            if file_sha256(self.out / shard["file"]) != shard["sha256"]:
                raise DatasetError(f"{self.out / shard['file']}: corrupt; delete the directory and generate again")
        kept = {shard["file"] for shard in self.shards} | {INCOMPLETE, PROGRESS}
        for file in self.out.iterdir():
            if file.name not in kept:
                file.unlink()  # written after the last record: its groups are generated again
        self.done = progress["done"]
        self.counts.update(progress["counts"])
        self.envs.update(progress["envs"])
        self.failed = progress.get("failed", {})

    def add_group(self, samples: list[Sample], failure: str = "") -> None:
        """The samples of the next group (episode) in order; ``failure``: why it has none."""
        if failure:
            self.failed[str(self.seeds[self.done] if self.done < len(self.seeds) else self.done)] = failure
        for sample in samples:
            self.buffer.append(sample)
            self.counts[sample.kind] += 1
            self.envs[sample.env] += 1
        self.done += 1
        if len(self.buffer) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        if self.buffer:
            name = f"shard_{len(self.shards):05d}.npz"
            write_shard(self.out / name, self.buffer)
            self.shards.append({"file": name, "samples": len(self.buffer), "sha256": file_sha256(self.out / name)})
            self.buffer.clear()
        progress = {
            "seeds": self.seeds, "config": self.config, "done": self.done, "shards": self.shards,
            "counts": dict(self.counts), "envs": dict(self.envs), "failed": self.failed,
        }  # fmt: skip
        (self.out / PROGRESS).write_text(json.dumps(progress) + "\n")

    def finish(self) -> dict[str, Any]:
        """Close the last shard and write the manifest; returns it."""
        self._flush()
        total = sum(s["samples"] for s in self.shards)
        if total == 0:
            raise DatasetError("generation produced no samples; nothing was written")
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "counts": {
                "total": total,
                **{k: self.counts.get(k, 0) for k in ("positive", "negative", "recovery")},
                "by_env": dict(sorted(self.envs.items())),
            },
            "seeds": self.seeds,
            "config": self.config,
            "shards": self.shards,
        }
        if self.failed:
            manifest["failed_episodes"] = self.failed
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (self.out / PROGRESS).unlink()
        (self.out / INCOMPLETE).unlink()
        return manifest


def write_dataset(
    samples: Iterable[Sample], out_dir: str | Path, *, seeds: list[int], config: dict[str, Any], shard_size: int = 64
) -> dict[str, Any]:
    """Write ``samples`` in order as shards of ``shard_size`` under ``out_dir``; return the manifest."""
    writer = DatasetWriter(out_dir, seeds=seeds, config=config, shard_size=shard_size)
    for sample in samples:
        writer.add_group([sample])
    return writer.finish()


def write_shard(path: Path, samples: list[Sample]) -> None:
    arrays: dict[str, np.ndarray] = {}
    metadata = []
    for i, sample in enumerate(samples):
        arrays[f"s{i}.images"] = sample.images
        arrays[f"s{i}.ego_history"] = sample.ego_history.astype(np.float32)
        arrays[f"s{i}.target"] = sample.target.astype(np.float32)
        negatives = np.stack(sample.negatives) if sample.negatives else np.zeros((0, *sample.target.shape))
        arrays[f"s{i}.negatives"] = negatives.astype(np.float32)
        metadata.append(sample.metadata())
    arrays["metadata"] = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(
                zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME),
                buffer.getvalue(),
                compress_type=zipfile.ZIP_DEFLATED,
            )


def read_manifest(dataset_dir: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """The manifest of a finished dataset; with ``verify`` every shard's sha256 is checked."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"dataset directory not found: {root}")
    if (root / INCOMPLETE).exists():
        raise DatasetError(f"{root} is incomplete (generation did not finish); generate it again")
    path = root / "manifest.json"
    if not path.is_file():
        raise DatasetError(f"{root} has no manifest.json: not a spanvla dataset")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a {FORMAT} manifest")
    if not manifest.get("shards") or manifest.get("counts", {}).get("total", 0) == 0:
        raise DatasetError(f"{root} is empty: the manifest lists no samples")
    if verify:
        for shard in manifest["shards"]:
            file = root / shard["file"]
            if not file.is_file():
                raise DatasetError(f"{root}: shard {shard['file']} listed in the manifest is missing")
            if file_sha256(file) != shard["sha256"]:
                raise DatasetError(f"{file}: sha256 does not match manifest.json (corrupt or modified shard)")
    return manifest


#: The arrays each sample stores in its shard (members ``s{i}.<name>.npy``).
SAMPLE_ARRAYS = ("images", "ego_history", "target", "negatives")


class SampleReader:
    """Random access to the samples of a dataset.

    A read decompresses only that sample's arrays, not its whole shard. Each shard's metadata is parsed once and kept
    without its scenes, which are up to 300 KB of JSON each (2.1 GB for the recipe's 20k samples): once a read wants
    a shard's scenes they are kept zlib-compressed (3.6 times smaller) and each is parsed when its sample is read.
    Reads that need no scene (``scene=False``: the VLM's contexts, the tokenizer's corpus) skip them altogether.
    """

    def __init__(self, dataset_dir: str | Path, *, verify: bool = True) -> None:
        self.root = Path(dataset_dir)
        self.manifest = read_manifest(self.root, verify=verify)
        self._index = [(s["file"], i) for s in self.manifest["shards"] for i in range(s["samples"])]
        self._metadata: dict[str, list[dict[str, Any]]] = {}
        self._scenes: dict[str, list[bytes]] = {}

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.sample(index)

    def sample(self, index: int, *, scene: bool = True) -> dict[str, Any]:
        """A sample: its metadata, its arrays and (with ``scene``) its scoring scene as a dict."""
        file, i = self._index[index]
        with np.load(self.root / file, allow_pickle=False) as archive:
            arrays = {name: archive[f"s{i}.{name}"] for name in SAMPLE_ARRAYS}
            if file not in self._metadata or (scene and file not in self._scenes):
                self._read_metadata(file, archive, keep_scenes=scene)
        item = {**self._metadata[file][i], **arrays}
        if scene:
            item["scene"] = json.loads(zlib.decompress(self._scenes[file][i]))
        return item

    def metadata(self, index: int) -> dict[str, Any]:
        """A sample's metadata (kind, env, seed, reasoning, ``has_scene``...) without its arrays or its scene: only
        each shard's metadata entry is read, once."""
        file, i = self._index[index]
        if file not in self._metadata:
            with np.load(self.root / file, allow_pickle=False) as archive:
                self._read_metadata(file, archive, keep_scenes=False)
        return self._metadata[file][i]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(len(self)):
            yield self[index]

    def _read_metadata(self, file: str, archive, *, keep_scenes: bool) -> None:
        entries = json.loads(archive["metadata"].tobytes().decode())
        scenes = [entry.pop("scene") for entry in entries]
        for entry, text in zip(entries, scenes, strict=True):
            entry["has_scene"] = text not in ("", "{}")  # real-data samples carry no scoring scene
        self._metadata[file] = entries
        if keep_scenes:  # level 1: the fastest
            self._scenes[file] = [zlib.compress(text.encode(), 1) for text in scenes]


class ConcatReader:
    """Several datasets read as one (a base dataset and its DAgger rounds): indices run through them in order; the
    manifest's counts are their sums."""

    def __init__(self, readers: list[SampleReader]) -> None:
        if not readers:
            raise DatasetError("no datasets to read")
        self.readers = readers
        self._starts = np.cumsum([0] + [len(r) for r in readers])
        counts: dict[str, Any] = {"total": 0, "positive": 0, "negative": 0, "recovery": 0, "by_env": {}}
        for reader in readers:
            for key, value in reader.manifest["counts"].items():
                if key == "by_env":
                    for env, n in value.items():
                        counts["by_env"][env] = counts["by_env"].get(env, 0) + n
                else:
                    counts[key] = counts.get(key, 0) + value
        self.manifest = {**readers[0].manifest, "counts": counts, "parts": [str(r.root) for r in readers]}

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, index: int) -> tuple[SampleReader, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        part = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self.readers[part], index - int(self._starts[part])

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.sample(index)

    def sample(self, index: int, *, scene: bool = True) -> dict[str, Any]:
        reader, local = self._locate(index)
        return reader.sample(local, scene=scene)

    def metadata(self, index: int) -> dict[str, Any]:
        reader, local = self._locate(index)
        return reader.metadata(local)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for reader in self.readers:
            yield from reader


def torch_dataset(dataset_dir: str | Path, *, verify: bool = True):
    """A ``torch.utils.data.Dataset`` over the samples (arrays as tensors, text and metadata as is)."""
    import torch
    from torch.utils.data import Dataset

    class SpanVLADataset(Dataset):
        def __init__(self) -> None:
            self.reader = SampleReader(dataset_dir, verify=verify)

        def __len__(self) -> int:
            return len(self.reader)

        def __getitem__(self, index: int) -> dict[str, Any]:
            item = self.reader[index]
            for key in ("images", "ego_history", "target", "negatives"):
                item[key] = torch.from_numpy(np.array(item[key]))
            return item

    return SpanVLADataset()
