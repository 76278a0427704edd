"""Tiny random backbone configs and tokenizers, built in code (nothing is downloaded)."""

from __future__ import annotations

from transformers import CLIPConfig, XCLIPConfig

from modeling_finsta import FinstaConfig
from modeling_finsta.training import build_word_tokenizer, tiny_clip_config as build_tiny_clip_config

WORDS = (
    "a the man woman dog cat ball red blue green yellow circle square triangle moves move left right "
    "towards away from then runs throws is by and takes out fridge opens bottle quickly stays still "
    "up down passes appears leaves while thrown"
).split()
TEXT_VOCAB_SIZE = 400
TEXT_MAX_POSITIONS = 32


def tiny_clip_tokenizer():
    """A real (fast) CLIPTokenizer whose BPE merges spell out WORDS as single tokens; letters otherwise."""
    tokenizer = build_word_tokenizer(WORDS)
    assert len(tokenizer) <= TEXT_VOCAB_SIZE, len(tokenizer)
    return tokenizer


_TOKENIZER = tiny_clip_tokenizer()
BOS_ID, EOS_ID = _TOKENIZER.bos_token_id, _TOKENIZER.eos_token_id


TINY_TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
TINY_TEXT = dict(
    TINY_TOWER, vocab_size=TEXT_VOCAB_SIZE, max_position_embeddings=TEXT_MAX_POSITIONS, bos_token_id=BOS_ID,
    eos_token_id=EOS_ID, pad_token_id=EOS_ID,
)


def tiny_clip_config(image_size: int = 32, patch_size: int = 8, projection_dim: int = 64) -> CLIPConfig:
    """The package's tiny CLIP (`modeling_finsta.training.tiny_clip_config`) at the TINY_TOWER / TINY_TEXT sizes."""
    return build_tiny_clip_config(
        _TOKENIZER, vocab_size=TEXT_VOCAB_SIZE, max_length=TEXT_MAX_POSITIONS, image_size=image_size,
        patch_size=patch_size, width=TINY_TOWER["hidden_size"], num_layers=TINY_TOWER["num_hidden_layers"],
        num_heads=TINY_TOWER["num_attention_heads"],
        intermediate_factor=TINY_TOWER["intermediate_size"] // TINY_TOWER["hidden_size"], projection_dim=projection_dim,
    )  # fmt: skip


def tiny_xclip_config(num_frames: int = 4) -> XCLIPConfig:
    return XCLIPConfig(
        text_config=dict(TINY_TEXT),
        vision_config=dict(
            **TINY_TOWER,
            image_size=32, patch_size=8, num_frames=num_frames, mit_hidden_size=64,
            mit_intermediate_size=128, mit_num_hidden_layers=1, mit_num_attention_heads=2,
        ),
        projection_dim=64,
        prompt_layers=1,
        prompt_num_attention_heads=2,
        prompt_attention_dropout=0.0,
        prompt_projection_dropout=0.0,
    )


def tiny_finsta_config(backbone: str = "clip", **overrides) -> FinstaConfig:
    backbone_config = BACKBONE_BUILDERS[backbone]()
    defaults = dict(
        graph_hidden_size=32, graph_num_heads=4, text_graph_num_layers=1, video_graph_num_layers=2,
        temporal_num_layers=1, num_latent_slots=4, num_frame_positions=16,
    )
    defaults.update(overrides)
    return FinstaConfig(backbone_config=backbone_config, **defaults)


