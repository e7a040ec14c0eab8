"""Constants of the HPatches format, run profiles and project paths."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

#: The 16 images of an HPatches sequence, in the order used for every (16, N, ...) array.
IMAGE_TYPES: tuple[str, ...] = ("ref", *(f"{level}{k}" for level in "eht" for k in range(1, 6)))
#: Noise / geometric difficulty levels of HPatches, keyed by their strip prefix.
NOISE_LEVELS: dict[str, str] = {"e": "easy", "h": "hard", "t": "tough"}
#: Images of each noise level (by position in IMAGE_TYPES); ``ref`` carries the easy noise.
LEVEL_IMAGES: dict[str, tuple[int, ...]] = {
    "easy": (0, 1, 2, 3, 4, 5),
    "hard": (6, 7, 8, 9, 10),
    "tough": (11, 12, 13, 14, 15),
}
#: The three HPatches tasks.
TASKS: tuple[str, ...] = ("verification", "matching", "retrieval")
#: The HPatches splits.
SPLITS: tuple[str, ...] = ("a", "b", "c", "illum", "view", "full")
#: Patch side used by the models (N-HPatches strips are 32 px wide).
PATCH_SIZE = 32
#: Side of a patch in the genuine hpatches-release strips.
RELEASE_PATCH_SIZE = 65


def image_index(image_type: str) -> int:
    """Position of an image type ('ref', 'e1', ...) in IMAGE_TYPES."""
    try:
        return IMAGE_TYPES.index(image_type)
    except ValueError:
        raise ValueError(f"unknown image type {image_type!r}; expected one of {IMAGE_TYPES}") from None


def project_root() -> Path:
    """Root of the project: $NHPATCHES_ROOT, else the checkout holding lib/, else the cwd."""
    env = os.environ.get("NHPATCHES_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "lib" / "nhpatches").is_dir():
            return parent
    return Path.cwd().resolve()


def display_path(path: str | os.PathLike[str]) -> Path:
    """A path as a notebook or a log shows it: relative to :func:`project_root` when inside it.

    ``<root>/data/embedded_x`` -> ``data/embedded_x``; a path outside the project (or a relative
    one) is returned as given, so no machine's absolute layout leaks into a committed output.
    """
    given = Path(path)
    if not given.is_absolute():
        return given
    try:
        return given.resolve().relative_to(project_root())
    except ValueError:
        return given


def resource_path(*parts: str) -> Path:
    """Path of a file shipped as package data under nhpatches/resources/."""
    return Path(__file__).resolve().parents[1].joinpath("resources", *parts)


@dataclasses.dataclass(frozen=True)
class Profile:
    """Sizes of one run of the series: data, task files, training schedule.

    ``gpu`` is the report's schedule (R Table 1) with the coursework's batch of 50 and 100,000
    training triplets per epoch; ``cpu`` keeps every architecture, loss, optimiser and data path
    and only scales steps, epochs and data down; ``smoke`` is the smallest run that exercises all.
    """

    name: str
    # embedded dataset build (ignored when data_dir points at real data)
    embedded_images: int | None  # photos used (None = all bundled photos)
    embedded_patches: int  # max patches per sequence when building
    # what is loaded
    train_patches: int | None  # max patches per training sequence (None = all)
    test_patches: int | None  # max patches per test sequence (None = all)
    # task files (recipes V and R of the HPatches spec)
    num_pairs: int
    num_queries: int
    num_distractors: int
    # denoiser schedule: steps per epoch (None = one shuffled pass over every training patch)
    steps_per_epoch: int | None
    validation_steps: int
    epochs_unet: int
    epochs_dncnn: int
    epochs_descriptor: int
    batch_size: int  # triplets (or pairs) per descriptor batch
    denoiser_batch_size: int  # patches per U-Net batch
    dncnn_batch_size: int  # patches per DnCNN batch
    quality_points: int | None = None  # test points per sequence for denoising MAE/PSNR (None = all)
    predict_batch_size: int = 256
    # descriptor schedule: batches per epoch (the coursework: 100,000 / 50 training, 10,000 / 50 validation)
    descriptor_steps_per_epoch: int = 2000
    descriptor_validation_steps: int = 200
    epochs_retrain: int = 13  # fine-tuning epochs of the "retrained" descriptors (R Table 1)
    dncnn_keep_epoch: int | None = 5  # DnCNN epoch whose weights are kept (R §3.1); None = the last
    descriptor_train_patches: int | None = None  # points per training sequence the descriptors see (None = all)
    sweep_points: int | None = None  # test points per sequence in the noise sweep (None = all)
    # accelerator settings (see nhpatches.train.device); the defaults are the host path of cpu/smoke
    device_sampling: bool = False  # draw training batches on the device, inside the compiled step
    mixed_precision: str | None = None  # None (float32) or "bf16" (Keras' mixed_bfloat16 while training)
    jit_compile: bool | str = "auto"  # passed to Model.compile ("auto": Keras' choice per backend)
    devices: int = 1  # data-parallel devices (keras.distribution.DataParallel, JAX only); 1 = none


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        embedded_images=6,
        embedded_patches=40,
        train_patches=32,
        test_patches=16,
        num_pairs=2_000,
        num_queries=100,
        num_distractors=300,
        steps_per_epoch=2,
        validation_steps=1,
        epochs_unet=2,
        epochs_dncnn=2,
        epochs_descriptor=2,
        batch_size=16,
        denoiser_batch_size=16,
        dncnn_batch_size=8,
        quality_points=4,
        descriptor_steps_per_epoch=2,
        descriptor_validation_steps=1,
        epochs_retrain=1,
        dncnn_keep_epoch=1,
        descriptor_train_patches=16,
        sweep_points=4,
    ),
    "cpu": Profile(
        name="cpu",
        embedded_images=None,
        embedded_patches=256,
        train_patches=128,
        test_patches=48,
        num_pairs=100_000,
        num_queries=2_000,
        num_distractors=5_000,
        steps_per_epoch=40,
        validation_steps=5,
        epochs_unet=6,
        epochs_dncnn=4,
        epochs_descriptor=5,
        batch_size=50,
        denoiser_batch_size=50,
        dncnn_batch_size=16,
        quality_points=8,
        descriptor_steps_per_epoch=24,
        descriptor_validation_steps=5,
        epochs_retrain=2,
        dncnn_keep_epoch=3,
        descriptor_train_patches=24,
        sweep_points=8,
    ),
    "gpu": Profile(
        name="gpu",
        embedded_images=None,
        embedded_patches=1024,
        train_patches=None,
        test_patches=None,
        num_pairs=1_000_000,
        num_queries=10_000,
        num_distractors=20_000,
        steps_per_epoch=None,
        validation_steps=200,
        epochs_unet=40,
        epochs_dncnn=6,
        epochs_descriptor=40,
        batch_size=50,
        denoiser_batch_size=50,
        dncnn_batch_size=50,
        predict_batch_size=2048,
        descriptor_steps_per_epoch=2000,
        descriptor_validation_steps=200,
        epochs_retrain=13,
        dncnn_keep_epoch=5,
        descriptor_train_patches=None,
        device_sampling=True,
        mixed_precision="bf16",
        jit_compile=True,
    ),
}


def get_profile(name: str, **overrides) -> Profile:
    """The named profile, with any field replaced by a keyword override."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Profile)}
    if unknown:
        raise ValueError(f"unknown Profile fields {sorted(unknown)}")
    return dataclasses.replace(PROFILES[name], **overrides)


def results_dir() -> Path:
    """Where cached runs live: $NHPATCHES_RESULTS, else <root>/results."""
    env = os.environ.get("NHPATCHES_RESULTS")
    return Path(env).expanduser().resolve() if env else project_root() / "results"


def data_root() -> Path:
    """Where generated datasets live: $NHPATCHES_DATA, else <root>/data."""
    env = os.environ.get("NHPATCHES_DATA")
    return Path(env).expanduser().resolve() if env else project_root() / "data"


def figures_dir(profile: str) -> Path:
    """Where a profile's figures and tables are written: <root>/figures/<profile>."""
    env = os.environ.get("NHPATCHES_FIGURES")
    base = Path(env).expanduser().resolve() if env else project_root() / "figures"
    return base / profile
