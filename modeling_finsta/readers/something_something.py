"""Something-Something v2 in its official layout: a labels JSON (template -> class id) and one JSON
array per split of ``{"id", "label", "template", "placeholders"}`` entries.

Layout (``root`` is the dataset folder; the annotation files may also sit in ``root/labels/``)::

    something-something-v2-labels.json       {"Approaching something with your camera": "0", ...}
    something-something-v2-{train,validation,test}.json
    20bn-something-something-v2/{id}.webm    (or videos/{id}.webm)

A clip's class is its ``template`` with the brackets removed ("Putting [something] on a surface" ->
"Putting something on a surface"), looked up in the labels file, as the official evaluation does.
"""

from __future__ import annotations

from pathlib import Path

from .task_splits import (
    ClassificationSplit,
    PathLike,
    TaskDatasetError,
    first_existing,
    read_json_entries,
    resolve_videos,
    scene_graph_paths,
)

SSV2_LABELS_FILE = "something-something-v2-labels.json"
SSV2_SPLIT_ALIASES = {"val": "validation", "validate": "validation"}


def ssv2_class_name(template: str) -> str:
    """The class of a template: brackets removed, as in the labels file."""
    return template.replace("[", "").replace("]", "")


def read_something_something_v2(root: PathLike, split: str = "validation", *, require_videos: bool = True) -> ClassificationSplit:
    """One SSv2 split (``train``, ``validation``/``val``; the test split has no templates and is refused)."""
    import json

    root = Path(root)
    split = SSV2_SPLIT_ALIASES.get(split, split)
    labels_path = first_existing([root / SSV2_LABELS_FILE, root / "labels" / "labels.json", root / "labels" / SSV2_LABELS_FILE], "SSv2 labels")
    try:
        labels = json.loads(labels_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TaskDatasetError(f"{labels_path}:{error.lineno}: invalid JSON ({error.msg})") from error
    if not isinstance(labels, dict):
        raise TaskDatasetError(f"{labels_path}:1: expected an object mapping class names to ids")
    try:
        by_id = sorted((int(value), name) for name, value in labels.items())
    except (TypeError, ValueError) as error:
        raise TaskDatasetError(f"{labels_path}: class ids must be integers ({error})") from error
    if [i for i, _ in by_id] != list(range(len(by_id))):
        raise TaskDatasetError(f"{labels_path}: class ids must be 0..{len(by_id) - 1} without gaps")
    class_names = [name for _, name in by_id]
    index = {name: i for i, name in enumerate(class_names)}

    split_name = f"something-something-v2-{split}.json"
    split_path = first_existing([root / split_name, root / "labels" / split_name, root / "labels" / f"{split}.json"], f"SSv2 {split} split")
    ids, targets = [], []
    for line, entry in read_json_entries(split_path, f"SSv2 {split} split"):
        if not isinstance(entry, dict) or "id" not in entry:
            raise TaskDatasetError(f"{split_path}:{line}: expected an object with an 'id'")
        if "template" not in entry:
            raise TaskDatasetError(
                f"{split_path}:{line}: entry {entry['id']} has no 'template' (the test split has no labels to evaluate)"
            )
        name = ssv2_class_name(str(entry["template"]))
        if name not in index:
            raise TaskDatasetError(f"{split_path}:{line}: template class {name!r} is not in {labels_path.name}")
        ids.append(str(entry["id"]))
        targets.append(index[name])
    if not ids:
        raise TaskDatasetError(f"{split_path}: no entries")
    folders = [root / "20bn-something-something-v2", root / "videos", root]
    paths = resolve_videos(ids, folders, dataset="SSv2", require_videos=require_videos, default_extension=".webm")
    return ClassificationSplit(list(zip(ids, paths)), targets, class_names, scene_graph_paths(root, ids))


__all__ = ["SSV2_LABELS_FILE", "read_something_something_v2", "ssv2_class_name"]