def example_inputs(batch: int = 3, frames: int = 4, length: int = 10, nodes: int = 6, seed: int = 0) -> dict:
    """Random captions and videos with a small hand-made TSG per caption (last caption has no nodes)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, len(WORDS), (batch, length), generator=generator)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    pixel_values = torch.randn(batch, frames, 3, 32, 32, generator=generator)
    # man(obj) -red(attr) ; man -subject-> throw(pred) -object-> ball(obj) ; throw -> quickly(adverb)
    pattern = [1, 2, 3, 1, 4]
    node_types = torch.zeros(batch, nodes, dtype=torch.long)
    node_token_mask = torch.zeros(batch, nodes, length)
    edge_types = torch.zeros(batch, nodes, nodes, dtype=torch.long)
    for b in range(batch - 1 if batch > 1 else batch):
        for n, kind in enumerate(pattern):
            node_types[b, n] = kind
            node_token_mask[b, n, 1 + n] = 1
        edge_types[b, 0, 1] = 1  # object -> attribute
        edge_types[b, 0, 2] = 2  # subject -> predicate
        edge_types[b, 2, 3] = 3  # predicate -> object
        edge_types[b, 2, 4] = 4  # predicate -> adverb
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pixel_values": pixel_values,
        "video_mask": torch.ones(batch, frames, dtype=torch.long),
        "text_scene_graph": {"node_types": node_types, "node_token_mask": node_token_mask, "edge_types": edge_types},
    }


def annotated_video_scene_graph(batch: int = 3, frames: int = 4, tracks: int = 3) -> dict:
    """Two objects moving in opposite directions, plus an empty padded track slot."""
    import torch

    boxes = torch.zeros(batch, frames, tracks, 4)
    node_mask = torch.zeros(batch, frames, tracks, dtype=torch.bool)
    for t in range(frames):
        shift = 0.1 * t
        boxes[:, t, 0] = torch.tensor([0.05 + shift, 0.1, 0.3 + shift, 0.35])
        boxes[:, t, 1] = torch.tensor([0.65 - shift, 0.6, 0.9 - shift, 0.85])
        node_mask[:, t, :2] = True
    relation_types = torch.zeros(batch, frames, tracks, tracks, dtype=torch.long)
    relation_types[:, :, 0, 1] = 1
    return {"boxes": boxes, "node_mask": node_mask, "relation_types": relation_types}


def tiny_siglip_config(image_size: int = 32, patch_size: int = 8, width: int = 32):
    """A tiny random SigLIP (text head onto the ``width``-wide vision space; attention-pooling image head)."""
    from transformers import SiglipConfig

    return SiglipConfig(
        text_config=dict(TINY_TEXT, projection_size=width),
        vision_config=dict(TINY_TOWER, hidden_size=width, intermediate_size=2 * width, image_size=image_size, patch_size=patch_size),
    )


def tiny_siglip2_config(patch_size: int = 8, num_patches: int = 16):
    """A tiny random SigLIP2 NaFlex model (position table of ``num_patches``, a square number)."""
    from transformers import Siglip2Config

    return Siglip2Config(
        text_config=dict(TINY_TEXT, projection_size=TINY_TOWER["hidden_size"]),
        vision_config=dict(TINY_TOWER, patch_size=patch_size, num_patches=num_patches),
    )


def tiny_videoprism_config(num_frames: int = 4, image_size: int = 32, patch_size: int = 8):
    """A tiny random VideoPrismClipModel: factorised spatial (2) / temporal (1) layers, 1 auxiliary layer."""
    from transformers import VideoPrismConfig

    return VideoPrismConfig(
        text_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            vocab_size=TEXT_VOCAB_SIZE, max_position_embeddings=TEXT_MAX_POSITIONS, pad_token_id=EOS_ID,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_attention_heads=4, num_spatial_layers=2, num_temporal_layers=1,
            num_auxiliary_layers=1, num_frames=num_frames, image_size=image_size, tubelet_size=[1, patch_size, patch_size],
        ),
    )  # fmt: skip


BACKBONE_BUILDERS = {
    "clip": lambda: tiny_clip_config(),
    "xclip": lambda: tiny_xclip_config(),
    "siglip": lambda: tiny_siglip_config(),
    "siglip2": lambda: tiny_siglip2_config(),
    "videoprism": lambda: tiny_videoprism_config(),
}
