"""From patches to photographs: what notebook 11 runs and concludes with the image-matching benchmark.

Its sizes per profile, the sequences it reads, its rows, keypoints to draw, the benchmark's tables
(:mod:`nhpatches.evaluation.image_matching` computes the records) and its finding as sentences
computed from the summary; the figures are :mod:`nhpatches.study.photograph_plots`'.

A summary here is flat, as :func:`summary_table` returns it: one row per (method, sigma) with the
columns of SUMMARY_COLUMNS (means over pairs of MMA@t, homography accuracy h_acc_e, and counts).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nhpatches.data import image_pairs, regions
from nhpatches.evaluation import image_matching as bench
from nhpatches.study.findings import verdict

#: The headline measures, named as tables, figures and findings name them.
MEASURES: dict[str, str] = {"mma_3": "MMA@3 px", "h_acc_3": "homography within 3 px (share of pairs)"}
#: Columns of :func:`summary_table`, after method and sigma.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "pairs",
    "mma_1",
    "mma_3",
    "mma_5",
    "h_acc_1",
    "h_acc_3",
    "h_acc_5",
    "correct_3",
    "matches",
    "keypoints",
    "seconds_per_pair",
)


@dataclasses.dataclass(frozen=True)
class MatchingSettings:
    """Sizes of notebook 11's benchmark runs.

    ``sequences``: development sequences, the first N alternating viewpoint and illumination
    (:func:`read_sequences`), a tuple of names, or None for all; ``pairs``: the images k matched
    against image 1 (None: 2..6).
    """

    sigmas: tuple[float, ...]
    max_keypoints: int
    sequences: int | tuple[str, ...] | None
    pairs: tuple[int, ...] | None


#: Per profile: smoke runs in seconds on 2 cores, cpu in minutes (one viewpoint and one illumination development
#: sequence; sigma 35 is the drawn pair's); gpu is the benchmark's full size.
PROFILE_SETTINGS: dict[str, MatchingSettings] = {
    "smoke": MatchingSettings((0.0, 35.0), 300, 1, (2, 3)),
    "cpu": MatchingSettings((0.0, 20.0, 35.0, 50.0), 1000, 2, None),
    "gpu": MatchingSettings(tuple(map(float, bench.SIGMAS)), 2000, None, None),
}


def matching_settings(profile: str, **overrides: Any) -> MatchingSettings:
    """The profile's settings, with every override that is not None (the notebook's parameters).

    Raises ValueError naming an unknown profile or setting, or a bad value.
    """
    if profile not in PROFILE_SETTINGS:
        raise ValueError(f"profile {profile!r}: expected one of {sorted(PROFILE_SETTINGS)}")
    fields = {field.name for field in dataclasses.fields(MatchingSettings)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown settings {unknown}; expected some of {sorted(fields)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    if "sigmas" in given:
        given["sigmas"] = tuple(float(sigma) for sigma in given["sigmas"])
    if "pairs" in given:
        given["pairs"] = tuple(int(k) for k in given["pairs"])
    if isinstance(given.get("sequences"), (list, tuple)):
        given["sequences"] = tuple(given["sequences"])
    settings = dataclasses.replace(PROFILE_SETTINGS[profile], **given)
    if not settings.sigmas or any(not np.isfinite(s) or s < 0 for s in settings.sigmas):
        raise ValueError(f"sigmas: expected noise stds >= 0 (0..255 scale), got {settings.sigmas}")
    if not isinstance(settings.max_keypoints, (int, np.integer)) or settings.max_keypoints < 1:
        raise ValueError(f"max_keypoints: expected a positive integer, got {settings.max_keypoints!r}")
    if settings.pairs is not None and (not settings.pairs or any(k < 2 for k in settings.pairs)):
        raise ValueError(f"pairs: expected image numbers k >= 2 (matched against image 1), got {settings.pairs}")
    return settings


def read_sequences(root: Path | str, chosen: int | Sequence[str] | None = None) -> list[image_pairs.ImageSequence]:
    """The sequences under ``root``: all, the named ones, or the first N alternating v_ and i_ (v_ first).

    Raises ValueError naming unknown sequences (and listing the known ones) or a count below 1.
    """
    folders = image_pairs.image_sequence_dirs(root)
    if chosen is None:
        picked = folders
    elif isinstance(chosen, (int, np.integer)):
        if chosen < 1:
            raise ValueError(f"sequences: expected a positive number or names, got {chosen}")
        viewpoint = [folder for folder in folders if folder.name.startswith("v_")]
        others = [folder for folder in folders if not folder.name.startswith("v_")]
        alternating = [f for pair in itertools.zip_longest(viewpoint, others) for f in pair if f is not None]
        picked = alternating[: int(chosen)]
    else:
        by_name = {folder.name: folder for folder in folders}
        unknown = [name for name in chosen if name not in by_name]
        if unknown:
            raise ValueError(f"sequences: unknown {unknown} under {root}; known {sorted(by_name)}")
        picked = [by_name[name] for name in chosen]
    return [image_pairs.read_image_sequence(folder) for folder in picked]


@dataclasses.dataclass(frozen=True)
class Rows:
    """Notebook 11's benchmark rows (``hpatches-match-bench`` specs) and what each comparison uses.

    ``descriptor``: the shipped descriptor on SIFT keypoints, no denoiser; ``references``: the
    classical rows beside it; ``pipeline``: the row that is ``detect_and_describe``'s default
    pipeline; ``denoised``: each row with an image denoiser -> the same row without it.
    """

    specs: tuple[str, ...]
    pipeline: str
    denoised: Mapping[str, str]
    descriptor: str = "describe"
    references: tuple[str, ...] = ("sift", "rootsift")


def default_rows(denoise: str, magnification: float) -> Rows:
    """SIFT, RootSIFT, describe, nlm+sift and the default pipeline, from the image pipeline's defaults.

    ``denoise`` / ``magnification``: ``detect_and_describe``'s defaults (``nhpatches.pretrained.images``).
    The describe rows cut the default region; when that is not HPatches' (5 sigma), a row at HPatches'
    region is added. With no default denoiser the default pipeline is the describe row itself.
    """
    pipeline = "describe" if denoise == "none" else f"{denoise}+describe"
    specs = ["sift", "rootsift", "describe", "nlm+sift", pipeline]
    if not np.isclose(magnification, regions.MAGNIFICATION):
        specs.append(f"describe:magnification={regions.MAGNIFICATION:g}")
    denoised = {"nlm+sift": "sift"} | ({pipeline: "describe"} if pipeline != "describe" else {})
    return Rows(tuple(dict.fromkeys(specs)), pipeline, denoised)


# --------------------------------------------------------------------------- regions


def spread_keypoints(keypoints: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` keypoints spread over the larger half of the scales (visible when drawn).

    Shape: (N, 4) (x, y, size, angle) -> (min(count, N),) int
    """
    order = np.argsort(keypoints[:, 2], kind="stable")[len(keypoints) // 2 :]
    if len(order) == 0:
        return np.zeros(0, int)
    # steps of at least one rank: distinct indices, smallest scale first
    return order[np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int)]


