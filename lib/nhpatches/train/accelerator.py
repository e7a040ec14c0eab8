"""Accelerator settings of a training run: mixed precision, XLA (jit) and data parallelism.

Each is a :class:`~nhpatches.core.config.Profile` field and part of a training run's cache key.
On the 2-core CPU the cpu profile keeps ``jit_compile="auto"`` (XLA off on TensorFlow): XLA
measured 0.5-0.6x the speed there (README, "CPU speed").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

#: Mixed-precision settings and Keras' dtype policy for each.
PRECISIONS: dict[str | None, str | None] = {None: None, "bf16": "mixed_bfloat16"}


@contextlib.contextmanager
def precision_policy(mixed_precision: str | None) -> Iterator[None]:
    """Keras' global dtype policy for ``mixed_precision`` (None or "bf16") inside, restored after.

    Under "bf16" layers compute in bfloat16 and keep float32 variables; losses stay float32.
    """
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {list(PRECISIONS)}, got {mixed_precision!r}")
    policy = PRECISIONS[mixed_precision]
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def resolve_jit_compile(jit_compile: bool | str) -> bool | str:
    """The ``jit_compile`` to pass to ``compile``: True, False or "auto".

    PyTorch's jit is ``torch.compile``, which Keras supports only partially: True becomes "auto"
    (eager) there.
    """
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}")
    if jit_compile is True and keras.backend.backend() == "torch":
        return "auto"
    return jit_compile


@contextlib.contextmanager
def data_parallel(devices: int, batch_sizes: tuple[int, ...] = ()) -> Iterator[keras.distribution.Distribution | None]:
    """``keras.distribution.DataParallel`` over the first ``devices`` devices inside (1: none), restored after.

    Needs the JAX backend and that many devices (on CPU:
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX starts); every batch size
    in ``batch_sizes`` must split evenly over the devices.
    """
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be a positive int, got {devices!r}")
    uneven = [size for size in batch_sizes if size % devices]
    if uneven:
        raise ValueError(f"batch sizes {uneven} do not split evenly over {devices} devices")
    if devices == 1:
        yield None
        return
    if keras.backend.backend() != "jax":
        raise ValueError(
            f"devices={devices} needs the JAX backend (keras.distribution.DataParallel); "
            f"the backend is {keras.backend.backend()!r}"
        )
    available = keras.distribution.list_devices()
    if len(available) < devices:
        raise ValueError(f"devices={devices} but JAX sees {len(available)}: {available}")
    previous = keras.distribution.distribution()
    distribution = keras.distribution.DataParallel(devices=available[:devices])
    keras.distribution.set_distribution(distribution)
    try:
        yield distribution
    finally:
        keras.distribution.set_distribution(previous)
