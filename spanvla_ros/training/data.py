"""Training data: the dataset (generated on first use), a by-episode train/validation split, observations, and the
tokenizer and action codebook fitted on the training split."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import ConcatReader, DatasetError, SampleReader, read_manifest
from ..inputs import prompt_text
from ..model.action_tokens import ActionCodebook
from ..model.spanvla import Observation
from ..model.tokenizer import train_tokenizer
from .config import DataConfig, ModelConfig


def ensure_dataset(config: DataConfig, progress: bool = True) -> SampleReader | ConcatReader:
    """Open the dataset at ``config.dir`` (hashes checked), generating it first when the directory does not exist or
    holds an interrupted generation. A finished dataset made from other seeds or another generation config is an
    error, not something to train on silently."""
    import json

    from ..config import config_to_dict
    from ..data.generate import ensure_generated

    root = Path(config.dir)
    ensure_generated(
        root,
        episodes=config.episodes,
        seed=config.seed,
        workers=config.workers,
        config=config.generation,
        progress=progress,
    )
    manifest = read_manifest(root)  # hash check before any training starts
    wanted = {
        "seeds": list(range(config.seed, config.seed + config.episodes)),
        "config": json.loads(json.dumps(config_to_dict(config.generation))),
    }
    for key, value in wanted.items():
        if manifest.get(key) != value:
            raise DatasetError(
                f"{root} was generated with other {key} than this recipe's; delete it (it is regenerated) "
                "or point data.dir elsewhere"
            )
    reader = SampleReader(root, verify=False)
    if len(reader) == 0:
        raise DatasetError(f"{root} holds no samples")
    if config.extra_dirs:
        extras = [SampleReader(extra) for extra in config.extra_dirs]  # hashes checked
        return ConcatReader([reader, *(extras * max(config.extra_repeat, 1))])
    return reader


def split_indices(reader: SampleReader, validation_fraction: float) -> tuple[list[int], list[int]]:
    """Whole episodes go to validation (no leakage between neighbouring moments of one drive)."""
    train, validation = [], []
    for index in range(len(reader)):
        sample = reader.metadata(index)
        episode = f"{sample['env']}-{sample['seed']}"
        bucket = zlib.crc32(episode.encode()) % 1000 / 1000.0
        (validation if bucket < validation_fraction else train).append(index)
    if not train:
        raise DatasetError("the training split is empty: generate more episodes or lower validation_fraction")
    return train, validation


def observation(sample: dict[str, Any]) -> Observation:
    return Observation(
        np.asarray(sample["images"]),
        sample["command"],
        float(sample["speed_mps"]),
        float(sample["acceleration_mps2"]),
        np.asarray(sample["ego_history"], dtype=np.float64),
    )


def build_tokenizer_and_codebook(reader: SampleReader, indices: list[int], config: ModelConfig, seed: int = 0):
    """BPE over the reasoning and prompt texts, k-means codebook over the target motions, both on the train split."""
    corpus, targets = [], []
    for index in indices:
        sample = reader.sample(index, scene=False)
        corpus.append(sample["reasoning"]["text"])
        corpus.append(
            prompt_text(
                sample["command"],
                sample["speed_mps"],
                sample["acceleration_mps2"],
                sample["ego_history"],
                np.zeros((0, 3)),
                config.vlm.spatial_merge_size,
            )
        )
        targets.append(sample["target"])
    tokenizer = train_tokenizer(corpus, vocab_size=config.vocab_size, num_action_tokens=config.num_action_tokens)
    codebook = ActionCodebook.fit(np.stack(targets), config.num_action_tokens, seed=seed)
    if codebook.size < config.num_action_tokens:
        # Too few distinct motions for the requested size: pad with copies so token ids stay aligned with the config.
        extra = codebook.centers[np.arange(config.num_action_tokens - codebook.size) % codebook.size]
        codebook = ActionCodebook(np.vstack([codebook.centers, extra]), codebook.dt_s)
    return tokenizer, codebook
