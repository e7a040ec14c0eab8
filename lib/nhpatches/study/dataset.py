"""The study's data: the dataset on disk, its train and test sequences, training banks and task files."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path

from nhpatches import data
from nhpatches.core import config
from nhpatches.data import embedded, photos, tasks
from nhpatches.data.tasks import TaskSet
from nhpatches.train.batches import PatchBank, bank_from_sequences


@dataclasses.dataclass
class StudyData:
    """One profile's view of one dataset: what is loaded, how it is split, and its task files."""

    profile: config.Profile
    data_dir: Path
    seed: int = 0
    split: str = "a"
    results_root: Path = dataclasses.field(default_factory=config.results_dir)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Fingerprint of the dataset on disk (part of every cache key)."""
        return data.dataset_fingerprint(self.data_dir)

    @functools.cached_property
    def layout(self) -> str:
        """'embedded', 'nhpatches' or 'release'."""
        return data.detect_layout(self.data_dir)

    @functools.cached_property
    def train_sequences(self) -> dict[str, data.Sequence]:
        """Training sequences of the split (capped at profile.train_patches)."""
        return data.load_dataset(
            self.data_dir, self.split, "train", max_patches=self.profile.train_patches, noise_seed=self.seed
        )

    @functools.cached_property
    def test_sequences(self) -> dict[str, data.Sequence]:
        """Test sequences of the split (capped at profile.test_patches)."""
        return data.load_dataset(
            self.data_dir, self.split, "test", max_patches=self.profile.test_patches, noise_seed=self.seed
        )

    @functools.cached_property
    def banks(self) -> tuple[PatchBank, PatchBank]:
        """(train, validation) patch banks; validation holds out about 1 in 6 source scenes."""
        train, validation = hold_out_scenes(self.train_sequences)
        return bank_from_sequences(train), bank_from_sequences(validation)

    @functools.cached_property
    def tasks(self) -> TaskSet:
        """Verification and retrieval task files for the test sequences (official lists when they apply)."""
        sizes = {name: seq.num_patches for name, seq in self.test_sequences.items()}
        if self.layout != "embedded" and self.profile.test_patches is None:
            return tasks.official_tasks(self.split, sizes, seed=42)
        return self.generated_tasks(sizes)

    def generated_tasks(self, sizes: Mapping[str, int]) -> TaskSet:
        """Task files generated (recipes V and R, seed 42) for the first ``sizes[name]`` test points."""
        clean_ref = {
            name: seq.clean[0, : sizes[name]] for name, seq in self.test_sequences.items() if seq.clean is not None
        }
        # On a small test set, keep two thirds of the points for distractors (the official ratio is 1:2).
        num_queries = min(self.profile.num_queries, sum(sizes.values()) // 3)
        return tasks.load_or_generate_tasks(
            self._tasks_dir(sizes, num_queries),
            self.split,
            sizes,
            seed=42,
            clean_ref=clean_ref or None,
            num_pairs=self.profile.num_pairs,
            num_queries=num_queries,
            num_distractors=self.profile.num_distractors,
        )

    def _tasks_dir(self, sizes: Mapping[str, int], num_queries: int) -> Path:
        """Task files live next to the dataset, or under results/ if the dataset is read-only."""
        sub = (
            f"split-{self.split}_n{sum(sizes.values())}_p{self.profile.num_pairs}_q{num_queries}"
            f"_d{self.profile.num_distractors}"
        )
        folder = self.data_dir / "tasks" / sub
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            folder = self.results_root / "tasks" / self.fingerprint / sub
            folder.mkdir(parents=True, exist_ok=True)
        return folder


def embedded_dataset_dir(profile: config.Profile, seed: int = 0) -> Path:
    """Build (once) and return the embedded dataset a profile uses."""
    images = None
    if profile.embedded_images is not None:
        images = photos.DEFAULT_IMAGES[: profile.embedded_images]
    tag = f"embedded_p{profile.embedded_patches}_i{profile.embedded_images or 'all'}_s{seed}"
    return embedded.ensure_embedded_dataset(
        config.data_root() / tag, seed=seed, max_patches_per_sequence=profile.embedded_patches, images=images
    )


def hold_out_scenes(sequences: Mapping[str, data.Sequence], every: int = 6) -> tuple[dict, dict]:
    """Split sequences into (train, validation) by scene name (i_x and v_x stay together)."""
    scenes = sorted({name[2:] for name in sequences})
    held = set(scenes[every // 2 :: every]) or {scenes[-1]}
    if len(held) == len(scenes):
        raise ValueError(f"need at least two scenes to hold one out for validation, got {scenes}")
    train = {name: seq for name, seq in sequences.items() if name[2:] not in held}
    validation = {name: seq for name, seq in sequences.items() if name[2:] in held}
    return train, validation
