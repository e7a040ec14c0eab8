"""Denoising quality: MAE and PSNR of noisy and denoised patches against the clean ones."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from nhpatches.core import config


def denoising_quality(
    clean: Mapping[str, np.ndarray], noisy: Mapping[str, np.ndarray], denoised: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """MAE and PSNR (0..255) of noisy and denoised patches against clean, per noise level.

    Shape: each mapping sequence -> (16, N, P, P) uint8
    """
    rows = []
    for level, level_images in config.LEVEL_IMAGES.items():
        images = list(level_images)
        reference = np.concatenate([clean[name][images].ravel() for name in clean]).astype(np.float64)
        for kind, source in (("noisy", noisy), ("denoised", denoised)):
            values = np.concatenate([source[name][images].ravel() for name in clean]).astype(np.float64)
            mse = float(np.mean((values - reference) ** 2))
            rows.append(
                {
                    "noise_level": level,
                    "input": kind,
                    "mae": float(np.mean(np.abs(values - reference))),
                    "psnr_db": 10 * np.log10(255.0**2 / max(mse, 1e-12)),
                }
            )
    return pd.DataFrame(rows)
