#!/usr/bin/env bash
# Prepare wheels/ for scripts/gpu_check.sh: the Python packages the GPU machine lacks, as wheels
# for its Python (3.12, x86-64 manylinux), so that the check installs them there with no network.
#
# That machine (see the README, "GPU runs") has PyTorch, JAX, numpy, pandas, scipy, scikit-image,
# matplotlib, seaborn, h5py, ml-dtypes, rich and the like, but neither Keras nor TensorFlow nor a
# Jupyter kernel. This downloads Keras, papermill and ipykernel with their dependencies, then
# drops the wheels of packages the machine already has (PRESENT below), so the carried folder
# stays small and nothing installed there is shadowed by another version.
#
#   bash scripts/gpu_wheels.sh            # PYVER=3.12 by default; PYTHON=python3 runs pip
#   KERAS_VERSION=3.15.1 PYVER=3.12 WHEELS_DIR=wheels bash scripts/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PYVER=${PYVER:-3.12}
KERAS_VERSION=${KERAS_VERSION:-$("$PYTHON" -c 'import keras; print(keras.__version__)' 2>/dev/null || echo 3.15.1)}
DEST=${WHEELS_DIR:-wheels}

# Packages already on the GPU machine's image (its list of 2026-11-17); their wheels are dropped.
PRESENT="absl_py aiohttp aiosignal anyio attrs certifi charset_normalizer click cloudpickle contourpy
cycler filelock fonttools fsspec h5py idna imageio jinja2 kiwisolver lazy_loader markdown_it_py
markupsafe matplotlib mdurl ml_dtypes numpy packaging pandas pillow pip platformdirs pluggy protobuf
psutil pygments pyparsing python_dateutil pytz pyyaml regex requests rich scikit_image scipy seaborn
setuptools six tifffile tqdm typing_extensions tzdata urllib3 wheel zipp yarl multidict frozenlist
propcache aiohappyeyeballs networkx jax jaxlib torch"

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
log=$(mktemp)
if ! "$PYTHON" -m pip download --quiet --only-binary=:all: --python-version "$PYVER" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
        -d "$DEST" "keras==$KERAS_VERSION" papermill ipykernel nbclient nbformat >"$log" 2>&1; then
    cat "$log" >&2
    echo "gpu_wheels: pip download failed (above)" >&2
    exit 1
fi
grep -v "is ignored: it is neither" "$log" || true  # pip's notes on local index folders that are absent
rm -f "$log"

for wheel in "$DEST"/*.whl; do
    # A wheel's name starts with its project name, normalised to lower case with "_" for "-" and ".".
    project=$(basename "$wheel" | cut -d- -f1 | tr '[:upper:].-' '[:lower:]__')
    for present in $PRESENT; do
        if [ "$project" = "$present" ]; then
            rm -f "$wheel"
            break
        fi
    done
done
ls "$DEST"
du -sh "$DEST"
