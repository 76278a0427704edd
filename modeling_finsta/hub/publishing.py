"""Upload a converted or trained Finsta folder through an ``HfApi``-like object.

Publishing choice: **every weights repo carries its own code.** ``save_pretrained`` copies
``modeling_finsta.py`` and its sibling modules next to the weights and writes a local ``auto_map``,
so one commit of the repo pins weights, config and code together: users pin
``AutoModel.from_pretrained(repo, trust_remote_code=True, revision="<commit sha>")`` and get exactly
the code they reviewed. Pointing at one code repo (``auto_map: "org/code--modeling_finsta.FinstaModel"``)
would need a second pin (``code_revision=``) and lets the code move under fixed weights; it is still
available through ``publish_folder(..., code_repo="org/code")`` for organisations that want it.
The command line (``finsta-push``) is ``hub/cli.py``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, Union

from .progress import log
from .provenance import converter_version


class PublishError(ValueError):
    """A folder cannot be published as it is (missing or unsafe files, inconsistent options)."""


PUBLISHED_PATTERNS = (
    "*.safetensors",
    "model.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "*.py",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "README.md",
    "LICENSE",
)
"""Top-level files a published Finsta repo may contain; anything else is left out (and reported)."""

REFUSED_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt")
"""Pickle files are never uploaded: published weights are safetensors only."""


def files_to_publish(folder: Union[str, os.PathLike], *, code_repo: Optional[str] = None) -> tuple[list[str], list[str]]:
    """``(uploaded, skipped)`` top-level file names of ``folder``.

    Requires ``config.json``, safetensors weights and ``README.md``; with the code carried in the repo
    (the default) every module named in ``auto_map`` must be present; with ``code_repo`` the ``.py``
    files are skipped. Pickles are refused; sub-folders (e.g. ``checkpoint-*``) and other files are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"not a folder: {folder}")
    names = sorted(path.name for path in folder.iterdir() if path.is_file())
    pickles = [name for name in names if any(fnmatch.fnmatch(name, pattern) for pattern in REFUSED_PATTERNS)]
    if pickles:
        raise PublishError(
            f"{folder}: refusing to publish pickle file(s) {pickles}; convert them to safetensors "
            "(save_pretrained) or move them out of the folder"
        )
    missing = [name for name in ("config.json", "README.md") if name not in names]
    if not any(name.endswith(".safetensors") for name in names):
        missing.append("model.safetensors")
    if missing:
        raise PublishError(f"{folder}: missing {missing}; publish a folder written by a finsta converter or save_pretrained")
    uploaded = [name for name in names if any(fnmatch.fnmatch(name, pattern) for pattern in PUBLISHED_PATTERNS)]
    if code_repo is not None:
        uploaded = [name for name in uploaded if not name.endswith(".py")]
    else:
        for name in [name for name in uploaded if name.endswith(".json")]:
            needed = {f"{module}.py" for module in _auto_map_modules(folder / name)}
            absent = sorted(needed - set(names))
            if absent:
                raise PublishError(
                    f"{folder}: {name} auto_map names {absent}, which are not in the folder; re-save with "
                    "save_pretrained (it copies the code) or publish with code_repo="
                )
    skipped = [name for name in names if name not in uploaded]
    return uploaded, skipped


def _auto_map_modules(config_path: Path) -> set[str]:
    try:
        content = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PublishError(f"{config_path}: not valid JSON ({error})") from error
    auto_map = content.get("auto_map", {}) if isinstance(content, dict) else {}
    references = list(auto_map.values())
    if isinstance(content, dict):  # custom pipelines (the zero-shot task) name their code as auto_map does
        references += [task.get("impl") for task in (content.get("custom_pipelines") or {}).values() if isinstance(task, dict)]
    modules = set()
    for reference in references:
        for value in reference if isinstance(reference, (list, tuple)) else [reference]:
            if value and "--" not in value:
                modules.add(value.rsplit(".", 1)[0])
    return modules


def point_auto_map_at_code_repo(config: dict[str, Any], code_repo: str) -> dict[str, Any]:
    """Rewrite local ``auto_map`` entries (``"module.Class"``) and ``custom_pipelines`` implementations to
    ``"code_repo--module.Class"``."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", code_repo):
        raise PublishError(f"code_repo: expected 'org/name', got {code_repo!r}")

    def point(value):
        if isinstance(value, (list, tuple)):
            return [point(item) for item in value]
        return value if value is None or "--" in value else f"{code_repo}--{value}"

    config = dict(config)
    if "auto_map" in config:
        config["auto_map"] = {key: point(value) for key, value in config["auto_map"].items()}
    if config.get("custom_pipelines"):
        config["custom_pipelines"] = {
            task: {**info, "impl": point(info["impl"])} if isinstance(info, dict) and "impl" in info else info
            for task, info in config["custom_pipelines"].items()
        }
    return config


def publish_folder(
    folder: Union[str, os.PathLike],
    repo_id: str,
    api: Any,
    *,
    private: bool = False,
    revision: Optional[str] = None,
    create_pr: bool = False,
    commit_message: Optional[str] = None,
    code_repo: Optional[str] = None,
    progress: Callable[[str], None] = log,
):
    """Upload a converted or trained Finsta folder as one commit of the model repo ``repo_id``.

    ``api`` is an ``huggingface_hub.HfApi`` (or any object with ``create_repo``, ``create_branch``
    and ``create_commit``), so tests can pass a fake. ``revision`` names the branch to commit to
    (created from ``main`` when absent); with ``create_pr`` the commit is opened as a pull request
    against that branch instead. Returns what ``api.create_commit`` returns.
    """
    from huggingface_hub import CommitOperationAdd

    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise PublishError(f"repo_id: expected 'org/name', got {repo_id!r}")
    folder = Path(folder)
    uploaded, skipped = files_to_publish(folder, code_repo=code_repo)
    for name in skipped:
        progress(f"  not uploading {name} (not a model, code, processor or card file)")
    operations = []
    for name in uploaded:
        if code_repo is not None and name.endswith(".json") and _auto_map_modules(folder / name):
            config = point_auto_map_at_code_repo(json.loads((folder / name).read_text(encoding="utf-8")), code_repo)
            content = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
        else:
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.fspath(folder / name)))

    progress(f"creating (or reusing) {'private' if private else 'public'} repo {repo_id}")
    api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
    if revision is not None and revision != "main" and not create_pr:
        progress(f"creating (or reusing) branch {revision}")
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    target = revision or "main"
    progress(f"uploading {len(operations)} file(s) to {repo_id}@{target}{' as a pull request' if create_pr else ''}")
    return api.create_commit(
        repo_id,
        operations=operations,
        commit_message=commit_message or f"Upload Finsta model ({converter_version()})",
        repo_type="model",
        revision=revision,
        create_pr=create_pr,
    )


__all__ = [
    "PUBLISHED_PATTERNS",
    "PublishError",
    "REFUSED_PATTERNS",
    "files_to_publish",
    "point_auto_map_at_code_repo",
    "publish_folder",
]
