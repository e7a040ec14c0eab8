#!/usr/bin/env bash
# The prepared GPU check (issue 10): one command, under 10 minutes on one GPU machine, no network.
#
#   bash scripts/gpu_check.sh [OUT_DIR]        # OUT_DIR defaults to $OUT, else outputs/gpu_check
#
# 1. Installs the packages that machine lacks (Keras, papermill, a Jupyter kernel) from wheels/
#    (prepared here by scripts/gpu_wheels.sh and carried along) into a private folder, unless they
#    import already.
# 2. Times training of every model with benchmarks/bench_training.py --profile gpu (device
#    sampling, bf16, jit_compile), then the baseline and the U-Net again in float32.
# 3. Builds the gpu profile's embedded dataset, then runs notebooks 01 and 06 with the gpu
#    profile at reduced epochs (papermill, epochs=$GPU_CHECK_EPOCHS).
# 4. Writes OUT_DIR/gpu_check.json: the machine, every stage's status and seconds, the benchmark
#    rows (patches/s, sampler patches/s and their ratio, the H200 targets) and the patches/s of
#    every model the notebooks trained; OUT_DIR/gpu_check.log holds the output.
#
# Each stage has its own time limit, so the whole check ends inside 10 minutes whatever happens;
# a stage stopped by its limit is recorded as "timeout" and what it measured so far is kept.
# KERAS_BACKEND is jax unless set. A CPU dry run, with the smoke profile and short limits:
#
#   GPU_CHECK_PROFILE=smoke GPU_CHECK_STEPS=4 GPU_CHECK_BENCH_ARGS="--sampler device --precision bf16 --jit true" \
#       bash scripts/gpu_check.sh /tmp/gpu-check
#
# Settings (environment): GPU_CHECK_PROFILE (gpu), GPU_CHECK_EPOCHS (1), GPU_CHECK_STEPS (200 bench
# steps per timed epoch), GPU_CHECK_MODELS (all seven), GPU_CHECK_BENCH_S (180), GPU_CHECK_FP32_S
# (60), GPU_CHECK_DATA_S (80), GPU_CHECK_NOTEBOOK_S (100 each; with the install's 60 at most 580 s),
# GPU_CHECK_BENCH_ARGS (extra bench_training.py options for the first bench), PYTHON (python3), WHEELS_DIR (wheels),
# GPU_CHECK_WORK (/tmp/nhpatches-gpu-check: data, results, executed notebooks).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

OUT_DIR="${1:-${OUT:-$ROOT/outputs/gpu_check}}"
PROFILE="${GPU_CHECK_PROFILE:-gpu}"
EPOCHS="${GPU_CHECK_EPOCHS:-1}"
STEPS="${GPU_CHECK_STEPS:-200}"
MODELS="${GPU_CHECK_MODELS:-unet dncnn baseline updated deep hard hardnet}"
BENCH_ARGS="${GPU_CHECK_BENCH_ARGS:-}"
BENCH_S="${GPU_CHECK_BENCH_S:-180}"
FP32_S="${GPU_CHECK_FP32_S:-60}"
DATA_S="${GPU_CHECK_DATA_S:-80}"
NOTEBOOK_S="${GPU_CHECK_NOTEBOOK_S:-100}"
PYTHON="${PYTHON:-python3}"
WHEELS_DIR="${WHEELS_DIR:-wheels}"
WORK="${GPU_CHECK_WORK:-/tmp/nhpatches-gpu-check}"

export KERAS_BACKEND="${KERAS_BACKEND:-jax}" PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
export NHPATCHES_RESULTS="$WORK/results" NHPATCHES_DATA="$WORK/data" NHPATCHES_FIGURES="$WORK/figures"
export JUPYTER_RUNTIME_DIR="$WORK/jupyter-runtime" MPLBACKEND=Agg
# JAX takes 75 % of the GPU's memory up front by default; the notebooks' kernel and the benchmark run
# one after the other, so that is fine, but allocate on demand to leave room for the other framework.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
mkdir -p "$OUT_DIR" "$WORK"
LOG="$OUT_DIR/gpu_check.log"
STAGES="$WORK/stages.tsv"
: >"$LOG"
: >"$STAGES"
START=$(date +%s)

