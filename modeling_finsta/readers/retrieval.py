"""Readers for text-video retrieval datasets (MSR-VTT, MSVD, DiDeMo) in the file formats CLIP4Clip uses.

Each reader returns a :class:`RetrievalSplit`: the split's videos (id and file path), its captions
(text and the index of their video) and, when the dataset folder has a ``scene_graphs/`` folder,
the path of each video's annotated scene graph (``scene_graphs/{video_id}.json``, see
``modeling_finsta.video_scene_graph_io``). Only file names are read here; decoding media is left to the processor.

Layouts (``root`` is the dataset folder):

* MSR-VTT: ``MSRVTT_data.json``, ``MSRVTT_train.9k.csv``, ``MSRVTT_train.7k.csv`` (optional),
  ``MSRVTT_JSFUSION_test.csv``, videos in ``videos/all/``.
* MSVD: ``raw-captions.pkl`` (video id -> list of token lists), ``{train,val,test}_list.txt``,
  videos in ``YouTubeClips/`` (``{id}.avi``).
* DiDeMo: ``{train,val,test}_list.txt`` (video file names), ``{train,val,test}_data.json`` (list of
  ``{"video", "description", "times", ...}``), videos in ``videos/``.

Missing files raise ``FileNotFoundError`` naming the file; malformed content raises
:class:`RetrievalDatasetError` naming the file and field.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from .text_files import DataFileError, check_text, read_csv_rows, read_json, read_lines, require_file

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".3gp", ".flv", ".wmv")
"""Video file extensions looked for, in order of preference when a video exists in several."""

SCENE_GRAPH_FOLDER = "scene_graphs"


RetrievalDatasetError = DataFileError
"""A dataset annotation file is malformed, not UTF-8 or inconsistent; the message names file, line and field."""


@dataclass
class RetrievalSplit:
    """One split of a retrieval dataset.

    Attributes:
        videos: ``(video_id, path)`` per video. ``path`` is the file found on disk, or the expected
            path when videos were not required to exist (``require_videos=False``).
        captions: ``(caption, video_index)``; ``video_index`` indexes ``videos``.
        scene_graph_paths: per video, its ``scene_graphs/{video_id}.json`` or ``None`` where that
            video has none; ``None`` altogether when the dataset has no ``scene_graphs/`` folder.
    """

    videos: list[tuple[str, Path]]
    captions: list[tuple[str, int]]
    scene_graph_paths: Optional[list[Optional[Path]]] = None

    def __post_init__(self) -> None:
        for position, (_, video_index) in enumerate(self.captions):
            if not 0 <= video_index < len(self.videos):
                raise RetrievalDatasetError(
                    f"captions[{position}] points to video {video_index}, but the split has {len(self.videos)} videos"
                )
        if self.scene_graph_paths is not None and len(self.scene_graph_paths) != len(self.videos):
            raise RetrievalDatasetError(
                f"scene_graph_paths has {len(self.scene_graph_paths)} entries for {len(self.videos)} videos"
            )

    @property
    def video_ids(self) -> list[str]:
        return [video_id for video_id, _ in self.videos]

    @property
    def caption_to_video(self) -> list[int]:
        """Video index of every caption, the ``caption_to_video`` argument of ``retrieval_metrics``."""
        return [video_index for _, video_index in self.captions]

    def captions_of(self, video_index: int) -> list[str]:
        return [caption for caption, index in self.captions if index == video_index]


# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------


def _read_id_list(path: Path, purpose: str) -> list[str]:
    """One id per line; blank lines are ignored, duplicates are an error (they would skew recall)."""
    ids = [line for _, line in read_lines(path, purpose)]
    _check_unique(ids, str(path))
    if not ids:
        raise RetrievalDatasetError(f"{path}: no video ids found")
    return ids


def _check_unique(ids: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    for line_number, video_id in enumerate(ids, start=1):
        if video_id in seen:
            raise RetrievalDatasetError(f"{where}: video id {video_id!r} is listed twice (entry {line_number})")
        seen.add(video_id)


class _VideoFolder:
    """Finds video files by id in a folder (recursively), preferring ``VIDEO_EXTENSIONS`` order."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._by_name: dict[str, Path] = {}
        self._by_stem: dict[str, list[Path]] = {}
        if not folder.is_dir():
            return
        found = []
        for directory, _, files in os.walk(folder):
            for file_name in files:
                found.append(Path(directory) / file_name)
        # Shallowest path first, so a copy in a subfolder never shadows the top-level file.
        found.sort(key=lambda p: (len(p.relative_to(folder).parts), str(p)))
        for path in found:
            self._by_name.setdefault(path.name, path)
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                self._by_stem.setdefault(path.stem, []).append(path)

    def find(self, video_id: str) -> Optional[Path]:
        """``video_id`` may be a bare id (``video7``) or a file name (``x.mov``, DiDeMo)."""
        if Path(video_id).suffix.lower() in VIDEO_EXTENSIONS and video_id in self._by_name:
            return self._by_name[video_id]
        for stem in (video_id, Path(video_id).stem):
            candidates = self._by_stem.get(stem)
            if candidates:
                return min(candidates, key=lambda p: VIDEO_EXTENSIONS.index(p.suffix.lower()))
        return None

    def expected_path(self, video_id: str, default_extension: str) -> Path:
        has_extension = Path(video_id).suffix.lower() in VIDEO_EXTENSIONS
        return self.folder / (video_id if has_extension else f"{video_id}{default_extension}")


