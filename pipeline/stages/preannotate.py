"""preannotate: the best model's masks go back into Label Studio as predictions to correct.

The work is `pipeline.review.publish.preannotate`, shared with `promote` (which pushes on
purpose, where this stage holds back under `dvc exp run` or `preannotate.push: false`).
"""

from pipeline.review.publish import preannotate as run

__all__ = ["run"]
