"""Readers for generative video-language benchmarks in their official file layouts.

* MSRVTT-QA / MSVD-QA (Xu et al. 2017): ``{train,val,test}_qa.json``, a list of
  ``{"video": ..., "question": ..., "answer": ..., "id": ...}`` records (``answer`` a string; some
  re-releases carry a list of acceptable answers, all are kept). ``video`` is a video id ("video7010";
  MSVD's YouTube ids) or, in the original release, the integer index (``"video_id": 7010`` for
  MSR-VTT, ``vid{N}`` for MSVD via ``youtube_mapping.txt``). Videos: MSR-VTT ``videos/all/``, MSVD
  ``YouTubeClips/``.
* MSR-VTT captioning: ``MSRVTT_data.json`` (``videos`` with ``video_id`` / ``split``, ``sentences``
  with ``video_id`` / ``caption``); ``split`` is ``train``, ``validate`` or ``test`` (the 2,990 test videos).
* MSR-VTT-MC (Yu et al. 2018): ``MSR_MC_test.csv`` with columns ``key`` (or ``video``), ``vid_key``,
  ``a1`` .. ``a5`` and ``answer`` (the 0-based index of the true caption).

Missing files raise ``FileNotFoundError`` naming the file; malformed records raise
`VideoQADatasetError` naming the file, record and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from .retrieval import VIDEO_EXTENSIONS
from .text_files import read_text

QA_SPLITS = ("train", "val", "test")
VIDEO_FOLDERS = {"msrvtt": ("videos/all", "videos", "TrainValVideo", "TestVideo"), "msvd": ("YouTubeClips", "videos")}


class VideoQADatasetError(ValueError):
    """A dataset annotation file is malformed; the message names the file, the record and the field."""


@dataclass
class VideoQuestionRecord:
    video_id: str
    question: str
    answers: list[str]  # the first is the reference answer
    question_id: Optional[str] = None
    category: Optional[str] = None  # e.g. "what", "who" (the question's first word)

    @property
    def answer(self) -> str:
        return self.answers[0]


@dataclass
class CaptionRecord:
    video_id: str
    captions: list[str]


def _read_json(path: Path, purpose: str) -> Any:
    try:
        return json.loads(read_text(path, purpose))
    except json.JSONDecodeError as error:
        raise VideoQADatasetError(f"{path}: not valid JSON ({error})") from error


def find_video(root: Union[str, Path], dataset: str, video_id: str) -> Path:
    """The video file of ``video_id`` under the dataset's usual folders (the expected path when absent)."""
    root = Path(root)
    folders = VIDEO_FOLDERS.get(dataset, ("videos",))
    for folder in folders:
        for extension in VIDEO_EXTENSIONS:
            candidate = root / folder / f"{video_id}{extension}"
            if candidate.is_file():
                return candidate
    return root / folders[0] / f"{video_id}.mp4"


def read_video_qa(root: Union[str, Path], dataset: str = "msrvtt", split: str = "test") -> list[VideoQuestionRecord]:
    """MSRVTT-QA or MSVD-QA records of ``split`` from ``{split}_qa.json``."""
    if split not in QA_SPLITS:
        raise ValueError(f"split must be one of {QA_SPLITS}, got {split!r}")
    path = Path(root) / f"{split}_qa.json"
    data = _read_json(path, f"{dataset.upper()}-QA {split} annotations")
    if not isinstance(data, list):
        raise VideoQADatasetError(f"{path}: expected a list of question records, got {type(data).__name__}")
    records = []
    for number, record in enumerate(data):
        where = f"{path}: record {number}"
        if not isinstance(record, dict):
            raise VideoQADatasetError(f"{where}: expected an object, got {type(record).__name__}")
        video = record.get("video", record.get("video_id"))
        if video is None:
            raise VideoQADatasetError(f"{where}: missing field 'video' (or 'video_id')")
        if isinstance(video, int) or (isinstance(video, str) and video.isdigit()):
            video = f"video{int(video)}" if dataset == "msrvtt" else f"vid{int(video)}"
        for field in ("question", "answer"):
            if field not in record:
                raise VideoQADatasetError(f"{where}: missing field {field!r}")
        answers = record["answer"] if isinstance(record["answer"], list) else [record["answer"]]
        if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise VideoQADatasetError(f"{where}: field 'answer' must be a non-empty string or list of strings")
        question = record["question"]
        if not isinstance(question, str) or not question.strip():
            raise VideoQADatasetError(f"{where}: field 'question' must be a non-empty string")
        first = question.strip().split()[0].lower()
        records.append(
            VideoQuestionRecord(str(video), question.strip(), [a.strip() for a in answers], str(record.get("id", number)), first)
        )
    return records


def read_msrvtt_captions(root: Union[str, Path], split: str = "test") -> list[CaptionRecord]:
    """MSR-VTT captioning references of ``split`` (``train``, ``validate``/``val`` or ``test``) from ``MSRVTT_data.json``."""
    path = Path(root) / "MSRVTT_data.json"
    data = _read_json(path, "MSR-VTT annotations")
    split = "validate" if split == "val" else split
    for field in ("videos", "sentences"):
        if not isinstance(data, dict) or not isinstance(data.get(field), list):
            raise VideoQADatasetError(f"{path}: missing list field {field!r}")
    captions: dict[str, list[str]] = {}
    for number, sentence in enumerate(data["sentences"]):
        if not isinstance(sentence, dict) or "video_id" not in sentence or not isinstance(sentence.get("caption"), str):
            raise VideoQADatasetError(f"{path}: sentences[{number}] needs 'video_id' and a string 'caption'")
        captions.setdefault(sentence["video_id"], []).append(sentence["caption"].strip())
    records = []
    for number, video in enumerate(data["videos"]):
        if not isinstance(video, dict) or "video_id" not in video:
            raise VideoQADatasetError(f"{path}: videos[{number}] needs 'video_id'")
        if video.get("split") != split:
            continue
        if video["video_id"] not in captions:
            raise VideoQADatasetError(f"{path}: video {video['video_id']!r} has no sentence")
        records.append(CaptionRecord(video["video_id"], captions[video["video_id"]]))
    return records


__all__ = [
    "CaptionRecord",
    "QA_SPLITS",
    "VideoQADatasetError",
    "VideoQuestionRecord",
    "find_video",
    "read_msrvtt_captions",
    "read_video_qa",
]
