"""The release recipe: how the descriptor that ``nhpatches.describe()`` ships is trained.

This is not a notebook profile. The notebooks' ``cpu`` profile is sized so that the whole
teaching series fits in 30 minutes; the release recipe has a budget of its own (about 1.5 hours
on 2 CPU cores) and one goal: a descriptor that works on other people's patches, clean or noisy.

What it trains: the HardNet-style network of :func:`nhpatches.nets.models.build_hardnet` (no
denoiser in front of it), with HardNet's in-batch hardest-negative loss (anchor swap, margin 1)
on large batches of matching pairs, Adam with a linear warm-up and a cosine decay to zero.

What it trains on: every 3-D point of the training photos of the embedded dataset built at
1024 patches per sequence (split ``a``, train side), all 16 images of each point as positives.
Each pair is augmented on the fly:

* one of the 8 symmetries of the square (4 rotations by 90°, with or without a mirror), the
  same for both patches of the pair, so a pair still matches;
* Gaussian noise drawn per patch, independently for the two patches: with probability
  ``clean_fraction`` none, else σ uniform in [0, ``sigma_max``] on the 0..255 scale
  (``noisy = clip(floor(clean + σ z + 0.5))``, the noise model of :mod:`nhpatches.data.sweep`).

Model selection uses the held-out test photos of split ``a`` only: after every epoch the
HPatches matching mAP on their first ``validation_points`` points, re-noised at each σ of
``validation_sigmas``; the epoch with the best mean is exported. Real HPatches patches are never
looked at here (``scripts/real_sample_check.py`` is the final check, after training).

Every epoch writes a checkpoint (weights, optimiser state, history, the best epoch's weights;
``state.json`` last, naming its checkpoint file); a killed run started again
with the same arguments resumes after its last finished epoch, with the same batches it would
have drawn. Batches are drawn from ``numpy.random.default_rng([seed, epoch, step])``, so a
resumed run and an uninterrupted one see the same data.

    python scripts/train_pretrained.py --out runs/release            # cpu: ~1.5 h on 2 cores
    python scripts/train_pretrained.py --out runs/release --profile gpu
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from nhpatches import data, evaluation
from nhpatches.core import config
from nhpatches.core.cache import atomic_path
from nhpatches.data import embedded, sweep
from nhpatches.nets.inference import describe_patches

#: Name of the released descriptor (the export is "none+<name>": no denoiser in front).
RELEASE_DESCRIPTOR = "hardnet_release"
#: Checkpoint of the weights after epoch N; state.json names the one it belongs to, and is written last.
CHECKPOINT_PATTERN = "checkpoint-epoch{epoch:03d}.npz"
STATE_NAME = "state.json"
LOG_NAME = "train.log"


@dataclasses.dataclass(frozen=True)
class ReleaseRecipe:
    """Every setting of a release training run; a checkpoint only resumes under the same recipe."""

    profile: str = "cpu"
    # data: the embedded dataset (seed 0) at this many patches per sequence, split a
    data_patches: int = 1024
    split: str = "a"
    # optimisation
    batch_size: int = 512  # matching pairs per batch (distinct 3-D points)
    steps_per_epoch: int = 100
    epochs: int = 36
    learning_rate: float = 1e-3
    warmup_epochs: int = 1
    margin: float = 1.0
    # augmentation
    sigma_max: float = 60.0
    clean_fraction: float = 0.25
    symmetries: bool = True  # the 8 rotations/mirrors of the square, shared by a pair
    # model selection (held-out embedded test photos)
    validation_points: int = 64
    validation_sigmas: tuple[float, ...] = (0.0, 25.0, 50.0)
    seed: int = 0
    # accelerator settings (gpu)
    mixed_precision: str | None = None
    jit_compile: bool | str = "auto"

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


#: The recipes of ``scripts/train_pretrained.py --profile``: cpu is the shipped one; gpu is the
#: same recipe with HardNet's batch of 1024 pairs, about 10x the pairs seen, and bf16.
RECIPES: dict[str, ReleaseRecipe] = {
    "smoke": ReleaseRecipe(
        profile="smoke",
        data_patches=40,
        batch_size=16,
        steps_per_epoch=2,
        epochs=2,
        warmup_epochs=0,
        validation_points=8,
        validation_sigmas=(0.0, 30.0),
    ),
    "cpu": ReleaseRecipe(),
    "gpu": ReleaseRecipe(
        profile="gpu", batch_size=1024, steps_per_epoch=300, epochs=60, mixed_precision="bf16", jit_compile=True
    ),
}


def recipe_for(profile: str, **overrides: Any) -> ReleaseRecipe:
    """The named recipe with fields replaced (e.g. ``epochs=2``)."""
    if profile not in RECIPES:
        raise ValueError(f"unknown release profile {profile!r}; expected one of {sorted(RECIPES)}")
    return dataclasses.replace(RECIPES[profile], **overrides)


def recipe_json(recipe: ReleaseRecipe) -> dict[str, Any]:
    """The recipe as JSON-ready data (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(recipe)))


