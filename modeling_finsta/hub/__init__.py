"""Conversion and publishing tools: original CLIP4Clip / transformers CLIP / X-CLIP checkpoints ->
Finsta folders, their model cards, and upload to the Hub. Never travels with a checkpoint.

* ``checkpoint_conversion.py``: pure state-dict remapping (no model is built);
* ``verification.py``: fixed inputs, the reload-and-compare check, the original-layout reference forward;
* ``sources.py``: a source's tokenizer and image statistics -> ``FinstaProcessor`` (``processor_from_source``);
* ``model_cards.py``: card data + template -> ``README.md``;
* ``converters.py``: ``convert_clip4clip_original``, ``convert_clip``, ``convert_xclip``, ``convert_siglip``
  (SigLIP and SigLIP2 NaFlex), ``convert_videoprism``;
* ``export.py``: ``export_host``, a Finsta model's host back in the host's own format (plain
  ``CLIPModel`` / ``XCLIPModel`` folders, the original CLIP4Clip checkpoint layout);
* ``publishing.py``: ``files_to_publish``, ``publish_folder``;
* ``cli.py``: the console scripts ``finsta-convert-clip4clip``, ``finsta-convert-clip``,
  ``finsta-convert-xclip``, ``finsta-push``, ``finsta-export-host``.

Import from here (``from modeling_finsta.hub import convert_clip``), not from the files.
"""

from .checkpoint_conversion import (
    CLIP4CLIP_CLIP_PREFIX,
    CLIP4CLIP_FRAME_POSITION_KEY,
    CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX,
    CLIP_ENCODER_LAYER_KEYS,
    MAX_LISTED_KEYS,
    OPENAI_METADATA_BUFFERS,
    RESIDUAL_BLOCK_SOURCE_KEYS,
    TEMPORAL_FRAME_POSITION_KEY,
    TEMPORAL_LAYERS_PREFIX,
    CheckpointConversionError,
    ConvertedClip4Clip,
    check_state_dict_keys,
    convert_clip4clip_checkpoint,
    convert_clip4clip_temporal_head,
    convert_openai_clip_state_dict,
    convert_residual_block,
    count_residual_blocks,
    detect_clip4clip_temporal_head,
    export_clip4clip_checkpoint,
    export_clip4clip_temporal_head,
    export_openai_clip_state_dict,
    export_residual_block,
    format_key_list,
    fuse_qkv,
    infer_openai_clip_config,
    load_original_checkpoint,
    split_fused_qkv,
    strip_data_parallel_prefix,
)
from .cli import (
    convert_clip4clip_main,
    convert_clip_main,
    convert_siglip_main,
    convert_videoprism_main,
    convert_xclip_main,
    export_host_main,
    publish_main,
    push_main,
)
from .converters import (
    CONVERTER_COMMANDS,
    ConversionReport,
    convert_clip,
    convert_clip4clip_original,
    convert_siglip,
    convert_videoprism,
    convert_xclip,
    host_image_size,
    write_converted_folder,
)
from .export import (
    CLIP4CLIP_ATTENTION_HEAD_DIM,
    CLIP4CLIP_CHECKPOINT_NAME,
    EXPORT_INFO_NAME,
    HOST_EXPORT_FORMATS,
    HostExportError,
    HostExportReport,
    clip4clip_incompatibilities,
    default_export_format,
    distilled_host_embeddings,
    export_host,
    host_processor,
    verify_host_processor,
)
from .model_cards import (
    CARD_REQUIRED_FIELDS,
    conversion_model_card,
    default_model_cards_dir,
    load_card_data,
    preprocessing_facts,
    render_model_card,
)
from .progress import log
from .provenance import CONVERTER_NAME, converter_version, file_sha256
from .publishing import (
    PUBLISHED_PATTERNS,
    REFUSED_PATTERNS,
    PublishError,
    files_to_publish,
    point_auto_map_at_code_repo,
    publish_folder,
)
from .generative import HUB_VIDEO_LLMS, convert_video_llm_to_finsta
from .sources import image_processor_settings, load_tokenizer, processor_from_source
from .verification import (
    CLIP4CLIP_TEMPORAL_LAYER_NORM_EPS,
    CLIP_LAYER_NORM_EPS,
    ConversionVerificationError,
    EmbeddingCheck,
    clip4clip_mean_pooling,
    clip4clip_reference_embeddings,
    compare_embeddings,
    fixed_verification_inputs,
    verify_backbone_embeddings,
)

__all__ = [
    "HUB_VIDEO_LLMS",
    "convert_video_llm_to_finsta",
    # checkpoint_conversion
    "CLIP4CLIP_CLIP_PREFIX",
    "CLIP4CLIP_FRAME_POSITION_KEY",
    "CLIP4CLIP_TEMPORAL_BLOCKS_PREFIX",
    "CLIP_ENCODER_LAYER_KEYS",
    "MAX_LISTED_KEYS",
    "OPENAI_METADATA_BUFFERS",
    "RESIDUAL_BLOCK_SOURCE_KEYS",
    "TEMPORAL_FRAME_POSITION_KEY",
    "TEMPORAL_LAYERS_PREFIX",
    "CheckpointConversionError",
    "ConvertedClip4Clip",
    "check_state_dict_keys",
    "convert_clip4clip_checkpoint",
    "convert_clip4clip_temporal_head",
    "convert_openai_clip_state_dict",
    "convert_residual_block",
    "count_residual_blocks",
    "detect_clip4clip_temporal_head",
    "export_clip4clip_checkpoint",
    "export_clip4clip_temporal_head",
    "export_openai_clip_state_dict",
    "export_residual_block",
    "format_key_list",
    "fuse_qkv",
    "infer_openai_clip_config",
    "load_original_checkpoint",
    "split_fused_qkv",
    "strip_data_parallel_prefix",
    # cli
    "convert_clip4clip_main",
    "convert_clip_main",
    "convert_siglip_main",
    "convert_videoprism_main",
    "convert_xclip_main",
    "export_host_main",
    "publish_main",
    "push_main",
    # converters
    "CONVERTER_COMMANDS",
    "ConversionReport",
    "convert_clip",
    "convert_clip4clip_original",
    "convert_siglip",
    "convert_videoprism",
    "convert_xclip",
    "host_image_size",
    "write_converted_folder",
    # export
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
    # model_cards
    "CARD_REQUIRED_FIELDS",
    "conversion_model_card",
    "default_model_cards_dir",
    "load_card_data",
    "preprocessing_facts",
    "render_model_card",
    # progress, provenance
    "log",
    "CONVERTER_NAME",
    "converter_version",
    "file_sha256",
    # publishing
    "PUBLISHED_PATTERNS",
    "REFUSED_PATTERNS",
    "PublishError",
    "files_to_publish",
    "point_auto_map_at_code_repo",
    "publish_folder",
    # sources
    "image_processor_settings",
    "load_tokenizer",
    "processor_from_source",
    # verification
    "CLIP4CLIP_TEMPORAL_LAYER_NORM_EPS",
    "CLIP_LAYER_NORM_EPS",
    "ConversionVerificationError",
    "EmbeddingCheck",
    "clip4clip_mean_pooling",
    "clip4clip_reference_embeddings",
    "compare_embeddings",
    "fixed_verification_inputs",
    "verify_backbone_embeddings",
]
