"""What one random read of a training sample costs — what stage 1 and the bridge stage do at every step — with the
dataset reader against the whole-shard load it replaces (every array of the shard decompressed and all its metadata
parsed, as the reader did before it read single members). Usage:

    python bench/dataset_read.py OUT.json [DATASET [READS]]

Reads alternate between the ways side by side on the same random indices; medians in ms. Also the memory the reader
keeps for a shard's metadata against the parsed text it used to keep."""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

from spanvla_ros.data.dataset import SampleReader


def whole_shard_read(reader: SampleReader, index: int) -> dict:
    """The previous reader's miss: the whole shard loaded, its metadata parsed, then the sample's scene."""
    file, i = reader._index[index]
    with np.load(reader.root / file, allow_pickle=False) as archive:
        data = {key: archive[key] for key in archive.files}
    metadata = json.loads(data["metadata"].tobytes().decode())
    meta = dict(metadata[i])
    meta["scene"] = json.loads(meta["scene"])
    return {**meta, **{name: data[f"s{i}.{name}"] for name in ("images", "ego_history", "target", "negatives")}}


def timed(read) -> float:
    start = time.perf_counter()
    read()
    return (time.perf_counter() - start) * 1000


def main(out: str, dataset: str = "runs/train/data", reads: int = 60) -> None:
    reader = SampleReader(dataset, verify=False)
    indices = np.random.default_rng(0).choice(len(reader), size=reads, replace=False)
    ways = {
        "whole_shard_ms": lambda i: whole_shard_read(reader, i),
        # A fresh reader per read: its first read of a shard, the worst case (the metadata not yet parsed).
        "reader_first_read_of_shard_ms": lambda i: SampleReader(dataset, verify=False).sample(i),
        "reader_ms": lambda i: reader.sample(i),
        "reader_no_scene_ms": lambda i: reader.sample(i, scene=False),
    }
    for i in indices[:5]:
        reader.sample(int(i))  # warm: these shards' metadata and compressed scenes are held
    times: dict[str, list[float]] = {name: [] for name in ways}
    for i in indices:
        reader.sample(int(i))  # the reader's steady state: this shard's metadata already held
        assert reader.sample(int(i))["token"] == whole_shard_read(reader, int(i))["token"]
        for name, read in ways.items():
            times[name].append(timed(lambda read=read, i=int(i): read(i)))
    result: dict = {"dataset": dataset, "samples": len(reader), "reads": reads}
    result.update({name: round(statistics.median(values), 2) for name, values in times.items()})
    result["whole_shard_over_reader_ratio"] = round(result["whole_shard_ms"] / result["reader_ms"], 1)
    result["whole_shard_over_reader_no_scene_ratio"] = round(result["whole_shard_ms"] / result["reader_no_scene_ms"], 1)
    file = reader._index[int(indices[0])][0]
    with np.load(reader.root / file, allow_pickle=False) as archive:
        text_bytes = sum(len(entry["scene"]) for entry in json.loads(archive["metadata"].tobytes().decode()))
    result["shard_scene_text_mb"] = round(text_bytes / 1e6, 2)
    result["shard_scenes_held_mb"] = round(sum(len(b) for b in reader._scenes[file]) / 1e6, 2)
    print(json.dumps(result, indent=1))
    with open(out, "w") as stream:
        json.dump(result, stream, indent=1)
        stream.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], *(sys.argv[2:3]), *(int(a) for a in sys.argv[3:4]))
