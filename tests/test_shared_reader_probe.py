"""The issue-9 shared-reader probe (benchmarks/shared_reader_probe.py): its injected fused pass starts as the
host, becomes graph-dependent once the injection is trained, and never touches distilled mode."""

import importlib.util
from pathlib import Path

import pytest
import torch

from tiny_models import example_inputs, tiny_finsta_config


@pytest.fixture(scope="module")
def probe():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "shared_reader_probe.py"
    spec = importlib.util.spec_from_file_location("shared_reader_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(probe):
    torch.manual_seed(0)
    return probe.SharedReaderFinstaModel(tiny_finsta_config(inference_mode="fused")).eval()


def test_a_fresh_injection_leaves_the_fused_pass_equal_to_the_host(probe):
    model = build(probe)
    assert all(float(p.detach().abs().sum()) == 0 for n, p in model.injection.named_parameters() if not n.startswith("norm"))
    inputs = example_inputs()
    with torch.no_grad():
        out = model(**inputs, return_loss=False)
    torch.testing.assert_close(out.video_embeds, out.host_video_embeds)
    torch.testing.assert_close(out.text_embeds, out.host_text_embeds)


def test_a_trained_injection_changes_fused_embeddings_through_the_host_and_not_the_host_alone(probe):
    model = build(probe)
    inputs = example_inputs()
    with torch.no_grad():
        before = model(**inputs, return_loss=False)
        for linear in (model.injection.text_tokens, model.injection.text_pooled, model.injection.video_patches, model.injection.video_pooled):
            linear.weight.normal_(std=0.5)
        after = model(**inputs, return_loss=False)
        videos = model.get_video_features(inputs["pixel_values"], inputs["video_mask"]).pooler_output
        texts = model.get_text_features(inputs["input_ids"], inputs["attention_mask"], inputs["text_scene_graph"]).pooler_output
    assert not torch.allclose(after.video_embeds, after.host_video_embeds, atol=1e-4)
    has_graph = torch.tensor([True, True, False])  # example_inputs: the last caption has no nodes
    assert not torch.allclose(after.text_embeds[has_graph], after.host_text_embeds[has_graph], atol=1e-4)
    torch.testing.assert_close(after.text_embeds[~has_graph], after.host_text_embeds[~has_graph])
    torch.testing.assert_close(after.host_video_embeds, before.host_video_embeds)  # the host alone is untouched
    torch.testing.assert_close(videos, after.video_embeds)  # the encoders give what forward gives
    torch.testing.assert_close(texts, after.text_embeds)
    model.config.inference_mode = "distilled"
    with torch.no_grad():
        distilled = model.get_video_features(inputs["pixel_values"], inputs["video_mask"]).pooler_output
    torch.testing.assert_close(distilled, before.host_video_embeds)


def test_training_reaches_the_host_layers_above_the_injection_through_the_fused_loss(probe):
    model = build(probe)
    with torch.no_grad():
        model.injection.video_pooled.weight.normal_(std=0.5)
    model.train()
    config = model.config
    for name in ("contrastive_loss_weight", "graph_contrastive_loss_weight", "osc_loss_weight", "ptc_loss_weight", "distillation_loss_weight"):
        setattr(config, name, 0.0)
    out = model(**example_inputs(), return_loss=True)
    out.loss.backward()
    upper = model.backbone.vision_model.encoder.layers[1]
    assert out.fused_contrastive_loss is not None and torch.isfinite(out.loss)
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in upper.parameters())
    assert float(model.injection.video_pooled.weight.grad.abs().sum()) > 0
