"""Tests for modeling_finsta.hub.checkpoint_conversion (the pure state-dict conversions).

Synthetic original checkpoints (OpenAI CLIP / CLIP4Clip key names and shapes, random values) are
built here, converted, loaded strictly into transformers modules, and compared against reference
forwards written in this file in the original layouts (fused ``in_proj`` attention through
``F.multi_head_attention_forward``, ``x @ proj`` projections, CLIP4Clip's seqTransf header).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, CLIPTextConfig
from transformers.models.clip.modeling_clip import CLIPEncoder

from modeling_finsta.hub import (
    CheckpointConversionError,
    ConvertedClip4Clip,
    check_state_dict_keys,
    convert_clip4clip_checkpoint,
    convert_clip4clip_temporal_head,
    convert_openai_clip_state_dict,
    convert_residual_block,
    count_residual_blocks,
    detect_clip4clip_temporal_head,
    infer_openai_clip_config,
    load_original_checkpoint,
    split_fused_qkv,
    strip_data_parallel_prefix,
)

HEAD_DIM = 16  # tiny widths: 32 -> 2 heads, 48 -> 3 heads (released models use 64)
CLIP_LAYER_NORM_EPS = 1e-5  # OpenAI CLIP towers: nn.LayerNorm's default
TEMPORAL_LAYER_NORM_EPS = 1e-12  # CLIP4Clip's modules/module_cross.py: its own LayerNorm, variance_epsilon=1e-12
SIZES = dict(
    vision_width=48, vision_layers=2, patch=8, image=32, text_width=32, text_layers=2, context=16, vocab=64, embed=32
)


# ---------------------------------------------------------------- synthetic original checkpoints


def _randn(generator, *shape, scale=None):
    scale = scale if scale is not None else (shape[-1] ** -0.5 if shape else 1.0)
    return torch.randn(*shape, generator=generator) * scale


def make_residual_block(prefix, width, generator):
    """One OpenAI/CLIP4Clip ``ResidualAttentionBlock`` (nn.MultiheadAttention + c_fc/c_proj MLP)."""
    return {
        prefix + "attn.in_proj_weight": _randn(generator, 3 * width, width),
        prefix + "attn.in_proj_bias": _randn(generator, 3 * width, scale=0.1),
        prefix + "attn.out_proj.weight": _randn(generator, width, width),
        prefix + "attn.out_proj.bias": _randn(generator, width, scale=0.1),
        prefix + "ln_1.weight": 1 + _randn(generator, width, scale=0.1),
        prefix + "ln_1.bias": _randn(generator, width, scale=0.1),
        prefix + "mlp.c_fc.weight": _randn(generator, 4 * width, width),
        prefix + "mlp.c_fc.bias": _randn(generator, 4 * width, scale=0.1),
        prefix + "mlp.c_proj.weight": _randn(generator, width, 4 * width),
        prefix + "mlp.c_proj.bias": _randn(generator, width, scale=0.1),
        prefix + "ln_2.weight": 1 + _randn(generator, width, scale=0.1),
        prefix + "ln_2.bias": _randn(generator, width, scale=0.1),
    }


def make_openai_clip_state_dict(prefix="clip.", seed=0, **overrides):
    sizes = {**SIZES, **overrides}
    generator = torch.Generator().manual_seed(seed)
    vision_width, text_width, embed = sizes["vision_width"], sizes["text_width"], sizes["embed"]
    grid = sizes["image"] // sizes["patch"]
    state_dict = {
        prefix + "positional_embedding": _randn(generator, sizes["context"], text_width, scale=0.1),
        prefix + "text_projection": _randn(generator, text_width, embed),
        prefix + "logit_scale": torch.tensor(math.log(1 / 0.07)),
        prefix + "token_embedding.weight": _randn(generator, sizes["vocab"], text_width, scale=0.5),
        prefix + "ln_final.weight": 1 + _randn(generator, text_width, scale=0.1),
        prefix + "ln_final.bias": _randn(generator, text_width, scale=0.1),
        prefix + "visual.class_embedding": _randn(generator, vision_width, scale=0.5),
        prefix + "visual.positional_embedding": _randn(generator, grid * grid + 1, vision_width, scale=0.1),
        prefix + "visual.proj": _randn(generator, vision_width, embed),
        prefix + "visual.conv1.weight": _randn(generator, vision_width, 3, sizes["patch"], sizes["patch"], scale=0.05),
        prefix + "visual.ln_pre.weight": 1 + _randn(generator, vision_width, scale=0.1),
        prefix + "visual.ln_pre.bias": _randn(generator, vision_width, scale=0.1),
        prefix + "visual.ln_post.weight": 1 + _randn(generator, vision_width, scale=0.1),
        prefix + "visual.ln_post.bias": _randn(generator, vision_width, scale=0.1),
    }
    for index in range(sizes["text_layers"]):
        state_dict.update(make_residual_block(f"{prefix}transformer.resblocks.{index}.", text_width, generator))
    for index in range(sizes["vision_layers"]):
        state_dict.update(
            make_residual_block(f"{prefix}visual.transformer.resblocks.{index}.", vision_width, generator)
        )
    return state_dict


def make_clip4clip_state_dict(header="meanP", temporal_layers=2, frame_positions=12, seed=0, **overrides):
    state_dict = make_openai_clip_state_dict("clip.", seed=seed, **overrides)
    if header == "seqTransf":
        generator = torch.Generator().manual_seed(seed + 1)
        width = {**SIZES, **overrides}["embed"]
        state_dict["frame_position_embeddings.weight"] = _randn(generator, frame_positions, width, scale=0.1)
        for index in range(temporal_layers):
            state_dict.update(make_residual_block(f"transformerClip.resblocks.{index}.", width, generator))
    return state_dict


def with_tiny_temporal_variance(state_dict, factor=1e-3):
    """Scale a seqTransf checkpoint so the temporal blocks' LayerNorm inputs have a variance of ~1e-6.

    The projected frame embeddings and frame positions (the blocks' input) and what each block adds
    back (attention ``out_proj``, MLP ``c_proj``) shrink by ``factor``; at that variance LayerNorm eps
    1e-12 and 1e-5 give clearly different outputs, so a wrong temporal eps cannot hide.
    """
    scaled = dict(state_dict)
    for key, value in state_dict.items():
        temporal_residual = key.startswith("transformerClip.") and (".attn.out_proj." in key or ".mlp.c_proj." in key)
        if temporal_residual or key in ("clip.visual.proj", "frame_position_embeddings.weight"):
            scaled[key] = value * factor
    return scaled


# ---------------------------------------------------------------- reference forwards (original layout)


def reference_residual_block(x, state_dict, prefix, num_heads, attn_mask=None, eps=CLIP_LAYER_NORM_EPS):
    """OpenAI ResidualAttentionBlock on sequence-first ``x [L, N, D]`` with the fused in_proj weights."""
    width = x.shape[-1]
    hidden = F.layer_norm(x, (width,), state_dict[prefix + "ln_1.weight"], state_dict[prefix + "ln_1.bias"], eps=eps)
    attended, _ = F.multi_head_attention_forward(
        hidden, hidden, hidden, width, num_heads,
        state_dict[prefix + "attn.in_proj_weight"], state_dict[prefix + "attn.in_proj_bias"],
        None, None, False, 0.0,
        state_dict[prefix + "attn.out_proj.weight"], state_dict[prefix + "attn.out_proj.bias"],
        training=False, need_weights=False, attn_mask=attn_mask,
    )  # fmt: skip
    x = x + attended
    hidden = F.layer_norm(x, (width,), state_dict[prefix + "ln_2.weight"], state_dict[prefix + "ln_2.bias"], eps=eps)
    hidden = F.linear(hidden, state_dict[prefix + "mlp.c_fc.weight"], state_dict[prefix + "mlp.c_fc.bias"])
    hidden = hidden * torch.sigmoid(1.702 * hidden)  # QuickGELU
    return x + F.linear(hidden, state_dict[prefix + "mlp.c_proj.weight"], state_dict[prefix + "mlp.c_proj.bias"])


def reference_encode_text(state_dict, text, prefix="clip.", layers=2, num_heads=2):
    length, width = text.shape[1], state_dict[prefix + "ln_final.weight"].shape[0]
    x = state_dict[prefix + "token_embedding.weight"][text] + state_dict[prefix + "positional_embedding"][:length]
    causal_mask = torch.full((length, length), float("-inf")).triu_(1)
    x = x.permute(1, 0, 2)
    for index in range(layers):
        x = reference_residual_block(x, state_dict, f"{prefix}transformer.resblocks.{index}.", num_heads, causal_mask)
    x = x.permute(1, 0, 2)
    x = F.layer_norm(x, (width,), state_dict[prefix + "ln_final.weight"], state_dict[prefix + "ln_final.bias"])
    eot = x[torch.arange(x.shape[0]), text.argmax(dim=-1)]
    return eot @ state_dict[prefix + "text_projection"]


def reference_encode_image(state_dict, images, prefix="clip.", layers=2, num_heads=3):
    conv = state_dict[prefix + "visual.conv1.weight"]
    width, patch = conv.shape[0], conv.shape[-1]
    x = F.conv2d(images, conv, stride=patch)
    x = x.reshape(x.shape[0], width, -1).permute(0, 2, 1)
    class_token = state_dict[prefix + "visual.class_embedding"] + torch.zeros(x.shape[0], 1, width)
    x = torch.cat([class_token, x], dim=1) + state_dict[prefix + "visual.positional_embedding"]
    x = F.layer_norm(
        x, (width,), state_dict[prefix + "visual.ln_pre.weight"], state_dict[prefix + "visual.ln_pre.bias"]
    )
    x = x.permute(1, 0, 2)
    for index in range(layers):
        x = reference_residual_block(x, state_dict, f"{prefix}visual.transformer.resblocks.{index}.", num_heads)
    x = x.permute(1, 0, 2)
    cls = F.layer_norm(
        x[:, 0], (width,), state_dict[prefix + "visual.ln_post.weight"], state_dict[prefix + "visual.ln_post.bias"]
    )
    return cls @ state_dict[prefix + "visual.proj"]


def reference_seq_transf(state_dict, frame_embeds, video_mask, layers, num_heads, eps=TEMPORAL_LAYER_NORM_EPS):
    """CLIP4Clip ``_loose_similarity`` seqTransf branch plus its normalised masked mean pooling.

    ``transformerClip`` is CLIP4Clip's ``module_cross.Transformer``, whose LayerNorms use eps 1e-12.
    """
    batch, frames, _ = frame_embeds.shape
    original = frame_embeds
    positions = state_dict["frame_position_embeddings.weight"][torch.arange(frames)]
    x = frame_embeds + positions.unsqueeze(0)
    extended_mask = (1.0 - video_mask.unsqueeze(1)) * -1000000.0
    extended_mask = extended_mask.expand(-1, frames, -1).repeat_interleave(num_heads, dim=0)
    x = x.permute(1, 0, 2)
    for index in range(layers):
        x = reference_residual_block(
            x, state_dict, f"transformerClip.resblocks.{index}.", num_heads, extended_mask, eps=eps
        )
    x = x.permute(1, 0, 2) + original
    per_frame = x
    x = x / x.norm(dim=-1, keepdim=True)
    mask = video_mask.unsqueeze(-1)
    pooled = (x * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return per_frame, pooled / pooled.norm(dim=-1, keepdim=True)


def make_text_ids(batch=3, length=16, vocab=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros(batch, length, dtype=torch.long)
    for row in range(batch):
        eot_position = 3 + row * 4
        ids[row, 0] = vocab - 2  # start of text
        ids[row, 1:eot_position] = torch.randint(1, vocab - 2, (eot_position - 1,), generator=generator)
        ids[row, eot_position] = vocab - 1  # end of text, the highest id as in OpenAI's vocabulary
    return ids


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def seq_transf_checkpoint():
    return make_clip4clip_state_dict("seqTransf", temporal_layers=2, frame_positions=12)


@pytest.fixture(scope="module")
def converted_seq_transf(seq_transf_checkpoint):
    return convert_clip4clip_checkpoint(seq_transf_checkpoint, attention_head_dim=HEAD_DIM)


@pytest.fixture(scope="module")
def loaded_clip(converted_seq_transf):
    model = CLIPModel(converted_seq_transf.clip_config).eval()
    model.load_state_dict(converted_seq_transf.clip_state_dict, strict=True)
    return model


class TemporalHead(nn.Module):
    """Mirrors the Finsta seqTransf head's parameter names (without the ``host_adapter.`` prefix)."""

    def __init__(self, width, num_layers, num_heads, num_positions, attn_implementation):
        super().__init__()
        config = CLIPTextConfig(
            hidden_size=width,
            num_attention_heads=num_heads,
            num_hidden_layers=num_layers,
            intermediate_size=4 * width,
            hidden_act="quick_gelu",
            layer_norm_eps=TEMPORAL_LAYER_NORM_EPS,
        )
        config._attn_implementation = attn_implementation
        self.frame_position_embeddings = nn.Embedding(num_positions, width)
        self.temporal_encoder = CLIPEncoder(config)


# ---------------------------------------------------------------- split / block


def test_split_fused_qkv_takes_q_k_v_in_order_and_returns_independent_tensors():
    weight = torch.arange(3 * 4 * 4, dtype=torch.float32).reshape(12, 4)
    bias = torch.arange(12, dtype=torch.float32)
    q_weight, q_bias, k_weight, k_bias, v_weight, v_bias = split_fused_qkv(weight, bias)
    torch.testing.assert_close(q_weight, weight[0:4])
    torch.testing.assert_close(k_weight, weight[4:8])
    torch.testing.assert_close(v_weight, weight[8:12])
    assert q_bias.tolist() == [0, 1, 2, 3] and k_bias.tolist() == [4, 5, 6, 7] and v_bias.tolist() == [8, 9, 10, 11]
    storages = {t.untyped_storage().data_ptr() for t in (q_weight, k_weight, v_weight, weight)}
    assert len(storages) == 4, "split tensors must not share storage (safetensors refuses shared tensors)"


@pytest.mark.parametrize(
    "weight_shape, bias_shape, message",
    [((12, 5), (12,), "3 \\* width, width"), ((12, 4), (9,), "in_proj_bias"), ((12,), (12,), "3 \\* width")],
)
def test_split_fused_qkv_rejects_bad_shapes(weight_shape, bias_shape, message):
    with pytest.raises(CheckpointConversionError, match=message):
        split_fused_qkv(torch.zeros(weight_shape), torch.zeros(bias_shape))


def test_convert_residual_block_maps_every_key():
    block = make_residual_block("x.resblocks.0.", 8, torch.Generator().manual_seed(0))
    converted = convert_residual_block(block, "x.resblocks.0.", "encoder.layers.0.")
    expected = {
        f"encoder.layers.0.{name}.{kind}"
        for name in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.out_proj",
            "layer_norm1",
            "layer_norm2",
            "mlp.fc1",
            "mlp.fc2",
        )  # fmt: skip
        for kind in ("weight", "bias")
    }
    assert set(converted) == expected
    torch.testing.assert_close(converted["encoder.layers.0.mlp.fc2.weight"], block["x.resblocks.0.mlp.c_proj.weight"])
    torch.testing.assert_close(converted["encoder.layers.0.layer_norm2.bias"], block["x.resblocks.0.ln_2.bias"])


