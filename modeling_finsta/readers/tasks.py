"""Dispatch by dataset name: ``load_classification_split`` and ``load_multiple_choice_split``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .kinetics import read_kinetics
from .msrvtt_mc import read_msrvtt_mc
from .something_something import read_something_something_v2
from .task_splits import ClassificationSplit, MultipleChoiceSplit, PathLike
from .ucf_hmdb import read_hmdb51, read_ucf101

CLASSIFICATION_DATASET_READERS: dict[str, Callable[..., ClassificationSplit]] = {
    "kinetics": read_kinetics,
    "kinetics400": read_kinetics,
    "ssv2": read_something_something_v2,
    "ucf101": read_ucf101,
    "hmdb51": read_hmdb51,
}
MULTIPLE_CHOICE_DATASET_READERS: dict[str, Callable[..., MultipleChoiceSplit]] = {"msrvtt-mc": read_msrvtt_mc}


def load_classification_split(dataset: str, root: PathLike, split: str = "test", **kwargs: Any) -> ClassificationSplit:
    """``CLASSIFICATION_DATASET_READERS[dataset](root, split, **kwargs)`` with a clear error for unknown names."""
    if dataset not in CLASSIFICATION_DATASET_READERS:
        raise ValueError(f"unknown classification dataset {dataset!r}; known: {sorted(CLASSIFICATION_DATASET_READERS)}")
    return CLASSIFICATION_DATASET_READERS[dataset](Path(root), split, **kwargs)


def load_multiple_choice_split(dataset: str, root: PathLike, split: str = "test", **kwargs: Any) -> MultipleChoiceSplit:
    """``MULTIPLE_CHOICE_DATASET_READERS[dataset](root, split, **kwargs)`` with a clear error for unknown names."""
    if dataset not in MULTIPLE_CHOICE_DATASET_READERS:
        raise ValueError(f"unknown multiple-choice dataset {dataset!r}; known: {sorted(MULTIPLE_CHOICE_DATASET_READERS)}")
    return MULTIPLE_CHOICE_DATASET_READERS[dataset](Path(root), split, **kwargs)


__all__ = [
    "CLASSIFICATION_DATASET_READERS",
    "MULTIPLE_CHOICE_DATASET_READERS",
    "load_classification_split",
    "load_multiple_choice_split",
]