# --------------------------------------------------------------------------- matches on one pair


def inlier_table(results: Mapping[str, Any], homography: np.ndarray, shape: tuple[int, ...]) -> pd.DataFrame:
    """Counts of matched pairs (``nhpatches.match_images`` results) checked against the true homography.

    Per result: keypoints per image, matches, the estimator's inliers, how many of those are correct
    (ground-truth reprojection error <= CORRECT_THRESHOLD px), the pair's MMA@3 and the corner error
    (px) of the estimated homography; ``shape`` is image 1's. Shape: -> one row per result
    """
    rows = []
    for label, result in results.items():
        errors = np.linalg.norm(bench.project(homography, result.xy1) - result.xy2, axis=1)
        inliers = np.asarray(result.inliers, bool)
        rows.append(
            {
                "pair": label,
                "keypoints": f"{len(result.features1)} / {len(result.features2)}",
                "denoised": f"{'yes' if result.features1.denoised else 'no'} / "
                f"{'yes' if result.features2.denoised else 'no'}",
                "matches": len(errors),
                "inliers": int(inliers.sum()),
                f"correct inliers (≤{bench.CORRECT_THRESHOLD} px)": int(
                    np.sum(errors[inliers] <= bench.CORRECT_THRESHOLD)
                ),
                "MMA@3": float(bench.mma(errors, [bench.CORRECT_THRESHOLD])[0]),
                "corner error (px)": bench.corner_error(result.homography, homography, shape),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- benchmark tables and figures


def summary_table(records: pd.DataFrame) -> pd.DataFrame:
    """Means over pairs per method and sigma (:func:`nhpatches.evaluation.image_matching.summarise`), flat."""
    summary = bench.summarise(records).reset_index()
    return summary[["method", "sigma", *SUMMARY_COLUMNS]]


# --------------------------------------------------------------------------- findings


def _value(summary: pd.DataFrame, method: str, sigma: float, column: str) -> float:
    """One number of a flat summary; ValueError naming the missing method."""
    rows = summary[(summary["method"] == method) & (summary["sigma"] == sigma)]
    if rows.empty:
        raise ValueError(
            f"method {method!r} at σ {sigma:g} is not in the summary (methods: {list(summary.method.unique())})"
        )
    return float(rows[column].iloc[0])


def _tolerance(tolerance: float) -> float:
    """The tolerance as a float; ValueError unless finite and >= 0."""
    tolerance = float(tolerance)
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    return tolerance


def descriptor_on_photographs(
    summary: pd.DataFrame, descriptor: str, references: Sequence[str], tolerance: float = 0.02
) -> str:
    """Say whether the patch-level winner wins on photographs: MMA@3 above the best reference's at every sigma.

    The best reference is chosen per sigma; a lead of at most ``tolerance`` counts as level, not ahead.
    The homography accuracy at 3 px is given beside, without a verdict.
    """
    tolerance = _tolerance(tolerance)
    parts, leads = [], []
    for sigma in sorted(summary["sigma"].unique()):
        mine = _value(summary, descriptor, sigma, "mma_3")
        best = max(references, key=lambda name: _value(summary, name, sigma, "mma_3"))
        lead = mine - _value(summary, best, sigma, "mma_3")
        leads.append(lead)
        standing = "ahead" if lead > tolerance else "behind" if lead < -tolerance else "level"
        parts.append(
            f"σ {sigma:g}: {mine:.3f} against {best} {mine - lead:.3f} ({lead:+.3f}, {standing}); homography within "
            f"3 px {_value(summary, descriptor, sigma, 'h_acc_3'):.2f} against {best} "
            f"{_value(summary, best, sigma, 'h_acc_3'):.2f}"
        )
    claim = (
        f"{descriptor} (the patch-level winner) matches photographs better than the best of "
        f"{', '.join(references)}: MMA@3 ahead by more than {tolerance:g} at every σ"
    )
    holds = all(lead > tolerance for lead in leads)
    return f"Claim: {claim}. Measured (MMA@3): " + "; ".join(parts) + f". → {verdict(holds)} on this run."


def denoising_first(summary: pd.DataFrame, pairs: Mapping[str, str], tolerance: float = 0.02) -> str:
    """Say whether denoising the whole image first helps: each denoised row above its twin on MMA@3 at every sigma > 0.

    ``pairs``: denoised row -> the same row without the denoiser. Homography accuracy at 3 px beside.
    """
    tolerance = _tolerance(tolerance)
    noisy = [sigma for sigma in sorted(summary["sigma"].unique()) if sigma > 0]
    if not noisy:
        return "Denoising first: no σ > 0 in this run, so it is not measured."
    lines, holds = [], True
    for denoised, plain in pairs.items():
        parts = []
        for sigma in noisy:
            before, after = (_value(summary, name, sigma, "mma_3") for name in (plain, denoised))
            h_before, h_after = (_value(summary, name, sigma, "h_acc_3") for name in (plain, denoised))
            holds &= after - before > tolerance
            parts.append(
                f"σ {sigma:g}: MMA@3 {before:.3f} → {after:.3f} ({after - before:+.3f}), "
                f"homography within 3 px {h_before:.2f} → {h_after:.2f}"
            )
        lines.append(f"{plain} → {denoised}: " + "; ".join(parts))
    claim = (
        f"denoising the whole image before detection and description raises MMA@3 by more than {tolerance:g} "
        f"at every σ > 0 ({', '.join(f'{denoised} against {plain}' for denoised, plain in pairs.items())})"
    )
    return f"Claim: {claim}. Measured: " + ". ".join(lines) + f". → {verdict(holds)} on this run."


def leaders(summary: pd.DataFrame) -> str:
    """The best method at each sigma on MMA@3 and on homography accuracy at 3 px (ties listed)."""
    lines = []
    for column, label in MEASURES.items():
        parts = []
        for sigma, group in summary.groupby("sigma", sort=True):
            best = group[column].max()
            names = ", ".join(group.loc[group[column] == best, "method"])
            parts.append(f"σ {sigma:g} {names} {best:.3f}")
        lines.append(f"best {label}: " + "; ".join(parts))
    return "\n".join(lines)


def findings(summary: pd.DataFrame, name: str, rows: Rows, tolerance: float = 0.02) -> str:
    """What a benchmark run found, as sentences computed from its flat summary.

    A header (pairs per row and sigma, keypoints), :func:`descriptor_on_photographs`,
    :func:`denoising_first` and :func:`leaders`, one paragraph each.
    """
    pairs = int(summary["pairs"].min())
    header = (
        f"{name}: {pairs} pairs per row and σ (a share of pairs moves in steps of {1 / pairs:.2f}), "
        f"{summary['keypoints'].mean():.0f} keypoints per image on average."
    )
    parts = [
        header,
        descriptor_on_photographs(summary, rows.descriptor, rows.references, tolerance),
        denoising_first(summary, rows.denoised, tolerance),
        leaders(summary),
    ]
    return "\n".join(parts)
