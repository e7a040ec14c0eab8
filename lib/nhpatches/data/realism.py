"""How realistic a dataset is: HPatches-style matching of clean patches with a trivial pixel descriptor.

:func:`measure_realism` matches the reference patches of each sequence against its e/h/t targets
with the normalised-pixel descriptor (:func:`pixel_descriptors`), per level: mean positive and
negative distances, matching MRR and nearest-neighbour accuracy. On the default embedded build
(generator 1.1, seed 0, 30 sequences, 5191 points; clean patches, at most 150 per sequence) it
gives matching MRR e 0.798 > h 0.424 > t 0.231 and mean positive distance 0.744 < 0.996 < 1.139;
on the real ``v_wormhole`` sample (150 patches) 0.739 > 0.427 > 0.182 and 0.683 < 0.880 < 1.056.
Notebook 00 recomputes the figures for the dataset in use (``table_0_realism``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS
from nhpatches.data.hpatches import Sequence

if TYPE_CHECKING:
    import pandas as pd


def pixel_descriptors(patches: np.ndarray) -> np.ndarray:
    """Trivial descriptor: pixels minus mean, divided by std, L2-normalised.

    Shape: (n, P, P) -> (n, P*P) float64
    """
    flat = patches.reshape(len(patches), -1).astype(np.float64)
    flat = (flat - flat.mean(axis=1, keepdims=True)) / (flat.std(axis=1, keepdims=True) + 1e-8)
    return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-12)


def _pair_statistics(reference: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Positive/negative distances, reciprocal rank and NN accuracy of ref -> target matching."""
    distances = np.sqrt(np.clip(2 - 2 * reference @ target.T, 0, None))
    positive = np.diag(distances)
    ranks = 1 + (distances < positive[:, None]).sum(axis=1)
    count = len(positive)
    return {
        "positive_distance": positive.mean(),
        "negative_distance": (distances.sum() - positive.sum()) / (count * (count - 1)),
        "matching_mrr": np.mean(1.0 / ranks),
        "nn_accuracy": np.mean(ranks == 1),
    }


def measure_realism(
    sequences: Mapping[str, Sequence], noisy: bool = False, max_patches: int | None = None
) -> pd.DataFrame:
    """Per level e/h/t: mean positive/negative distance, matching MRR and NN accuracy (pixel descriptor).

    Averages ref -> {level}k over k = 1..5 and the sequences (clean patches unless noisy=True).
    """
    import pandas as pd

    rows = []
    for level, noise_level in NOISE_LEVELS.items():
        stats = []
        for sequence in sequences.values():
            stored = sequence.noisy if noisy else sequence.clean
            if stored is None:
                raise ValueError(
                    f"sequence {sequence.name!r} has no {'noisy' if noisy else 'clean'} patches to measure"
                )
            patches = stored[:, :max_patches]
            reference = pixel_descriptors(patches[0])
            stats += [
                _pair_statistics(reference, pixel_descriptors(patches[IMAGE_TYPES.index(f"{level}{k}")]))
                for k in range(1, 6)
            ]
        rows.append(
            {
                "level": level,
                "noise_level": noise_level,
                **pd.DataFrame(stats).mean().to_dict(),
                "num_sequences": len(sequences),
                "num_patches": sum(min(s.num_patches, max_patches or s.num_patches) for s in sequences.values()),
            }
        )
    return pd.DataFrame(rows).set_index("level")
