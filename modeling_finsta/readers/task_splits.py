"""Shared pieces of the classification and multiple-choice readers: the split types, the error type,
finding video files by name, and line-numbered reading of CSV / text / JSON annotation files (so a
malformed row is reported as ``file:line``)."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

from .retrieval import VIDEO_EXTENSIONS
from .retrieval import _scene_graph_paths as scene_graph_paths  # per video its scene_graphs/{id}.json or None
from .text_files import read_lines as read_text_lines  # (line number, stripped line) of the non-blank lines
from .text_files import require_file

PathLike = Union[str, "os.PathLike[str]"]


class TaskDatasetError(ValueError):
    """A classification / multiple-choice annotation file is malformed; the message names file and line."""


@dataclass
class ClassificationSplit:
    """One split of an action-recognition dataset.

    Attributes:
        videos: ``(video_id, path)`` per clip (the file found, or the expected path when videos were
            not required to exist).
        labels: class index of every clip (into ``class_names``).
        class_names: the dataset's class names in index order.
        scene_graph_paths: per clip its ``scene_graphs/{video_id}.json`` or None; None altogether
            without a ``scene_graphs/`` folder.
    """

    videos: list[tuple[str, Path]]
    labels: list[int]
    class_names: list[str]
    scene_graph_paths: Optional[list[Optional[Path]]] = None

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.videos):
            raise TaskDatasetError(f"{len(self.labels)} labels for {len(self.videos)} videos")
        bad = [label for label in self.labels if not 0 <= label < len(self.class_names)]
        if bad:
            raise TaskDatasetError(f"labels {bad[:5]} are outside the {len(self.class_names)} classes")

    @property
    def video_ids(self) -> list[str]:
        return [video_id for video_id, _ in self.videos]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class MultipleChoiceSplit:
    """A multiple-choice video QA split: per video, ``K`` candidate answers (or captions) and the right one.

    ``questions[i]`` (optional) is prepended to each candidate when candidates are scored as captions
    (``candidate_texts``); retrieval-style sets such as MSR-VTT-MC have no question.
    """

    videos: list[tuple[str, Path]]
    candidates: list[list[str]]
    answers: list[int]
    questions: Optional[list[Optional[str]]] = None
    scene_graph_paths: Optional[list[Optional[Path]]] = None

    def __post_init__(self) -> None:
        if not len(self.videos) == len(self.candidates) == len(self.answers):
            raise TaskDatasetError(
                f"{len(self.videos)} videos, {len(self.candidates)} candidate lists and {len(self.answers)} answers"
            )
        for index, (options, answer) in enumerate(zip(self.candidates, self.answers)):
            if not 0 <= answer < len(options):
                raise TaskDatasetError(f"item {index}: answer {answer} is not one of its {len(options)} candidates")

    @property
    def video_ids(self) -> list[str]:
        return [video_id for video_id, _ in self.videos]

    def candidate_texts(self, index: int) -> list[str]:
        """The texts scored against video ``index``: ``"question answer"`` or the candidate caption itself."""
        question = None if self.questions is None else self.questions[index]
        options = self.candidates[index]
        return [option if not question else f"{question.strip()} {option.strip()}" for option in options]


def first_existing(candidates: Sequence[Path], purpose: str) -> Path:
    """The first existing file of ``candidates``; ``FileNotFoundError`` listing them all otherwise."""
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{purpose}: none of {[str(c) for c in candidates]} exists")


def read_csv_rows(path: Path, purpose: str, required: Sequence[str], delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV with a header holding ``required`` columns."""
    with open(require_file(path, purpose), encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        missing = [column for column in required if column not in (reader.fieldnames or [])]
        if missing:
            raise TaskDatasetError(f"{path}:1: missing column(s) {missing} in header {reader.fieldnames}")
        for row in reader:
            if None in row or any(row.get(column) is None for column in required):
                raise TaskDatasetError(f"{path}:{reader.line_num}: expected {len(reader.fieldnames)} fields, got {row}")
            yield reader.line_num, row


def read_json_entries(path: Path, purpose: str) -> list[tuple[int, Any]]:
    """The elements of a top-level JSON array with the line each starts on (invalid JSON: ``file:line``)."""
    text = require_file(path, purpose).read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise TaskDatasetError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from error
    if not isinstance(data, list):
        raise TaskDatasetError(f"{path}:1: expected a JSON array of entries, got {type(data).__name__}")
    entries: list[tuple[int, Any]] = []
    position = text.index("[") + 1
    for _ in data:
        while text[position] in " \t\r\n,":
            position += 1
        element, end = decoder.raw_decode(text, position)
        entries.append((text.count("\n", 0, position) + 1, element))
        position = end
    return entries


def read_json_lines(path: Path, purpose: str) -> list[tuple[int, Any]]:
    """``(line number, object)`` of a JSON-lines file."""
    entries = []
    for number, line in read_text_lines(path, purpose):
        try:
            entries.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise TaskDatasetError(f"{path}:{number}: invalid JSON ({error.msg})") from error
    return entries


class VideoIndex:
    """Video files under some folders (recursively), found by file name or by stem."""

    def __init__(self, folders: Sequence[Path]):
        self.folders = [folder for folder in folders if folder.is_dir()]
        self._by_name: dict[str, Path] = {}
        self._by_stem: dict[str, Path] = {}
        for folder in self.folders:
            found = sorted(
                (Path(directory) / name for directory, _, names in os.walk(folder) for name in names),
                key=lambda p: (len(p.relative_to(folder).parts), str(p)),
            )
            for path in found:
                if path.suffix.lower() not in VIDEO_EXTENSIONS:
                    continue
                self._by_name.setdefault(path.name, path)
                self._by_stem.setdefault(path.stem, path)

    def find(self, name: str) -> Optional[Path]:
        """A file named ``name`` (with extension) or whose stem is ``name``."""
        return self._by_name.get(name) or self._by_stem.get(name) or self._by_stem.get(Path(name).stem)


def resolve_videos(
    names: Sequence[str],
    folders: Sequence[Path],
    *,
    dataset: str,
    require_videos: bool,
    default_extension: str = ".mp4",
) -> list[Path]:
    """A path per name: the file found under ``folders``, else (``require_videos=False``) the expected one."""
    index = VideoIndex(folders)
    paths, missing = [], []
    for name in names:
        path = index.find(name)
        if path is None:
            missing.append(name)
            base = index.folders[0] if index.folders else folders[0]
            path = base / (name if Path(name).suffix.lower() in VIDEO_EXTENSIONS else name + default_extension)
        paths.append(path)
    if missing and require_videos:
        raise FileNotFoundError(
            f"{dataset}: {len(missing)} of {len(names)} videos not found under {[str(f) for f in folders]}, e.g. "
            f"{missing[:5]}; pass require_videos=False to list them anyway"
        )
    return paths


__all__ = [
    "ClassificationSplit",
    "MultipleChoiceSplit",
    "TaskDatasetError",
    "VideoIndex",
    "first_existing",
    "read_csv_rows",
    "read_json_entries",
    "read_json_lines",
    "read_text_lines",
    "require_file",
    "resolve_videos",
    "scene_graph_paths",
]
