"""The shipped descriptor, SIFT and raw pixels on real HPatches patches, scored with the HPatches protocol.

The real sample is ``v_wormhole`` (tests/fixtures/hpatches-sample: a genuine HPatches viewpoint
sequence re-extracted with the HPatches protocol, 150 points x 16 images, 65 px). The project
never trains on it and never selects a model with it: this is the final check.

How the three tasks are formed (all patches at 32 px, as N-HPatches and every learned pipeline use
them; 65 px strips are resized by the loader):

* every sequence is re-noised at each σ with the noise sweep's model (``nhpatches.data.sweep``:
  ``clip(floor(clean + σ z + 0.5))``, the same draw z at every σ);
* **matching**: the HPatches matching mAP of ``v_wormhole`` alone (its 15 target images against
  its ``ref``, averaged per easy / hard / tough, then over the levels);
* **verification** and **retrieval** need patches of other scenes: the 14 held-out test sequences
  of the embedded dataset (split a, built at 1024 patches per sequence; the release recipe never
  trained on them) stand in for the rest of a test split. Task files are generated with the
  HPatches recipes V and R (seed 42) over the 15 sequences, then focused on ``v_wormhole``
  (``nhpatches.data.tasks.focus_tasks``): positive pairs, intra negatives and queries come from
  it, inter negatives pair it with any sequence, and all sequences give distractors;
* descriptors are written as an HPatches descriptor folder and scored by ``hpatches-eval``.

    python scripts/real_sample_check.py                      # default, sift, raw at σ 0 10 20 35 50
    python scripts/real_sample_check.py --weights runs/release/export --label candidate
    python scripts/real_sample_check.py --out figures/release  # also writes the table and figure
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEQUENCE = ROOT / "tests" / "fixtures" / "hpatches-sample" / "v_wormhole"
SIGMAS = (0.0, 10.0, 20.0, 35.0, 50.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", type=Path, default=SEQUENCE, help="a real sequence folder (release layout)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS), help="noise std, 0..255 scale")
    parser.add_argument(
        "--pipelines", nargs="+", default=["default", "sift", "raw"], help="names for nhpatches.describe(pipeline=...)"
    )
    parser.add_argument("--weights", type=Path, default=None, help="an export to use for the learned pipeline")
    parser.add_argument("--label", default=None, help="row label of the learned pipeline (default: its name)")
    parser.add_argument("--out", type=Path, default=None, help="write real_sample_map.csv/.md and the figure here")
    return parser.parse_args(argv)


def negative_sequences() -> dict[str, np.ndarray]:
    """Clean test sequences of the embedded dataset at 1024 patches (split a), built once. (16, N, 32, 32) each."""
    from nhpatches import data
    from nhpatches.core import config
    from nhpatches.data import embedded

    data_dir = embedded.ensure_embedded_dataset(
        config.data_root() / "embedded_p1024_iall_s0", seed=0, max_patches_per_sequence=1024
    )
    return {name: seq.clean for name, seq in data.load_dataset(data_dir, "a", "test").items()}


def sample_tasks(sequences: dict[str, np.ndarray], focus: str):
    """Recipe V and R task files over all sequences, focused on the real one."""
    from nhpatches.data import tasks

    sizes = {name: array.shape[1] for name, array in sequences.items()}
    generated = tasks.generate_tasks(
        sizes,
        "real",
        seed=42,
        num_pairs=300_000,
        num_queries=6_000,
        num_distractors=20_000,
        clean_ref={name: array[0] for name, array in sequences.items()},
    )
    return tasks.focus_tasks(generated, focus)


def score(descriptors: dict[str, np.ndarray], tasks_dir: Path, work: Path, focus: str) -> dict[str, float]:
    """Run hpatches-eval on a descriptor folder; verification and retrieval mAP, and the focus sequence's matching."""
    from nhpatches.cli.eval import main as hpatches_eval
    from nhpatches.evaluation.descriptor_io import write_descriptor_dir

    folder, report = work / "descriptors", work / "results.json"
    write_descriptor_dir(descriptors, folder, fmt="npy")
    with contextlib.redirect_stdout(io.StringIO()):
        status = hpatches_eval([str(folder), "--tasks", str(tasks_dir), "--split", "real", "--json", str(report)])
    if status != 0:
        raise RuntimeError(f"hpatches-eval failed on {folder} (exit {status})")
    results = json.loads(report.read_text())
    matching = results["matching"]["ap_per_seq"][focus]
    return {
        "verification": results["verification"]["mAP"],
        "matching": float(np.mean([np.mean(aps) for aps in matching.values()])),
        "retrieval": results["retrieval"]["mAP"],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import nhpatches
    from nhpatches import data
    from nhpatches.core.config import IMAGE_TYPES
    from nhpatches.data import sweep, tasks
    from nhpatches.nets.inference import describe_each
    from nhpatches.pretrained import load_pipeline

    real = data.load_sequence(args.sequence)
    if real.clean is None:
        print(f"{args.sequence}: no clean strips ({{ref,e1..t5}}.png) to re-noise", file=sys.stderr)
        return 2
    sequences = {real.name: real.clean, **negative_sequences()}
    focused = sample_tasks(sequences, real.name)
    learned = load_pipeline(args.weights).name
    labels = {p: (args.label or learned) if p == "default" else p for p in args.pipelines}
    counts = focused.provenance["counts"]
    print(
        f"{real.name}: {real.num_patches} points x 16 images at 32 px; {len(sequences) - 1} embedded test sequences "
        f"({sum(a.shape[1] for a in sequences.values()) - real.num_patches} points) for negatives and distractors; "
        f"task counts {counts}"
    )
    print(f"{'sigma':>6} {'pipeline':<30} {'verif':>7} {'match':>7} {'retr':>7} {'mean':>7} {'patches/s':>10}")
    rows, reference_65 = [], None
    native = data.read_strip_set([args.sequence / f"{t}.png" for t in IMAGE_TYPES], None)
    native = native[:, : real.num_patches] if native.shape[-1] == 65 else None
    with tempfile.TemporaryDirectory(prefix="real-sample-") as tmp:
        work = Path(tmp)
        tasks.write_tasks(focused, work / "tasks")
        for sigma in args.sigmas:
            noisy = {
                name: sweep.renoise(array, sigma, data.sequence_noise_seed(0, f"real:{name}"))
                for name, array in sequences.items()
            }
            for pipeline in args.pipelines:
                weights = args.weights if pipeline == "default" else None
                start = time.perf_counter()
                descriptors = {
                    name: describe_each(lambda x: nhpatches.describe(x, pipeline=pipeline, weights=weights), array)
                    for name, array in noisy.items()
                }
                speed = sum(a.shape[0] * a.shape[1] for a in noisy.values()) / (time.perf_counter() - start)
                scores = score(descriptors, work / "tasks", work, real.name)
                scores["mean"] = float(np.mean(list(scores.values())))
                denoiser, _, descriptor = labels[pipeline].rpartition("+")
                rows.append({"sigma": sigma, "denoiser": denoiser or "none", "descriptor": descriptor, **scores})
                print(
                    f"{sigma:6g} {labels[pipeline]:<30} "
                    + " ".join(f"{scores[k] * 100:7.1f}" for k in ("verification", "matching", "retrieval", "mean"))
                    + f" {speed:10.0f}",
                    flush=True,
                )
            if sigma == 0 and "sift" in args.pipelines and native is not None:
                # SIFT on the real patches at their own 65 px (the other sequences exist at 32 px only)
                descriptors = {
                    name: describe_each(lambda x: nhpatches.describe(x, pipeline="sift"), array)
                    for name, array in {**noisy, real.name: native}.items()
                }
                scores = score(descriptors, work / "tasks", work, real.name)
                scores["mean"] = float(np.mean(list(scores.values())))
                print(
                    f"{sigma:6g} {'sift, real patches at 65 px':<30} "
                    + " ".join(f"{scores[k] * 100:7.1f}" for k in ("verification", "matching", "retrieval", "mean")),
                    flush=True,
                )
                reference_65 = {"sigma": sigma, "pipeline": "sift, real patches at 65 px", **scores}
    if args.out is not None:
        write_outputs(rows, args.out, counts, reference_65)
    return 0


def write_outputs(rows: list[dict], out: Path, counts: dict, reference_65: dict | None = None) -> None:
    """real_sample_map.csv / .md and fig_real_sample_sigma.png in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from nhpatches.core.cache import atomic_path
    from nhpatches.study import report

    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    with atomic_path(out / "real_sample_map.csv") as tmp:
        frame.to_csv(tmp, index=False)
    percent = frame.assign(**{k: frame[k] * 100 for k in ("verification", "matching", "retrieval", "mean")})
    note = (
        f"\n\nmAP % on the real v_wormhole (HPatches protocol, 32 px, noise σ added to every patch); "
        f"task counts {counts}.\n"
    )
    if reference_65 is not None:
        note += (
            "\nSIFT on the clean real patches at their own 65 px (other sequences at 32 px): verification "
            f"{reference_65['verification'] * 100:.1f}, matching {reference_65['matching'] * 100:.1f}, "
            f"retrieval {reference_65['retrieval'] * 100:.1f}, mean {reference_65['mean'] * 100:.1f}.\n"
        )
    with atomic_path(out / "real_sample_map.md") as tmp:
        tmp.write_text(report.to_markdown(percent, "{:.1f}") + note)
    fig = report.plot_noise_sweep(pd.DataFrame(rows))
    fig.suptitle("real v_wormhole patches (HPatches protocol, 32 px): mAP against added noise σ", fontsize=10, y=1.02)
    fig.savefig(out / "fig_real_sample_sigma.png", dpi=110, bbox_inches="tight")
    print(f"wrote {out / 'real_sample_map.csv'}, {out / 'real_sample_map.md'}, {out / 'fig_real_sample_sigma.png'}")


if __name__ == "__main__":
    sys.exit(main())
