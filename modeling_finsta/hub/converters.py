"""Converters: CLIP4Clip training checkpoints, transformers CLIP and X-CLIP -> Finsta folders.

Each converter builds a ``FinstaModel`` whose backbone (and CLIP4Clip temporal head) carries the
source weights and whose Finsta head is freshly initialised, writes safetensors + config + remote
code + processor (or tokenizer) + model card, then reloads the folder with
``AutoModel.from_pretrained(folder, trust_remote_code=True)`` and checks that the backbone's text
and video embeddings equal the source's on a fixed input before reporting success. The state-dict
work itself lives in ``hub/checkpoint_conversion.py``, the check in ``hub/verification.py``; this
module only orchestrates them. The command lines are in ``hub/cli.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..configuration_finsta import FinstaConfig
from ..modeling_finsta import FinstaModel
from .checkpoint_conversion import (
    CLIP4CLIP_ATTENTION_HEAD_DIM,
    CheckpointConversionError,
    check_state_dict_keys,
    convert_clip4clip_checkpoint,
    load_original_checkpoint,
    strip_data_parallel_prefix,
)
from .model_cards import conversion_model_card, preprocessing_facts
from .progress import log
from .provenance import converter_version, file_sha256
from .sources import load_tokenizer, processor_from_source
from .verification import (
    EmbeddingCheck,
    clip4clip_mean_pooling,
    clip4clip_reference_embeddings,
    fixed_verification_inputs,
    verify_backbone_embeddings,
)


@dataclass
class ConversionReport:
    """What a converter wrote and how closely the reloaded folder reproduces the source."""

    output_dir: Path
    files: list[str]
    check: EmbeddingCheck
    temporal_head: Optional[str]
    dropped_keys: dict[str, str] = field(default_factory=dict)
    saved_processor: bool = False


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


# --------------------------------------------------------------------------------- shared steps


def _finsta_config(backbone_config, overrides: Optional[Mapping[str, Any]], **fields) -> FinstaConfig:
    values = {**fields, **dict(overrides or {})}
    return FinstaConfig(backbone_config=backbone_config, **values)


def _finish(model, output_dir, *, processor, tokenizer, card, inputs, text, video, video_level, tolerance,
            temporal_head, dropped_keys=None) -> ConversionReport:  # fmt: skip
    output_dir = Path(output_dir)
    log(f"writing {output_dir}")
    files = write_converted_folder(model, output_dir, processor=processor, tokenizer=tokenizer, model_card=card)
    log(f"  wrote {', '.join(files)}")
    log("reloading the folder with AutoModel.from_pretrained(..., trust_remote_code=True) and comparing embeddings")
    check = verify_backbone_embeddings(output_dir, inputs, text, video, video_level=video_level, tolerance=tolerance)
    log(
        f"  OK: text max |diff| {check.text_max_abs_diff:.2e}, {check.video_level} max |diff| "
        f"{check.video_max_abs_diff:.2e} (tolerance {tolerance:g})"
    )
    return ConversionReport(
        output_dir, files, check, temporal_head, dict(dropped_keys or {}), saved_processor=processor is not None
    )


# ------------------------------------------------------------------------------------ converters


def convert_clip4clip_original(
    checkpoint: Union[str, os.PathLike],
    output_dir: Union[str, os.PathLike],
    *,
    tokenizer: Optional[str] = None,
    attention_head_dim: int = CLIP4CLIP_ATTENTION_HEAD_DIM,
    config_overrides: Optional[Mapping[str, Any]] = None,
    card_data: Optional[str] = None,
    card_template: Optional[str] = None,
    repo_id: Optional[str] = None,
    num_frames: int = 12,
    tolerance: float = 1e-5,
) -> ConversionReport:
    """An original CLIP4Clip ``pytorch_model.bin.<epoch>`` -> a Finsta-CLIP4Clip folder.

    Sizes come from tensor shapes; the header (meanP/seqTransf) from the keys; seqLSTM, tightTransf
    and 3-D patch checkpoints are refused. ``tokenizer`` (a folder or cached Hub id of a CLIP
    tokenizer, e.g. ``openai/clip-vit-base-patch32``) adds the tokenizer/processor, which the original
    checkpoint lacks. A DataParallel/DDP checkpoint (every key prefixed ``module.``) is stripped of the
    prefix once, before anything reads it.
    """
    log(f"loading {checkpoint}")
    # A DataParallel/DDP ``module.`` prefix is removed once, here: the conversion and the reference
    # forward of the check both read the stripped weights.
    weights = strip_data_parallel_prefix(load_original_checkpoint(checkpoint))
    converted = convert_clip4clip_checkpoint(weights, attention_head_dim=attention_head_dim)
    clip_config = converted.clip_config
    log(
        f"  CLIP4Clip {converted.temporal_head}: vision {clip_config.vision_config.num_hidden_layers} layers x "
        f"{clip_config.vision_config.hidden_size}, patch {clip_config.vision_config.patch_size}, image "
        f"{clip_config.vision_config.image_size}; text {clip_config.text_config.num_hidden_layers} layers x "
        f"{clip_config.text_config.hidden_size}, context {clip_config.text_config.max_position_embeddings}, vocab "
        f"{clip_config.text_config.vocab_size}; {len(converted.dropped_keys)} metadata key(s) dropped"
    )
    fields: dict[str, Any] = {"temporal_head": converted.temporal_head}
    if converted.temporal_head == "seqTransf":
        expected_heads = clip_config.projection_dim // 64
        if converted.temporal_num_attention_heads != expected_heads:
            raise CheckpointConversionError(
                f"seqTransf header: {converted.temporal_num_attention_heads} heads (width "
                f"{clip_config.projection_dim} / attention_head_dim {attention_head_dim}), but Finsta's CLIP4Clip "
                f"head uses width // 64 = {expected_heads}, as CLIP4Clip does"
            )
        fields.update(temporal_num_layers=converted.temporal_num_layers, num_frame_positions=converted.num_frame_positions)
    config = _finsta_config(clip_config, config_overrides, **fields)
    model = FinstaModel(config).eval()
    model.backbone.load_state_dict(converted.clip_state_dict, strict=True)
    if converted.temporal_head == "seqTransf":
        check_state_dict_keys(
            model.host_adapter.state_dict().keys(), converted.temporal_state_dict.keys(), "Finsta seqTransf head"
        )
        model.host_adapter.load_state_dict(converted.temporal_state_dict, strict=True)

    loaded_tokenizer = load_tokenizer(tokenizer, required=True)
    if loaded_tokenizer is not None:
        vocab_size, eos_id = clip_config.text_config.vocab_size, clip_config.text_config.eos_token_id
        if len(loaded_tokenizer) > vocab_size or loaded_tokenizer.eos_token_id != eos_id:
            raise CheckpointConversionError(
                f"--tokenizer {tokenizer!r} ({len(loaded_tokenizer)} tokens, end token id "
                f"{loaded_tokenizer.eos_token_id}) does not fit the checkpoint ({vocab_size} token embeddings, end "
                f"token = highest id {eos_id}); pass the CLIP tokenizer the checkpoint was trained with"
            )
    if loaded_tokenizer is None:
        log("  no --tokenizer given: the folder gets no tokenizer/processor (CLIP4Clip checkpoints carry none)")
    processor = processor_from_source(
        None, "clip", image_size=clip_config.vision_config.image_size, tokenizer=loaded_tokenizer,
        num_frames=num_frames, frame_sampling="fps", max_length=min(32, clip_config.text_config.max_position_embeddings),
    )  # fmt: skip
    inputs = fixed_verification_inputs(
        clip_config.text_config.vocab_size, clip_config.text_config.max_position_embeddings,
        clip_config.vision_config.image_size, num_channels=clip_config.vision_config.num_channels,
    )  # fmt: skip
    text, video = clip4clip_reference_embeddings(
        weights, inputs["input_ids"], inputs["pixel_values"], inputs["video_mask"], attention_head_dim
    )
    provenance = {
        "source": os.path.basename(os.fspath(checkpoint)),
        "source_sha256": file_sha256(checkpoint),
        "converter": f"{converter_version()}: finsta-convert-clip4clip",
        "temporal_head": converted.temporal_head,
        "dropped_keys": sorted(converted.dropped_keys),
    }
    default_card = f"finsta-clip4clip-vit-b-32-{converted.temporal_head}"
    card = conversion_model_card(
        card_data, card_template, default_card, repo_id, provenance,
        preprocessing_facts(processor, clip_config.vision_config.image_size, "clip"),
    )  # fmt: skip
    return _finish(
        model, output_dir, processor=processor, tokenizer=loaded_tokenizer, card=card, inputs=inputs, text=text,
        video=video, video_level="video", tolerance=tolerance, temporal_head=converted.temporal_head,
        dropped_keys=converted.dropped_keys,
    )  # fmt: skip


def _copy_source_into_backbone(finsta: FinstaModel, source_model) -> None:
    source_state = source_model.state_dict()
    check_state_dict_keys(finsta.backbone.state_dict().keys(), source_state.keys(), "source checkpoint -> Finsta backbone")
    finsta.backbone.load_state_dict(source_state, strict=True)


def _init_temporal_head_from_clip_text(finsta: FinstaModel) -> bool:
    """CLIP4Clip's seqTransf init: temporal layer i <- CLIP text layer i, frame positions <- text positions.

    Only possible when the text width equals the projection width (true for ViT-B/32 and B/16);
    returns whether it was done.
    """
    text_model = finsta.backbone.text_model
    adapter = finsta.host_adapter
    text_layers = text_model.encoder.layers
    temporal_layers = adapter.temporal_encoder.layers
    positions = text_model.embeddings.position_embedding.weight
    if (
        text_model.config.hidden_size != adapter.frame_position_embeddings.embedding_dim
        or len(temporal_layers) > len(text_layers)
        or positions.shape != adapter.frame_position_embeddings.weight.shape
        or text_model.config.num_attention_heads != temporal_layers[0].self_attn.num_heads
    ):
        return False
    with torch.no_grad():
        adapter.frame_position_embeddings.weight.copy_(positions)
        for temporal_layer, text_layer in zip(temporal_layers, text_layers):
            temporal_layer.load_state_dict(text_layer.state_dict(), strict=True)
    return True


def convert_clip(
    source: str,
    output_dir: Union[str, os.PathLike],
    *,
    temporal_head: str = "meanP",
    temporal_num_layers: int = 4,
    local_files_only: bool = False,
    config_overrides: Optional[Mapping[str, Any]] = None,
    card_data: Optional[str] = None,
    card_template: Optional[str] = None,
    repo_id: Optional[str] = None,
    num_frames: int = 12,
    tolerance: float = 1e-5,
) -> ConversionReport:
    """A transformers CLIP checkpoint (folder or Hub id, from the cache when offline) -> Finsta-CLIP4Clip.

    With ``temporal_head="seqTransf"`` the header is initialised as CLIP4Clip does (text layers and
    text position table, 77 rows for OpenAI CLIP) when the widths allow, else randomly; the check then
    compares per-frame image embeddings, since the source has no temporal head to compare with.
    """
    source_model = _load_host_source(source, ("clip",), local_files_only)
    backbone_config = source_model.config
    fields: dict[str, Any] = {"temporal_head": temporal_head}
    if temporal_head == "seqTransf":
        fields.update(
            temporal_num_layers=temporal_num_layers,
            num_frame_positions=backbone_config.text_config.max_position_embeddings,
        )
    config = _finsta_config(backbone_config, config_overrides, **fields)
    model = FinstaModel(config).eval()
    _copy_source_into_backbone(model, source_model)
    video_level = "video"
    if temporal_head == "seqTransf":
        video_level = "frames"
        if _init_temporal_head_from_clip_text(model):
            log(f"  seqTransf head initialised from the first {temporal_num_layers} CLIP text layers (as CLIP4Clip)")
        else:
            log("  seqTransf head randomly initialised (text width differs from the projection width)")

    inputs = host_verification_inputs(backbone_config)
    with torch.no_grad():
        text = source_model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
        frames = source_model.get_image_features(pixel_values=inputs["pixel_values"].flatten(0, 1)).pooler_output
    if video_level == "video":  # CLIP4Clip meanP over the source's own frame embeddings
        video = clip4clip_mean_pooling(frames.view(*inputs["pixel_values"].shape[:2], -1), inputs["video_mask"])
    else:
        video = frames

    return _finish_from_transformers_source(
        model, output_dir, source, source_model, local_files_only=local_files_only, num_frames=num_frames,
        sampling="fps", max_text_length=32, default_card=f"finsta-clip4clip-vit-b-32-{temporal_head}",
        converter="finsta-convert-clip", extra_provenance={"temporal_head": temporal_head}, card_data=card_data,
        card_template=card_template, repo_id=repo_id, inputs=inputs, text=text, video=video,
        video_level=video_level, tolerance=tolerance, temporal_head=temporal_head,
    )  # fmt: skip


def convert_xclip(
    source: str,
    output_dir: Union[str, os.PathLike],
    *,
    local_files_only: bool = False,
    config_overrides: Optional[Mapping[str, Any]] = None,
    card_data: Optional[str] = None,
    card_template: Optional[str] = None,
    repo_id: Optional[str] = None,
    tolerance: float = 1e-5,
) -> ConversionReport:
    """A transformers X-CLIP checkpoint (folder or cached Hub id) -> Finsta-X-CLIP.

    The video embedding checked is X-CLIP's own ``get_video_features`` (per-frame CLIP with
    cross-frame communication, then the multi-frame integration Transformer); the text embedding is
    its video-independent ``get_text_features`` (the prompt generator is not used by Finsta).
    """
    source_model = _load_host_source(source, ("xclip",), local_files_only)
    backbone_config = source_model.config
    model = FinstaModel(_finsta_config(backbone_config, config_overrides)).eval()
    _copy_source_into_backbone(model, source_model)
    num_frames = backbone_config.vision_config.num_frames
    inputs = host_verification_inputs(backbone_config, num_frames=num_frames, every_frame_real=True)  # X-CLIP has no frame mask
    with torch.no_grad():
        text = source_model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
        video = source_model.get_video_features(pixel_values=inputs["pixel_values"]).pooler_output

    return _finish_from_transformers_source(
        model, output_dir, source, source_model, local_files_only=local_files_only, num_frames=num_frames,
        sampling="uniform", max_text_length=77, default_card="finsta-xclip-base-patch32",
        converter="finsta-convert-xclip", extra_provenance={}, card_data=card_data, card_template=card_template,
        repo_id=repo_id, inputs=inputs, text=text, video=video, video_level="video", tolerance=tolerance,
        temporal_head=None,
    )  # fmt: skip


def _finish_from_transformers_source(
    model, output_dir, source: str, source_model, *, local_files_only: bool, num_frames: int, sampling: str,
    max_text_length: int, default_card: str, converter: str, extra_provenance: Mapping[str, Any], card_data,
    card_template, repo_id, inputs, text, video, video_level: str, tolerance: float, temporal_head, tokenizer=None,
) -> ConversionReport:
    """Processor, provenance and card of a conversion from a transformers CLIP / X-CLIP source, then ``_finish``."""
    backbone_config = source_model.config
    backbone_type = backbone_config.model_type
    image_size = host_image_size(backbone_config)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(source, local_files_only)
    processor = None
    if tokenizer is not None:  # (a source without one has already been reported)
        processor = processor_from_source(
            source, backbone_type, image_size=image_size, tokenizer=tokenizer,
            local_files_only=local_files_only, num_frames=num_frames, frame_sampling=sampling,
            max_length=min(max_text_length, backbone_config.text_config.max_position_embeddings),
        )  # fmt: skip
    provenance = {
        "source": source,
        "source_revision": getattr(backbone_config, "_commit_hash", None) or "local folder",
        "converter": f"{converter_version()}: {converter}",
        **extra_provenance,
    }
    card = conversion_model_card(
        card_data, card_template, default_card, repo_id, provenance,
        preprocessing_facts(processor, image_size, backbone_type),
    )  # fmt: skip
    return _finish(
        model, output_dir, processor=processor, tokenizer=tokenizer, card=card, inputs=inputs, text=text, video=video,
        video_level=video_level, tolerance=tolerance, temporal_head=temporal_head,
    )  # fmt: skip


CONVERTER_COMMANDS = {
    "clip": "finsta-convert-clip",
    "xclip": "finsta-convert-xclip",
    "siglip": "finsta-convert-siglip",
    "siglip2": "finsta-convert-siglip",
    "videoprism": "finsta-convert-videoprism",
}
"""The converter command of each host family (named in the error when a source is given to the wrong one)."""

SOURCE_MODEL_CLASSES = {
    "clip": "CLIPModel",
    "xclip": "XCLIPModel",
    "siglip": "SiglipModel", "siglip2": "Siglip2Model", "videoprism": "VideoPrismClipModel"}


def host_verification_inputs(
    backbone_config, *, image_size: Optional[int] = None, num_frames: int = 4, every_frame_real: bool = False
) -> dict[str, torch.Tensor]:
    """`fixed_verification_inputs` sized from a transformers host config (vocabulary, text length, end token,
    channels; ``image_size`` defaults to the vision config's). ``every_frame_real``: no padded frames, for
    hosts without a frame mask (X-CLIP, VideoPrism)."""
    text, vision = backbone_config.text_config, backbone_config.vision_config
    inputs = fixed_verification_inputs(
        text.vocab_size, text.max_position_embeddings, image_size or vision.image_size, num_frames=num_frames,
        eos_token_id=text.eos_token_id, num_channels=vision.num_channels,
    )  # fmt: skip
    if every_frame_real:
        inputs["video_mask"] = torch.ones_like(inputs["video_mask"])
    return inputs


def host_image_size(backbone_config) -> int:
    """Frame side the host was trained at: ``vision_config.image_size``; for SigLIP2 NaFlex (which has none)
    the square frame filling its position table, ``patch_size * sqrt(num_patches)``."""
    vision = backbone_config.vision_config
    if backbone_config.model_type == "siglip2":
        return vision.patch_size * math.isqrt(vision.num_patches)
    size = vision.image_size
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _load_host_source(source: str, expected_types: tuple[str, ...], local_files_only: bool):
    """The source model of a transformers checkpoint (float32, eval) from a folder or the Hub cache, refused
    by name when its ``model_type`` is not one of ``expected_types`` (with the converter to use instead)."""
    import transformers
    from transformers import AutoConfig

    log(f"loading {source}")
    try:
        source_config = AutoConfig.from_pretrained(source, local_files_only=local_files_only)
    except OSError as error:
        raise FileNotFoundError(
            f"{source!r}: no config.json in that folder or in the Hub cache ({error}); download it first "
            "(huggingface-cli download) or pass a local folder"
        ) from error
    model_type = source_config.model_type
    if model_type not in expected_types:
        other = CONVERTER_COMMANDS.get(model_type)
        expected = repr(expected_types[0]) if len(expected_types) == 1 else f"one of {expected_types}"
        raise CheckpointConversionError(
            f"{source!r} is a {model_type!r} checkpoint, expected {expected}" + (f"; use {other}" if other else "")
        )
    model_class = getattr(transformers, SOURCE_MODEL_CLASSES[model_type])
    return model_class.from_pretrained(source, local_files_only=local_files_only, dtype=torch.float32).eval()


def convert_siglip(
    source: str,
    output_dir: Union[str, os.PathLike],
    *,
    temporal_head: str = "meanP",
    temporal_num_layers: int = 4,
    tokenizer: Optional[str] = None,
    local_files_only: bool = False,
    config_overrides: Optional[Mapping[str, Any]] = None,
    card_data: Optional[str] = None,
    card_template: Optional[str] = None,
    repo_id: Optional[str] = None,
    num_frames: int = 12,
    tolerance: float = 1e-5,
) -> ConversionReport:
    """A transformers SigLIP (``SiglipModel``) or SigLIP2 NaFlex (``Siglip2Model``) checkpoint -> Finsta-SigLIP.

    The image tower runs per frame and the CLIP4Clip temporal head (``meanP``, or a freshly initialised
    ``seqTransf``) pools the frames; the check compares text embeddings and the meanP video embedding
    (or, for seqTransf, the per-frame image embeddings) with the source's own. ``tokenizer`` (a folder
    or Hub id) replaces the source's: SigLIP's SentencePiece tokenizer has no character offsets, which
    the processor's caption alignment needs, so give a fast (``tokenizer.json``) one.
    """
    source_model = _load_host_source(source, ("siglip", "siglip2"), local_files_only)
    backbone_config = source_model.config
    model_type = backbone_config.model_type
    fields: dict[str, Any] = {"temporal_head": temporal_head}
    if temporal_head == "seqTransf":
        fields.update(temporal_num_layers=temporal_num_layers, num_frame_positions=max(num_frames, 32))
    model = FinstaModel(_finsta_config(backbone_config, config_overrides, **fields)).eval()
    _copy_source_into_backbone(model, source_model)
    image_size = host_image_size(backbone_config)
    inputs = host_verification_inputs(backbone_config, image_size=image_size)
    frames = inputs["pixel_values"].flatten(0, 1)
    with torch.no_grad():
        text = source_model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
        if model_type == "siglip2":
            from ..backbone_adapters import patchify_frames

            patch_size = backbone_config.vision_config.patch_size
            patches = patchify_frames(frames, patch_size)
            side = image_size // patch_size
            per_frame = source_model.get_image_features(
                pixel_values=patches, pixel_attention_mask=torch.ones(patches.shape[:2], dtype=torch.long),
                spatial_shapes=torch.tensor([[side, side]] * patches.shape[0]),
            ).pooler_output  # fmt: skip
        else:
            per_frame = source_model.get_image_features(pixel_values=frames).pooler_output
    video_level = "frames" if temporal_head == "seqTransf" else "video"
    video = per_frame
    if video_level == "video":  # CLIP4Clip meanP over the source's own frame embeddings
        video = clip4clip_mean_pooling(per_frame.view(*inputs["pixel_values"].shape[:2], -1), inputs["video_mask"])
    name = "siglip2-base-patch16-naflex" if model_type == "siglip2" else "siglip-base-patch16-224"
    return _finish_from_transformers_source(
        model, output_dir, source, source_model, local_files_only=local_files_only, num_frames=num_frames,
        sampling="uniform", max_text_length=64, default_card=f"finsta-{name}", converter="finsta-convert-siglip",
        extra_provenance={"temporal_head": temporal_head}, card_data=card_data, card_template=card_template,
        repo_id=repo_id, inputs=inputs, text=text, video=video, video_level=video_level, tolerance=tolerance,
        temporal_head=temporal_head, tokenizer=load_tokenizer(tokenizer, local_files_only, required=True) if tokenizer else None,
    )  # fmt: skip


def convert_videoprism(
    source: str,
    output_dir: Union[str, os.PathLike],
    *,
    local_files_only: bool = False,
    config_overrides: Optional[Mapping[str, Any]] = None,
    card_data: Optional[str] = None,
    card_template: Optional[str] = None,
    repo_id: Optional[str] = None,
    tolerance: float = 1e-5,
) -> ConversionReport:
    """A transformers VideoPrism video-text checkpoint (``VideoPrismClipModel``) -> Finsta-VideoPrism.

    The video embedding checked is VideoPrism's own ``get_video_features`` (factorised space-time
    encoder, auxiliary layers, attention pooling) on exactly ``vision_config.num_frames`` frames.
    """
    source_model = _load_host_source(source, ("videoprism",), local_files_only)
    backbone_config = source_model.config
    model = FinstaModel(_finsta_config(backbone_config, config_overrides)).eval()
    _copy_source_into_backbone(model, source_model)
    num_frames = backbone_config.vision_config.num_frames
    inputs = host_verification_inputs(  # VideoPrism has no frame mask
        backbone_config, image_size=host_image_size(backbone_config), num_frames=num_frames, every_frame_real=True
    )
    with torch.no_grad():
        text = source_model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
        video = source_model.get_video_features(pixel_values_videos=inputs["pixel_values"]).pooler_output
    return _finish_from_transformers_source(
        model, output_dir, source, source_model, local_files_only=local_files_only, num_frames=num_frames,
        sampling="uniform", max_text_length=64, default_card="finsta-videoprism-lvt-base-f16r288",
        converter="finsta-convert-videoprism", extra_provenance={}, card_data=card_data, card_template=card_template,
        repo_id=repo_id, inputs=inputs, text=text, video=video.reshape(video.shape[0], -1), video_level="video",
        tolerance=tolerance, temporal_head=None,
    )  # fmt: skip


__all__ = [
    "CONVERTER_COMMANDS",
    "ConversionReport",
    "convert_clip",
    "convert_clip4clip_original",
    "convert_siglip",
    "convert_videoprism",
    "convert_xclip",
    "host_image_size",
    "write_converted_folder",
]
