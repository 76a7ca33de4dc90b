"""Entry point for multi-process training: `torchrun --nproc_per_node N -m pipeline.training.launch ...`.

The same arguments as the train stage; `--set key=value` overrides one train param (YAML value), e.g.
`--set architecture=FCN8s --set epochs=2`. Runs `pipeline.stages.train.run` in every process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import yaml

from pipeline.errors import PipelineError, TrainingError
from pipeline.params import TrainParams, load_section, read_params


def override(params: TrainParams, assignments: list[str]) -> TrainParams:
    """Apply `key=value` strings (values parsed as YAML) through the params loader's checks."""
    values = dataclasses.asdict(params)
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise TrainingError(f"--set takes key=value, got {item!r}")
        values[key] = yaml.safe_load(text)
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    return load_section("train", raw={"train": values})


def main(argv: list[str] | None = None) -> int:
    from pipeline.stages import train

    parser = argparse.ArgumentParser(prog="python -m pipeline.training.launch", description=__doc__)
    for name in ("raw", "annotations", "labels", "splits", "models", "live"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--resume", action="store_true", help="continue from <models>/last.pt")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        values = read_params(args.params)
        params = override(load_section("train", args.params, values), args.set)
        summary = train.run(args.raw, args.annotations, args.labels, args.splits, args.models, args.live,
                            load_section("base", args.params, values), params, resume=args.resume)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
