"""Command-line converters: CLIP4Clip training checkpoints, transformers CLIP and X-CLIP -> Finsta folders.

Each converter builds a ``FinstaModel`` whose backbone (and CLIP4Clip temporal head) carries the
source weights and whose Finsta head is freshly initialised, writes safetensors + config + remote
code + processor (or tokenizer) + model card, then reloads the folder with
``AutoModel.from_pretrained(folder, trust_remote_code=True)`` and checks that the backbone's text
and video embeddings equal the source's on a fixed input before reporting success. The state-dict
work itself lives in ``checkpoint_conversion.py``; this module only orchestrates it.

Console scripts: ``finsta-convert-clip4clip``, ``finsta-convert-clip``, ``finsta-convert-xclip``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F

from .checkpoint_conversion import (
    CheckpointConversionError,
    check_state_dict_keys,
    convert_clip4clip_checkpoint,
    load_original_checkpoint,
)
from .configuration_finsta import FinstaConfig
from .hub_publishing import (
    ConversionVerificationError,
    EmbeddingCheck,
    converter_version,
    default_model_cards_dir,
    fixed_verification_inputs,
    load_card_data,
    log,
    render_model_card,
    verify_backbone_embeddings,
    write_converted_folder,
)
from .modeling_finsta import FinstaModel

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ConversionReport:
    """What a converter wrote and how closely the reloaded folder reproduces the source."""

    output_dir: Path
    files: list[str]
    check: EmbeddingCheck
    temporal_head: Optional[str]
    dropped_keys: dict[str, str] = field(default_factory=dict)
    saved_processor: bool = False


# ------------------------------------------------------------------ reference forward, original layout
# The CLIP4Clip check compares against the *original* weights run in their own layout (fused
# in_proj attention, ``x @ proj`` projections), so a wrong q/k/v split or a missing transpose in the
# conversion fails the check instead of being copied faithfully into the published folder.


def _original_block(x: torch.Tensor, weights: Mapping[str, torch.Tensor], prefix: str, num_heads: int, attn_mask=None):
    width = x.shape[-1]
    h = F.layer_norm(x, (width,), weights[prefix + "ln_1.weight"], weights[prefix + "ln_1.bias"])
    attended, _ = F.multi_head_attention_forward(
        h, h, h, width, num_heads,
        weights[prefix + "attn.in_proj_weight"], weights[prefix + "attn.in_proj_bias"],
        None, None, False, 0.0,
        weights[prefix + "attn.out_proj.weight"], weights[prefix + "attn.out_proj.bias"],
        training=False, need_weights=False, attn_mask=attn_mask,
    )  # fmt: skip
    x = x + attended
    h = F.layer_norm(x, (width,), weights[prefix + "ln_2.weight"], weights[prefix + "ln_2.bias"])
    h = F.linear(h, weights[prefix + "mlp.c_fc.weight"], weights[prefix + "mlp.c_fc.bias"])
    h = h * torch.sigmoid(1.702 * h)
    return x + F.linear(h, weights[prefix + "mlp.c_proj.weight"], weights[prefix + "mlp.c_proj.bias"])


def _original_num_blocks(weights: Mapping[str, torch.Tensor], blocks_prefix: str) -> int:
    return len({key[len(blocks_prefix) :].split(".")[0] for key in weights if key.startswith(blocks_prefix)})


@torch.no_grad()
def clip4clip_reference_embeddings(
    weights: Mapping[str, torch.Tensor],
    input_ids: torch.Tensor,
    pixel_values: torch.Tensor,
    video_mask: torch.Tensor,
    attention_head_dim: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP4Clip's own text embedding and normalised video embedding, computed from original weights."""
    p = "clip."
    weights = {key: value.float() for key, value in weights.items()}
    # text: OpenAI CLIP encode_text (causal mask, end token = highest id)
    length = input_ids.shape[1]
    x = weights[p + "token_embedding.weight"][input_ids] + weights[p + "positional_embedding"][:length]
    causal = torch.full((length, length), float("-inf")).triu_(1)
    x = x.transpose(0, 1)
    for index in range(_original_num_blocks(weights, p + "transformer.resblocks.")):
        x = _original_block(x, weights, f"{p}transformer.resblocks.{index}.", x.shape[-1] // attention_head_dim, causal)
    x = x.transpose(0, 1)
    x = F.layer_norm(x, (x.shape[-1],), weights[p + "ln_final.weight"], weights[p + "ln_final.bias"])
    text = x[torch.arange(x.shape[0]), input_ids.argmax(dim=-1)] @ weights[p + "text_projection"]

    # frames: OpenAI CLIP encode_image per frame
    batch, frames = pixel_values.shape[:2]
    conv = weights[p + "visual.conv1.weight"]
    x = F.conv2d(pixel_values.flatten(0, 1), conv, stride=conv.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    cls = weights[p + "visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + weights[p + "visual.positional_embedding"]
    x = F.layer_norm(x, (x.shape[-1],), weights[p + "visual.ln_pre.weight"], weights[p + "visual.ln_pre.bias"])
    x = x.transpose(0, 1)
    for index in range(_original_num_blocks(weights, p + "visual.transformer.resblocks.")):
        x = _original_block(x, weights, f"{p}visual.transformer.resblocks.{index}.", x.shape[-1] // attention_head_dim)
    x = F.layer_norm(x[0], (x.shape[-1],), weights[p + "visual.ln_post.weight"], weights[p + "visual.ln_post.bias"])
    frame_embeds = (x @ weights[p + "visual.proj"]).view(batch, frames, -1)

    # CLIP4Clip similarity header (seqTransf: frame positions + transformerClip + residual)
    if "frame_position_embeddings.weight" in weights:
        width = frame_embeds.shape[-1]
        heads = width // attention_head_dim
        x = frame_embeds + weights["frame_position_embeddings.weight"][:frames].unsqueeze(0)
        mask = ((1.0 - video_mask.float()).unsqueeze(1) * -1000000.0).expand(-1, frames, -1)
        mask = mask.repeat_interleave(heads, dim=0)
        x = x.transpose(0, 1)
        for index in range(_original_num_blocks(weights, "transformerClip.resblocks.")):
            x = _original_block(x, weights, f"transformerClip.resblocks.{index}.", heads, mask)
        frame_embeds = x.transpose(0, 1) + frame_embeds
    frame_embeds = frame_embeds / frame_embeds.norm(dim=-1, keepdim=True)
    valid = video_mask.float().unsqueeze(-1)
    video = (frame_embeds * valid).sum(1) / valid.sum(1).clamp(min=1.0)
    return text, video / video.norm(dim=-1, keepdim=True)


# --------------------------------------------------------------------------------- shared steps


def _finsta_config(backbone_config, overrides: Optional[Mapping[str, Any]], **fields) -> FinstaConfig:
    values = {**fields, **dict(overrides or {})}
    return FinstaConfig(backbone_config=backbone_config, **values)


def _sha256(path: Union[str, os.PathLike]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_tokenizer(source: Optional[str], local_files_only: bool = False, required: bool = False):
    if source is None:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError) as error:
        if required:
            raise FileNotFoundError(f"could not load a tokenizer from {source!r}: {error}") from error
        log(f"  no tokenizer found in {source!r} ({type(error).__name__}); the folder will have none")
        return None


def _image_processor_settings(source: Optional[str], local_files_only: bool = False) -> Optional[SimpleNamespace]:
    """The source's ``preprocessor_config.json`` as attributes (read as JSON: no torchvision needed)."""
    if source is None:
        return None
    from transformers.utils import cached_file

    try:
        path = cached_file(
            source, "preprocessor_config.json", local_files_only=local_files_only,
            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
        )  # fmt: skip
    except OSError:
        path = None
    if path is None:
        return None
    settings = json.loads(Path(path).read_text(encoding="utf-8"))
    size, crop = settings.get("size"), settings.get("crop_size")
    if isinstance(size, int):
        settings["size"] = {"shortest_edge": size}
    if isinstance(crop, int):
        settings["crop_size"] = {"height": crop, "width": crop}
    if "image_mean" not in settings or "image_std" not in settings:
        return None
    return SimpleNamespace(**settings)


def _build_processor(
    tokenizer, backbone_type: str, image_settings, num_frames: int, frame_sampling: str, max_length: int, image_size: int
):
    """A ``FinstaProcessor`` over the source's tokenizer and image statistics (the backbone family's
    preset at the model's image size when the source has none); None without a tokenizer."""
    if tokenizer is None:
        return None
    try:
        from .processing_finsta import FinstaProcessor
        from .video_io import VideoPreprocessor, preprocessor_for_backbone
    except ImportError as error:  # processor module not available: the tokenizer alone is saved
        log(f"  FinstaProcessor unavailable ({error}); saving the tokenizer only")
        return None
    if image_settings is not None:
        video_preprocessing = VideoPreprocessor.from_image_processor(image_settings).to_dict()
    else:
        video_preprocessing = preprocessor_for_backbone(backbone_type, size=image_size, crop_size=image_size).to_dict()
    return FinstaProcessor(
        tokenizer=tokenizer,
        video_preprocessing=video_preprocessing,
        backbone_type=backbone_type,
        num_frames=num_frames,
        frame_sampling=frame_sampling,
        max_length=max_length,
    )


def _preprocessing_facts(processor, image_size: int, backbone_type: str) -> dict[str, Any]:
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


def _model_card(card_data: Optional[str], card_template: Optional[str], default_card: str, repo_id, provenance, preprocessing):
    """Render the card from ``card_data`` (a data file path or a name in ``model_cards/``)."""
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
    attention_head_dim: int = 64,
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
    checkpoint lacks.
    """
    log(f"loading {checkpoint}")
    weights = load_original_checkpoint(checkpoint)
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

    loaded_tokenizer = _load_tokenizer(tokenizer, required=True)
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
    processor = _build_processor(
        loaded_tokenizer, "clip", None, num_frames, "fps", min(32, clip_config.text_config.max_position_embeddings),
        clip_config.vision_config.image_size,
    )
    inputs = fixed_verification_inputs(
        clip_config.text_config.vocab_size, clip_config.text_config.max_position_embeddings,
        clip_config.vision_config.image_size, num_channels=clip_config.vision_config.num_channels,
    )  # fmt: skip
    text, video = clip4clip_reference_embeddings(
        weights, inputs["input_ids"], inputs["pixel_values"], inputs["video_mask"], attention_head_dim
    )
    provenance = {
        "source": os.path.basename(os.fspath(checkpoint)),
        "source_sha256": _sha256(checkpoint),
        "converter": f"{converter_version()}: finsta-convert-clip4clip",
        "temporal_head": converted.temporal_head,
        "dropped_keys": sorted(converted.dropped_keys),
    }
    default_card = f"finsta-clip4clip-vit-b-32-{converted.temporal_head}"
    card = _model_card(
        card_data, card_template, default_card, repo_id, provenance,
        _preprocessing_facts(processor, clip_config.vision_config.image_size, "clip"),
    )  # fmt: skip
    return _finish(
        model, output_dir, processor=processor, tokenizer=loaded_tokenizer, card=card, inputs=inputs, text=text,
        video=video, video_level="video", tolerance=tolerance, temporal_head=converted.temporal_head,
        dropped_keys=converted.dropped_keys,
    )  # fmt: skip


def _load_source_model(source: str, expected_type: str, local_files_only: bool):
    from transformers import AutoConfig, CLIPModel, XCLIPModel

    log(f"loading {source}")
    try:
        source_config = AutoConfig.from_pretrained(source, local_files_only=local_files_only)
    except OSError as error:
        raise FileNotFoundError(
            f"{source!r}: no config.json in that folder or in the Hub cache ({error}); download it first "
            "(huggingface-cli download) or pass a local folder"
        ) from error
    if source_config.model_type != expected_type:
        other = {"clip": "finsta-convert-clip", "xclip": "finsta-convert-xclip"}.get(source_config.model_type)
        hint = f"; use {other}" if other else ""
        raise CheckpointConversionError(
            f"{source!r} is a {source_config.model_type!r} checkpoint, expected {expected_type!r}{hint}"
        )
    model_class = CLIPModel if expected_type == "clip" else XCLIPModel
    model = model_class.from_pretrained(source, local_files_only=local_files_only, dtype=torch.float32).eval()
    return model


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
    source_model = _load_source_model(source, "clip", local_files_only)
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

    inputs = fixed_verification_inputs(
        backbone_config.text_config.vocab_size, backbone_config.text_config.max_position_embeddings,
        backbone_config.vision_config.image_size, eos_token_id=backbone_config.text_config.eos_token_id,
        num_channels=backbone_config.vision_config.num_channels,
    )  # fmt: skip
    with torch.no_grad():
        text = source_model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
        frames = source_model.get_image_features(pixel_values=inputs["pixel_values"].flatten(0, 1)).pooler_output
    if video_level == "video":  # CLIP4Clip meanP over the source's own frame embeddings
        per_frame = F.normalize(frames.view(*inputs["pixel_values"].shape[:2], -1), dim=-1)
        valid = inputs["video_mask"].float().unsqueeze(-1)
        video = F.normalize((per_frame * valid).sum(1) / valid.sum(1), dim=-1)
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
    source_model = _load_source_model(source, "xclip", local_files_only)
    backbone_config = source_model.config
    model = FinstaModel(_finsta_config(backbone_config, config_overrides)).eval()
    _copy_source_into_backbone(model, source_model)
    num_frames = backbone_config.vision_config.num_frames
    inputs = fixed_verification_inputs(
        backbone_config.text_config.vocab_size, backbone_config.text_config.max_position_embeddings,
        backbone_config.vision_config.image_size, num_frames=num_frames,
        eos_token_id=backbone_config.text_config.eos_token_id, num_channels=backbone_config.vision_config.num_channels,
    )  # fmt: skip
    inputs["video_mask"] = torch.ones_like(inputs["video_mask"])  # X-CLIP has no frame mask
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
    card_template, repo_id, inputs, text, video, video_level: str, tolerance: float, temporal_head,
) -> ConversionReport:
    """Processor, provenance and card of a conversion from a transformers CLIP / X-CLIP source, then `_finish`."""
    backbone_config = source_model.config
    backbone_type = backbone_config.model_type
    tokenizer = _load_tokenizer(source, local_files_only)
    image_settings = _image_processor_settings(source, local_files_only)
    processor = _build_processor(
        tokenizer, backbone_type, image_settings, num_frames, sampling,
        min(max_text_length, backbone_config.text_config.max_position_embeddings), backbone_config.vision_config.image_size,
    )  # fmt: skip
    provenance = {
        "source": source,
        "source_revision": getattr(backbone_config, "_commit_hash", None) or "local folder",
        "converter": f"{converter_version()}: {converter}",
        **extra_provenance,
    }
    card = _model_card(
        card_data, card_template, default_card, repo_id, provenance,
        _preprocessing_facts(processor, backbone_config.vision_config.image_size, backbone_type),
    )  # fmt: skip
    return _finish(
        model, output_dir, processor=processor, tokenizer=tokenizer, card=card, inputs=inputs, text=text, video=video,
        video_level=video_level, tolerance=tolerance, temporal_head=temporal_head,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ CLIs


def _parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"error: --set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", help="folder to write (created if needed)")
    parser.add_argument("--repo-id", default=None, help="Hub repo the folder is meant for (used in the model card)")
    parser.add_argument("--card-data", default=None, help="model card data file or name in model_cards/")
    parser.add_argument("--card-template", default=None, help="model card template (default: model_cards/template.md)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="FinstaConfig field for the new head, e.g. --set graph_hidden_size=512 (JSON values)",
    )  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=1e-5, help="max |diff| allowed in the embedding check")


def _run(convert, **kwargs) -> int:
    try:
        report = convert(**kwargs)
    except (CheckpointConversionError, ConversionVerificationError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", flush=True)
        return 2
    log(f"success: {report.output_dir}")
    return 0


def convert_clip4clip_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="finsta-convert-clip4clip",
        description="Convert an original CLIP4Clip training checkpoint (meanP or seqTransf) to a Finsta folder.",
    )
    parser.add_argument("checkpoint", help="pytorch_model.bin.<epoch> written by CLIP4Clip (or a .safetensors)")
    _common_arguments(parser)
    parser.add_argument("--tokenizer", default=None, help="CLIP tokenizer folder or cached Hub id to include")
    parser.add_argument("--num-frames", type=int, default=12, help="frames per video in the processor (CLIP4Clip: 12)")
    parser.add_argument(
        "--attention-head-dim", type=int, default=64, help="head width used to infer head counts (64 in all OpenAI CLIPs)"
    )
    args = parser.parse_args(argv)
    return _run(
        convert_clip4clip_original, checkpoint=args.checkpoint, output_dir=args.output_dir, tokenizer=args.tokenizer,
        attention_head_dim=args.attention_head_dim, config_overrides=_parse_overrides(args.overrides),
        card_data=args.card_data, card_template=args.card_template, repo_id=args.repo_id, num_frames=args.num_frames,
        tolerance=args.tolerance,
    )  # fmt: skip


def convert_clip_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="finsta-convert-clip", description="Convert a transformers CLIP checkpoint to a Finsta-CLIP4Clip folder."
    )
    parser.add_argument("source", help="CLIP folder or Hub id (read from the cache when HF_HUB_OFFLINE=1)")
    _common_arguments(parser)
    parser.add_argument("--temporal-head", choices=("meanP", "seqTransf"), default="meanP")
    parser.add_argument("--temporal-num-layers", type=int, default=4)
    parser.add_argument("--num-frames", type=int, default=12)
    parser.add_argument("--local-files-only", action="store_true", help="never contact the Hub")
    args = parser.parse_args(argv)
    return _run(
        convert_clip, source=args.source, output_dir=args.output_dir, temporal_head=args.temporal_head,
        temporal_num_layers=args.temporal_num_layers, local_files_only=args.local_files_only,
        config_overrides=_parse_overrides(args.overrides), card_data=args.card_data,
        card_template=args.card_template, repo_id=args.repo_id, num_frames=args.num_frames, tolerance=args.tolerance,
    )  # fmt: skip


def convert_xclip_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="finsta-convert-xclip", description="Convert a transformers X-CLIP checkpoint to a Finsta-X-CLIP folder."
    )
    parser.add_argument("source", help="X-CLIP folder or Hub id (read from the cache when HF_HUB_OFFLINE=1)")
    _common_arguments(parser)
    parser.add_argument("--local-files-only", action="store_true", help="never contact the Hub")
    args = parser.parse_args(argv)
    return _run(
        convert_xclip, source=args.source, output_dir=args.output_dir, local_files_only=args.local_files_only,
        config_overrides=_parse_overrides(args.overrides), card_data=args.card_data,
        card_template=args.card_template, repo_id=args.repo_id, tolerance=args.tolerance,
    )  # fmt: skip


def push_main(argv: Optional[Sequence[str]] = None) -> int:
    from .hub_publishing import publish_main

    return publish_main(argv)


__all__ = [
    "ConversionReport",
    "clip4clip_reference_embeddings",
    "convert_clip",
    "convert_clip4clip_original",
    "convert_xclip",
    "convert_clip4clip_main",
    "convert_clip_main",
    "convert_xclip_main",
    "push_main",
]
