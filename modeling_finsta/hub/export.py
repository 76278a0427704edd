"""``finsta-export-host``: a (post-)trained Finsta model's host, written back in the host's own format.

Finsta post-training is meant to improve the host itself; this module ships that host to people who
never install Finsta. The exported folders hold no Finsta code, no ``auto_map`` and no
``trust_remote_code`` requirement:

* ``clip`` (CLIP4Clip meanP): a plain transformers ``CLIPModel`` folder plus a ``CLIPProcessor``
  (the model's tokenizer and an image processor with the Finsta processor's own size, crop,
  resampling and statistics). The video embedding is CLIP4Clip's meanP over
  ``get_image_features`` of the frames (``clip4clip_mean_pooling``).
* ``xclip`` (X-CLIP): a plain ``XCLIPModel`` folder plus an ``XCLIPProcessor`` (VideoMAE image
  processor: 5-D video pixel values, as X-CLIP needs).
* ``clip4clip`` (CLIP4Clip seqTransf, or meanP): the original CLIP4Clip training checkpoint
  ``clip4clip/pytorch_model.bin`` (what CLIP4Clip's ``torch.save(model.state_dict())`` writes; the
  inverse of ``finsta-convert-clip4clip``), plus the ``CLIPModel`` folder of its towers at the top.

Nothing is reported as exported until the written files have been reloaded (with transformers' own
classes, and for the CLIP4Clip checkpoint with the original-layout reference forward
``clip4clip_reference_embeddings``) and their text and video embeddings equal the Finsta model's
distilled mode (host alone) within the tolerance on a fixed input; the processor must also
reproduce the Finsta processor's token ids and pixels. The files are written into a staging folder
next to the output and renamed into place only then, so the output path never holds an unverified
export. The command line is in ``hub/cli.py`` (``export_host_main``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from .checkpoint_conversion import CLIP4CLIP_ATTENTION_HEAD_DIM, export_clip4clip_checkpoint, load_original_checkpoint
from .progress import log
from .provenance import converter_version
from .verification import (
    CLIP_LAYER_NORM_EPS,
    ConversionVerificationError,
    EmbeddingCheck,
    clip4clip_mean_pooling,
    clip4clip_reference_embeddings,
    compare_embeddings,
    fixed_verification_inputs,
    host_embeddings,
)

HOST_EXPORT_FORMATS = {
    "clip": "CLIP4Clip meanP -> a plain transformers CLIPModel folder (+ CLIPProcessor)",
    "xclip": "X-CLIP -> a plain transformers XCLIPModel folder (+ XCLIPProcessor)",
    "clip4clip": (
        "CLIP4Clip seqTransf (or meanP) -> the original CLIP4Clip training checkpoint clip4clip/pytorch_model.bin, "
        "plus the CLIPModel folder of its towers"
    ),
}
"""What each ``--format`` writes; ``"auto"`` picks the host's own (meanP: clip, seqTransf: clip4clip, X-CLIP: xclip)."""

CLIP4CLIP_CHECKPOINT_NAME = "clip4clip/pytorch_model.bin"
"""Where the ``clip4clip`` format puts the original-layout checkpoint, relative to the output folder."""

EXPORT_INFO_NAME = "finsta_export.json"
"""Provenance and how-to-use notes written next to the exported host."""


_CHECK_CAPTIONS = ("a man throws a red ball to the dog", "the woman opens the fridge and takes out a bottle")


class HostExportError(ValueError):
    """The source cannot be exported in the requested host format (the message says why and what to do)."""


@dataclass
class HostExportReport:
    """What ``export_host`` wrote and how closely the reloaded files reproduce the distilled Finsta model."""

    output_dir: Path
    format: str
    files: list[str]
    checks: dict[str, EmbeddingCheck]
    processor_max_abs_diff: Optional[float] = None
    saved_processor: bool = False


# ------------------------------------------------------------------------------------ the source


