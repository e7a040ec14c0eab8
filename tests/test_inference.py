"""nhpatches.nets.inference: compiled inference equals predict_on_batch, fixed batch shapes, one function per model."""

from __future__ import annotations

import gc

import keras
import numpy as np
import pytest

from nhpatches.nets import inference, specs
from nhpatches.pretrained import load_pipeline

#: Compiled (XLA) and eager outputs may differ by float rounding only: 1e-5 of the output's scale.
TOLERANCE = 1e-5


def _patches(count: int, seed: int = 0) -> np.ndarray:
    """Random uint8 patches. Shape: (count, 32, 32)."""
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32), dtype=np.uint8)


@pytest.fixture(scope="module")
def networks() -> dict[str, keras.Model]:
    """The shipped descriptor, a random report L2-Net (unnormalised output) and a random U-Net."""
    keras.utils.set_random_seed(3)
    return {
        "shipped": load_pipeline().descriptor,
        "baseline": specs.build_descriptor_network(specs.DESCRIPTORS["baseline"]),
        "unet": specs.build_denoiser_network(specs.DENOISERS["unet_adam"]),
    }


@pytest.mark.parametrize("name", ["shipped", "baseline", "unet"])
def test_compiled_matches_predict_on_batch(networks: dict[str, keras.Model], name: str) -> None:
    """70 patches in batches of 32 (the last, 6, padded to 8): compiled = predict_on_batch to 1e-5 of the scale."""
    model, patches = networks[name], _patches(70)
    eager = inference.run_network(model, patches, 32, compiled=False)
    compiled = inference.run_network(model, patches, 32, compiled=True)
    assert compiled.shape == eager.shape == (70, *model.output_shape[1:]) and compiled.dtype == np.float32
    scale = max(1.0, float(np.abs(eager).max()))
    assert np.abs(compiled - eager).max() <= TOLERANCE * scale
    assert not np.array_equal(eager[0], eager[1])  # the rows are distinct patches, not a broadcast


def test_shipped_descriptor_rows_to_1e5(networks: dict[str, keras.Model]) -> None:
    """The shipped (unit-norm) descriptor through describe_patches: compiled = eager to 1e-5 absolute, any count."""
    model = networks["shipped"]
    for count in (1, 5, 33):
        patches = _patches(count, seed=count)
        eager = inference.describe_patches(model, patches, 16, compiled=False)
        compiled = inference.describe_patches(model, patches, 16, compiled=True)
        np.testing.assert_allclose(compiled, eager, rtol=0, atol=TOLERANCE)


def test_last_batch_padding_sizes() -> None:
    """The last batch is padded to the next power of two, never beyond the batch size."""
    assert [inference.padded_size(n, 1024) for n in (1, 2, 3, 5, 64, 65, 1000, 1024)] == [
        1,
        2,
        4,
        8,
        64,
        128,
        1024,
        1024,
    ]
    assert inference.padded_size(900, 1000) == 1000 and inference.padded_size(3, 3) == 3


def test_one_compiled_function_per_model_held_weakly(networks: dict[str, keras.Model]) -> None:
    """The runner is built once per model and cached without keeping the model alive."""
    model = networks["baseline"]
    first = inference.compiled_runner(model, compiled=True)
    if first is None:
        pytest.skip(f"no compiled path on {keras.backend.backend()}")
    assert inference.compiled_runner(model, compiled=True) is first
    assert inference.compiled_runner(model, compiled=False) is None
    temporary = specs.build_descriptor_network(specs.DESCRIPTORS["baseline"])
    inference.run_network(temporary, _patches(3), 4, compiled=True)
    before = len(inference._RUNNERS)
    del temporary
    gc.collect()
    assert len(inference._RUNNERS) == before - 1


def test_eager_path_calls_predict_on_batch_unpadded(networks: dict[str, keras.Model], monkeypatch) -> None:
    """compiled=False runs Model.predict_on_batch on the batches as cut (no padding); compiled=True never calls it."""
    model, sizes = networks["baseline"], []
    original = model.predict_on_batch

    def record(batch):
        sizes.append(len(batch))
        return original(batch)

    monkeypatch.setattr(model, "predict_on_batch", record)
    inference.run_network(model, _patches(10), 4, compiled=False)
    assert sizes == [4, 4, 2]
    sizes.clear()
    if inference.compiled_runner(model, compiled=True) is not None:
        inference.run_network(model, _patches(10), 4, compiled=True)
        assert sizes == []
