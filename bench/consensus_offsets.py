"""Extra consensus methods on the crowd matrix of bench/consensus.py, against the default ds.

    .venv/bin/python bench/consensus_offsets.py --data camvid --seeds 0 --sizes 3 5
        [--methods offsets rarity misses both flat] [--dead-zone 0.5] [--images 12] [--json out.json]

Same cells, crowds, scoring and floors as bench/consensus.py (>= argmax + 0.01 and >= best
single, cells with >= 3 annotators). Methods, each with its models over the cell's images:
    ds        dawid_skene, the default
    offsets   ds on maps with each annotator's estimated boundary offset per class pair undone
              (pipeline.dataset.boundary_offsets; 2 rounds, leave-one-out reference)
    misses    ds with a's labels dropped inside objects of b that a misses, for pairs where a
              misses b's objects often and not the other way (pipeline.dataset.object_misses)
    rarity    ds on maps with one signed boundary offset per annotator undone (rarer classes
              grown or shrunk over commoner ones; pipeline.dataset.boundary_offsets, --dead-zone)
    both      misses, then rarity: pipeline.dataset.crowd_corrections
    flat      ds voting with a flat class prior (the estimation unchanged)
CPU ms: merge call per image, thread time, median; fit: estimation per image, thread time.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.consensus import DEFAULT_DATA, MARGIN, argmax_majority, score  # noqa: E402
from bench.crowd_matrix import PROFILES, camvid, draw_crowd, simulate_cell, thin  # noqa: E402
from pipeline.dataset import boundary_offsets as bo  # noqa: E402
from pipeline.dataset import object_misses as om  # noqa: E402
from pipeline.dataset.crowd_corrections import estimate_corrected  # noqa: E402
from pipeline.dataset.dawid_skene import dawid_skene_vote, estimate_models  # noqa: E402


def fitted(method, tasks, c, args):
    t0 = time.thread_time()
    if method == "ds":
        m = estimate_models(tasks, c, (), iterations=10)
        merge = lambda t: dawid_skene_vote(t, m)[0]  # noqa: E731
    elif method == "flat":
        m = replace(estimate_models(tasks, c, (), iterations=10), class_counts=np.ones(c))
        merge = lambda t: dawid_skene_vote(t, m)[0]  # noqa: E731
    elif method == "offsets":
        m, off = bo.estimate_with_offsets(tasks, c, rounds=args.rounds, prior=args.prior)
        merge = lambda t: bo.offset_vote(t, m, off, c)[0]  # noqa: E731
    elif method == "rarity":
        m, off = bo.estimate_with_rarity_offsets(tasks, c, rounds=args.rounds, dead_zone=args.dead_zone)
        merge = lambda t: bo.rarity_vote(t, m, off, c)[0]  # noqa: E731
    elif method == "misses":
        m, mm = om.estimate_with_misses(tasks, c)
        merge = lambda t: om.miss_vote(t, m, mm, c)[0]  # noqa: E731
    elif method == "both":
        corrected = estimate_corrected(tasks, c, rounds=args.rounds, dead_zone=args.dead_zone)
        merge = lambda t: corrected.vote(t)[0]  # noqa: E731
    return merge, (time.thread_time() - t0) / len(tasks)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--camvid", type=Path, default=DEFAULT_DATA)
    p.add_argument("--data", nargs="+", default=["camvid", "thin"], choices=["camvid", "thin"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[3, 5])
    p.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    p.add_argument("--images", type=int, default=12)
    p.add_argument("--methods", nargs="+", default=["both"], choices=["offsets", "rarity", "misses", "flat", "both"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--prior", type=float, default=300.0, help="offsets: boundary px of zero offset added")
    p.add_argument("--dead-zone", type=float, default=0.5, help="rarity: |r| below 0.5 + this is no correction")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    methods = ["ds", *args.methods]
    results = []
    for seed in args.seeds:
        for name in args.data:
            data = camvid(args.camvid, args.images, seed) if name == "camvid" else thin(args.images, seed)
            c = len(data.classes)
            for size in args.sizes:
                for featured in args.profiles:
                    crowd = draw_crowd(seed, data.name, size, featured)
                    cell = 1000 * size + PROFILES.index(featured)
                    tasks, truths = simulate_cell(data, crowd, seed, cell), data.truths
                    singles = {q.name: score(truths, tasks, lambda t, x=q.name: t[x], c)["miou"] for q in crowd}
                    argmax = score(truths, tasks, lambda t, c=c: argmax_majority(t, c), c)["miou"]
                    floor = max(argmax + MARGIN, max(singles.values()))
                    row = {
                        "data": name,
                        "seed": seed,
                        "size": size,
                        "featured": featured,
                        "argmax": argmax,
                        "best_single": max(singles.values()),
                        "floor": floor,
                        "methods": {},
                    }
                    for method in methods:
                        merge, fit = fitted(method, tasks, c, args)
                        s = score(truths, tasks, merge, c)
                        row["methods"][method] = {
                            "miou": s["miou"],
                            "cpu_ms": s["cpu_ms"],
                            "fit_ms": 1000 * fit,
                            "wins": size < 3 or s["miou"] >= floor,
                        }
                    results.append(row)
                    text = " ".join(
                        f"{k} {v['miou']:.3f}{'*' if v['wins'] else ' '} ({v['cpu_ms']:.1f}/{v['fit_ms']:.0f} ms)"
                        for k, v in row["methods"].items()
                    )
                    print(
                        f"{name} s{seed} n{size} {featured:8s} best {row['best_single']:.3f} argmax {argmax:.3f} "
                        f"floor {floor:.3f} | {text}",
                        flush=True,
                    )
    judged = [r for r in results if r["size"] >= 3]
    for method in methods:
        wins = sum(r["methods"][method]["wins"] for r in judged)
        delta = [r["methods"][method]["miou"] - r["methods"]["ds"]["miou"] for r in judged]
        cpu = max(r["methods"][method]["cpu_ms"] for r in judged)
        print(
            f"{method}: both floors {wins}/{len(judged)}; vs ds mean {np.mean(delta):+.3f} worst {min(delta):+.3f} "
            f"best {max(delta):+.3f}; slowest cell {cpu:.1f} ms CPU per image"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