def test_convert_residual_block_names_missing_and_unknown_keys():
    block = make_residual_block("b.0.", 8, torch.Generator().manual_seed(0))
    del block["b.0.ln_2.bias"]
    block["b.0.attn.bias_k"] = torch.zeros(1, 1, 8)
    with pytest.raises(CheckpointConversionError) as error:
        convert_residual_block(block, "b.0.", "layers.0.")
    assert "ln_2.bias" in str(error.value) and "attn.bias_k" in str(error.value)


def test_count_residual_blocks_requires_contiguous_numbering():
    keys = {"blocks.0.a": None, "blocks.2.a": None, "blocks.10.a": None}
    with pytest.raises(CheckpointConversionError, match=r"\[1, 3, 4, 5, 6, 7, 8, 9\]"):
        count_residual_blocks(keys, "blocks.")
    assert count_residual_blocks({"blocks.0.a": None, "blocks.1.b": None}, "blocks.") == 2
    assert count_residual_blocks({"other": None}, "blocks.") == 0


# ---------------------------------------------------------------- OpenAI CLIP -> CLIPModel


def test_infer_config_from_shapes(converted_seq_transf):
    config = converted_seq_transf.clip_config
    vision, text = config.vision_config, config.text_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (48, 2, 3)
    assert (vision.patch_size, vision.image_size, vision.intermediate_size, vision.num_channels) == (8, 32, 192, 3)
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads) == (32, 2, 2)
    assert (text.max_position_embeddings, text.vocab_size, text.intermediate_size) == (16, 64, 128)
    assert (text.eos_token_id, text.bos_token_id) == (63, 62)
    assert config.projection_dim == 32
    assert vision.hidden_act == text.hidden_act == "quick_gelu"


