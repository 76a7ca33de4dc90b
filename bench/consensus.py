"""Consensus methods on a matrix of simulated crowds, scored against the ground truth.

    .venv/bin/python bench/consensus.py [--seeds 0 1234] [--images 12] [--sizes 2 3 5]
        [--data camvid thin] [--staple-images 2] [--mirrored-only] [--json out.json]

Cells: (data set, crowd size, featured error profile) x seed; crowds as in bench/crowd_matrix.py.
Data: CamVid label maps (11 classes, from ../shared/datasets/camvid; skipped if absent) and
generated 480x360 vessel maps (3 classes, every object a few px wide). For every cell:

    best single   the best annotator of the crowd, scored like a consensus
    argmax        plain per-pixel majority, ties to the lowest class id (what most tools do)
    majority      the project's merge.method majority (ties undecided, 255)
    vote          merge.method vote: Dawid-Skene by classification EM, models over the cell's images
    ds plain      merge.method dawid_skene, one confusion per annotator, nothing undone
                  (corrections: [], boundary_zones: [])
    ds banded     ds plain with edge_bands [2, 4]: confusion per band of each annotator's own edges
    ds zones      ds plain with boundary_zones [2, 4]: confusion and prior per zone of distance
                  from the nearest edge anyone drew
    ds corrected  ds plain on maps with missed objects and boundary offsets undone first
    labels only   corrections, then models per boundary zone; offsets against the consensus only
    default       merge's defaults (MergeParams()) with the images at hand: labels only, but each
                  annotator's boundary offset measured against the images' edges
    staple        SimpleITK MultiLabelSTAPLE, on the first --staple-images images only

Mirrored worlds: a crowd of one expert, one swapper and spammers gives the same maps whether the
expert or the swapper drew the truth (crowd_matrix.mirrored_truths: the truth with the swapper's
swaps). For such cells the default is also scored against the mirrored truth. The images are the
same in both worlds too, so only a method that recognises the classes by their appearance could
meet the floors in both; one that mixes the two readings meets them in neither. --mirrored-only
runs just those cells. More generally, the summary tags identity ties (crowd_matrix.identity_tie:
one swapper and one other annotator who is not a spammer), where nobody breaks a tie between two
readings of an object's class.

--trios replaces the matrix by crowds of three the way labelling leads describe theirs: a careful
annotator (1-2 px), one who paints every region 1-3 px too large, and a misser or a swapper.

mIoU over the classes present, every undecided (255) pixel a miss; void truth ignored.
Times per 480x360 image, merge call only, single-threaded (OpenCV one thread, numba and numpy
single-threaded): wall ms (median) and CPU ms (thread time, robust to other load on the
machine); the project-wide estimation is reported apart, per image. Floors checked for the
default in every cell with >= 3 annotators: >= argmax + 0.01 mIoU and >= best single.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.crowd_matrix import (  # noqa: E402
    PROFILES,
    TRIO_THIRDS,
    camvid,
    draw_crowd,
    draw_trio,
    identity_tie,
    mirrorable,
    mirrored_truths,
    simulate_cell,
    thin,
)
from pipeline.core.params import MergeParams  # noqa: E402
from pipeline.dataset.consensus import estimate_annotator_models, majority_vote, staple, weighted_vote  # noqa: E402
from pipeline.dataset.crowd_corrections import estimate_corrected  # noqa: E402
from pipeline.dataset.edge_offsets import image_edges  # noqa: E402
from pipeline.dataset.metrics import confusion_matrix  # noqa: E402
from pipeline.demo.crowd import class_pairs, simulate_annotator  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid"
DEFAULTS = MergeParams()
# Dawid-Skene variants, each estimate_corrected options; "default" is what merge does by default.
VARIANTS = {
    "ds_plain": {"corrections": ()},
    "ds_banded": {"corrections": (), "thresholds": (2, 4)},
    "ds_zones": {"corrections": (), "thresholds": (2, 4), "zones": True},
    "ds_corrected": {},
    "labels_only": {
        "corrections": DEFAULTS.corrections,
        "thresholds": DEFAULTS.bands[0],
        "zones": DEFAULTS.bands[1],
    },
}
VARIANTS["default"] = {**VARIANTS["labels_only"], "with_images": True}


def default_models(tasks, num_classes: int, images=None, **options):
    """The models merge estimates with its default params, over ``tasks`` ({annotator: (H, W) uint8});
    with ``images`` ((H, W, 3) uint8 RGB, one per task) boundary offsets are measured against their edges."""
    return corrected_models(tasks, num_classes, images, **VARIANTS["default"], **options)


def corrected_models(tasks, num_classes: int, images=None, *, with_images: bool = False, **options):
    """estimate_corrected over ``tasks``; the images' edge maps are computed as the estimation asks."""
    if not (with_images and images):
        return estimate_corrected(tasks, num_classes, **options)
    return estimate_corrected(
        range(len(tasks)),
        num_classes,
        load=tasks.__getitem__,
        edges=lambda i: image_edges(images[i]),
        **options,
    )