def descriptor_spec():
    """The DescriptorSpec the export records (the loader rebuilds the network from it)."""
    from nhpatches.nets import specs

    return specs.DescriptorSpec(
        RELEASE_DESCRIPTOR,
        network="hardnet",
        loss="hardest_negative",
        flip="random",
        optimizer="adam",
        learning_rate=RECIPES["cpu"].learning_rate,
        train_on="clean",
        family="extension",
    )


# --------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class ReleaseData:
    """Training points (points, 16, 32, 32) and held-out validation sequences, all clean uint8."""

    train: np.ndarray
    validation: dict[str, np.ndarray]
    data_dir: Path
    train_sequences: tuple[str, ...]
    fingerprint: str


def embedded_images(recipe: ReleaseRecipe) -> int | None:
    """Photos of the embedded build: the smoke profile's 6, else all."""
    return 6 if recipe.profile == "smoke" else None


def load_release_data(recipe: ReleaseRecipe, data_root: Path | None = None) -> ReleaseData:
    """Build (once) and load the embedded dataset of the recipe: train side and validation points."""
    images = embedded_images(recipe)
    tag = f"embedded_p{recipe.data_patches}_i{'all' if images is None else images}_s0"
    data_dir = embedded.ensure_embedded_dataset(
        (data_root or config.data_root()) / tag, seed=0, max_patches_per_sequence=recipe.data_patches, images=images
    )
    train = data.load_dataset(data_dir, recipe.split, "train")
    test = data.load_dataset(data_dir, recipe.split, "test", max_patches=recipe.validation_points)
    points = np.concatenate([np.swapaxes(seq.clean, 0, 1) for seq in train.values()])
    return ReleaseData(
        points,
        {name: seq.clean for name, seq in test.items()},
        data_dir,
        tuple(train),
        data.dataset_fingerprint(data_dir),
    )


# --------------------------------------------------------------------------- batches