def test_infer_config_uses_openai_head_convention_by_default():
    state_dict = make_openai_clip_state_dict(vision_width=128, text_width=64, embed=64, vision_layers=1, text_layers=1)
    config = infer_openai_clip_config(state_dict)
    assert config.vision_config.num_attention_heads == 2 and config.text_config.num_attention_heads == 1
    with pytest.raises(CheckpointConversionError, match="not a multiple of attention_head_dim=64"):
        infer_openai_clip_config(make_openai_clip_state_dict())  # widths 48/32


def test_converted_keys_match_clip_model_exactly(converted_seq_transf):
    expected = CLIPModel(converted_seq_transf.clip_config).state_dict().keys()
    check_state_dict_keys(expected, converted_seq_transf.clip_state_dict.keys(), "converted CLIPModel state dict")


def test_converted_state_dict_saves_as_safetensors(converted_seq_transf, tmp_path):
    from safetensors.torch import load_file, save_file

    save_file(converted_seq_transf.clip_state_dict, tmp_path / "model.safetensors")
    save_file(converted_seq_transf.temporal_state_dict, tmp_path / "temporal.safetensors")
    reloaded = load_file(tmp_path / "model.safetensors")
    torch.testing.assert_close(
        reloaded["visual_projection.weight"], converted_seq_transf.clip_state_dict["visual_projection.weight"]
    )


