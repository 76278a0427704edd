"""FinstaModel on tiny random CLIP4Clip and X-CLIP backbones: shapes, loading, losses, invariances."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoConfig, AutoModel, CLIPModel

from modeling_finsta import ABLATION_SWITCHES, FinstaConfig, FinstaModel
from tiny_models import annotated_video_scene_graph, example_inputs, tiny_clip_config, tiny_finsta_config

BACKBONES = [("clip", "meanP"), ("clip", "seqTransf"), ("xclip", "meanP")]


def build(backbone="clip", temporal_head="meanP", seed=0, **overrides) -> FinstaModel:
    torch.manual_seed(seed)
    return FinstaModel(tiny_finsta_config(backbone, temporal_head=temporal_head, **overrides)).eval()


@pytest.mark.parametrize("backbone,temporal_head", BACKBONES)
def test_output_shapes_and_features(backbone, temporal_head):
    model = build(backbone, temporal_head)
    inputs = example_inputs()
    with torch.no_grad():
        out = model(**inputs, return_loss=True)
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"], inputs["text_scene_graph"])
        video = model.get_video_features(inputs["pixel_values"], inputs["video_mask"])
    assert list(out.keys())[0] == "loss"
    assert out.logits_per_text.shape == (3, 3) and out.logits_per_video.shape == (3, 3)
    assert out.text_embeds.shape == (3, 64) and out.video_embeds.shape == (3, 64)
    assert out.video_graph_boxes.shape == (3, 4, 4, 4)
    assert torch.allclose(text.pooler_output, out.text_embeds, atol=1e-5)
    assert torch.allclose(video.pooler_output, out.video_embeds, atol=1e-5)
    for name in ("contrastive_loss", "fused_contrastive_loss", "graph_contrastive_loss", "osc_loss", "ptc_loss", "distillation_loss"):
        assert torch.isfinite(getattr(out, name)), name


def test_text_and_video_embeddings_are_independent():
    model = build()
    inputs = example_inputs()
    other = example_inputs(seed=1)
    with torch.no_grad():
        first = model(**inputs)
        swapped_videos = model(**{**inputs, "pixel_values": other["pixel_values"]})
        swapped_texts = model(**{**inputs, "input_ids": other["input_ids"]})
    assert torch.equal(first.text_embeds, swapped_videos.text_embeds)
    assert not torch.allclose(first.video_embeds, swapped_videos.video_embeds)
    assert torch.equal(first.video_embeds, swapped_texts.video_embeds)


def test_distilled_mode_is_exactly_the_host():
    model = build(inference_mode="distilled")
    inputs = example_inputs()
    with torch.no_grad():
        video = model.get_video_features(inputs["pixel_values"], inputs["video_mask"]).pooler_output
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"], inputs["text_scene_graph"]).pooler_output
        clip = model.backbone
        frames = clip.get_image_features(pixel_values=inputs["pixel_values"].flatten(0, 1)).pooler_output.view(3, 4, -1)
        frames = frames / frames.norm(dim=-1, keepdim=True)
        expected_video = frames.mean(1) / frames.mean(1).norm(dim=-1, keepdim=True)
        expected_text = clip.get_text_features(inputs["input_ids"], inputs["attention_mask"]).pooler_output
    assert torch.allclose(video, expected_video, atol=1e-6)
    assert torch.allclose(text, expected_text, atol=1e-6)


@pytest.mark.parametrize("detached", [False, True])
def test_graph_head_detaches_host_keeps_graph_objectives_out_of_the_host(detached):
    model = build(graph_head_detaches_host=detached).train()
    out = model(**example_inputs())
    graph_terms = out.graph_contrastive_loss + out.osc_loss + out.ptc_loss + out.fused_contrastive_loss
    # every host weight; the shared temperature (``logit_scale``) is a scalar the fused objectives may still tune
    host = [p for n, p in model.backbone.named_parameters() if p.requires_grad and n != "logit_scale"]
    grads = torch.autograd.grad(graph_terms, host, allow_unused=True, retain_graph=True)
    reached = sum(float(g.abs().sum()) for g in grads if g is not None)
    assert (reached == 0.0) == detached
    head = [p for p in model.graph_encoder.parameters() if p.requires_grad]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in torch.autograd.grad(graph_terms, head, allow_unused=True, retain_graph=True))
    own = torch.autograd.grad(out.contrastive_loss, host, allow_unused=True)
    assert sum(float(g.abs().sum()) for g in own if g is not None) > 0  # the host's own objective still trains it


def test_loss_finite_and_gradients_reach_head_and_backbone():
    model = build().train()
    out = model(**example_inputs())
    assert torch.isfinite(out.loss)
    out.loss.backward()
    head = model.graph_encoder
    for name, parameter in [
        ("text_node_proj", head.text_node_proj.weight),
        ("video_node_proj", head.video_node_proj.weight),
        ("stgd", head.stgd_layers[0].gate.weight),
        ("gru", head.video_layers[0].temporal_gate.weight_ih),
        ("osc", head.osc_text_head.weight),
        ("ptc", head.ptc_video_head.weight),
        ("backbone_text", model.backbone.text_model.encoder.layers[0].mlp.fc1.weight),
        ("backbone_vision", model.backbone.vision_model.encoder.layers[0].mlp.fc1.weight),
    ]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_no_nan_with_empty_graphs_padded_frames_and_batch_of_one():
    model = build().train()
    inputs = example_inputs(batch=1)
    inputs["text_scene_graph"]["node_types"].zero_()
    inputs["video_mask"][:, 2:] = 0
    out = model(**inputs)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    annotated = annotated_video_scene_graph(batch=1)
    out = model(**example_inputs(batch=1), video_scene_graph=annotated)
    assert torch.isfinite(out.loss)


def test_padded_nodes_and_padded_frames_do_not_change_outputs():
    model = build()
    inputs = example_inputs()
    graph = inputs["text_scene_graph"]
    padded = {
        "node_types": torch.nn.functional.pad(graph["node_types"], (0, 3)),
        "node_token_mask": torch.nn.functional.pad(graph["node_token_mask"], (0, 0, 0, 3)),
        "edge_types": torch.nn.functional.pad(graph["edge_types"], (0, 3, 0, 3)),
    }
    with torch.no_grad():
        torch.manual_seed(0)  # PTC draws a random frame shuffle
        reference = model(**inputs, return_loss=True)
        torch.manual_seed(0)
        with_padding = model(**{**inputs, "text_scene_graph": padded}, return_loss=True)
    assert torch.allclose(reference.text_embeds, with_padding.text_embeds, atol=1e-5)
    assert torch.allclose(reference.loss, with_padding.loss, atol=1e-5)

    # Padding frames (masked) after the real ones leaves the video embedding unchanged.
    short = {**inputs, "pixel_values": inputs["pixel_values"][:, :3], "video_mask": inputs["video_mask"][:, :3]}
    long_mask = torch.ones(3, 4, dtype=torch.long)
    long_mask[:, 3] = 0
    long_pixels = torch.cat([short["pixel_values"], torch.zeros_like(short["pixel_values"][:, :1])], dim=1)
    with torch.no_grad():
        a = model.get_video_features(short["pixel_values"], short["video_mask"]).pooler_output
        b = model.get_video_features(long_pixels, long_mask).pooler_output
    assert torch.allclose(a, b, atol=1e-5)


def test_fused_video_embedding_is_order_sensitive_while_mean_pooling_is_not():
    model = build(inference_mode="fused")
    pixels = example_inputs()["pixel_values"]
    reversed_pixels = pixels.flip(1)
    with torch.no_grad():
        fused = model.get_video_features(pixels).pooler_output
        fused_reversed = model.get_video_features(reversed_pixels).pooler_output
        model.config.inference_mode = "distilled"
        host = model.get_video_features(pixels).pooler_output
        host_reversed = model.get_video_features(reversed_pixels).pooler_output
    assert torch.allclose(host, host_reversed, atol=1e-6)
    assert (fused - fused_reversed).abs().max() > 1e-3


@pytest.mark.parametrize("switch", ABLATION_SWITCHES)
def test_every_ablation_switch_changes_the_computation_and_trains(switch):
    inputs = example_inputs()
    annotated = annotated_video_scene_graph()
    full = build(seed=0).train()
    ablated = build(seed=0, **{switch: False}).train()
    ablated.load_state_dict(full.state_dict(), strict=False)
    torch.manual_seed(1)
    full_out = full(**inputs, video_scene_graph=annotated)
    torch.manual_seed(1)
    ablated_out = ablated(**inputs, video_scene_graph=annotated)
    assert not torch.allclose(full_out.loss, ablated_out.loss), switch
    optimizer = torch.optim.SGD(ablated.parameters(), lr=0.01)
    ablated_out.loss.backward()
    optimizer.step()
    assert torch.isfinite(ablated(**inputs, video_scene_graph=annotated).loss)


def test_save_load_round_trip_and_auto_classes(tmp_path):
    model = build("clip", "seqTransf")
    inputs = example_inputs()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, FinstaConfig) and config.backbone_config.model_type == "clip"
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, FinstaModel)
    with torch.no_grad():
        a, b = model(**inputs), reloaded(**inputs)
    assert torch.equal(a.text_embeds, b.text_embeds) and torch.equal(a.video_embeds, b.video_embeds)
    assert isinstance(AutoModel.from_config(model.config), FinstaModel)


def test_remote_code_load_in_a_fresh_process_without_the_package(tmp_path):
    model = build("xclip")
    inputs = example_inputs()
    folder = tmp_path / "finsta"
    model.save_pretrained(folder)
    torch.save({k: v for k, v in inputs.items() if k != "text_scene_graph"} | inputs["text_scene_graph"], tmp_path / "inputs.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["modeling_finsta"] = None  # the package must not be importable here
        try:
            import modeling_finsta
        except ImportError:
            pass
        else:
            raise SystemExit("modeling_finsta was importable")
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        x = torch.load({str(tmp_path / "inputs.pt")!r})
        graph = {{k: x.pop(k) for k in ("node_types", "node_token_mask", "edge_types")}}
        with torch.no_grad():
            out = model(**x, text_scene_graph=graph)
        torch.save({{"text": out.text_embeds, "video": out.video_embeds}}, {str(tmp_path / "out.pt")!r})
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        local = model(**inputs)
    assert torch.equal(remote["text"], local.text_embeds) and torch.equal(remote["video"], local.video_embeds)


def test_loading_a_plain_clip_checkpoint_initialises_only_the_head(tmp_path):
    torch.manual_seed(0)
    clip = CLIPModel(tiny_clip_config())
    clip.save_pretrained(tmp_path)
    config = tiny_finsta_config("clip", temporal_head="seqTransf")
    model, info = FinstaModel.from_pretrained(tmp_path, config=config, output_loading_info=True)
    assert info["unexpected_keys"] == set() or not info["unexpected_keys"]
    assert {key.split(".")[0] for key in info["missing_keys"]} == {"graph_encoder", "host_adapter"}
    for name, value in clip.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], value), name
    assert torch.isfinite(model.graph_encoder.text_node_proj.weight).all()
    assert model.graph_encoder.text_node_proj.weight.std() > 0


def test_bf16_load(tmp_path):
    build().save_pretrained(tmp_path)
    model = FinstaModel.from_pretrained(tmp_path, dtype=torch.bfloat16).train()
    assert model.graph_encoder.text_node_proj.weight.dtype == torch.bfloat16
    inputs = example_inputs()
    inputs["pixel_values"] = inputs["pixel_values"].bfloat16()
    out = model(**inputs)
    assert out.video_embeds.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    out.loss.backward()


def test_activation_checkpointing_gives_the_same_loss():
    inputs = example_inputs()
    model = build().train()
    torch.manual_seed(3)
    reference = model(**inputs).loss
    model.activation_checkpointing_enable()
    assert model.graph_encoder.text_layers[0].gradient_checkpointing
    torch.manual_seed(3)
    checkpointed = model(**inputs).loss
    assert torch.allclose(reference, checkpointed, atol=1e-6)
    checkpointed.backward()
    assert model.graph_encoder.video_layers[0].temporal_gate.weight_ih.grad is not None


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"temporal_head": "seqLSTM"}, "temporal_head"),
        ({"inference_mode": "both"}, "inference_mode"),
        ({"distillation_target": "logits"}, "distillation_target"),
        ({"graph_hidden_size": 30, "graph_num_heads": 4}, "graph_hidden_size"),
        ({"num_latent_slots": 0}, "num_latent_slots"),
        ({"osc_loss_weight": -1.0}, "osc_loss_weight"),
        ({"use_ptc": "yes"}, "use_ptc"),
        ({"backbone_config": {"model_type": "bert"}}, "not supported"),
        ({"backbone_config": {"hidden_size": 8}}, "model_type"),
    ],
)
def test_invalid_config_values_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        FinstaConfig(**overrides)


def test_backbone_config_dict_is_rebuilt():
    config = FinstaConfig(backbone_config=tiny_clip_config().to_dict())
    assert config.backbone_config.projection_dim == 64
    assert type(config.backbone_config).__name__ == "CLIPConfig"


def test_hard_negative_captions_enter_the_contrastive_losses():
    model = build().train()
    inputs = example_inputs()
    negatives = example_inputs(seed=5)
    torch.manual_seed(0)
    plain = model(**inputs)
    torch.manual_seed(0)
    with_negatives = model(
        **inputs,
        negative_input_ids=negatives["input_ids"],
        negative_attention_mask=negatives["attention_mask"],
        negative_text_scene_graph=negatives["text_scene_graph"],
        negative_mask=torch.tensor([True, True, False]),
    )
    assert with_negatives.contrastive_loss > plain.contrastive_loss  # an extra candidate can only add loss
    assert with_negatives.fused_contrastive_loss > plain.fused_contrastive_loss
    assert with_negatives.graph_contrastive_loss is not None
    with_negatives.loss.backward()
    torch.manual_seed(0)
    masked = model(**inputs, negative_input_ids=negatives["input_ids"], negative_mask=torch.zeros(3, dtype=torch.bool))
    assert torch.allclose(masked.contrastive_loss, plain.contrastive_loss, atol=1e-6)


@pytest.mark.parametrize("target", ["cross_modal", "hard_negatives"])
def test_teacher_targets_train_only_the_host(target):
    """The fused model is a detached teacher: the transfer term moves host weights, never the graph head."""
    model = build(distillation_target=target).train()
    negatives = example_inputs(seed=5)
    out = model(
        **example_inputs(),
        negative_input_ids=negatives["input_ids"],
        negative_attention_mask=negatives["attention_mask"],
        negative_text_scene_graph=negatives["text_scene_graph"],
        negative_mask=torch.tensor([True, False, True]),
    )
    assert out.distillation_loss is not None and torch.isfinite(out.distillation_loss) and out.distillation_loss > 0
    host = [p for p in model.backbone.parameters() if p.requires_grad]
    head = [p for p in model.graph_encoder.parameters() if p.requires_grad]
    to_host = torch.autograd.grad(out.distillation_loss, host, allow_unused=True, retain_graph=True)
    to_head = torch.autograd.grad(out.distillation_loss, head, allow_unused=True)
    assert sum(float(g.abs().sum()) for g in to_host if g is not None) > 0
    assert all(g is None or float(g.abs().sum()) == 0 for g in to_head)


def test_host_keeps_its_own_objective_and_fused_embeddings_get_theirs():
    from modeling_finsta.losses import contrastive_loss

    model = build().train()
    inputs = example_inputs()
    out = model(**inputs)
    scale = model.backbone.logit_scale.exp()
    host = contrastive_loss(out.host_text_embeds, out.host_video_embeds, scale)
    fused = contrastive_loss(out.text_embeds, out.video_embeds, scale)
    assert torch.allclose(out.contrastive_loss, host) and torch.allclose(out.fused_contrastive_loss, fused)
    assert not torch.allclose(host, fused)
    plain = build(inference_mode="distilled").train()(**inputs)
    assert plain.fused_contrastive_loss is None