def square_symmetry(patches: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Apply one of the 8 symmetries of the square per patch: code k = 4·mirror + quarter turns.

    Shape: (B, P, P), (B,) ints in 0..7 -> (B, P, P)
    """
    out = np.empty_like(patches)
    for code in range(8):
        rows = codes == code
        if not rows.any():
            continue
        chosen = patches[rows]
        if code >= 4:
            chosen = chosen[:, :, ::-1]
        out[rows] = np.rot90(chosen, code % 4, axes=(1, 2))
    return out


def noise_sigmas(rng: np.random.Generator, count: int, sigma_max: float, clean_fraction: float) -> np.ndarray:
    """Per-patch noise std: 0 with probability clean_fraction, else uniform in [0, sigma_max]."""
    sigmas = rng.uniform(0.0, sigma_max, count).astype(np.float32)
    sigmas[rng.random(count) < clean_fraction] = 0.0
    return sigmas


def add_noise(patches: np.ndarray, sigmas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """clip(floor(patch + σ z + 0.5), 0, 255) per patch, as float32 model input 0..255.

    Shape: (B, P, P) uint8, (B,) -> (B, P, P, 1) float32
    """
    noise = rng.standard_normal(patches.shape, dtype=np.float32) * sigmas[:, None, None]
    return np.clip(np.floor(patches.astype(np.float32) + noise + 0.5), 0, 255)[..., None]


def draw_pairs(points: np.ndarray, recipe: ReleaseRecipe, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """One augmented batch of matching pairs, drawn from ``default_rng([seed, epoch, step])``.

    B distinct points; for each, two distinct images of its 16; a shared symmetry; noise per patch.
    Shape: points (M, 16, P, P) uint8 -> anchors, positives (B, P, P, 1) float32 0..255
    """
    rng = np.random.default_rng([recipe.seed, epoch, step])
    size = recipe.batch_size
    if len(points) < size:
        raise ValueError(f"batch_size {size} exceeds the {len(points)} training points (a batch needs distinct points)")
    chosen = rng.choice(len(points), size, replace=False)
    first = rng.integers(0, points.shape[1], size)
    second = (first + rng.integers(1, points.shape[1], size)) % points.shape[1]
    anchors, positives = points[chosen, first], points[chosen, second]
    if recipe.symmetries:
        codes = rng.integers(0, 8, size)
        anchors, positives = square_symmetry(anchors, codes), square_symmetry(positives, codes)
    sigmas = noise_sigmas(rng, 2 * size, recipe.sigma_max, recipe.clean_fraction)
    return add_noise(anchors, sigmas[:size], rng), add_noise(positives, sigmas[size:], rng)


def prefetched(draw: Callable[[int], Any], steps: int) -> Iterator[Any]:
    """``draw(0) .. draw(steps - 1)`` in order, each drawn in a worker thread while the previous one trains.

    The batches depend only on their step (and the recipe's seed and epoch), so prefetching changes
    the speed, never the data; numpy releases the GIL in the noise and gather work.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(draw, 0) if steps > 0 else None
        for step in range(steps):
            batch = pending.result()
            pending = pool.submit(draw, step + 1) if step + 1 < steps else None
            yield batch


# --------------------------------------------------------------------------- model and schedule


def learning_rate_at(recipe: ReleaseRecipe, step: int) -> float:
    """Linear warm-up over warmup_epochs, then cosine decay to zero at the last step."""
    warmup = recipe.warmup_epochs * recipe.steps_per_epoch
    if step < warmup:
        return recipe.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, recipe.total_steps - warmup)
    return recipe.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_release_trainer(recipe: ReleaseRecipe):
    """(descriptor, trainer): the HardNet network, its pair trainer, Adam and the hardest-negative loss."""
    import keras

    from nhpatches.nets import losses, models

    descriptor = models.build_hardnet(name=RELEASE_DESCRIPTOR)
    trainer = models.build_pair_trainer(descriptor)
    trainer.compile(
        optimizer=keras.optimizers.Adam(recipe.learning_rate),
        loss=losses.hardest_negative_loss(recipe.margin, anchor_swap=True),
        jit_compile=recipe.jit_compile,
    )
    trainer.optimizer.build(trainer.trainable_variables)
    return descriptor, trainer


def validation_score(
    descriptor, sequences: Mapping[str, np.ndarray], sigmas: tuple[float, ...], seed: int = 0
) -> dict[str, float]:
    """HPatches matching mAP of the held-out sequences re-noised at each σ, and their mean."""
    scores = {}
    for sigma in sigmas:
        described = {
            name: describe_patches(descriptor, sweep.renoise(clean, sigma, data.sequence_noise_seed(seed, name)))
            for name, clean in sequences.items()
        }
        scores[f"val_matching_sigma{sigma:g}"] = evaluation.evaluate_matching(described, tuple(described))["mAP"]
    scores["val_score"] = float(np.mean(list(scores.values())))
    return scores


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(out: Path, descriptor, trainer, state: dict[str, Any], best: list[np.ndarray] | None) -> None:
    """Weights, optimiser variables and the best epoch's weights into this epoch's file; then the state file,
    which names that file, last; then older checkpoints are removed. A run killed between two writes
    resumes from the state's own checkpoint, never from a newer file."""
    import keras

    arrays = {f"model/{i:03d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(descriptor.weights)}
    arrays.update(
        {f"optimizer/{i:03d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(trainer.optimizer.variables)}
    )
    for i, value in enumerate(best or []):
        arrays[f"best/{i:03d}"] = value
    state["checkpoint"] = CHECKPOINT_PATTERN.format(epoch=state["epochs_done"])
    with atomic_path(out / state["checkpoint"]) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    with atomic_path(out / STATE_NAME) as tmp:
        tmp.write_text(json.dumps(state, indent=1) + "\n")
    for old in out.glob(CHECKPOINT_PATTERN.replace("{epoch:03d}", "*")):
        if old.name != state["checkpoint"]:
            old.unlink()


def _arrays(stored: Mapping[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    return [stored[key] for key in sorted(k for k in stored if k.startswith(prefix + "/"))]


def load_checkpoint(
    out: Path, recipe: ReleaseRecipe, descriptor, trainer
) -> tuple[dict | None, list[np.ndarray] | None]:
    """Restore a checkpoint of the same recipe into the models; (state, best weights), or (None, None)."""
    state_path = out / STATE_NAME
    if not state_path.is_file():
        return None, None
    try:
        state = json.loads(state_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{state_path}: unreadable checkpoint state ({error}); delete {out} to start over") from None
    if state.get("recipe") != recipe_json(recipe):
        raise ValueError(
            f"{state_path}: checkpoint of another recipe ({state.get('recipe')}); expected "
            f"{recipe_json(recipe)}. Use another --out folder, or delete this one to start over"
        )
    weights_path = out / str(state.get("checkpoint"))
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"{weights_path}: checkpoint weights named by {state_path} are missing; delete {out} to start over"
        )
    with np.load(weights_path) as stored:
        stored = {key: stored[key] for key in stored.files}
    descriptor.set_weights(_arrays(stored, "model"))
    optimizer_values = _arrays(stored, "optimizer")
    if len(optimizer_values) != len(trainer.optimizer.variables):
        raise ValueError(
            f"{weights_path}: {len(optimizer_values)} optimiser arrays, expected {len(trainer.optimizer.variables)}"
        )
    for variable, value in zip(trainer.optimizer.variables, optimizer_values):
        variable.assign(value)
    return state, (_arrays(stored, "best") or None)


# --------------------------------------------------------------------------- the run


def machine_description() -> dict[str, Any]:
    """Where the run happened: OS, processor, cores, Python, Keras backend."""
    import keras

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cores": cores,
        "python": platform.python_version(),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
    }


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def train_release(
    out_dir: str | os.PathLike[str],
    recipe: ReleaseRecipe,
    data_root: Path | None = None,
    print_fn: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) the release descriptor into ``out_dir``; return the final state.

    ``stop_after`` ends the call after that many epochs of this call (tests use it to simulate a
    killed run). Writes ``checkpoint-epochNNN.npz`` and ``state.json`` every epoch and appends to ``train.log``.
    """
    import keras

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(recipe.seed)
    release_data = load_release_data(recipe, data_root)
    if recipe.mixed_precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        descriptor, trainer = build_release_trainer(recipe)
        state, best = load_checkpoint(out, recipe, descriptor, trainer)
        return _train_epochs(out, recipe, release_data, descriptor, trainer, state, best, print_fn, stop_after)
    finally:
        if recipe.mixed_precision:
            keras.mixed_precision.set_global_policy("float32")


def _train_epochs(
    out: Path,
    recipe: ReleaseRecipe,
    release_data: ReleaseData,
    descriptor,
    trainer,
    state: dict | None,
    best: list[np.ndarray] | None,
    print_fn: Callable[[str], None],
    stop_after: int | None,
) -> dict[str, Any]:
    """The epoch loop of train_release: train, validate, checkpoint, log one line."""
    import keras

    if state is None:
        state = {
            "recipe": recipe_json(recipe),
            "epochs_done": 0,
            "steps_done": 0,
            "history": [],
            "train_seconds": 0.0,
            "best_epoch": None,
            "best_score": None,
            "data": {
                "dataset": release_data.data_dir.name,
                "fingerprint": release_data.fingerprint,
                "split": recipe.split,
                "train_sequences": list(release_data.train_sequences),
                "train_points": len(release_data.train),
                "validation_sequences": list(release_data.validation),
                "validation_points_per_sequence": recipe.validation_points,
            },
            "machine": machine_description(),
        }
    elif state["data"]["fingerprint"] != release_data.fingerprint:
        raise ValueError(
            f"{out / STATE_NAME}: checkpoint trained on dataset {state['data']['fingerprint']}, "
            f"but {release_data.data_dir} is {release_data.fingerprint}"
        )
    log = (out / LOG_NAME).open("a")
    emit = lambda line: (print_fn(line), log.write(line + "\n"), log.flush())
    if state["epochs_done"] == 0:
        emit(f"release recipe {recipe_json(recipe)}")
        emit(
            f"data {release_data.data_dir.name}: {len(release_data.train)} training points in "
            f"{len(release_data.train_sequences)} sequences; validation {len(release_data.validation)} held-out "
            f"sequences x {recipe.validation_points} points"
        )
    elif state["epochs_done"] < recipe.epochs:
        emit(f"resuming after epoch {state['epochs_done']}/{recipe.epochs} from {out / state['checkpoint']}")
    try:
        epochs_this_call = 0
        while state["epochs_done"] < recipe.epochs:
            if stop_after is not None and epochs_this_call >= stop_after:
                break
            epoch = state["epochs_done"]
            started = time.perf_counter()
            losses = []
            for anchors, positives in prefetched(
                lambda step: draw_pairs(release_data.train, recipe, epoch, step), recipe.steps_per_epoch
            ):
                trainer.optimizer.learning_rate = learning_rate_at(recipe, state["steps_done"])
                logs = trainer.train_on_batch(
                    [anchors, positives], np.zeros(recipe.batch_size, np.float32), return_dict=True
                )
                losses.append(float(logs["loss"]))
                state["steps_done"] += 1
            if not np.all(np.isfinite(losses)):
                raise FloatingPointError(f"training diverged in epoch {epoch + 1} (loss {losses[-1]})")
            train_seconds = time.perf_counter() - started
            scores = validation_score(descriptor, release_data.validation, recipe.validation_sigmas)
            epoch_seconds = time.perf_counter() - started
            state["train_seconds"] += epoch_seconds
            state["epochs_done"] = epoch + 1
            row = {
                "epoch": epoch + 1,
                "loss": float(np.mean(losses)),
                "learning_rate": learning_rate_at(recipe, state["steps_done"] - 1),
                "seconds": epoch_seconds,
                "pairs_per_second": recipe.batch_size * recipe.steps_per_epoch / train_seconds,
                **scores,
            }
            state["history"].append(row)
            if state["best_score"] is None or scores["val_score"] > state["best_score"]:
                state["best_score"], state["best_epoch"] = scores["val_score"], epoch + 1
                best = [keras.ops.convert_to_numpy(v) for v in descriptor.weights]
            save_checkpoint(out, descriptor, trainer, state, best)
            remaining = (recipe.epochs - state["epochs_done"]) * state["train_seconds"] / len(state["history"])
            sigma_scores = " ".join(
                f"{key.split('sigma')[1]}:{value:.3f}"
                for key, value in scores.items()
                if key.startswith("val_matching")
            )
            emit(
                f"epoch {epoch + 1:3d}/{recipe.epochs}  loss {row['loss']:.4f}  lr {row['learning_rate']:.2e}  "
                f"val matching mAP by σ {sigma_scores}  val score {scores['val_score']:.4f}"
                f"{' *' if state['best_epoch'] == epoch + 1 else ''}  "
                f"{row['pairs_per_second']:.0f} pairs/s  elapsed {_duration(state['train_seconds'])}  "
                f"eta {_duration(remaining)}"
            )
            epochs_this_call += 1
    finally:
        log.close()
    state["finished"] = state["epochs_done"] >= recipe.epochs
    return {**state, "best_weights": best}


def export_release(
    out_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    recipe: ReleaseRecipe,
    extra: Mapping[str, Any] | None = None,
    data_root: Path | None = None,
) -> Path:
    """Export the best epoch of a finished run as a ``describe(weights=...)`` export; return its manifest.

    The manifest gets the recipe, the training data, the machine, the wall time, the validation
    curve, the run's log, and ``export_check``: the exported pipeline against the trained network
    on held-out validation patches re-noised at σ 25 (float16 storage moves a descriptor by ~1e-3).
    """
    from nhpatches import pretrained

    run = Path(run_dir)
    descriptor, trainer = build_release_trainer(recipe)
    state, best = load_checkpoint(run, recipe, descriptor, trainer)
    if state is None or state["epochs_done"] < recipe.epochs:
        done = 0 if state is None else state["epochs_done"]
        raise ValueError(f"{run}: the run has finished {done} of {recipe.epochs} epochs; train it to the end first")
    if best is not None:
        descriptor.set_weights(best)
    log_path = run / LOG_NAME
    info = {
        "recipe": recipe_json(recipe),
        "training_data": state["data"],
        "machine": state["machine"],
        "wall_seconds": round(state["train_seconds"], 1),
        "best_epoch": state["best_epoch"],
        "validation_curve": state["history"],
        "log": log_path.read_text().splitlines() if log_path.is_file() else [],
        **(extra or {}),
    }
    manifest_path = pretrained.export_pipeline(out_dir, descriptor, descriptor_spec(), info=info)
    validation = load_release_data(recipe, data_root).validation
    patches = np.concatenate(
        [
            sweep.renoise(clean, 25.0, data.sequence_noise_seed(recipe.seed, name)).reshape(-1, *clean.shape[-2:])
            for name, clean in validation.items()
        ]
    )
    patches = patches[np.random.default_rng(0).permutation(len(patches))[:2048]]
    manifest = pretrained.read_manifest(manifest_path)
    manifest["export_check"] = {
        **pretrained.check_export(manifest_path, patches, descriptor),
        "input": "held-out validation patches re-noised at σ 25 (fixed seed 0)",
    }
    pretrained.write_manifest(manifest_path, manifest)
    return manifest_path