@torch.no_grad()
def test_text_embeddings_match_openai_reference(seq_transf_checkpoint, loaded_clip):
    text = make_text_ids()
    expected = reference_encode_text(seq_transf_checkpoint, text, num_heads=2)
    actual = loaded_clip.get_text_features(input_ids=text).pooler_output
    assert actual.shape == (3, 32)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_image_embeddings_and_logits_match_openai_reference(seq_transf_checkpoint, loaded_clip):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected_images = reference_encode_image(seq_transf_checkpoint, images, num_heads=3)
    actual_images = loaded_clip.get_image_features(pixel_values=images).pooler_output
    torch.testing.assert_close(actual_images, expected_images, atol=1e-5, rtol=1e-5)

    text = make_text_ids()
    expected_text = reference_encode_text(seq_transf_checkpoint, text, num_heads=2)
    image_unit = expected_images / expected_images.norm(dim=-1, keepdim=True)
    text_unit = expected_text / expected_text.norm(dim=-1, keepdim=True)
    expected_logits = seq_transf_checkpoint["clip.logit_scale"].exp() * image_unit @ text_unit.t()
    outputs = loaded_clip(input_ids=text, pixel_values=images)
    torch.testing.assert_close(outputs.logits_per_image, expected_logits, atol=1e-4, rtol=1e-5)


