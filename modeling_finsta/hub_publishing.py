"""Shared steps of the converters and the publisher: write a converted folder, prove it reproduces
the source's embeddings, render its model card, and upload it through an ``HfApi``-like object.

Publishing choice: **every weights repo carries its own code.** ``save_pretrained`` copies
``modeling_finsta.py`` and its sibling modules next to the weights and writes a local ``auto_map``,
so one commit of the repo pins weights, config and code together: users pin
``AutoModel.from_pretrained(repo, trust_remote_code=True, revision="<commit sha>")`` and get exactly
the code they reviewed. Pointing at one code repo (``auto_map: "org/code--modeling_finsta.FinstaModel"``)
would need a second pin (``code_revision=``) and lets the code move under fixed weights; it is still
available through ``publish_folder(..., code_repo="org/code")`` for organisations that want it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

CONVERTER_NAME = "finsta-transformers"


def converter_version() -> str:
    """``finsta-transformers <version>``, recorded in every model card's provenance section."""
    try:
        from importlib.metadata import version

        return f"{CONVERTER_NAME} {version(CONVERTER_NAME)}"
    except Exception:  # running from a source tree that is not installed
        return f"{CONVERTER_NAME} (uninstalled source tree)"


class ConversionVerificationError(RuntimeError):
    """The reloaded converted folder does not reproduce the source's embeddings."""


class PublishError(ValueError):
    """A folder cannot be published as it is (missing or unsafe files, inconsistent options)."""


def log(message: str) -> None:
    """Progress messages of the converters and the publisher (stdout, flushed)."""
    print(message, flush=True)


# ---------------------------------------------------------------------------------------- writing


