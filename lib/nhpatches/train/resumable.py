"""Resumable training: a checkpoint every epoch, the same batches after a restart, the best epoch kept.

The study caches finished runs (:mod:`.training`, through ``keras.Model.fit``); a long run (the
release recipe of :mod:`nhpatches.pretrained.recipe`, an hour or more on a CPU) also has to survive
being killed. :class:`ResumableRun` trains a compiled trainer step by step (``train_on_batch``) on
batches that are a function of (epoch, step) alone (:meth:`.batches.TripletBatches.at`), drawn one
step ahead in a worker thread; after every epoch it scores the model with a validation function,
keeps the best epoch's weights and writes ``checkpoint-epochNNN.npz`` (weights, optimiser
variables, the best weights) and then ``state.json``, which names that file. Started again with the
same identity, it restores the checkpoint and goes on after the last finished epoch: the
optimiser's step counter (and so the learning-rate schedule) and the batches are those of an
uninterrupted run. (``Model.fit`` is not used here: its data adapter prefetches and shuffles a
``PyDataset`` across the epoch boundary, so an epoch's batches would depend on the one before.)
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from nhpatches.core.cache import atomic_path

#: Checkpoint of the weights after epoch N; state.json names the one it belongs to, and is written last.
CHECKPOINT_PATTERN = "checkpoint-epoch{epoch:03d}.npz"
STATE_NAME = "state.json"
LOG_NAME = "train.log"


@keras.saving.register_keras_serializable(package="nhpatches")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``base`` over ``warmup_steps``, then a cosine decay to zero at ``total_steps``.

    lr(s) = base (s + 1) / warmup for s < warmup, else base · ½ (1 + cos(π · min(1, (s − warmup) / (total − warmup)))).
    """

    def __init__(self, base: float, warmup_steps: int, total_steps: int) -> None:
        if not base > 0 or warmup_steps < 0 or total_steps < 1:
            raise ValueError(
                f"learning rate schedule needs base > 0, warmup >= 0, total >= 1; got "
                f"{base!r}, {warmup_steps!r}, {total_steps!r}"
            )
        self.base, self.warmup_steps, self.total_steps = float(base), int(warmup_steps), int(total_steps)

    def value(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based), in Python (for logs and tests)."""
        if step < self.warmup_steps:
            return self.base * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return self.base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def __call__(self, step):
        """The learning rate of the optimiser's step counter, as a backend tensor."""
        step = keras.ops.cast(step, "float32")
        warm = self.base * (step + 1.0) / max(1, self.warmup_steps)
        progress = keras.ops.minimum(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        decayed = self.base * 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        return keras.ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (Keras serialisation)."""
        return {"base": self.base, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def machine_description() -> dict[str, Any]:
    """Where a run happened: OS, processor, cores, Python, Keras backend."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cores": cores,
        "python": platform.python_version(),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
    }


