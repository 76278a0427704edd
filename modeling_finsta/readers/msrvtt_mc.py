"""MSR-VTT multiple choice (JSFusion's MSR-VTT-MC test set): five candidate captions per video, one right.

Read from the dataset folder ``root`` (videos in ``videos/all/`` as MSR-VTT, or ``videos/``), in the
first of these forms found:

* ``msrvtt_mc_test.json``: a JSON array of ``{"video": "video7010.mp4", "caption": [5 captions], "answer": 2}``;
* ``msrvtt_mc_test.jsonl``: one ``{"clip_name": "video7010", "options": [5 captions], "answer": 2}`` per line
  (an optional ``"question"`` is kept);
* ``MSR_MC_test.csv``: tab- or comma-separated ``key, vid_key, [video_id,] a1 ... a5, answer`` (without
  ``video_id``, ``vid_key`` ``msr7960`` names ``video7960``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .task_splits import (
    MultipleChoiceSplit,
    PathLike,
    TaskDatasetError,
    read_csv_rows,
    read_json_entries,
    read_json_lines,
    resolve_videos,
    scene_graph_paths,
)

MSRVTT_MC_FILES = ("msrvtt_mc_test.json", "msrvtt_mc_test.jsonl", "MSR_MC_test.csv")


def _video_of_key(key: str) -> str:
    """JSFusion's ``vid_key`` ``msr7960`` is MSR-VTT's ``video7960`` (for files without a ``video_id`` column)."""
    key = key.strip()
    return f"video{key[3:]}" if key.startswith("msr") and key[3:].isdigit() else key


def _item(path: Path, line: int, video: Any, options: Any, answer: Any, question: Any = None) -> tuple[str, list[str], int, Optional[str]]:
    where = f"{path}:{line}"
    if not isinstance(video, str) or not video.strip():
        raise TaskDatasetError(f"{where}: expected a video id, got {video!r}")
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) and o.strip() for o in options):
        raise TaskDatasetError(f"{where}: expected a list of at least 2 candidate captions, got {options!r}")
    try:
        answer = int(answer)
    except (TypeError, ValueError):
        raise TaskDatasetError(f"{where}: answer must be a candidate index, got {answer!r}") from None
    if not 0 <= answer < len(options):
        raise TaskDatasetError(f"{where}: answer {answer} is not one of the {len(options)} candidates")
    return Path(video.strip()).stem, [o.strip() for o in options], answer, question


def read_msrvtt_mc(root: PathLike, split: str = "test", *, require_videos: bool = True) -> MultipleChoiceSplit:
    """The MSR-VTT-MC test set (``split`` must be ``"test"``: there is no other)."""
    root = Path(root)
    if split != "test":
        raise ValueError(f"MSR-VTT-MC has only a test split, got {split!r}")
    path = next((root / name for name in MSRVTT_MC_FILES if (root / name).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"MSR-VTT-MC: none of {list(MSRVTT_MC_FILES)} in {root}")
    items = []
    if path.suffix == ".json":
        for line, entry in read_json_entries(path, "MSR-VTT-MC"):
            if not isinstance(entry, dict) or not {"video", "caption", "answer"} <= set(entry):
                raise TaskDatasetError(f"{path}:{line}: expected an object with 'video', 'caption' (list) and 'answer'")
            items.append(_item(path, line, entry["video"], entry["caption"], entry["answer"], entry.get("question")))
    elif path.suffix == ".jsonl":
        for line, entry in read_json_lines(path, "MSR-VTT-MC"):
            if not isinstance(entry, dict) or not {"clip_name", "options", "answer"} <= set(entry):
                raise TaskDatasetError(f"{path}:{line}: expected an object with 'clip_name', 'options' (list) and 'answer'")
            items.append(_item(path, line, entry["clip_name"], entry["options"], entry["answer"], entry.get("question")))
    else:
        header = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        delimiter = "\t" if "\t" in header else ","
        columns = ("a1", "a2", "a3", "a4", "a5", "answer")
        for line, row in read_csv_rows(path, "MSR-VTT-MC", columns, delimiter=delimiter):
            video = row.get("video_id") or _video_of_key(row.get("vid_key") or "")
            items.append(_item(path, line, video, [row[f"a{i}"] for i in range(1, 6)], row["answer"]))
    if not items:
        raise TaskDatasetError(f"{path}: no items")
    ids = [video for video, *_ in items]
    paths = resolve_videos(ids, [root / "videos" / "all", root / "videos", root], dataset="MSR-VTT-MC", require_videos=require_videos)
    questions = [question for *_, question in items]
    return MultipleChoiceSplit(
        videos=list(zip(ids, paths)),
        candidates=[options for _, options, _, _ in items],
        answers=[answer for _, _, answer, _ in items],
        questions=questions if any(q for q in questions) else None,
        scene_graph_paths=scene_graph_paths(root, ids),
    )


__all__ = ["MSRVTT_MC_FILES", "read_msrvtt_mc"]