def _resolve_videos(
    video_ids: Sequence[str],
    videos_dir: Path,
    *,
    require_videos: bool,
    skip_missing_videos: bool,
    dataset: str,
    default_extension: str,
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Map ids to files. Returns the kept ``(id, path)`` pairs and the ids dropped as missing."""
    folder = _VideoFolder(videos_dir)
    kept: list[tuple[str, Path]] = []
    missing: list[str] = []
    for video_id in video_ids:
        path = folder.find(video_id)
        if path is None:
            missing.append(video_id)
            if skip_missing_videos or require_videos:
                continue
            path = folder.expected_path(video_id, default_extension)
        kept.append((video_id, path))
    if missing and skip_missing_videos:
        logger.warning(
            "%s: %d of %d videos not found in %s; skipped", dataset, len(missing), len(video_ids), videos_dir
        )
        return kept, missing
    if missing and require_videos:
        raise FileNotFoundError(
            f"{dataset}: {len(missing)} of {len(video_ids)} videos not found in {videos_dir} "
            f"(looked for {', '.join(VIDEO_EXTENSIONS[:5])}, ...), e.g. {missing[:5]}; "
            "pass require_videos=False to list them anyway or skip_missing_videos=True to drop them"
        )
    return kept, []


def _scene_graph_paths(root: Path, video_ids: Iterable[str]) -> Optional[list[Optional[Path]]]:
    folder = root / SCENE_GRAPH_FOLDER
    if not folder.is_dir():
        return None
    paths: list[Optional[Path]] = []
    for video_id in video_ids:
        candidates = [folder / f"{video_id}.json", folder / f"{Path(video_id).stem}.json"]
        paths.append(next((c for c in candidates if c.is_file()), None))
    return paths


def _build_split(
    root: Path,
    video_ids: Sequence[str],
    captions_by_video: dict[str, list[str]],
    videos_dir: Path,
    *,
    require_videos: bool,
    skip_missing_videos: bool,
    dataset: str,
    default_extension: str = ".mp4",
) -> RetrievalSplit:
    videos, _ = _resolve_videos(
        video_ids,
        videos_dir,
        require_videos=require_videos,
        skip_missing_videos=skip_missing_videos,
        dataset=dataset,
        default_extension=default_extension,
    )
    captions = [
        (caption, video_index)
        for video_index, (video_id, _) in enumerate(videos)
        for caption in captions_by_video[video_id]
    ]
    if not videos:
        raise RetrievalDatasetError(f"{dataset}: no videos left in the split")
    return RetrievalSplit(
        videos=videos, captions=captions, scene_graph_paths=_scene_graph_paths(root, [v for v, _ in videos])
    )


def _clean_caption(caption: Any, where: str) -> str:
    if not isinstance(caption, str) or not caption.strip():
        raise RetrievalDatasetError(f"{where}: expected a non-empty caption string, got {caption!r}")
    return check_text(caption.strip(), where)


# ----------------------------------------------------------------------------------------------
# MSR-VTT
# ----------------------------------------------------------------------------------------------

MSRVTT_SPLIT_FILES = {
    "train": "MSRVTT_train.9k.csv",
    "train-9k": "MSRVTT_train.9k.csv",
    "train-7k": "MSRVTT_train.7k.csv",
    "test": "MSRVTT_JSFUSION_test.csv",
}


def _msrvtt_sentences(data_path: Path) -> dict[str, list[str]]:
    data = read_json(data_path, "MSR-VTT captions")
    if not isinstance(data, dict) or "sentences" not in data:
        raise RetrievalDatasetError(f"{data_path}: missing field 'sentences'")
    sentences: dict[str, list[str]] = {}
    for position, entry in enumerate(data["sentences"]):
        where = f"{data_path}: sentences[{position}]"
        if not isinstance(entry, dict) or "video_id" not in entry or "caption" not in entry:
            raise RetrievalDatasetError(f"{where}: expected an object with 'video_id' and 'caption', got {entry!r}")
        sentences.setdefault(entry["video_id"], []).append(_clean_caption(entry["caption"], f"{where}.caption"))
    return sentences


def read_msrvtt(
    root: PathLike,
    split: str = "test",
    *,
    videos_dir: Optional[PathLike] = None,
    require_videos: bool = True,
    skip_missing_videos: bool = False,
) -> RetrievalSplit:
    """Read an MSR-VTT split.

    Splits:
        ``"test"``: the 1k-A (JSFusion) test set, one caption per video from
            ``MSRVTT_JSFUSION_test.csv`` (the standard MSR-VTT retrieval benchmark).
        ``"train"`` / ``"train-9k"``: videos of ``MSRVTT_train.9k.csv`` with all their sentences
            from ``MSRVTT_data.json`` (20 per video).
        ``"train-7k"``: likewise with ``MSRVTT_train.7k.csv`` (official train + val videos).

    Videos are looked up in ``videos_dir`` (default ``root/videos/all``) as ``{video_id}.mp4`` or
    another extension of ``VIDEO_EXTENSIONS``.
    """
    root = Path(root)
    if split not in MSRVTT_SPLIT_FILES:
        raise ValueError(f"unknown MSR-VTT split {split!r}; expected one of {sorted(MSRVTT_SPLIT_FILES)}")
    videos_dir = Path(videos_dir) if videos_dir is not None else root / "videos" / "all"
    split_path = root / MSRVTT_SPLIT_FILES[split]
    options = dict(require_videos=require_videos, skip_missing_videos=skip_missing_videos, dataset=f"MSR-VTT {split}")

    if split == "test":
        rows = read_csv_rows(split_path, "MSR-VTT 1k-A test split", ("video_id", "sentence"))
        video_ids = [row["video_id"].strip() for _, row in rows]
        _check_unique(video_ids, str(split_path))
        captions_by_video = {
            row["video_id"].strip(): [_clean_caption(row["sentence"], f"{split_path}: line {line} sentence")]
            for line, row in rows
        }
        return _build_split(root, video_ids, captions_by_video, videos_dir, **options)

    rows = read_csv_rows(split_path, f"MSR-VTT {split} split", ("video_id",))
    video_ids = [row["video_id"].strip() for _, row in rows]
    _check_unique(video_ids, str(split_path))
    data_path = root / "MSRVTT_data.json"
    sentences = _msrvtt_sentences(data_path)
    without_captions = [video_id for video_id in video_ids if not sentences.get(video_id)]
    if without_captions:
        raise RetrievalDatasetError(
            f"{data_path}: no sentences for {len(without_captions)} videos of {split_path.name}, "
            f"e.g. {without_captions[:5]}"
        )
    return _build_split(root, video_ids, sentences, videos_dir, **options)


# ----------------------------------------------------------------------------------------------
# MSVD
# ----------------------------------------------------------------------------------------------

LIST_SPLITS = ("train", "val", "test")


def read_msvd(
    root: PathLike,
    split: str = "test",
    *,
    videos_dir: Optional[PathLike] = None,
    require_videos: bool = True,
    skip_missing_videos: bool = False,
) -> RetrievalSplit:
    """Read an MSVD split in CLIP4Clip's format (multi-caption: every caption of every video).

    ``raw-captions.pkl`` maps each video id to its captions as token lists; a caption is its tokens
    joined by spaces. ``{split}_list.txt`` lists the split's video ids. Videos are found in
    ``videos_dir`` (default ``root/YouTubeClips``, searched recursively) as ``{id}.avi`` or any
    other extension of ``VIDEO_EXTENSIONS``.
    """
    root = Path(root)
    if split not in LIST_SPLITS:
        raise ValueError(f"unknown MSVD split {split!r}; expected one of {list(LIST_SPLITS)}")
    videos_dir = Path(videos_dir) if videos_dir is not None else root / "YouTubeClips"
    list_path = root / f"{split}_list.txt"
    video_ids = _read_id_list(list_path, f"MSVD {split} split")
    captions_path = require_file(root / "raw-captions.pkl", "MSVD captions")
    with open(captions_path, "rb") as handle:
        raw_captions = pickle.load(handle)
    if not isinstance(raw_captions, dict):
        raise RetrievalDatasetError(
            f"{captions_path}: expected a dict video_id -> captions, got {type(raw_captions).__name__}"
        )

    captions_by_video: dict[str, list[str]] = {}
    for video_id in video_ids:
        if video_id not in raw_captions:
            raise RetrievalDatasetError(
                f"{captions_path}: no captions for video {video_id!r} listed in {list_path.name}"
            )
        captions = []
        for position, tokens in enumerate(raw_captions[video_id]):
            where = f"{captions_path}: [{video_id!r}][{position}]"
            if isinstance(tokens, str):
                caption = tokens
            elif isinstance(tokens, (list, tuple)) and all(isinstance(t, str) for t in tokens):
                caption = " ".join(tokens)
            else:
                raise RetrievalDatasetError(f"{where}: expected a list of token strings, got {tokens!r}")
            captions.append(_clean_caption(caption, where))
        if not captions:
            raise RetrievalDatasetError(f"{captions_path}: video {video_id!r} has an empty caption list")
        captions_by_video[video_id] = captions
    return _build_split(
        root,
        video_ids,
        captions_by_video,
        videos_dir,
        require_videos=require_videos,
        skip_missing_videos=skip_missing_videos,
        dataset=f"MSVD {split}",
        default_extension=".avi",
    )


# ----------------------------------------------------------------------------------------------
# DiDeMo
# ----------------------------------------------------------------------------------------------


def read_didemo(
    root: PathLike,
    split: str = "test",
    *,
    videos_dir: Optional[PathLike] = None,
    require_videos: bool = True,
    skip_missing_videos: bool = False,
) -> RetrievalSplit:
    """Read a DiDeMo split for paragraph-to-video retrieval, as CLIP4Clip evaluates it.

    Every description of a video in ``{split}_data.json`` is joined, in file order and separated
    by spaces, into one paragraph: one caption per video, matched against the whole video (the
    per-moment ``times`` are not used). Videos listed in ``{split}_list.txt`` without any
    description are left out with a warning (as CLIP4Clip does). Video ids are file names
    (``"…_b3fa86b254.mov"``); a converted copy with another extension is also accepted.
    """
    root = Path(root)
    if split not in LIST_SPLITS:
        raise ValueError(f"unknown DiDeMo split {split!r}; expected one of {list(LIST_SPLITS)}")
    videos_dir = Path(videos_dir) if videos_dir is not None else root / "videos"
    list_path = root / f"{split}_list.txt"
    listed_ids = _read_id_list(list_path, f"DiDeMo {split} split")
    data_path = root / f"{split}_data.json"
    entries = read_json(data_path, f"DiDeMo {split} descriptions")
    if not isinstance(entries, list):
        raise RetrievalDatasetError(
            f"{data_path}: expected a list of moment annotations, got {type(entries).__name__}"
        )

    listed = set(listed_ids)
    descriptions: dict[str, list[str]] = {}
    for position, entry in enumerate(entries):
        where = f"{data_path}: [{position}]"
        if not isinstance(entry, dict):
            raise RetrievalDatasetError(f"{where}: expected an object, got {type(entry).__name__}")
        for field_name in ("video", "description"):
            if field_name not in entry:
                raise RetrievalDatasetError(f"{where}: missing field {field_name!r}")
        if entry["video"] in listed:
            descriptions.setdefault(entry["video"], []).append(
                _clean_caption(entry["description"], f"{where}.description")
            )

    # Order of first description in the data file, as CLIP4Clip builds its caption dict.
    video_ids = list(descriptions)
    undescribed = [video_id for video_id in listed_ids if video_id not in descriptions]
    if undescribed:
        logger.warning(
            "DiDeMo %s: %d listed videos have no description in %s; left out, e.g. %s",
            split,
            len(undescribed),
            data_path.name,
            undescribed[:3],
        )
    if not video_ids:
        raise RetrievalDatasetError(f"{data_path}: no descriptions for any video listed in {list_path.name}")
    paragraphs = {video_id: [" ".join(texts)] for video_id, texts in descriptions.items()}
    return _build_split(
        root,
        video_ids,
        paragraphs,
        videos_dir,
        require_videos=require_videos,
        skip_missing_videos=skip_missing_videos,
        dataset=f"DiDeMo {split}",
    )


RETRIEVAL_DATASET_READERS = {"msrvtt": read_msrvtt, "msvd": read_msvd, "didemo": read_didemo}


def load_retrieval_split(dataset: str, root: PathLike, split: str = "test", **kwargs: Any) -> RetrievalSplit:
    """Dispatch to ``read_msrvtt`` / ``read_msvd`` / ``read_didemo`` by name (``"msr-vtt"`` also works)."""
    name = dataset.lower().replace("-", "").replace("_", "")
    if name not in RETRIEVAL_DATASET_READERS:
        raise ValueError(f"unknown retrieval dataset {dataset!r}; expected one of {sorted(RETRIEVAL_DATASET_READERS)}")
    return RETRIEVAL_DATASET_READERS[name](root, split, **kwargs)