def duration(seconds: float) -> str:
    """'1h05m' or '4m07s'."""
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(out: Path, model: keras.Model, trainer: keras.Model, state: dict, best: list | None) -> None:
    """Write the epoch's checkpoint file, then ``state.json`` naming it, then remove older checkpoints.

    The file holds the weights, the optimiser variables and the best weights; a run killed between
    two writes resumes from the state's own checkpoint.
    """
    arrays = {f"model/{i:03d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.weights)}
    arrays.update(
        {f"optimizer/{i:03d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(trainer.optimizer.variables)}
    )
    arrays.update({f"best/{i:03d}": value for i, value in enumerate(best or [])})
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
    out: Path, identity: Mapping[str, Any], model: keras.Model, trainer: keras.Model
) -> tuple[dict | None, list[np.ndarray] | None]:
    """Restore the checkpoint of a run with the same ``identity`` (e.g. its recipe) into the models.

    Returns (state, best weights), or (None, None) when ``out`` holds no run yet. The trainer's
    optimiser must be built (``trainer.optimizer.build(trainer.trainable_variables)``).
    """
    state_path = out / STATE_NAME
    if not state_path.is_file():
        return None, None
    try:
        state = json.loads(state_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{state_path}: unreadable checkpoint state ({error}); delete {out} to start over") from None
    if state.get("identity") != json.loads(json.dumps(identity)):
        raise ValueError(
            f"{state_path}: checkpoint of another run ({state.get('identity')}); expected {dict(identity)}. "
            "Use another output folder, or delete this one to start over"
        )
    weights_path = out / str(state.get("checkpoint"))
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"{weights_path}: checkpoint weights named by {state_path} are missing; delete {out} to start over"
        )
    with np.load(weights_path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    model.set_weights(_arrays(arrays, "model"))
    optimizer_values = _arrays(arrays, "optimizer")
    if len(optimizer_values) != len(trainer.optimizer.variables):
        raise ValueError(
            f"{weights_path}: {len(optimizer_values)} optimiser arrays, expected {len(trainer.optimizer.variables)}"
        )
    for variable, value in zip(trainer.optimizer.variables, optimizer_values, strict=False):
        variable.assign(value)
    return state, (_arrays(arrays, "best") or None)


# --------------------------------------------------------------------------- the loop


class EpochSeeded(Protocol):
    """Training batches that are a function of (epoch, step) alone."""

    batch_size: int

    def __len__(self) -> int:
        """Steps per epoch."""
        ...

    def at(self, epoch: int, index: int) -> tuple[Any, Any]:
        """Batch ``index`` of ``epoch``: (inputs, targets)."""
        ...


def prefetched(draw: Callable[[int], Any], steps: int) -> Iterator[Any]:
    """``draw(0) .. draw(steps - 1)`` in order, each drawn in a worker thread while the previous one trains.

    The batches depend only on their step (and epoch), so prefetching changes the speed, never the
    data; numpy releases the GIL in the gather and noise work.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(draw, 0) if steps > 0 else None
        for step in range(steps):
            assert pending is not None
            batch = pending.result()
            pending = pool.submit(draw, step + 1) if step + 1 < steps else None
            yield batch


class ResumableRun:
    """The state of one resumable run in ``out``: history, best epoch, checkpoints and the log."""

    def __init__(
        self,
        out: str | os.PathLike[str],
        model: keras.Model,
        trainer: keras.Model,
        identity: Mapping[str, Any],
        epochs: int,
        validate: Callable[[keras.Model], dict[str, float]],
        schedule: WarmupCosine | None = None,
        info: Mapping[str, Any] | None = None,
        print_fn: Callable[[str], None] = print,
    ) -> None:
        self.out, self.model, self.trainer, self.epochs = Path(out), model, trainer, epochs
        self.validate, self.schedule, self.print_fn = validate, schedule, print_fn
        self.out.mkdir(parents=True, exist_ok=True)
        trainer.optimizer.build(trainer.trainable_variables)
        state, self.best = load_checkpoint(self.out, identity, model, trainer)
        self.resumed = state is not None
        self.state: dict[str, Any] = state or {
            "identity": json.loads(json.dumps(identity)),
            "epochs_done": 0,
            "steps_done": 0,
            "history": [],
            "train_seconds": 0.0,
            "best_epoch": None,
            "best_score": None,
            "machine": machine_description(),
            **(info or {}),
        }

    def emit(self, line: str) -> None:
        """Print a line and append it to the run's log."""
        self.print_fn(line)
        with (self.out / LOG_NAME).open("a") as log:
            log.write(line + "\n")

    def end_epoch(self, epoch: int, loss: float, seconds_training: float, items: int) -> None:
        """Record one finished epoch (0-based): validation, best weights, checkpoint, one log line."""
        started = time.perf_counter()
        scores = self.validate(self.model)
        seconds = seconds_training + time.perf_counter() - started
        steps_per_epoch = self.state.get("steps_per_epoch") or 0
        self.state["steps_done"] += steps_per_epoch
        self.state["train_seconds"] += seconds
        self.state["epochs_done"] = epoch + 1
        lr = self.schedule.value(self.state["steps_done"] - 1) if self.schedule else None
        row = {
            "epoch": epoch + 1,
            "loss": loss,
            "learning_rate": lr,
            "seconds": seconds,
            "items_per_second": items / seconds_training,
            **scores,
        }
        self.state["history"].append(row)
        best = self.state["best_score"] is None or scores["val_score"] > self.state["best_score"]
        if best:
            self.state["best_score"], self.state["best_epoch"] = scores["val_score"], epoch + 1
            self.best = [keras.ops.convert_to_numpy(v) for v in self.model.weights]
        save_checkpoint(self.out, self.model, self.trainer, self.state, self.best)
        remaining = (self.epochs - self.state["epochs_done"]) * self.state["train_seconds"] / len(self.state["history"])
        by_key = "  ".join(
            f"{key.removeprefix('val_')} {value:.3f}" for key, value in scores.items() if key != "val_score"
        )
        self.emit(
            f"epoch {epoch + 1:3d}/{self.epochs}  loss {loss:.4f}"
            + (f"  lr {lr:.2e}" if lr is not None else "")
            + f"  {by_key}  val score {scores['val_score']:.4f}{' *' if best else ''}"
            + f"  {row['items_per_second']:.0f}/s  elapsed {duration(self.state['train_seconds'])}"
            + f"  eta {duration(remaining)}"
        )

    def fit(self, batches: EpochSeeded, items_per_batch: int, stop_after: int | None = None) -> dict[str, Any]:
        """Train the remaining epochs (at most ``stop_after`` in this call); return the state.

        ``batches.at(epoch, step)`` gives batch ``step`` of ``epoch`` (a function of the two alone,
        e.g. :meth:`.batches.TripletBatches.at`), drawn one step ahead in a worker thread.
        """
        start = self.state["epochs_done"]
        if self.resumed and start < self.epochs:
            self.emit(f"resuming after epoch {start}/{self.epochs} from {self.out / self.state['checkpoint']}")
        end = self.epochs if stop_after is None else min(self.epochs, start + stop_after)
        steps = len(batches)
        self.state["steps_per_epoch"] = steps
        for epoch in range(start, end):
            started = time.perf_counter()
            self.trainer.reset_metrics()  # train_on_batch's "loss" is then the mean over this epoch's steps
            logs: dict[str, Any] = {}
            for inputs, targets in prefetched(functools.partial(batches.at, epoch), steps):
                logs = self.trainer.train_on_batch(inputs, targets, return_dict=True)
            loss = float(logs.get("loss", float("nan")))
            if not math.isfinite(loss):
                raise FloatingPointError(f"training diverged in epoch {epoch + 1} (loss {loss})")
            self.end_epoch(epoch, loss, time.perf_counter() - started, steps * batches.batch_size * items_per_batch)
        self.state["finished"] = self.state["epochs_done"] >= self.epochs
        return self.state