# The fixed five-annotator crowd of bench/camvid.py (training on crowd labels).
CROWD = ("good", "dilated", "misser", "confuser", "spammer")
MARGIN, TARGET_MS = 0.01, 20.0


def simulate_crowd(truths, names, seed: int, jitter: float) -> list[dict[str, np.ndarray]]:
    """bench/camvid.py's crowd: CROWD on every image, seeded per image."""
    from bench.crowd_matrix import CAMVID_BACKGROUND, CAMVID_PAIRS

    pairs, background = class_pairs(CAMVID_PAIRS, names), [names.index(n) for n in CAMVID_BACKGROUND]
    return [
        {
            p: simulate_annotator(
                t, p, np.random.default_rng([seed, i]), len(names), pairs=pairs, background=background, jitter=jitter
            )
            for p in CROWD
        }
        for i, t in enumerate(truths)
    ]


def argmax_majority(task: dict[str, np.ndarray], num_classes: int) -> np.ndarray:
    """Plain per-pixel vote, ties to the lowest class id; 255 where nobody labelled."""
    votes = np.zeros((num_classes, *next(iter(task.values())).shape), np.uint8)
    for label_map in task.values():
        for k in range(num_classes):
            votes[k] += label_map == k
    out = np.argmax(votes, axis=0).astype(np.uint8)
    out[votes.max(axis=0) == 0] = 255
    return out


def score(truths, tasks, merge, num_classes: int) -> dict:
    """mIoU (undecided a miss), undecided share, wall and CPU ms per image of ``merge``."""
    cm = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    wall, cpu = [], []
    for truth, task in zip(truths, tasks):
        w0, c0 = time.perf_counter(), time.thread_time()
        merged = merge(task)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
        cm += confusion_matrix(truth, np.where(merged >= num_classes, num_classes, merged), num_classes + 1)
    tp = np.diag(cm)[:num_classes]
    union = cm[:num_classes].sum(axis=1) + cm[:, :num_classes].sum(axis=0) - tp
    return {
        "images": len(wall),
        "miou": float(np.mean(tp[union > 0] / union[union > 0])),
        "undecided": float(cm[:num_classes, num_classes].sum() / max(cm[:num_classes].sum(), 1)),
        "ms": 1000 * float(np.median(wall)),
        "cpu_ms": 1000 * float(np.median(cpu)),
    }


def timed(estimate):
    w0, c0 = time.perf_counter(), time.thread_time()
    models = estimate()
    return models, {"wall_s": time.perf_counter() - w0, "cpu_s": time.thread_time() - c0}


def run_cell(data, size: int, featured: str, seed: int, staple_images: int) -> dict:
    """One cell of the matrix: ``featured`` a profile, or "trio-<third>" (crowd_matrix.draw_trio)."""
    if featured.startswith("trio-"):
        third = featured.removeprefix("trio-")
        crowd, cell = draw_trio(seed, data.name, third), 9000 + TRIO_THIRDS.index(third)
    else:
        crowd, cell = draw_crowd(seed, data.name, size, featured), 1000 * size + PROFILES.index(featured)
    tasks, truths, c = simulate_cell(data, crowd, seed, cell), data.truths, len(data.classes)
    singles, argmax = baselines(truths, tasks, c)
    rows = {"argmax": argmax, "majority": score(truths, tasks, lambda t: majority_vote(t, c), c)}
    vote_models, vote_fit = timed(lambda: estimate_annotator_models(tasks, c, iterations=5))
    rows["vote"] = {**score(truths, tasks, lambda t: weighted_vote(t, vote_models), c), "fit": vote_fit}
    merges = {}
    for key, options in VARIANTS.items():
        models, fit = timed(lambda o=options: corrected_models(tasks, c, data.images, iterations=10, **o))
        merges[key] = lambda t, m=models: m.vote(t)[0]
        rows[key] = {**score(truths, tasks, merges[key], c), "fit": fit}
    if staple_images:
        rows["staple"] = score(truths[:staple_images], tasks[:staple_images], lambda t: staple(t, c), c)
    best, floor = max(singles.values()), floor_of(singles, argmax["miou"])
    mirror = mirrored_truths(data, crowd, seed, cell)
    return {
        "mirror": None if mirror is None else mirror_scores(mirror, tasks, merges["default"], c),
        "data": data.name,
        "size": size,
        "featured": featured,
        "seed": seed,
        "crowd": {p.name: p.options for p in crowd},
        "singles": singles,
        "best_single": best,
        "methods": rows,
        "floor": floor,
        "wins": size < 3 or rows["default"]["miou"] >= floor,
    }


