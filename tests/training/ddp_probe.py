"""Run under torchrun by test_ddp: `pipeline train`, recording which ranks save checkpoints.

Each rank appends the checkpoint paths it saves to $PROBE_DIR/saves_rank<RANK>.txt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.__main__ import app
from pipeline.stages import train


def main() -> int:
    record = Path(os.environ["PROBE_DIR"]) / f"saves_rank{os.environ['RANK']}.txt"
    record.touch()
    save = train.save_checkpoint

    def recording_save(path, *args, **kwargs):
        with open(record, "a") as handle:
            handle.write(f"{path}\n")
        return save(path, *args, **kwargs)

    train.save_checkpoint = recording_save
    app(["train", *sys.argv[1:]], standalone_mode=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