@torch.no_grad()
def test_a_wrong_qkv_order_would_be_caught(seq_transf_checkpoint, converted_seq_transf):
    """Guards the guard: swapping q and k in one layer must break the equality the tests rely on."""
    broken = dict(converted_seq_transf.clip_state_dict)
    layer = "text_model.encoder.layers.0.self_attn."
    broken[layer + "q_proj.weight"], broken[layer + "k_proj.weight"] = (
        broken[layer + "k_proj.weight"],
        broken[layer + "q_proj.weight"],
    )
    model = CLIPModel(converted_seq_transf.clip_config).eval()
    model.load_state_dict(broken, strict=True)
    text = make_text_ids()
    expected = reference_encode_text(seq_transf_checkpoint, text, num_heads=2)
    assert not torch.allclose(model.get_text_features(input_ids=text).pooler_output, expected, atol=1e-3)


@torch.no_grad()
def test_plain_openai_state_dict_without_prefix_and_with_metadata_buffers():
    state_dict = make_openai_clip_state_dict(prefix="")
    state_dict.update(input_resolution=torch.tensor(32), context_length=torch.tensor(16), vocab_size=torch.tensor(64))
    config = infer_openai_clip_config(state_dict, prefix="", attention_head_dim=HEAD_DIM)
    converted, dropped = convert_openai_clip_state_dict(state_dict, prefix="")
    assert set(dropped) == {"input_resolution", "context_length", "vocab_size"}
    assert all("metadata" in reason for reason in dropped.values())
    model = CLIPModel(config).eval()
    model.load_state_dict(converted, strict=True)
    images = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        model.get_image_features(pixel_values=images).pooler_output,
        reference_encode_image(state_dict, images, prefix="", num_heads=3),
        atol=1e-5,
        rtol=1e-5,
    )


def test_metadata_buffer_disagreeing_with_weights_is_an_error():
    state_dict = make_openai_clip_state_dict(prefix="")
    state_dict["input_resolution"] = torch.tensor(224)
    with pytest.raises(CheckpointConversionError, match="input_resolution.*224.*imply 32"):
        convert_openai_clip_state_dict(state_dict, prefix="")


