"""The inverse CLIP4Clip remappings (transformers / Finsta layouts -> original OpenAI CLIP /
CLIP4Clip layout) round-trip key for key with the forward ones and name bad keys."""

import pytest
import torch
from test_checkpoint_conversion import make_clip4clip_state_dict, make_openai_clip_state_dict
from tiny_models import tiny_clip_config, tiny_finsta_config
from transformers import CLIPModel

from modeling_finsta import FinstaModel
from modeling_finsta.hub import (
    CheckpointConversionError,
    convert_clip4clip_checkpoint,
    convert_clip4clip_temporal_head,
    convert_openai_clip_state_dict,
    convert_residual_block,
    export_clip4clip_checkpoint,
    export_clip4clip_temporal_head,
    export_openai_clip_state_dict,
    export_residual_block,
    fuse_qkv,
    split_fused_qkv,
)


# ------------------------------------------------------------------ pure inverse functions, key for key


@pytest.mark.parametrize("header", ["meanP", "seqTransf"])
def test_original_clip4clip_checkpoint_round_trips_key_for_key(header):
    original = make_clip4clip_state_dict(header, temporal_layers=2, frame_positions=12)
    converted = convert_clip4clip_checkpoint(original, attention_head_dim=16)
    back = export_clip4clip_checkpoint(converted.clip_state_dict, converted.temporal_state_dict or None)
    assert set(back) == set(original)
    for key, value in original.items():
        assert back[key].shape == value.shape and torch.equal(back[key], value), key
    converted_ptrs = {
        t.data_ptr() for t in [*converted.clip_state_dict.values(), *converted.temporal_state_dict.values()]
    }
    assert not converted_ptrs & {t.data_ptr() for t in back.values()}  # nothing shares storage with the model


def test_transformers_and_finsta_layouts_round_trip_key_for_key():
    clip_state = CLIPModel(tiny_clip_config()).state_dict()
    openai = export_openai_clip_state_dict(clip_state, prefix="")
    assert "visual.proj" in openai and "transformer.resblocks.1.attn.in_proj_weight" in openai
    again, dropped = convert_openai_clip_state_dict(openai, prefix="")
    assert dropped == {} and set(again) == set(clip_state)
    assert all(torch.equal(again[key], value) for key, value in clip_state.items())

    head = FinstaModel(
        tiny_finsta_config("clip", temporal_head="seqTransf", temporal_num_layers=2)
    ).host_adapter.state_dict()
    original = export_clip4clip_temporal_head(head)
    assert {key.split(".resblocks.")[0] for key in original} == {"frame_position_embeddings.weight", "transformerClip"}
    again, num_layers, positions = convert_clip4clip_temporal_head(original)
    assert (num_layers, positions) == (2, 16) and set(again) == set(head)
    assert all(torch.equal(again[key], value) for key, value in head.items())


def test_fuse_qkv_inverts_split_fused_qkv_and_checks_shapes():
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(24, 8, generator=generator), torch.randn(24, generator=generator)
    fused_weight, fused_bias = fuse_qkv(*split_fused_qkv(weight, bias))
    assert torch.equal(fused_weight, weight) and torch.equal(fused_bias, bias)
    q, qb, k, kb, v, vb = split_fused_qkv(weight, bias)
    with pytest.raises(CheckpointConversionError, match=r"k_weight has shape \(4, 8\), expected \(8, 8\)"):
        fuse_qkv(q, qb, k[:4], kb, v, vb)
    with pytest.raises(CheckpointConversionError, match=r"v_bias has shape \(7,\)"):
        fuse_qkv(q, qb, k, kb, v, vb[:7])


def test_export_residual_block_inverts_convert_and_names_bad_keys():
    block = {
        key: value
        for key, value in make_openai_clip_state_dict("").items()
        if key.startswith("transformer.resblocks.0.")
    }
    layer = convert_residual_block(block, "transformer.resblocks.0.", "layers.0.")
    back = export_residual_block(layer, "layers.0.", "transformer.resblocks.0.")
    assert set(back) == set(block) and all(torch.equal(back[key], value) for key, value in block.items())
    with pytest.raises(CheckpointConversionError, match=r"missing key\(s\): layers\.0\.mlp\.fc2\.bias"):
        export_residual_block({k: v for k, v in layer.items() if k != "layers.0.mlp.fc2.bias"}, "layers.0.", "x.")
    with pytest.raises(CheckpointConversionError, match=r"unexpected key\(s\): layers\.0\.self_attn\.q_proj\.lora_A"):
        export_residual_block({**layer, "layers.0.self_attn.q_proj.lora_A": torch.zeros(1)}, "layers.0.", "x.")
    clip_state = CLIPModel(tiny_clip_config()).state_dict()
    with pytest.raises(
        CheckpointConversionError, match=r"no counterpart in OpenAI CLIP: text_model\.embeddings\.position_ids"
    ):
        export_openai_clip_state_dict({**clip_state, "text_model.embeddings.position_ids": torch.arange(4)})