def baselines(truths, tasks, num_classes: int) -> tuple[dict[str, float], dict]:
    """{annotator: mIoU of their maps alone} and plain argmax's score, against ``truths``."""
    singles = {a: score(truths, tasks, lambda t, a=a: t[a], num_classes)["miou"] for a in tasks[0]}
    return singles, score(truths, tasks, lambda t: argmax_majority(t, num_classes), num_classes)


def floor_of(singles: dict[str, float], argmax_miou: float) -> float:
    """What the default must reach: argmax + MARGIN and the best single annotator."""
    return max(argmax_miou + MARGIN, max(singles.values()))


def mirror_scores(mirror, tasks, merge_default, num_classes: int) -> dict:
    """The cell scored against its mirrored world's truths (crowd_matrix.mirrored_truths): the same
    maps, the same default consensus, the other annotator the expert."""
    singles, argmax = baselines(mirror, tasks, num_classes)
    default = score(mirror, tasks, merge_default, num_classes)["miou"]
    floor = floor_of(singles, argmax["miou"])
    return {
        "best_single": max(singles.values()),
        "argmax": argmax["miou"],
        "default": default,
        "floor": floor,
        "wins": default >= floor,
    }


COLUMNS = ("vote", "ds_plain", "ds_banded", "ds_zones", "ds_corrected", "labels_only")