def write_converted_folder(
    model: torch.nn.Module,
    output_dir: Union[str, os.PathLike],
    *,
    processor: Any = None,
    tokenizer: Any = None,
    model_card: Any = None,
) -> list[str]:
    """Save weights (safetensors), config, remote code, the processor (or at least the tokenizer)
    and ``README.md``. Returns the sorted file names written at the top of the folder."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    if processor is not None:
        processor.save_pretrained(output_dir)
    elif tokenizer is not None:
        tokenizer.save_pretrained(output_dir)
    if model_card is not None:
        model_card.save(output_dir / "README.md")
    return sorted(path.name for path in output_dir.iterdir() if path.is_file())


# ----------------------------------------------------------------------------------- verification


@dataclass
class EmbeddingCheck:
    """Largest absolute differences between the converted model and the source, per modality."""

    text_max_abs_diff: float
    video_max_abs_diff: float
    video_level: str


def fixed_verification_inputs(
    vocab_size: int,
    context_length: int,
    image_size: int,
    num_frames: int = 4,
    eos_token_id: Optional[int] = None,
    num_channels: int = 3,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Deterministic captions and videos for the equality check.

    Two captions of different lengths (end token at a different place in each, zeros after it) and
    two videos, the second with its last frame padded, so pooling and masking are exercised too.
    """
    generator = torch.Generator().manual_seed(seed)
    length = min(context_length, 12)
    eos = vocab_size - 1 if eos_token_id is None or eos_token_id >= vocab_size else eos_token_id
    input_ids = torch.zeros(2, length, dtype=torch.long)
    for row, end in enumerate((length // 2, length - 1)):
        input_ids[row, :end] = torch.randint(1, max(2, vocab_size - 2), (end,), generator=generator)
        input_ids[row, end] = eos
    pixel_values = torch.randn(2, num_frames, num_channels, image_size, image_size, generator=generator)
    video_mask = torch.ones(2, num_frames, dtype=torch.long)
    if num_frames > 1:
        video_mask[1, -1] = 0
    return {"input_ids": input_ids, "pixel_values": pixel_values, "video_mask": video_mask}


def verify_backbone_embeddings(
    folder: Union[str, os.PathLike],
    inputs: Mapping[str, torch.Tensor],
    expected_text_embeds: torch.Tensor,
    expected_video_embeds: torch.Tensor,
    *,
    video_level: str = "video",
    tolerance: float = 1e-5,
) -> EmbeddingCheck:
    """Reload ``folder`` as a user would (``AutoModel``, remote code) and compare its backbone's
    embeddings with the source's on ``inputs``.

    ``video_level="video"`` compares the host's pooled video embedding (temporal head included);
    ``"frames"`` compares per-frame image embeddings ``[B * T, E]``, for a freshly initialised
    temporal head that the source never had. Raises ``ConversionVerificationError`` with the
    largest difference when either exceeds ``tolerance``.
    """
    from transformers import AutoModel

    if video_level not in ("video", "frames"):
        raise ValueError(f"video_level: expected 'video' or 'frames', got {video_level!r}")
    model = AutoModel.from_pretrained(os.fspath(folder), trust_remote_code=True, dtype=torch.float32).eval()
    with torch.no_grad():
        text = model.host_adapter.encode_text(model.backbone, inputs["input_ids"], None).text_embeds
        if video_level == "video":
            video_mask = inputs.get("video_mask") if model.config.backbone_type == "clip" else None
            video = model.host_adapter.encode_video(model.backbone, inputs["pixel_values"], video_mask).video_embeds
        else:
            frames = inputs["pixel_values"].flatten(0, 1)
            video = model.backbone.get_image_features(pixel_values=frames).pooler_output
    check = EmbeddingCheck(
        text_max_abs_diff=_max_abs_diff(text, expected_text_embeds, "text"),
        video_max_abs_diff=_max_abs_diff(video, expected_video_embeds, "video"),
        video_level=video_level,
    )
    failures = [
        f"{name} embeddings differ by up to {value:.3g} (tolerance {tolerance:g})"
        for name, value in (("text", check.text_max_abs_diff), (video_level, check.video_max_abs_diff))
        if not value <= tolerance
    ]
    if failures:
        raise ConversionVerificationError(
            f"{folder}: the reloaded conversion does not reproduce the source: " + "; ".join(failures)
        )
    return check


def _max_abs_diff(actual: torch.Tensor, expected: torch.Tensor, name: str) -> float:
    if actual.shape != expected.shape:
        raise ConversionVerificationError(
            f"{name} embeddings: converted shape {tuple(actual.shape)} != source shape {tuple(expected.shape)}"
        )
    return float((actual.float() - expected.float()).abs().max())


# ------------------------------------------------------------------------------------ model cards


CARD_REQUIRED_FIELDS = ("model_name", "base_model", "license", "description", "preprocessing", "training")


def load_card_data(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """Read one per-checkpoint card data file (``.yaml``/``.yml`` or ``.json``) and check its fields."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model card data file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"{path}: expected a .yaml, .yml or .json model card data file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    missing = [name for name in CARD_REQUIRED_FIELDS if name not in data]
    if missing:
        raise ValueError(f"{path}: missing model card field(s) {missing}")
    return data


def render_model_card(
    data: Mapping[str, Any],
    template_path: Union[str, os.PathLike],
    *,
    repo_id: Optional[str] = None,
    provenance: Optional[Mapping[str, Any]] = None,
    preprocessing_overrides: Optional[Mapping[str, Any]] = None,
):
    """Render a ``huggingface_hub.ModelCard`` from card data, the template and conversion facts.

    ``provenance`` (source checkpoint, its hash, converter version ...) comes from the conversion
    itself; ``preprocessing_overrides`` (the processor's actual statistics and sizes) win over the
    data file. ``model-index`` is written only from ``data["results"]`` entries, which must be
    numbers that were measured (each carries its ``source``); with none the card says so.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    template_path = Path(template_path)
    if not template_path.is_file():
        raise FileNotFoundError(f"model card template not found: {template_path}")
    preprocessing = {**dict(data["preprocessing"]), **dict(preprocessing_overrides or {})}
    results = list(data.get("results") or [])
    eval_results = []
    for index, result in enumerate(results):
        missing = [k for k in ("dataset_type", "dataset_name", "metric_type", "metric_value", "source") if k not in result]
        if missing:
            raise ValueError(f"results[{index}]: missing {missing}; only measured numbers with a source may be listed")
        eval_results.append(
            EvalResult(
                task_type=result.get("task_type", "text-to-video-retrieval"),
                task_name=result.get("task_name", "Text-to-video retrieval"),
                dataset_type=result["dataset_type"],
                dataset_name=result["dataset_name"],
                dataset_split=result.get("dataset_split"),
                metric_type=result["metric_type"],
                metric_name=result.get("metric_name"),
                metric_value=result["metric_value"],
                source_name=result["source"] if result.get("source_url") else None,
                source_url=result.get("source_url"),
            )
        )
    card_data = ModelCardData(
        model_name=data["model_name"],
        base_model=data["base_model"],
        license=data["license"],
        datasets=data.get("datasets") or None,
        language=data.get("language", "en"),
        library_name="transformers",
        pipeline_tag="feature-extraction",
        tags=list(data.get("tags") or []),
        eval_results=eval_results or None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=os.fspath(template_path),
        repo_id=repo_id or data.get("repo_id") or "<org>/<repo>",
        data=dict(data),
        preprocessing=preprocessing,
        provenance=dict(provenance or {}),
        results=results,
    )


def default_model_cards_dir() -> Optional[Path]:
    """``model_cards/`` of a source checkout (the package installed editable), if there is one."""
    candidate = Path(__file__).resolve().parent.parent / "model_cards"
    return candidate if (candidate / "template.md").is_file() else None


# ------------------------------------------------------------------------------------- publishing

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
    modules = set()
    for reference in auto_map.values():
        for value in reference if isinstance(reference, (list, tuple)) else [reference]:
            if value and "--" not in value:
                modules.add(value.rsplit(".", 1)[0])
    return modules


def point_auto_map_at_code_repo(config: dict[str, Any], code_repo: str) -> dict[str, Any]:
    """Rewrite local ``auto_map`` entries (``"module.Class"``) to ``"code_repo--module.Class"``."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", code_repo):
        raise PublishError(f"code_repo: expected 'org/name', got {code_repo!r}")

    def point(value):
        if isinstance(value, (list, tuple)):
            return [point(item) for item in value]
        return value if value is None or "--" in value else f"{code_repo}--{value}"

    config = dict(config)
    if "auto_map" in config:
        config["auto_map"] = {key: point(value) for key, value in config["auto_map"].items()}
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


def publish_main(argv: Optional[Sequence[str]] = None, api: Any = None) -> int:
    """``finsta-push FOLDER ORG/NAME [--private] [--revision BRANCH] [--create-pr] [--code-repo ORG/CODE]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="finsta-push",
        description="Upload a converted or trained Finsta folder (weights, config, code, processor, card) to the Hub.",
    )
    parser.add_argument("folder", help="folder written by a finsta converter or save_pretrained")
    parser.add_argument("repo_id", help="target model repo, 'org/name'")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", "--branch", dest="revision", default=None, help="branch to commit to")
    parser.add_argument("--create-pr", action="store_true", help="open the commit as a pull request")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument(
        "--code-repo", default=None, help="point auto_map at this code repo instead of uploading the .py files"
    )
    args = parser.parse_args(argv)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        info = publish_folder(
            args.folder, args.repo_id, api, private=args.private, revision=args.revision,
            create_pr=args.create_pr, commit_message=args.commit_message, code_repo=args.code_repo,
        )  # fmt: skip
    except (PublishError, FileNotFoundError) as error:
        print(f"error: {error}", flush=True)
        return 2
    url = getattr(info, "pr_url", None) or getattr(info, "commit_url", None)
    log(f"done{': ' + url if url else ''}")
    return 0


__all__ = [
    "ConversionVerificationError",
    "EmbeddingCheck",
    "PublishError",
    "converter_version",
    "files_to_publish",
    "fixed_verification_inputs",
    "load_card_data",
    "point_auto_map_at_code_repo",
    "publish_folder",
    "publish_main",
    "render_model_card",
    "verify_backbone_embeddings",
    "write_converted_folder",
]