def test_openai_converter_only_reads_keys_under_its_prefix():
    state_dict = make_openai_clip_state_dict(prefix="clip.")
    state_dict["unrelated.weight"] = torch.zeros(1)
    converted, dropped = convert_openai_clip_state_dict(state_dict, prefix="clip.")
    assert dropped == {} and not any(key.startswith("unrelated") for key in converted)
    with pytest.raises(CheckpointConversionError, match="no key starts with 'visual_encoder.'"):
        convert_openai_clip_state_dict(state_dict, prefix="visual_encoder.")


def test_resnet_clip_is_refused():
    state_dict = make_openai_clip_state_dict(prefix="")
    del state_dict["visual.conv1.weight"]
    state_dict["visual.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(CheckpointConversionError, match="ResNet"):
        convert_openai_clip_state_dict(state_dict, prefix="")


# ---------------------------------------------------------------- CLIP4Clip checkpoint


def test_detect_temporal_head():
    assert detect_clip4clip_temporal_head(make_clip4clip_state_dict("meanP")) == "meanP"
    assert detect_clip4clip_temporal_head(make_clip4clip_state_dict("seqTransf")) == "seqTransf"
    assert detect_clip4clip_temporal_head(make_clip4clip_state_dict("seqTransf", temporal_layers=0)) == "seqTransf"


@pytest.mark.parametrize(
    "extra_keys, message",
    [
        ({"frame_position_embeddings.weight": (12, 32), "lstm_visual.weight_ih_l0": (128, 32)}, "'seqLSTM'"),
        (
            {"cross.embeddings.position_embeddings.weight": (128, 32), "similarity_dense.weight": (1, 32)},
            "'tightTransf'",
        ),
        ({"clip.visual.conv2.weight": (48, 3, 3, 8, 8)}, "linear_patch 3d"),
        ({"transformerClip.resblocks.0.ln_1.weight": (32,)}, "frame_position_embeddings.weight is missing"),
    ],
)
def test_unsupported_clip4clip_variants_are_refused(extra_keys, message):
    state_dict = make_clip4clip_state_dict("meanP")
    state_dict.update({key: torch.zeros(shape) for key, shape in extra_keys.items()})
    with pytest.raises(CheckpointConversionError, match=message):
        detect_clip4clip_temporal_head(state_dict)
    with pytest.raises(CheckpointConversionError, match=message):
        convert_clip4clip_checkpoint(state_dict, attention_head_dim=HEAD_DIM)


def test_non_clip4clip_state_dicts_get_a_hint(loaded_clip):
    with pytest.raises(CheckpointConversionError, match="prefix=''"):
        detect_clip4clip_temporal_head(make_openai_clip_state_dict(prefix=""))
    with pytest.raises(CheckpointConversionError, match="transformers CLIPModel"):
        detect_clip4clip_temporal_head(loaded_clip.state_dict())


def test_seq_transf_conversion_accounts_for_every_key(seq_transf_checkpoint, converted_seq_transf):
    converted = converted_seq_transf
    assert isinstance(converted, ConvertedClip4Clip)
    assert converted.temporal_head == "seqTransf"
    assert (converted.temporal_num_layers, converted.num_frame_positions, converted.temporal_num_attention_heads) == (
        2,
        12,
        2,
    )
    assert converted.dropped_keys == {}
    source_tensors = sum(t.numel() for t in seq_transf_checkpoint.values())
    target_tensors = sum(t.numel() for t in converted.clip_state_dict.values()) + sum(
        t.numel() for t in converted.temporal_state_dict.values()
    )
    assert source_tensors == target_tensors
    assert all(
        key.startswith(("frame_position_embeddings.", "temporal_encoder.layers."))
        for key in converted.temporal_state_dict
    )
    assert converted.temporal_state_dict["frame_position_embeddings.weight"].shape == (12, 32)


def test_convert_temporal_head_directly(seq_transf_checkpoint):
    temporal, num_layers, num_positions = convert_clip4clip_temporal_head(seq_transf_checkpoint)
    assert (num_layers, num_positions) == (2, 12)
    assert len(temporal) == 1 + 2 * 16
    with pytest.raises(CheckpointConversionError, match="frame_position_embeddings.weight"):
        convert_clip4clip_temporal_head(make_clip4clip_state_dict("meanP"))


def test_temporal_block_with_a_non_4x_mlp_is_refused():
    state_dict = make_clip4clip_state_dict("seqTransf", temporal_layers=1)
    state_dict["transformerClip.resblocks.0.mlp.c_fc.weight"] = torch.zeros(64, 32)
    with pytest.raises(CheckpointConversionError, match=r"mlp.c_fc.weight: expected shape \(128, 32\)"):
        convert_clip4clip_temporal_head(state_dict)


def test_temporal_width_must_equal_projection_dim():
    state_dict = make_clip4clip_state_dict("seqTransf", temporal_layers=0)
    state_dict["frame_position_embeddings.weight"] = torch.zeros(12, 48)
    with pytest.raises(CheckpointConversionError, match="differs from the CLIP projection dim 32"):
        convert_clip4clip_checkpoint(state_dict, attention_head_dim=HEAD_DIM)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@torch.no_grad()
def test_seq_transf_header_matches_clip4clip_reference(
    seq_transf_checkpoint, converted_seq_transf, attn_implementation
):
    converted = converted_seq_transf
    head = TemporalHead(
        32, converted.temporal_num_layers, converted.temporal_num_attention_heads, 12, attn_implementation
    )
    head.load_state_dict(converted.temporal_state_dict, strict=True)
    head.eval()

    generator = torch.Generator().manual_seed(3)
    frame_embeds = torch.randn(3, 6, 32, generator=generator)
    video_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.float32)
    frame_embeds = frame_embeds * video_mask.unsqueeze(-1)  # CLIP4Clip feeds zero frames at padded positions
    expected_frames, expected_video = reference_seq_transf(seq_transf_checkpoint, frame_embeds, video_mask, 2, 2)

    hidden = frame_embeds + head.frame_position_embeddings(torch.arange(6)).unsqueeze(0)
    additive_mask = ((1.0 - video_mask) * -1000000.0)[:, None, None, :].expand(-1, 1, 6, -1)
    hidden = head.temporal_encoder(inputs_embeds=hidden, attention_mask=additive_mask).last_hidden_state
    frames = hidden + frame_embeds
    unit = frames / frames.norm(dim=-1, keepdim=True)
    mask = video_mask.unsqueeze(-1)
    pooled = (unit * mask).sum(dim=1) / mask.sum(dim=1)
    video = pooled / pooled.norm(dim=-1, keepdim=True)

    valid = video_mask.bool()
    torch.testing.assert_close(frames[valid], expected_frames[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(video, expected_video, atol=1e-5, rtol=1e-5)
    # the header really does something: without it the pooled embedding differs
    plain = frame_embeds / frame_embeds.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    plain = (plain * mask).sum(dim=1) / mask.sum(dim=1)
    assert not torch.allclose(plain / plain.norm(dim=-1, keepdim=True), video, atol=1e-3)


@torch.no_grad()
def test_meanp_checkpoint_with_data_parallel_prefix_and_metadata():
    state_dict = make_clip4clip_state_dict("meanP")
    state_dict["clip.input_resolution"] = torch.tensor(32)
    state_dict = {"module." + key: value for key, value in state_dict.items()}
    converted = convert_clip4clip_checkpoint(state_dict, attention_head_dim=HEAD_DIM)
    assert converted.temporal_head == "meanP"
    assert converted.temporal_state_dict == {}
    assert converted.temporal_num_layers is None and converted.num_frame_positions is None
    assert list(converted.dropped_keys) == ["clip.input_resolution"]
    model = CLIPModel(converted.clip_config)
    model.load_state_dict(converted.clip_state_dict, strict=True)


def test_half_precision_source_keeps_dtypes_and_loads_into_float32_model():
    """CLIP4Clip casts Linear/conv/attention weights of its CLIP to fp16 (``convert_weights``)."""
    state_dict = make_clip4clip_state_dict("seqTransf", temporal_layers=1)
    state_dict = {key: value.half() if ("attn" in key or "mlp" in key) else value for key, value in state_dict.items()}
    converted = convert_clip4clip_checkpoint(state_dict, attention_head_dim=HEAD_DIM)
    assert converted.clip_state_dict["text_model.encoder.layers.0.self_attn.q_proj.weight"].dtype == torch.float16
    model = CLIPModel(converted.clip_config)
    model.load_state_dict(converted.clip_state_dict, strict=True)
    assert model.text_model.encoder.layers[0].self_attn.q_proj.weight.dtype == torch.float32


def test_strip_data_parallel_prefix_only_when_every_key_has_it():
    assert strip_data_parallel_prefix({"module.a": 1, "module.b": 2}) == {"a": 1, "b": 2}
    assert strip_data_parallel_prefix({"module.a": 1, "b": 2}) == {"module.a": 1, "b": 2}


@pytest.mark.parametrize(
    "unknown_key",
    ["some_new_head.weight", "clip.visual.extra_token", "clip.transformer.extra.weight", "transformerClip.extra"],
)
def test_unknown_key_is_an_error_naming_it(unknown_key):
    state_dict = make_clip4clip_state_dict("seqTransf", temporal_layers=1)
    state_dict[unknown_key] = torch.zeros(3)
    with pytest.raises(CheckpointConversionError, match=unknown_key.replace(".", r"\.")):
        convert_clip4clip_checkpoint(state_dict, attention_head_dim=HEAD_DIM)


@pytest.mark.parametrize(
    "missing_key",
    [
        "clip.visual.ln_post.weight",
        "clip.text_projection",
        "clip.transformer.resblocks.1.ln_2.bias",
        "clip.visual.transformer.resblocks.0.attn.in_proj_weight",
        "transformerClip.resblocks.0.mlp.c_fc.bias",
    ],
)
def test_missing_key_is_an_error_naming_it(missing_key):
    state_dict = make_clip4clip_state_dict("seqTransf", temporal_layers=1)
    del state_dict[missing_key]
    with pytest.raises(CheckpointConversionError, match=missing_key.replace(".", r"\.")):
        convert_clip4clip_checkpoint(state_dict, attention_head_dim=HEAD_DIM)


def test_missing_whole_block_is_an_error():
    state_dict = make_clip4clip_state_dict("meanP")
    state_dict = {
        key: value for key, value in state_dict.items() if not key.startswith("clip.transformer.resblocks.0.")
    }
    with pytest.raises(CheckpointConversionError, match=r"block\(s\) \[0\] are missing"):
        convert_clip4clip_checkpoint(state_dict, attention_head_dim=HEAD_DIM)


def test_check_state_dict_keys_names_both_sides():
    check_state_dict_keys(["a", "b"], ["b", "a"], "same")
    with pytest.raises(CheckpointConversionError, match=r"my file: 1 missing key\(s\): a; 1 unexpected key\(s\): c"):
        check_state_dict_keys(["a", "b"], ["b", "c"], "my file")
    with pytest.raises(CheckpointConversionError, match=r"and 5 more"):
        check_state_dict_keys([f"k{i:02d}" for i in range(25)], [], "many")


# ---------------------------------------------------------------- loading original files


def test_load_original_checkpoint_round_trips_a_state_dict(tmp_path):
    state_dict = make_clip4clip_state_dict("seqTransf", temporal_layers=1)
    path = tmp_path / "pytorch_model.bin.4"
    torch.save(state_dict, path)
    loaded = load_original_checkpoint(path)
    assert loaded.keys() == state_dict.keys()
    assert convert_clip4clip_checkpoint(loaded, attention_head_dim=HEAD_DIM).temporal_num_layers == 1


def test_load_original_checkpoint_reads_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.ones(2)}, tmp_path / "x.safetensors")
    assert load_original_checkpoint(tmp_path / "x.safetensors")["a"].tolist() == [1.0, 1.0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_load_original_checkpoint_refuses_what_is_not_a_state_dict(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        load_original_checkpoint(tmp_path / "nope.bin")

    torch.save(nn.Linear(2, 2), tmp_path / "module.bin")  # a pickled model object
    with pytest.raises(CheckpointConversionError, match=r"weights_only=True.*state_dict\(\)"):
        load_original_checkpoint(tmp_path / "module.bin")

    (tmp_path / "text.bin").write_text("not a checkpoint")
    with pytest.raises(CheckpointConversionError, match="text.bin: could not be read"):
        load_original_checkpoint(tmp_path / "text.bin")

    torch.save([torch.zeros(1)], tmp_path / "list.bin")
    with pytest.raises(CheckpointConversionError, match="holds a list, not a state dict"):
        load_original_checkpoint(tmp_path / "list.bin")

    torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": 3}, tmp_path / "wrapped.bin")
    with pytest.raises(CheckpointConversionError, match="epoch, state_dict.*pass that inner dict"):
        load_original_checkpoint(tmp_path / "wrapped.bin")

    torch.jit.trace(nn.Linear(2, 2), torch.zeros(1, 2)).save(str(tmp_path / "ViT-B-32.pt"))
    with pytest.raises(CheckpointConversionError, match="TorchScript archive"):
        load_original_checkpoint(tmp_path / "ViT-B-32.pt")

    (tmp_path / "bad.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(CheckpointConversionError, match="not a readable safetensors file"):
        load_original_checkpoint(tmp_path / "bad.safetensors")
