"""Merge several annotators' label maps of one image into one consensus map.

Shapes legend:
    H, W   label map height and width
    C      number of classes; labels 0..C-1, 255 = unlabeled / undecided
    P      H * W pixels

Inputs are (H, W) uint8 label maps of the same image, one per annotator;
a value outside [0, C) (255 in practice) means "not labelled by this
annotator" and adds nothing to any class. Outputs are (H, W) uint8 with 255
where no class wins.

Tie-break rule (every method): a pixel whose best score is shared by two or
more classes (within ``tie_tol``), or that nobody labelled, is undecided and
gets 255. No class order is preferred, so the result does not depend on
class ids or on the order of the annotators.

Methods:
    majority_vote   one vote per annotator and pixel
    weighted_vote   the project method ("vote"): a Dawid-Skene posterior with
                    annotator models estimated over the whole project by
                    ``estimate_annotator_models``
    staple          SimpleITK MultiLabelSTAPLE, estimated per image
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError
from pipeline.dataset.cooccurrence import LabelTuples, label_tuples, paint, pixel_keys
from pipeline.dataset.decision import decide
from pipeline.dataset.metrics import iou_per_class

TIE_TOL = 1e-4  # nats; scores closer than this are tied
BLOCK_ROWS = 1 << 16  # label combinations per step of an estimation pass: bounds its temporaries

Maps = Sequence[np.ndarray] | Mapping[str, np.ndarray]
Tasks = Callable[[], Iterable[Mapping[str, np.ndarray]]] | Sequence[Mapping[str, np.ndarray]]


class ConsensusError(PipelineError):
    """Label maps or annotator models that cannot be merged."""


@dataclass(frozen=True)
class AnnotatorModels:
    """Per-annotator confusion against the consensus, estimated over a project.

    confusion[a]: (C, C) int64 pixel counts, row = consensus class, column =
    the label annotator ``a`` gave. class_counts: (C,) consensus pixels per
    class (the class prior). Probabilities add ``smoothing`` to every count
    (a Dirichlet prior), so an unseen pair is unlikely, never impossible.
    """

    num_classes: int
    confusion: Mapping[str, np.ndarray]
    class_counts: np.ndarray
    smoothing: float = 1.0
    passes: int = 0
    converged: bool = False
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def log_confusion(self, annotator: str) -> np.ndarray:
        """(C, C) log P(annotator labels l | true class k); unknown ids get ``neutral_log_confusion``."""
        if annotator not in self._tables:  # cached: every image's vote asks for it again
            if annotator not in self.confusion:
                self._tables[annotator] = self.neutral_log_confusion()
            else:
                counts = np.asarray(self.confusion[annotator], dtype=np.float64) + self.smoothing
                with np.errstate(divide="ignore", invalid="ignore"):  # smoothing 0: unseen pairs are -inf
                    self._tables[annotator] = np.log(counts / counts.sum(axis=1, keepdims=True))
        return self._tables[annotator]

    def neutral_log_confusion(self) -> np.ndarray:
        """Symmetric model of a typical annotator: right with the pooled accuracy p, else uniform."""
        c = self.num_classes
        total = sum(cm.sum() for cm in self.confusion.values())
        right = sum(np.trace(cm) for cm in self.confusion.values())
        p = (right + self.smoothing) / (total + 2 * self.smoothing) if c > 1 else 1.0
        p = min(max(p, 1e-6), 1 - 1e-6)
        table = np.full((c, c), np.log((1 - p) / max(c - 1, 1)))
        np.fill_diagonal(table, np.log(p))
        return table

    def log_prior(self) -> np.ndarray:
        """(C,) log class frequencies of the consensus."""
        counts = np.asarray(self.class_counts, dtype=np.float64) + self.smoothing
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(counts / counts.sum())

    def to_dict(self) -> dict:
        """JSON-able form; ``from_dict`` restores it."""
        return {
            "num_classes": self.num_classes,
            "smoothing": self.smoothing,
            "passes": self.passes,
            "converged": self.converged,
            "class_counts": np.asarray(self.class_counts).astype(int).tolist(),
            "confusion": {a: np.asarray(cm).astype(int).tolist() for a, cm in sorted(self.confusion.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> AnnotatorModels:
        """Inverse of ``to_dict``; raises ConsensusError on missing keys or inconsistent shapes."""
        try:
            models = cls(
                num_classes=int(data["num_classes"]),
                confusion={str(a): np.asarray(cm, dtype=np.int64) for a, cm in data["confusion"].items()},
                class_counts=np.asarray(data["class_counts"], dtype=np.int64),
                smoothing=float(data.get("smoothing", 1.0)),
                passes=int(data.get("passes", 0)),
                converged=bool(data.get("converged", False)),
            )
            shapes = {np.shape(cm) for cm in models.confusion.values()} | {np.shape(models.class_counts) * 2}
            if shapes - {(models.num_classes, models.num_classes)}:
                raise ValueError(f"shapes {sorted(shapes)} for num_classes={models.num_classes}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConsensusError(f"not an AnnotatorModels dict ({exc!r}); expected the keys of to_dict()") from exc
        return models


def majority_vote(maps: Maps, num_classes: int | None = None) -> np.ndarray:
    """Plain per-pixel vote: (H, W) uint8 maps -> (H, W) uint8.

    num_classes defaults to the largest label below 255, plus one. Ties and
    pixels nobody labelled give 255; a single map is returned as a copy.
    """
    arrays = _check_maps(list(maps.values()) if isinstance(maps, Mapping) else list(maps))
    if len(arrays) == 1:
        return arrays[0].copy()
    if num_classes is None:
        num_classes = 1 + max(int(m[m != IGNORE_INDEX].max(initial=0)) for m in arrays)
    tuples, pixels = pixel_keys({f"{i:04d}": m for i, m in enumerate(arrays)}, num_classes)
    return paint(vote_tuples(tuples, None), pixels, arrays[0].shape)


def weighted_vote(maps: Mapping[str, np.ndarray], models: AnnotatorModels, tie_tol: float = TIE_TOL) -> np.ndarray:
    """The project's consensus: Dawid-Skene posterior per pixel, argmax.

    maps: {annotator id: (H, W) uint8}. Returns (H, W) uint8. For pixel x the
    score of class k is log prior(k) + sum over annotators a who labelled x of
    log P(a says maps[a][x] | k), from ``models`` (annotators not in the
    models get the neutral model). Best score wins; ties (within ``tie_tol``
    nats) and pixels nobody labelled give 255. One annotator: a copy.

    Why a full confusion matrix per annotator rather than one weight per
    annotator or per class: crowd errors are systematic and class-specific.
    A confuser's "Road" becomes evidence shared between Road and Pavement
    instead of a wrong vote, while their Sky keeps full weight; a misser's
    "Building" over a missed car is weak evidence against Car; a spammer's
    near-uniform rows give log-ratios near zero, so spam drops out without a
    threshold. A weight can only scale a vote, never redirect it.

    The score depends only on the combination of labels a pixel received, so
    it is computed once per distinct combination (pipeline.dataset.cooccurrence) and
    painted back by table lookup.
    """
    if not isinstance(maps, Mapping):
        raise ConsensusError(f"weighted_vote needs {{annotator id: label map}}, got {type(maps).__name__}")
    arrays = _check_maps([maps[a] for a in sorted(maps)])
    if len(arrays) == 1:
        return arrays[0].copy()
    tuples, pixels = pixel_keys(dict(maps), models.num_classes)
    return paint(vote_tuples(tuples, models, tie_tol), pixels, arrays[0].shape)


def vote_tuples(
    tuples: LabelTuples, models: AnnotatorModels | None, tie_tol: float = TIE_TOL, undecided: str = "ignore"
) -> np.ndarray:
    """Consensus label (K,) uint8 of each label combination; None models = plain majority.

    Combinations nobody labelled give 255; ties (within ``tie_tol``) too, unless ``undecided``
    is "resolve" (then the lowest tied class id wins; pipeline.dataset.decision).
    """
    scores = vote_scores(tuples, models)
    if undecided == "ignore":
        return _decide(scores, tuples.codes, models, tie_tol)
    labelled = (tuples.codes < tuples.num_classes).any(axis=1)
    return decide(scores, labelled, undecided, tie_tol)


def vote_scores(tuples: LabelTuples, models: AnnotatorModels | None) -> np.ndarray:
    """(K, C) scores of each combination: votes (None models) or log prior + log likelihood."""
    c = tuples.num_classes
    scores = np.zeros((len(tuples.counts), c))
    for column, annotator in enumerate(tuples.annotators):
        scores += _evidence(models, annotator, c)[tuples.codes[:, column]]
    if models is not None:
        scores += models.log_prior()[None, :]
    return scores


def _evidence(models: AnnotatorModels | None, annotator: str, num_classes: int) -> np.ndarray:
    """(C + 1, C) score each label an annotator gives (last row: unlabelled) adds to each class."""
    table = np.eye(num_classes) if models is None else models.log_confusion(annotator).T
    return np.vstack([table, np.zeros((1, num_classes))])


def _decide(scores: np.ndarray, codes: np.ndarray, models: AnnotatorModels | None, tie_tol: float) -> np.ndarray:
    """Best class (K,) uint8 of scores (K, C) (prior included); 255 for ties and rows of codes (K, A) all unlabelled."""
    best = scores.max(axis=1, keepdims=True)
    hits = scores >= best - tie_tol
    labels = np.argmax(hits, axis=1).astype(np.uint8)
    labelled = (codes < scores.shape[1]).any(axis=1)
    labels[(hits.sum(axis=1) != 1) | ~labelled] = IGNORE_INDEX
    return labels


def estimate_annotator_models(
    tasks: Tasks, num_classes: int, *, iterations: int = 10, smoothing: float = 1.0, tol: float = 1e-3
) -> AnnotatorModels:
    """Estimate every annotator's confusion against the consensus, project-wide.

    tasks: an iterable (or a zero-argument callable returning one) of either
    {annotator id: (H, W) uint8 map} per image or that image's LabelTuples.
    Each image is read once and reduced to its label combinations; the
    passes then run on those small tables in memory. Images with fewer than
    two annotators are skipped: they say nothing about reliability.

    Pass 0 counts, per annotator, (consensus class, given label) pixel pairs
    against the majority vote; each later pass recomputes the consensus with
    the previous pass's models (classification EM of Dawid-Skene). Stops
    after ``iterations`` re-estimations or when no row-normalised confusion
    entry moved by more than ``tol``.
    """
    if not 1 <= num_classes < IGNORE_INDEX or iterations < 0 or smoothing < 0:
        raise ConsensusError(
            f"need 1 <= num_classes <= 254, iterations >= 0, smoothing >= 0; got "
            f"{num_classes}, {iterations}, {smoothing}"
        )
    tables = (
        t if isinstance(t, LabelTuples) else label_tuples(dict(t), num_classes)
        for t in (tasks() if callable(tasks) else tasks)
    )
    project = _Project.of([t for t in tables if len(t.annotators) >= 2], num_classes)
    models = None
    for done in range(iterations + 1):
        new = _count_pass(project, num_classes, models, smoothing, done + 1)
        if models is not None and _max_change(models, new) <= tol:
            return replace(new, converged=True)
        models = new
    return models


@dataclass(frozen=True)
class _Project:
    """Every image's label combinations in one table, so that a pass is a few array operations.

    codes (N, A) uint8, C where unlabelled or past the image's annotators; who (N, A) int32 index
    into ``annotators`` (len(annotators) past the image's annotators); counts (N,) pixels.
    A = the most annotators any image has.
    """

    annotators: tuple[str, ...]
    codes: np.ndarray
    who: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, tables: list[LabelTuples], num_classes: int) -> _Project:
        annotators = tuple(sorted({a for t in tables for a in t.annotators}))
        position = {a: i for i, a in enumerate(annotators)}
        rows, width = sum(len(t.counts) for t in tables), max((len(t.annotators) for t in tables), default=0)
        codes = np.full((rows, width), num_classes, np.uint8)
        who = np.full((rows, width), len(annotators), np.int32)
        counts = np.zeros(rows, np.int64)
        start = 0
        for t in tables:
            stop = start + len(t.counts)
            codes[start:stop, : len(t.annotators)] = t.codes
            who[start:stop, : len(t.annotators)] = [position[a] for a in t.annotators]
            counts[start:stop] = t.counts
            start = stop
        return cls(annotators, codes, who, counts)


def _count_pass(project: _Project, num_classes: int, models, smoothing, passes) -> AnnotatorModels:
    """Consensus of every combination under ``models``, then each annotator's counts against it."""
    c, n = num_classes, len(project.annotators)
    evidence = np.stack([_evidence(models, a, c) for a in project.annotators] + [np.zeros((c + 1, c))])
    class_counts, confusion = np.zeros(c), np.zeros(n * c * c)
    for start in range(0, len(project.counts), BLOCK_ROWS):
        block = slice(start, start + BLOCK_ROWS)
        codes, who, counts = project.codes[block], project.who[block].astype(np.int64), project.counts[block]
        scores = np.zeros((len(counts), c))
        for column in range(codes.shape[1]):  # the order of vote_tuples: identical sums, identical votes
            scores += evidence[who[:, column], codes[:, column]]
        if models is not None:
            scores += models.log_prior()[None, :]
        consensus = _decide(scores, codes, models, TIE_TOL).astype(np.int64)
        decided = consensus < c
        class_counts += np.bincount(consensus[decided], weights=counts[decided], minlength=c)
        for column in range(codes.shape[1]):
            given = codes[:, column].astype(np.int64)
            keep = decided & (given < c) & (who[:, column] < n)
            cells = (who[keep, column] * c + consensus[keep]) * c + given[keep]
            confusion += np.bincount(cells, weights=counts[keep], minlength=n * c * c)
    confusion = confusion.astype(np.int64).reshape(n, c, c)
    return AnnotatorModels(
        num_classes,
        {a: confusion[i] for i, a in enumerate(project.annotators)},
        class_counts.astype(np.int64),
        smoothing,
        passes,
    )


def _max_change(old: AnnotatorModels, new: AnnotatorModels) -> float:
    if set(old.confusion) != set(new.confusion):
        return float("inf")
    return max(
        (float(np.abs(np.exp(old.log_confusion(a)) - np.exp(new.log_confusion(a))).max()) for a in new.confusion),
        default=0.0,
    )


def staple(maps: Maps, num_classes: int, max_iterations: int = 100) -> np.ndarray:
    """SimpleITK MultiLabelSTAPLE of one image: (H, W) uint8 maps -> (H, W) uint8.

    The filter knows no "unlabeled": a 255 in a uint8 input is a label like
    any other (labels 0..255 fill the whole type, and with undecided label
    255 the filter never returns, as seen with SimpleITK 2.5.7). So 255 and
    any label >= C are mapped to the extra label C before the call, the
    undecided label is 255, and pixels whose STAPLE label is C become 255.
    STAPLE's own rule for undecided pixels (no single most probable label)
    gives 255 as well. A single map is returned as a copy.
    """
    import SimpleITK as sitk

    arrays = _check_maps(list(maps.values()) if isinstance(maps, Mapping) else list(maps))
    if not 1 <= num_classes < IGNORE_INDEX:
        raise ConsensusError(f"num_classes must lie in [1, 254], got {num_classes}")
    if len(arrays) == 1:
        return arrays[0].copy()
    remap = np.full(256, num_classes, dtype=np.uint8)
    remap[:num_classes] = np.arange(num_classes, dtype=np.uint8)
    flt = sitk.MultiLabelSTAPLEImageFilter()
    flt.SetLabelForUndecidedPixels(IGNORE_INDEX)
    flt.SetMaximumNumberOfIterations(max_iterations)
    out = sitk.GetArrayFromImage(flt.Execute([sitk.GetImageFromArray(remap[m]) for m in arrays]))
    out[out >= num_classes] = IGNORE_INDEX
    return out.astype(np.uint8)


def annotator_quality(cm: np.ndarray, class_names: Sequence[str] | None = None, top_k: int = 3) -> dict:
    """Plain-dict quality of one annotator from cm (C, C): rows consensus, columns their labels.

    Keys: pixels, pixel_accuracy, mean_iou, iou and sensitivity (per class
    name; None where undefined), top_confusions (the ``top_k`` largest
    off-diagonal cells: consensus class, labelled as, pixels, share of that
    consensus class).
    """
    cm = np.asarray(cm, dtype=np.int64)
    names = list(class_names) if class_names is not None else [str(i) for i in range(cm.shape[0])]
    if cm.ndim != 2 or cm.shape != (len(names), len(names)):
        raise ConsensusError(f"expected a ({len(names)}, {len(names)}) confusion matrix, got {cm.shape}")
    rows = cm.sum(axis=1)
    iou = iou_per_class(cm)
    sens = np.where(rows > 0, np.diag(cm) / np.maximum(rows, 1), np.nan)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top_k]
    confusions = [
        {"consensus": names[t], "labelled": names[p], "pixels": int(off[t, p]), "share": float(off[t, p] / rows[t])}
        for t, p in (np.unravel_index(i, off.shape) for i in order)
        if off[t, p] > 0
    ]
    total = int(cm.sum())
    return {
        "pixels": total,
        "pixel_accuracy": float(np.trace(cm) / total) if total else None,
        "mean_iou": _num(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        "iou": {n: _num(v) for n, v in zip(names, iou)},
        "sensitivity": {n: _num(v) for n, v in zip(names, sens)},
        "top_confusions": confusions,
    }


def quality_report(models: AnnotatorModels, class_names: Sequence[str] | None = None, top_k: int = 3) -> dict:
    """``annotator_quality`` of every annotator in ``models`` (project-wide), keyed by annotator id."""
    return {a: annotator_quality(cm, class_names, top_k) for a, cm in sorted(models.confusion.items())}


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _check_maps(arrays: list) -> list[np.ndarray]:
    if not arrays:
        raise ConsensusError("no label maps to merge; expected at least one (H, W) uint8 map")
    arrays = [np.asarray(m) for m in arrays]
    shape = arrays[0].shape
    for m in arrays:
        if m.ndim != 2 or m.dtype != np.uint8 or m.shape != shape:
            raise ConsensusError(
                f"label maps must all be (H, W) uint8 of one shape; got {[(str(a.dtype), a.shape) for a in arrays]}"
            )
    return arrays