say() { echo "[gpu_check $(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }

# stage NAME LIMIT_S COMMAND...: run with a time limit, log its output, record status and seconds.
stage() {
    local name=$1 limit=$2 status began
    shift 2
    say "$name: start (limit ${limit}s)"
    began=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    status=$?
    local seconds=$(( $(date +%s) - began )) result=ok
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then result=timeout; elif [ "$status" -ne 0 ]; then result="failed($status)"; fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$result" "$seconds" "$limit" >>"$STAGES"
    say "$name: $result in ${seconds}s"
    return 0
}

# 1. Packages: only when Keras, papermill or the kernel do not import.
if ! "$PYTHON" -c "import keras, papermill, ipykernel, nbclient" >/dev/null 2>&1; then
    if ! ls "$WHEELS_DIR"/*.whl >/dev/null 2>&1; then
        say "Keras/papermill/ipykernel missing and no wheels in $WHEELS_DIR: run scripts/gpu_wheels.sh here first"
        exit 2
    fi
    stage install 60 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$WORK/site" "$WHEELS_DIR"/*.whl
    export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT/lib${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c "import keras, papermill; print('keras', keras.__version__, 'backend', keras.backend.backend())" \
    2>&1 | tee -a "$LOG"

# 2. Training throughput of every model (bf16, device sampling, jit), then float32 for two of them.
stage bench "$BENCH_S" "$PYTHON" benchmarks/bench_training.py --profile "$PROFILE" --models $MODELS \
    --steps "$STEPS" --epochs 2 --no-evaluation --json "$OUT_DIR/bench.json" $BENCH_ARGS
stage bench_float32 "$FP32_S" "$PYTHON" benchmarks/bench_training.py --profile "$PROFILE" --models baseline unet \
    --steps "$STEPS" --epochs 2 --no-evaluation --json "$OUT_DIR/bench_float32.json" $BENCH_ARGS --precision float32

# 3. The dataset once, then notebooks 01 and 06 at reduced epochs (06 fine-tunes 01's baseline).
stage data "$DATA_S" "$PYTHON" -c "
from nhpatches.study import Study
study = Study.open(profile='$PROFILE', epochs=$EPOCHS)
train, test = study.train_sequences, study.test_sequences
print('data', study.data_dir, len(train), 'training and', len(test), 'test sequences,',
      sum(s.num_patches for s in train.values()), 'training points')
"
for notebook in 01_baseline 06_hard_triplet; do
    stage "notebook_$notebook" "$NOTEBOOK_S" "$PYTHON" -m papermill --no-progress-bar --cwd notebooks \
        "notebooks/$notebook.ipynb" "$WORK/$notebook.ipynb" -p profile "$PROFILE" -p epochs "$EPOCHS"
done

# 4. The summary.
"$PYTHON" - "$OUT_DIR" "$STAGES" "$NHPATCHES_RESULTS" "$PROFILE" "$EPOCHS" "$(( $(date +%s) - START ))" <<'PY' 2>&1 | tee -a "$LOG"
import json, platform, subprocess, sys
from pathlib import Path

out, stages, results, profile, epochs, total = sys.argv[1:]
summary = {"profile": profile, "notebook_epochs": int(epochs), "total_seconds": int(total),
           "python": platform.python_version(), "stages": [], "benchmarks": {}, "notebook_training": [],
           "notebook_other_runs": []}
try:
    summary["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                     "--format=csv,noheader"], capture_output=True, text=True,
                                    timeout=30).stdout.strip() or None
except (OSError, subprocess.SubprocessError):
    summary["gpu"] = None
try:
    import keras
    summary["keras"], summary["backend"] = keras.__version__, keras.backend.backend()
    summary["devices"] = [str(d) for d in keras.distribution.list_devices()] if summary["backend"] == "jax" else None
except Exception as error:  # the summary is still written
    summary["keras"] = f"not importable: {error}"
for line in Path(stages).read_text().splitlines():
    name, status, seconds, limit = line.split("\t")
    summary["stages"].append({"name": name, "status": status, "seconds": int(seconds), "limit_seconds": int(limit)})
for name in ("bench", "bench_float32"):
    path = Path(out) / f"{name}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        data.pop("profile", None)
        summary["benchmarks"][name] = data
for metrics in sorted(Path(results).glob("*/*/metrics.json")):
    m = json.loads(metrics.read_text())
    run = f"{metrics.parent.parent.name}/{metrics.parent.name}"
    if "train_seconds" in m:  # a training run: its own patches/s, as trained in the notebook
        summary["notebook_training"].append({
            "run": run, "epochs": m.get("epochs"), "train_seconds": m.get("train_seconds"),
            "patches_fed": m.get("patches_fed"), "patches_per_second": m.get("patches_per_second"),
            "backend": m.get("backend")})
    elif "patches_per_second" in m:  # e.g. denoising the test set
        summary["notebook_other_runs"].append({"run": run, "patches_per_second": m["patches_per_second"]})
target = Path(out) / "gpu_check.json"
target.write_text(json.dumps(summary, indent=2))
print(f"gpu_check: wrote {target}")
for row in summary["benchmarks"].get("bench", {}).get("models", []):
    print(f"  {row['model']:<9} {row['patches_per_s']:>10.0f} patches/s  sampler {row['sampler_patches_per_s']:>12.0f}"
          f"  ratio {row['sampler_ratio']:.0f}x")
for stage in summary["stages"]:
    print(f"  stage {stage['name']}: {stage['status']} in {stage['seconds']} s")
PY