def _read_config_json(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise HostExportError(
            f"{folder}: no config.json, so this is not a saved Finsta model folder (model.save_pretrained, "
            "finsta-train and the finsta-convert-* scripts write one)"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HostExportError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise HostExportError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def _load_source(source: Union[str, os.PathLike, Any], processor: Any) -> tuple[Any, Any, str]:
    """(float32 Finsta model in eval mode, its processor or tokenizer or None, a name for messages)."""
    if not isinstance(source, (str, os.PathLike)):
        if getattr(getattr(source, "config", None), "model_type", None) != "finsta":
            raise HostExportError(
                f"export_host: expected a FinstaModel or the folder of a saved one, got {type(source).__name__}"
            )
        return source, processor, f"in-memory {type(source).__name__}"
    folder = Path(source)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder (expected a saved Finsta model folder)")
    if not folder.is_dir():
        raise HostExportError(
            f"{folder} is a file, not a saved Finsta model folder (to turn an original CLIP4Clip checkpoint into a "
            "Finsta model, use finsta-convert-clip4clip)"
        )
    model_type = _read_config_json(folder).get("model_type")
    if model_type != "finsta":
        hint = ""
        if model_type in ("clip", "xclip"):
            hint = f": it is already a plain {model_type!r} checkpoint in the host's own format; nothing to export"
        raise HostExportError(
            f"{folder}: config.json has model_type {model_type!r}, not 'finsta', so this is not a Finsta model{hint}"
        )

    from ..modeling_finsta import FinstaModel

    log(f"loading {folder}")
    model = FinstaModel.from_pretrained(os.fspath(folder), dtype=torch.float32).eval()
    if processor is None:
        processor = _load_source_processor(folder)
    return model, processor, os.fspath(folder)


def _load_source_processor(folder: Path) -> Any:
    """The folder's ``FinstaProcessor``, else its tokenizer, else None (the export then has no processor)."""
    if (folder / "processor_config.json").is_file():
        from ..processing_finsta import FinstaProcessor

        return FinstaProcessor.from_pretrained(os.fspath(folder))
    if (folder / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(os.fspath(folder))
    return None


# ---------------------------------------------------------------------------------- the format


def default_export_format(config: Any) -> str:
    """The host's own format: X-CLIP -> ``xclip``, CLIP4Clip seqTransf -> ``clip4clip``, meanP -> ``clip``."""
    if config.backbone_type == "xclip":
        return "xclip"
    return "clip4clip" if config.temporal_head == "seqTransf" else "clip"


def _host_name(config: Any) -> str:
    return "X-CLIP" if config.backbone_type == "xclip" else f"CLIP4Clip {config.temporal_head}"


def clip4clip_incompatibilities(backbone_config: Any) -> list[str]:
    """Why CLIP4Clip's own code could not rebuild this CLIP (empty when it can).

    CLIP4Clip builds OpenAI's ViT CLIP: quick-GELU, LayerNorm eps 1e-5, MLPs of 4 x width,
    ``width // 64`` heads, and text pooling at the highest token id (``argmax``), which equals
    transformers' end-token pooling only when the end token is the last id of the vocabulary.
    """
    problems = []
    for tower_name in ("text_config", "vision_config"):
        tower = getattr(backbone_config, tower_name)
        width, heads = tower.hidden_size, tower.num_attention_heads
        if tower.hidden_act != "quick_gelu":
            problems.append(f"{tower_name}.hidden_act is {tower.hidden_act!r} (CLIP4Clip's CLIP uses 'quick_gelu')")
        if tower.layer_norm_eps != CLIP_LAYER_NORM_EPS:
            problems.append(f"{tower_name}.layer_norm_eps is {tower.layer_norm_eps:g} (CLIP4Clip's CLIP uses {CLIP_LAYER_NORM_EPS:g})")
        if tower.intermediate_size != 4 * width:
            problems.append(
                f"{tower_name}.intermediate_size is {tower.intermediate_size} "
                f"(CLIP4Clip's CLIP uses 4 x width = {4 * width})"
            )
        if width % CLIP4CLIP_ATTENTION_HEAD_DIM or heads != width // CLIP4CLIP_ATTENTION_HEAD_DIM:
            problems.append(
                f"{tower_name} has {heads} attention heads of width {width} (CLIP4Clip builds width // "
                f"{CLIP4CLIP_ATTENTION_HEAD_DIM} heads)"
            )
    text = backbone_config.text_config
    if text.eos_token_id != text.vocab_size - 1:
        problems.append(
            f"text_config.eos_token_id is {text.eos_token_id}, not the last vocabulary id {text.vocab_size - 1} "
            "(CLIP4Clip pools the text at the highest token id)"
        )
    return problems


def _resolve_format(config: Any, requested: str) -> str:
    known = ("auto", *HOST_EXPORT_FORMATS)
    if requested not in known:
        raise HostExportError(f"unknown export format {requested!r}; expected one of {', '.join(known)}")
    chosen = default_export_format(config) if requested == "auto" else requested
    host = _host_name(config)
    if config.backbone_type == "xclip" and chosen != "xclip":
        raise HostExportError(
            f"this Finsta model hosts X-CLIP, which cannot be exported as {chosen!r} (a CLIP4Clip format): "
            "use --format xclip"
        )
    if config.backbone_type != "xclip" and chosen == "xclip":
        raise HostExportError(f"this Finsta model hosts {host}, not X-CLIP: use --format clip or clip4clip")
    if chosen == "clip" and config.temporal_head == "seqTransf":
        raise HostExportError(
            "this Finsta model hosts CLIP4Clip seqTransf, whose temporal Transformer has no place in a plain "
            "CLIPModel: use --format clip4clip (the original CLIP4Clip checkpoint with the header, plus the "
            "CLIPModel folder of the towers)"
        )
    if chosen == "clip4clip":
        problems = clip4clip_incompatibilities(config.backbone_config)
        if problems:
            raise HostExportError(
                "CLIP4Clip's own code could not rebuild this host, so it cannot be exported as 'clip4clip': "
                + "; ".join(problems)
                + ("" if config.temporal_head == "seqTransf" else " (export it as --format clip instead)")
            )
    return chosen


def _check_exportable(model: Any) -> None:
    from transformers import CLIPModel, XCLIPModel

    expected = XCLIPModel if model.config.backbone_type == "xclip" else CLIPModel
    if type(model.backbone) is not expected:
        raise HostExportError(
            f"the backbone is a {type(model.backbone).__name__}, expected a plain {expected.__name__} (a PEFT-wrapped "
            "model? call merge_and_unload() first)"
        )
    not_float32 = sorted(
        {str(p.dtype) for p in [*model.backbone.parameters(), *model.host_adapter.parameters()]} - {"torch.float32"}
    )
    if not_float32:
        raise HostExportError(
            f"the host's weights are {', '.join(not_float32)}; the export writes and checks float32: pass "
            "model.float() or the saved folder"
        )


def _prepare_output(output_dir: Path, source_name: str) -> Path:
    """Refuse a non-empty output (never overwrite a model); return a fresh staging folder beside it."""
    if os.path.exists(source_name) and output_dir.resolve() == Path(source_name).resolve():
        raise HostExportError(f"{output_dir}: the output folder is the source folder; choose another one")
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise HostExportError(f"{output_dir} already exists and is not empty; choose another folder or remove it")
    staging = output_dir.parent / f".incomplete-{output_dir.name}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


# ------------------------------------------------------------------------------------ processors


def host_processor(finsta_processor: Any, backbone_type: str) -> Any:
    """A plain ``CLIPProcessor`` / ``XCLIPProcessor`` with the Finsta processor's tokenizer and its
    video preprocessing (resize, crop, resampling, rescale, mean and std) as an image processor.

    The ``*Pil`` image processors are used (no torchvision needed); they save under the class name
    transformers' auto classes resolve (``CLIPImageProcessor``, ``VideoMAEImageProcessor``), so a user
    with torchvision gets the same settings on its default backend. X-CLIP gets the VideoMAE image
    processor, which returns 5-D ``[B, T, C, H, W]`` video pixel values (X-CLIP crashes on 4-D input).
    """
    from PIL import Image
    from transformers import CLIPImageProcessorPil, CLIPProcessor, VideoMAEImageProcessorPil, XCLIPProcessor

    settings = finsta_processor.video_preprocessor
    crop_height, crop_width = settings.crop_size
    image_settings = dict(
        do_resize=settings.do_resize, size={"shortest_edge": settings.size},
        resample=int(Image.Resampling[settings.resample.upper()]), do_center_crop=settings.do_center_crop,
        crop_size={"height": crop_height, "width": crop_width}, do_rescale=True, rescale_factor=settings.rescale_factor,
        do_normalize=settings.do_normalize, image_mean=list(settings.image_mean), image_std=list(settings.image_std),
        do_convert_rgb=True,
    )  # fmt: skip
    if backbone_type == "xclip":
        return XCLIPProcessor(
            image_processor=VideoMAEImageProcessorPil(**image_settings), tokenizer=finsta_processor.tokenizer
        )
    return CLIPProcessor(image_processor=CLIPImageProcessorPil(**image_settings), tokenizer=finsta_processor.tokenizer)


def _check_video(finsta_processor: Any) -> np.ndarray:
    """A fixed non-square uint8 video larger than the crop, so resizing and cropping are exercised."""
    side = max(finsta_processor.video_preprocessor.size, *finsta_processor.video_preprocessor.crop_size)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, side + 13, side * 4 // 3 + 7, 3), dtype=np.uint8)


def verify_host_processor(folder: Path, finsta_processor: Any, backbone_type: str, tolerance: float) -> float:
    """Reload the exported processor with ``AutoProcessor`` and check that it gives the Finsta
    processor's token ids and pixel values on fixed captions and a fixed video; returns the largest
    pixel difference. Raises ``ConversionVerificationError`` otherwise."""
    from transformers import AutoProcessor, CLIPProcessor, XCLIPProcessor

    reloaded = AutoProcessor.from_pretrained(os.fspath(folder), local_files_only=True)
    expected_class = XCLIPProcessor if backbone_type == "xclip" else CLIPProcessor
    if type(reloaded) is not expected_class:
        raise ConversionVerificationError(
            f"{folder}: AutoProcessor loads a {type(reloaded).__name__}, expected {expected_class.__name__}"
        )
    length = finsta_processor.max_length
    text_kwargs = dict(padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    expected_ids = finsta_processor.tokenizer(list(_CHECK_CAPTIONS), **text_kwargs)["input_ids"]
    ids = reloaded(text=list(_CHECK_CAPTIONS), **text_kwargs)["input_ids"]
    if not torch.equal(ids, expected_ids):
        raise ConversionVerificationError(
            f"{folder}: the exported tokenizer does not give the Finsta processor's token ids"
        )
    frames = _check_video(finsta_processor)
    expected_pixels = finsta_processor.video_preprocessor([frames])["pixel_values"][0]
    if backbone_type == "xclip":
        pixels = reloaded(videos=[list(frames)], return_tensors="pt")["pixel_values"][0]
    else:
        pixels = reloaded(images=list(frames), return_tensors="pt")["pixel_values"]
    if pixels.shape != expected_pixels.shape:
        raise ConversionVerificationError(
            f"{folder}: the exported image processor gives pixel values of shape {tuple(pixels.shape)}, the Finsta "
            f"processor {tuple(expected_pixels.shape)}"
        )
    difference = float((pixels.float() - expected_pixels.float()).abs().max())
    if not difference <= tolerance:
        raise ConversionVerificationError(
            f"{folder}: the exported image processor's pixel values differ from the Finsta processor's by up to "
            f"{difference:.3g} (tolerance {tolerance:g})"
        )
    return difference


# ------------------------------------------------------------------------------- the embeddings


@torch.no_grad()
def distilled_host_embeddings(model: Any, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Finsta model's distilled-mode (host alone) text and video embeddings on ``inputs``, and the
    per-frame embeddings ``[B * T, E]`` its host computes before the temporal head (``CLIPModel.get_image_features``)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        text, host_video = host_embeddings(model, {key: value.to(device) for key, value in inputs.items()})
    finally:
        model.train(was_training)
    return {"text": text.cpu(), "video": host_video.video_embeds.cpu(), "frames": host_video.frame_inputs.flatten(0, 1).cpu()}


def _fixed_inputs(config: Any) -> dict[str, torch.Tensor]:
    backbone = config.backbone_config
    if config.backbone_type == "xclip":
        num_frames = backbone.vision_config.num_frames
    else:
        num_frames = min(4, config.num_frame_positions) if config.temporal_head == "seqTransf" else 4
    inputs = fixed_verification_inputs(
        backbone.text_config.vocab_size, backbone.text_config.max_position_embeddings,
        backbone.vision_config.image_size, num_frames=num_frames, eos_token_id=backbone.text_config.eos_token_id,
        num_channels=backbone.vision_config.num_channels,
    )  # fmt: skip
    if config.backbone_type == "xclip":
        inputs["video_mask"] = torch.ones_like(inputs["video_mask"])  # X-CLIP has no frame mask
    return inputs


def _reload_plain_host(folder: Path, backbone_type: str):
    """Reload the exported folder exactly as a plain transformers user would; refuse any remote-code trace."""
    from transformers import CLIPModel, XCLIPModel

    config = _read_config_json(folder)
    if "auto_map" in config or any(path.suffix == ".py" for path in folder.iterdir()):
        raise ConversionVerificationError(f"{folder}: the export carries remote code (auto_map or .py files)")
    model_class = XCLIPModel if backbone_type == "xclip" else CLIPModel
    if config.get("model_type") != model_class.config_class.model_type:
        raise ConversionVerificationError(
            f"{folder}/config.json has model_type {config.get('model_type')!r}, "
            f"expected {model_class.config_class.model_type!r}"
        )
    return model_class.from_pretrained(os.fspath(folder), dtype=torch.float32, local_files_only=True).eval()


@torch.no_grad()
def _verify_host_folder(folder, backbone_type, temporal_head, inputs, expected, tolerance) -> EmbeddingCheck:
    host = _reload_plain_host(folder, backbone_type)
    model_name = type(host).__name__
    text = host.get_text_features(input_ids=inputs["input_ids"]).pooler_output
    pixel_values, video_mask = inputs["pixel_values"], inputs["video_mask"]
    failure = f"{folder}: the exported {model_name} does not reproduce the Finsta model's distilled embeddings"
    if backbone_type == "xclip":
        video, level, reference = (
            host.get_video_features(pixel_values=pixel_values).pooler_output,
            "video",
            expected["video"],
        )
    else:
        frames = host.get_image_features(pixel_values=pixel_values.flatten(0, 1)).pooler_output
        if temporal_head == "seqTransf":  # the towers alone: the header lives in the CLIP4Clip checkpoint
            video, level, reference = frames, "frames", expected["frames"]
        else:
            video = clip4clip_mean_pooling(frames.view(*pixel_values.shape[:2], -1), video_mask)
            level, reference = "video", expected["video"]
    return compare_embeddings(
        text, expected["text"], video, reference, video_level=level, tolerance=tolerance, failure=failure
    )


def _verify_clip4clip_checkpoint(path: Path, inputs, expected, tolerance) -> EmbeddingCheck:
    weights = load_original_checkpoint(path)
    text, video = clip4clip_reference_embeddings(
        weights, inputs["input_ids"], inputs["pixel_values"], inputs["video_mask"]
    )
    return compare_embeddings(
        text, expected["text"], video, expected["video"], video_level="video", tolerance=tolerance,
        failure=f"{path}: the CLIP4Clip checkpoint, run in its original layout, does not reproduce the Finsta model's "
        "distilled embeddings",
    )  # fmt: skip


def _verify_export(
    folder: Path, format_: str, model: Any, processor: Any, tolerance: float
) -> tuple[dict[str, EmbeddingCheck], Optional[float]]:
    """Every check of an export: the plain host folder, the CLIP4Clip checkpoint, the processor."""
    config = model.config
    inputs = _fixed_inputs(config)
    expected = distilled_host_embeddings(model, inputs)
    checks = {
        type(model.backbone).__name__: _verify_host_folder(
            folder, config.backbone_type, config.temporal_head, inputs, expected, tolerance
        )
    }
    if format_ == "clip4clip":
        checks["CLIP4Clip checkpoint"] = _verify_clip4clip_checkpoint(
            folder / CLIP4CLIP_CHECKPOINT_NAME, inputs, expected, tolerance
        )
    for name, check in checks.items():
        log(
            f"  OK {name}: text max |diff| {check.text_max_abs_diff:.2e}, {check.video_level} max |diff| "
            f"{check.video_max_abs_diff:.2e} (tolerance {tolerance:g})"
        )
    pixel_difference = None
    if processor is not None:
        pixel_difference = verify_host_processor(folder, processor, config.backbone_type, tolerance)
        log(f"  OK processor: same token ids, pixel values max |diff| {pixel_difference:.2e}")
    return checks, pixel_difference


# ---------------------------------------------------------------------------------------- export


def _usage_notes(format_: str, config: Any) -> dict[str, str]:
    if format_ == "xclip":
        return {
            "load_with": "transformers.XCLIPModel.from_pretrained(folder), AutoProcessor.from_pretrained(folder)",
            "text_embedding": "model.get_text_features(input_ids).pooler_output",
            "video_embedding": "model.get_video_features(pixel_values [B, T, C, H, W]).pooler_output",
        }
    notes = {
        "load_with": "transformers.CLIPModel.from_pretrained(folder), AutoProcessor.from_pretrained(folder)",
        "text_embedding": "model.get_text_features(input_ids).pooler_output",
    }
    if config.temporal_head == "seqTransf":
        notes["video_embedding"] = (
            f"the CLIP4Clip seqTransf header is in {CLIP4CLIP_CHECKPOINT_NAME} (load it with CLIP4Clip's "
            "--init_model, or back into Finsta with finsta-convert-clip4clip); the CLIPModel here gives the "
            "per-frame embeddings get_image_features(frames).pooler_output"
        )
    else:
        notes["video_embedding"] = (
            "CLIP4Clip meanP: per-frame get_image_features(frames).pooler_output, L2-normalised, averaged over the "
            "valid frames, L2-normalised"
        )
    if format_ == "clip4clip":
        notes["clip4clip_checkpoint"] = f"{CLIP4CLIP_CHECKPOINT_NAME}: CLIP4Clip {config.temporal_head} state dict"
    return notes


def _processor_settings(processor: Any) -> dict[str, Any]:
    return {
        name: getattr(processor, name)
        for name in ("num_frames", "frame_sampling", "sampling_fps", "slice_mode", "max_length")
        if hasattr(processor, name)
    }


def export_host(
    source: Union[str, os.PathLike, Any],
    output_dir: Union[str, os.PathLike],
    *,
    format: str = "auto",
    processor: Any = None,
    tolerance: float = 1e-5,
) -> HostExportReport:
    """Export the host of a Finsta model (a saved folder, or a ``FinstaModel`` in memory with its
    ``processor``) in the host's own format; see the module docstring and ``HOST_EXPORT_FORMATS``.

    The Finsta head (graph encoders) is not part of the host and is not exported: the exported host
    computes exactly Finsta's distilled mode. Raises ``HostExportError`` for a source that cannot be
    exported in ``format`` and ``ConversionVerificationError`` when the reloaded export does not
    reproduce the distilled embeddings (the output folder is then not created).
    """
    model, processor, source_name = _load_source(source, processor)
    config = model.config
    chosen = _resolve_format(config, format)
    _check_exportable(model)
    output_dir = Path(output_dir)
    staging = _prepare_output(output_dir, source_name)
    log(f"exporting the {_host_name(config)} host as {chosen!r}: {HOST_EXPORT_FORMATS[chosen]}")

    host = copy.deepcopy(model.backbone).eval().cpu()  # its own config copy: the Finsta model is left untouched
    host.save_pretrained(staging)
    del host
    saved_processor = False
    if processor is not None and hasattr(processor, "video_preprocessor"):
        plain = host_processor(processor, config.backbone_type)
        plain.save_pretrained(staging)
        plain.image_processor.save_pretrained(staging)  # preprocessor_config.json, for loaders that read only it
        saved_processor = True
    elif processor is not None:
        processor.save_pretrained(staging)  # a tokenizer without Finsta's video settings
        log("  the source has a tokenizer but no FinstaProcessor: the export gets the tokenizer, no image processor")
    else:
        log("  the source has no processor or tokenizer: the export has none either")
    if chosen == "clip4clip":
        temporal = model.host_adapter.state_dict() if config.temporal_head == "seqTransf" else None
        checkpoint = export_clip4clip_checkpoint(model.backbone.state_dict(), temporal)
        (staging / CLIP4CLIP_CHECKPOINT_NAME).parent.mkdir(parents=True)
        torch.save(checkpoint, staging / CLIP4CLIP_CHECKPOINT_NAME)
        del checkpoint

    log("reloading the export with transformers alone and comparing with the Finsta model's distilled embeddings")
    try:
        checks, pixel_difference = _verify_export(
            staging, chosen, model, processor if saved_processor else None, tolerance
        )
    except ConversionVerificationError as error:
        raise ConversionVerificationError(
            f"{error}. Nothing was written to {output_dir}; the unverified files are left in {staging}"
        ) from error

    info = {
        "exporter": f"{converter_version()}: finsta-export-host",
        "source": source_name,
        "format": chosen,
        "host": _host_name(config),
        **_usage_notes(chosen, config),
        "finsta_processor": _processor_settings(processor) if saved_processor else None,
        "checks": {
            name: {"text_max_abs_diff": c.text_max_abs_diff, f"{c.video_level}_max_abs_diff": c.video_max_abs_diff}
            for name, c in checks.items()
        },
        "tolerance": tolerance,
        "not_exported": "the Finsta head (graph encoders): the exported host computes Finsta's distilled mode",
    }
    (staging / EXPORT_INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if output_dir.exists():
        output_dir.rmdir()  # empty (checked above)
    staging.rename(output_dir)
    files = sorted(path.relative_to(output_dir).as_posix() for path in output_dir.rglob("*") if path.is_file())
    log(f"  wrote {', '.join(files)}")
    return HostExportReport(output_dir, chosen, files, checks, pixel_difference, saved_processor)


__all__ = [
    "CLIP4CLIP_ATTENTION_HEAD_DIM",
    "CLIP4CLIP_CHECKPOINT_NAME",
    "EXPORT_INFO_NAME",
    "HOST_EXPORT_FORMATS",
    "HostExportError",
    "HostExportReport",
    "clip4clip_incompatibilities",
    "default_export_format",
    "distilled_host_embeddings",
    "export_host",
    "host_processor",
    "verify_host_processor",
]
