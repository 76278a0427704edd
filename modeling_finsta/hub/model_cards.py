"""Model cards of converted folders: per-checkpoint data files + one template -> ``README.md``.

The data files and the template live in ``model_cards/`` of a source checkout; the converters
add the facts of the conversion (provenance, the processor's actual preprocessing).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

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
    candidate = Path(__file__).resolve().parents[2] / "model_cards"
    return candidate if (candidate / "template.md").is_file() else None


def preprocessing_facts(processor, image_size: int, backbone_type: str) -> dict[str, Any]:
    """What the card states about preprocessing, from the processor actually saved (when there is one)."""
    if processor is None:
        return {"image_size": image_size}
    video = processor.video_preprocessing
    return {
        "image_size": image_size,
        "num_frames": processor.num_frames,
        "frame_sampling": (
            f"{processor.sampling_fps:g} frame(s) per second, at most {processor.num_frames} ({processor.slice_mode} "
            "slice when longer); shorter videos padded and masked"
            if processor.frame_sampling == "fps"
            else f"{processor.num_frames} frames uniformly over the video"
        ),
        "resize_shortest_edge": video["size"],
        "center_crop": video["crop_size"] if video["do_center_crop"] else "none",
        "resample": video["resample"],
        "image_mean": [round(v, 8) for v in video["image_mean"]],
        "image_std": [round(v, 8) for v in video["image_std"]],
        "max_text_tokens": processor.max_length,
    }


def conversion_model_card(
    card_data: Optional[str],
    card_template: Optional[str],
    default_card: str,
    repo_id: Optional[str],
    provenance: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
):
    """Render the card of a conversion from ``card_data`` (a data file path or a name in ``model_cards/``,
    ``default_card`` when None) and ``card_template`` (``model_cards/template.md`` when None)."""
    cards_dir = default_model_cards_dir()
    template = Path(card_template) if card_template else (cards_dir / "template.md" if cards_dir else None)
    name = card_data or default_card
    data_path = Path(name)
    if not data_path.is_file() and cards_dir is not None:
        for suffix in (".yaml", ".yml", ".json"):
            if (cards_dir / f"{name}{suffix}").is_file():
                data_path = cards_dir / f"{name}{suffix}"
                break
    if template is None or not data_path.is_file():
        raise FileNotFoundError(
            f"model card: template {template} / data {name!r} not found; pass --card-template and --card-data "
            "(the defaults live in model_cards/ of a source checkout)"
        )
    data = load_card_data(data_path)
    return render_model_card(data, template, repo_id=repo_id, provenance=provenance, preprocessing_overrides=preprocessing)


__all__ = [
    "CARD_REQUIRED_FIELDS",
    "conversion_model_card",
    "default_model_cards_dir",
    "load_card_data",
    "preprocessing_facts",
    "render_model_card",
]