def print_cell(r: dict) -> None:
    m = r["methods"]
    staple_text = f" {m['staple']['miou']:.3f}" if "staple" in m else "     -"
    flag = "" if r["size"] < 3 else ("  ok" if r["wins"] else "  BELOW")
    default = m["default"]
    others = " | ".join(f"{m[key]['miou']:.3f}" for key in COLUMNS)
    fit_ms = 1000 * default["fit"]["cpu_s"] / max(default["images"], 1)
    print(
        f"| {r['data']:<6} | {r['seed']:>5} | {r['size']} | {r['featured']:<7} | {r['best_single']:.3f} | "
        f"{m['argmax']['miou']:.3f} | {m['majority']['miou']:.3f} ({100 * m['majority']['undecided']:.1f}%) | "
        f"{others} | {staple_text} | **{default['miou']:.3f}** | "
        f"{default['miou'] - m['argmax']['miou']:+.3f} | {default['miou'] - r['best_single']:+.3f} | "
        f"{default['ms']:.1f} / {default['cpu_ms']:.1f} | {fit_ms:.0f} |{flag} |",
        flush=True,
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", type=Path, default=DEFAULT_DATA, help="CamVid folder (classes.json, *annot/)")
    parser.add_argument("--data", nargs="+", default=["camvid", "thin"], choices=["camvid", "thin"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--images", type=int, default=12, help="images per data set (every cell uses them all)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[2, 3, 5])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    parser.add_argument("--staple-images", type=int, default=2, help="STAPLE (about 0.3-1 s an image) on N images")
    parser.add_argument(
        "--trios",
        action="store_true",
        help="instead of the matrix: crowds of a careful annotator, a dilator and a misser or a swapper",
    )
    parser.add_argument(
        "--mirrored-only",
        action="store_true",
        help="only the cells whose crowd has a mirrored world (one expert, one swapper, spammers)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every cell's figures here")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="print the tables of saved runs (--json files) instead of running",
    )
    return parser.parse_args(argv)


HEADER = (
    "| data | seed | n | featured | best single | argmax | majority (undecided) | vote | ds plain | ds banded "
    "| ds zones | ds corrected | labels only | staple | **default** | default - argmax | default - best "
    "| default ms wall / CPU | estimation CPU ms | floors |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json:
        results = [r for path in args.from_json for r in json.loads(path.read_text())]
        print(HEADER)
        for r in results:
            print_cell(r)
        summarize(results)
        return 0
    cv2.setNumThreads(1)
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    results = []
    print(HEADER)
    for seed in args.seeds:
        for name in args.data:
            data = camvid(args.camvid, args.images, seed) if name == "camvid" else thin(args.images, seed)
            if data is None:
                print(f"skipped camvid: no dataset at {args.camvid} (expected classes.json, trainannot/, valannot/)")
                continue
            cells = [(size, featured) for size in args.sizes for featured in args.profiles]
            if args.trios:
                cells = [(3, f"trio-{third}") for third in TRIO_THIRDS]
            if args.mirrored_only:
                cells = [
                    (n, p) for n, p in cells if n >= 3 and mirrorable([a.profile for a in draw_crowd(seed, name, n, p)])
                ]
            for size, featured in cells:
                results.append(run_cell(data, size, featured, seed, args.staple_images))
                print_cell(results[-1])
    summarize(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True))
    return 0


def summarize(results: list[dict]) -> None:
    judged = [r for r in results if r["size"] >= 3]
    print(
        "\n| data | seed | n | method | mean mIoU - argmax | worst | mean mIoU - best single | worst "
        "| >= argmax + 0.01 | >= best single | both floors |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    groups = sorted({(r["data"], r["seed"], r["size"]) for r in results})
    for data, seed, size in groups:
        cells = [r for r in results if (r["data"], r["seed"], r["size"]) == (data, seed, size)]
        for key in ("majority", *COLUMNS, "default"):
            over = [r["methods"][key]["miou"] - r["methods"]["argmax"]["miou"] for r in cells]
            best = [r["methods"][key]["miou"] - r["best_single"] for r in cells]
            both = sum(o >= MARGIN and b >= 0 for o, b in zip(over, best))
            print(
                f"| {data} | {seed} | {size} | {key} | {np.mean(over):+.3f} | {min(over):+.3f} | {np.mean(best):+.3f} "
                f"| {min(best):+.3f} | {sum(o >= MARGIN for o in over)}/{len(cells)} | "
                f"{sum(b >= 0 for b in best)}/{len(cells)} | {both}/{len(cells)} |"
            )
    print("\n| method | both floors, cells with >= 3 annotators | slowest cell, CPU ms per image (merge call) |")
    print("|---|---|---|")
    for key in ("majority", *COLUMNS, "default"):
        wins = sum(r["methods"][key]["miou"] >= r["floor"] for r in judged)
        cpu = max((r["methods"][key]["cpu_ms"] for r in judged), default=0.0)
        print(f"| {key} | {wins}/{len(judged)} | {cpu:.1f} |")
    fits = [1000 * r["methods"]["default"]["fit"]["cpu_s"] / r["methods"]["default"]["images"] for r in results]
    merge_ms = max(r["methods"]["default"]["cpu_ms"] for r in results)
    print(
        f"\ndefault at or above both floors in {sum(r['wins'] for r in judged)} of {len(judged)} cells with >= 3 "
        f"annotators; merge call at most {merge_ms:.1f} ms CPU per image (target {TARGET_MS:.0f} ms), "
        f"estimation at most {max(fits):.0f} ms CPU per image"
    )
    mirrored = [r for r in judged if r.get("mirror")]
    if mirrored:
        print(
            "\nMirrored worlds (crowds of one expert, one swapper and spammers: the same maps and images "
            "whichever of the two drew the truth; crowd_matrix.mirrored_truths)\n\n"
            "| data | seed | n | featured | default | floor | mirrored: default | floor | floors met |\n"
            "|---|---|---|---|---|---|---|---|---|"
        )
        for r in mirrored:
            m = r["mirror"]
            met = " and ".join(w for w, ok in (("this world", r["wins"]), ("mirrored", m["wins"])) if ok) or "neither"
            print(
                f"| {r['data']} | {r['seed']} | {r['size']} | {r['featured']} | {r['methods']['default']['miou']:.3f} "
                f"| {r['floor']:.3f} | {m['default']:.3f} | {m['floor']:.3f} | {met} |"
            )
    below = [r for r in judged if not r["wins"]]
    for r in below:
        tie = " (identity tie)" if identity_tie(profiles_of(r)) else ""
        print(
            f"  below{tie}: {r['data']} seed {r['seed']} n={r['size']} {r['featured']}: default "
            f"{r['methods']['default']['miou']:.3f} < floor {r['floor']:.3f}; crowd {r['crowd']}"
        )
    ties = [r for r in judged if identity_tie(profiles_of(r))]
    if ties:
        tied_below = [r for r in ties if not r["wins"]]
        print(
            f"\nidentity ties (one swapper and one other annotator who is not a spammer: "
            f"crowd_matrix.identity_tie): {len(ties)} of {len(judged)} cells, {len(tied_below)} of them below "
            f"the floors ({sum(mirrorable(profiles_of(r)) for r in tied_below)} mirrored); "
            f"{len(below) - len(tied_below)} other cells below the floors"
        )


def profiles_of(result: dict) -> list[str]:
    """The bench profiles of a cell's crowd, from its annotators' names ("a1-swapper")."""
    return [name.split("-", 1)[1] for name in result["crowd"]]


if __name__ == "__main__":
    sys.exit(main())
