"""Kinetics (400 / 600 / 700) in its official layout: a ``label,youtube_id,time_start,time_end,split``
CSV per split and trimmed clips named ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4``.

Layout (``root`` is the dataset folder)::

    annotations/{train,validate,test}.csv   (or {split}.csv at the top)
    {split}/[{label}/]{youtube_id}_{start:06d}_{end:06d}.mp4   (or videos/{split}/..., videos/...)
    classes.txt                              (optional: one class name per line, in index order)

Class indices: the lines of ``classes.txt`` when present, else the sorted labels of ``train.csv``
(the usual Kinetics index), else those of the split read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from .task_splits import (
    ClassificationSplit,
    PathLike,
    TaskDatasetError,
    read_csv_rows,
    read_text_lines,
    resolve_videos,
    scene_graph_paths,
)

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
KINETICS_SPLIT_ALIASES = {"val": "validate", "validation": "validate"}
KINETICS_CLASS_FILE = "classes.txt"


def kinetics_clip_name(youtube_id: str, time_start: int, time_end: int) -> str:
    """The official trimmed-clip file stem: ``{youtube_id}_{start:06d}_{end:06d}``."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def _annotation_file(root: Path, split: str) -> Path:
    for candidate in (root / "annotations" / f"{split}.csv", root / f"{split}.csv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Kinetics: no {split}.csv in {root / 'annotations'} or {root}")


def _read_rows(path: Path) -> list[tuple[int, str, str, int, int]]:
    rows = []
    for line, row in read_csv_rows(path, "Kinetics annotations", KINETICS_COLUMNS):
        label, youtube_id = row["label"].strip(), row["youtube_id"].strip()
        if not youtube_id:
            raise TaskDatasetError(f"{path}:{line}: empty youtube_id")
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except ValueError:
            raise TaskDatasetError(
                f"{path}:{line}: time_start / time_end must be seconds, got {row['time_start']!r}, {row['time_end']!r}"
            ) from None
        if end <= start:
            raise TaskDatasetError(f"{path}:{line}: time_end {end} is not after time_start {start}")
        rows.append((line, label, youtube_id, start, end))
    if not rows:
        raise TaskDatasetError(f"{path}: no rows after the header")
    return rows


def kinetics_class_names(root: PathLike, split_rows: Optional[Sequence[str]] = None) -> list[str]:
    """``classes.txt`` in order, else the sorted labels of ``train.csv``, else the sorted ``split_rows`` labels."""
    return _class_names(Path(root), split_rows)


def _class_names(
    root: Path, split_rows: Optional[Sequence[str]], train_labels: Optional[Sequence[str]] = None
) -> list[str]:
    """`kinetics_class_names`; ``train_labels``: the labels of ``train.csv`` when already read (not read again)."""
    class_file = root / KINETICS_CLASS_FILE
    if class_file.is_file():
        names = [line for _, line in read_text_lines(class_file, "Kinetics class list")]
    else:
        try:
            if train_labels is None:
                train_labels = [label for _, label, *_ in _read_rows(_annotation_file(root, "train"))]
            names = sorted({label for label in train_labels if label})
        except FileNotFoundError:
            names = sorted({label for label in split_rows or [] if label})
    if len(set(names)) != len(names):
        raise TaskDatasetError(f"{class_file}: class names repeat")
    return names


def read_kinetics(root: PathLike, split: str = "validate", *, require_videos: bool = True) -> ClassificationSplit:
    """One Kinetics split (``train``, ``validate``/``val``, ``test``) as a `ClassificationSplit`.

    Rows without a label (the original test release) are refused with their line: they cannot be scored.
    """
    root = Path(root)
    split = KINETICS_SPLIT_ALIASES.get(split, split)
    path = _annotation_file(root, split)
    rows = _read_rows(path)
    split_labels = [label for _, label, *_ in rows]
    # train.csv is the file just read when split == "train": its labels are passed, not parsed again
    class_names = _class_names(root, split_labels, split_labels if split == "train" else None)
    index = {name: i for i, name in enumerate(class_names)}
    names, labels = [], []
    seen: dict[str, int] = {}
    for line, label, youtube_id, start, end in rows:
        if not label:
            raise TaskDatasetError(f"{path}:{line}: no label (a test row without ground truth cannot be evaluated)")
        if label not in index:
            raise TaskDatasetError(f"{path}:{line}: label {label!r} is not one of the {len(class_names)} classes")
        name = kinetics_clip_name(youtube_id, start, end)
        if name in seen:
            raise TaskDatasetError(f"{path}:{line}: clip {name} already listed on line {seen[name]}")
        seen[name] = line
        names.append(name)
        labels.append(index[label])
    folders = [root / split, root / "videos" / split, root / "videos", root]
    paths = resolve_videos([n + ".mp4" for n in names], folders, dataset="Kinetics", require_videos=require_videos)
    return ClassificationSplit(list(zip(names, paths)), labels, class_names, scene_graph_paths(root, names))


__all__ = ["KINETICS_CLASS_FILE", "KINETICS_COLUMNS", "kinetics_class_names", "kinetics_clip_name", "read_kinetics"]
