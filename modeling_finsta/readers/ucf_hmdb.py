"""UCF-101 and HMDB-51 from their official split files.

UCF-101 (``root``; split files in ``root/ucfTrainTestlist/`` or ``root``)::

    classInd.txt                    "1 ApplyEyeMakeup" per line (1-based ids)
    trainlist0{1,2,3}.txt           "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    testlist0{1,2,3}.txt            "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi" (class from the folder)
    UCF-101/{Class}/{video}.avi     (or videos/...)

HMDB-51 (split files in ``root/testTrainMulti_7030_splits/`` or ``root``)::

    {class}_test_split{1,2,3}.txt   "{video}.avi {0|1|2}" per line: 1 = train, 2 = test, 0 = unused
    hmdb51/{class}/{video}.avi      (or videos/...)
"""

from __future__ import annotations

import re
from pathlib import Path

from .task_splits import (
    ClassificationSplit,
    PathLike,
    TaskDatasetError,
    first_existing,
    read_text_lines,
    resolve_videos,
    scene_graph_paths,
)

HMDB_SPLIT_CODES = {"train": "1", "test": "2"}


def _split_folder(root: Path, name: str, pattern: str) -> Path:
    for folder in (root / name, root):
        if folder.is_dir() and any(folder.glob(pattern)):
            return folder
    raise FileNotFoundError(f"no split files {pattern!r} in {root / name} or {root}")


def read_ucf101(root: PathLike, split: str = "test", fold: int = 1, *, require_videos: bool = True) -> ClassificationSplit:
    """UCF-101 ``train`` / ``test`` list of split ``fold`` (1-3)."""
    root = Path(root)
    if split not in ("train", "test") or fold not in (1, 2, 3):
        raise ValueError(f"UCF-101: split must be 'train' or 'test' and fold 1, 2 or 3, got {split!r}, {fold!r}")
    folder = _split_folder(root, "ucfTrainTestlist", "classInd.txt")
    class_file = folder / "classInd.txt"
    class_names: list[str] = []
    for line, text in read_text_lines(class_file, "UCF-101 class list"):
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(class_names) + 1:
            raise TaskDatasetError(f"{class_file}:{line}: expected '{len(class_names) + 1} ClassName', got {text!r}")
        class_names.append(parts[1])
    index = {name: i for i, name in enumerate(class_names)}
    list_file = first_existing([folder / f"{split}list0{fold}.txt"], f"UCF-101 {split} list {fold}")
    names, labels = [], []
    for line, text in read_text_lines(list_file, f"UCF-101 {split} list"):
        parts = text.split()
        if not 1 <= len(parts) <= 2 or "/" not in parts[0]:
            raise TaskDatasetError(f"{list_file}:{line}: expected 'Class/video.avi [class id]', got {text!r}")
        class_name = parts[0].split("/")[0]
        if class_name not in index:
            raise TaskDatasetError(f"{list_file}:{line}: class {class_name!r} is not in {class_file.name}")
        if len(parts) == 2 and parts[1] != str(index[class_name] + 1):
            raise TaskDatasetError(f"{list_file}:{line}: class id {parts[1]} disagrees with folder {class_name!r}")
        names.append(parts[0])
        labels.append(index[class_name])
    ids = [Path(name).stem for name in names]
    paths = resolve_videos([Path(n).name for n in names], [root / "UCF-101", root / "videos", root], dataset="UCF-101",
                           require_videos=require_videos, default_extension=".avi")  # fmt: skip
    return ClassificationSplit(list(zip(ids, paths)), labels, class_names, scene_graph_paths(root, ids))


def read_hmdb51(root: PathLike, split: str = "test", fold: int = 1, *, require_videos: bool = True) -> ClassificationSplit:
    """HMDB-51 ``train`` / ``test`` videos of split ``fold`` (1-3); classes sorted by name."""
    root = Path(root)
    if split not in HMDB_SPLIT_CODES or fold not in (1, 2, 3):
        raise ValueError(f"HMDB-51: split must be 'train' or 'test' and fold 1, 2 or 3, got {split!r}, {fold!r}")
    folder = _split_folder(root, "testTrainMulti_7030_splits", f"*_test_split{fold}.txt")
    files = sorted(folder.glob(f"*_test_split{fold}.txt"))
    pattern = re.compile(rf"^(.+)_test_split{fold}\.txt$")
    class_names = sorted(pattern.match(path.name).group(1) for path in files)
    names, labels = [], []
    for path in files:
        class_name = pattern.match(path.name).group(1)
        for line, text in read_text_lines(path, "HMDB-51 split"):
            parts = text.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise TaskDatasetError(f"{path}:{line}: expected 'video.avi 0|1|2', got {text!r}")
            if parts[1] == HMDB_SPLIT_CODES[split]:
                names.append((class_name, parts[0]))
                labels.append(class_names.index(class_name))
    if not names:
        raise TaskDatasetError(f"{folder}: no {split} videos in split {fold}")
    ids = [Path(video).stem for _, video in names]
    paths = resolve_videos([video for _, video in names], [root / "hmdb51", root / "videos", root], dataset="HMDB-51",
                           require_videos=require_videos, default_extension=".avi")  # fmt: skip
    return ClassificationSplit(list(zip(ids, paths)), labels, class_names, scene_graph_paths(root, ids))


__all__ = ["read_hmdb51", "read_ucf101"]
