"""The SigLIP, SigLIP2 (NaFlex) and VideoPrism hosts: shapes, the host's own embeddings reproduced
exactly, plain-checkpoint loading (only the Finsta head initialised), the sigmoid objective, NaFlex
inputs, fixed frame counts, and order sensitivity of the fused mode."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import (
    annotated_video_scene_graph,
    example_inputs,
    tiny_finsta_config,
    tiny_siglip2_config,
    tiny_siglip_config,
    tiny_videoprism_config,
)
from transformers import Siglip2Model, SiglipModel, VideoPrismClipModel

from modeling_finsta import FinstaConfig, FinstaModel
from modeling_finsta.backbone_adapters import INITIAL_VIDEOPRISM_LOGIT_SCALE, patchify_frames
from modeling_finsta.losses import sigmoid_contrastive_loss

HOSTS = ["siglip", "siglip2", "videoprism"]
HOST_CLASSES = {"siglip": (SiglipModel, tiny_siglip_config), "siglip2": (Siglip2Model, tiny_siglip2_config),
                "videoprism": (VideoPrismClipModel, tiny_videoprism_config)}  # fmt: skip


def build(backbone, seed=0, **overrides):
    torch.manual_seed(seed)
    return FinstaModel(tiny_finsta_config(backbone, **overrides)).eval()


def meanp(frame_embeds):
    return F.normalize(F.normalize(frame_embeds, dim=-1).mean(1), dim=-1)


@pytest.mark.parametrize("backbone", HOSTS)
def test_forward_shapes_losses_and_gradients(backbone):
    model = build(backbone).train()
    inputs = {**example_inputs(), "video_scene_graph": annotated_video_scene_graph(frames=4)}
    out = model(**inputs, return_loss=True)
    batch, width = 3, model.config.projection_dim
    assert out.text_embeds.shape == out.video_embeds.shape == (batch, width)
    assert out.logits_per_text.shape == (batch, batch)
    for name in ("contrastive_loss", "fused_contrastive_loss", "graph_contrastive_loss", "osc_loss", "ptc_loss", "distillation_loss"):
        assert out[name] is not None and torch.isfinite(out[name]), name
    out.loss.backward()
    assert model.graph_encoder.text_node_proj.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_siglip_host_embeddings_are_the_hosts_own():
    model = build("siglip", inference_mode="distilled")
    inputs = example_inputs()
    with torch.no_grad():
        video = model.get_video_features(inputs["pixel_values"]).pooler_output
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"]).pooler_output
        frames = model.backbone.get_image_features(pixel_values=inputs["pixel_values"].flatten(0, 1)).pooler_output
        # SigLIP pools the last position of the padded caption without an attention mask.
        expected_text = model.backbone.get_text_features(input_ids=inputs["input_ids"]).pooler_output
    torch.testing.assert_close(video, meanp(frames.view(3, 4, -1)), atol=1e-6, rtol=0)
    torch.testing.assert_close(text, expected_text, atol=1e-6, rtol=0)


def test_siglip2_patchify_matches_the_image_processor_and_naflex_inputs_agree():
    from transformers.models.siglip2.image_processing_pil_siglip2 import convert_image_to_patches

    frames = torch.randn(5, 3, 16, 24)
    expected = np.stack([convert_image_to_patches(frame.numpy(), 8) for frame in frames])
    assert torch.equal(patchify_frames(frames, 8), torch.from_numpy(expected))

    model = build("siglip2", inference_mode="distilled")
    pixels = example_inputs()["pixel_values"]  # [3, 4, 3, 32, 32]: a 4x4 grid of 8-pixel patches
    patches = patchify_frames(pixels.flatten(0, 1), 8)
    with torch.no_grad():
        video = model.get_video_features(pixels).pooler_output
        frames = model.backbone.get_image_features(
            pixel_values=patches, pixel_attention_mask=torch.ones(12, 16, dtype=torch.long),
            spatial_shapes=torch.tensor([[4, 4]] * 12),
        ).pooler_output  # fmt: skip
        # NaFlex's own layout: padded to 20 patches per frame, with the mask and the spatial shapes.
        padded = torch.zeros(3, 4, 20, patches.shape[-1])
        padded[:, :, :16] = patches.view(3, 4, 16, -1)
        mask = torch.zeros(3, 4, 20, dtype=torch.long)
        mask[:, :, :16] = 1
        naflex = model.get_video_features(padded, pixel_attention_mask=mask, spatial_shapes=torch.tensor([[4, 4]] * 3))
    torch.testing.assert_close(video, meanp(frames.view(3, 4, -1)), atol=1e-6, rtol=0)
    torch.testing.assert_close(naflex.pooler_output, video, atol=1e-6, rtol=0)
    # The fused path sees the same 4x4 grid either way.
    model.config.inference_mode = "fused"
    with torch.no_grad():
        fused = model.get_video_features(pixels).pooler_output
        fused_naflex = model.get_video_features(padded, pixel_attention_mask=mask, spatial_shapes=torch.tensor([[4, 4]] * 3))
    torch.testing.assert_close(fused_naflex.pooler_output, fused, atol=1e-5, rtol=0)


def test_siglip2_refuses_mixed_spatial_shapes_and_inconsistent_masks():
    model = build("siglip2")
    patches = torch.randn(2, 4, 20, 8 * 8 * 3)
    with pytest.raises(ValueError, match="different spatial_shapes"):
        model.get_video_features(patches, spatial_shapes=torch.tensor([[4, 4], [4, 5]]))
    with pytest.raises(ValueError, match="valid patches"):
        model.get_video_features(
            patches, pixel_attention_mask=torch.ones(2, 4, 20, dtype=torch.long), spatial_shapes=torch.tensor([[4, 4]] * 2)
        )
    with pytest.raises(ValueError, match="spatial_shapes"):
        model.get_video_features(patches)


def test_videoprism_host_embeddings_are_the_hosts_own_and_frames_are_fixed():
    model = build("videoprism", inference_mode="distilled")
    inputs = example_inputs()
    with torch.no_grad():
        video = model.get_video_features(inputs["pixel_values"]).pooler_output
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"]).pooler_output
        expected_video = model.backbone.get_video_features(pixel_values_videos=inputs["pixel_values"]).pooler_output
        expected_text = model.backbone.get_text_features(inputs["input_ids"], inputs["attention_mask"]).pooler_output
        with_states = model.get_video_features(inputs["pixel_values"], output_hidden_states=True)
    torch.testing.assert_close(video, expected_video.reshape(3, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(text, expected_text, atol=1e-6, rtol=0)
    torch.testing.assert_close(with_states.pooler_output, video, atol=1e-6, rtol=0)
    assert with_states.hidden_states is not None and with_states.last_hidden_state.shape[:2] == (3, 4)
    with pytest.raises(ValueError, match="built for 4 frames"):
        model.get_video_features(inputs["pixel_values"][:, :3])
    with pytest.raises(ValueError, match="no frame mask"):
        model.get_video_features(inputs["pixel_values"], torch.tensor([[1, 1, 1, 0]] * 3))


def test_videoprism_processor_repeats_frames_of_a_short_video_instead_of_padding():
    from tiny_models import tiny_clip_tokenizer

    from modeling_finsta import FinstaProcessor

    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    settings = {"size": 32, "crop_size": 32}
    prism = FinstaProcessor(tiny_clip_tokenizer(), settings, backbone_type="videoprism", num_frames=4, parser_backend=None)
    clip = FinstaProcessor(tiny_clip_tokenizer(), settings, backbone_type="clip", num_frames=4, parser_backend=None)
    assert prism(videos=[frames])["video_mask"].tolist() == [[1, 1, 1, 1]]
    assert clip(videos=[frames])["video_mask"].tolist() == [[1, 1, 1, 0]]
    # VideoPrism's preset: values in [0, 1], no normalisation.
    assert prism.video_preprocessing["do_normalize"] is False


@pytest.mark.parametrize("backbone", HOSTS)
def test_plain_host_checkpoint_loads_with_only_the_head_initialised(tmp_path, backbone):
    host_class, host_config = HOST_CLASSES[backbone]
    torch.manual_seed(0)
    host = host_class(host_config()).eval()
    host.save_pretrained(tmp_path)
    model, info = FinstaModel.from_pretrained(tmp_path, output_loading_info=True)
    assert model.config.backbone_type == backbone and isinstance(model.config, FinstaConfig)
    assert {key.split(".")[0] for key in info["missing_keys"]} <= {"graph_encoder", "host_adapter"}
    assert not info["unexpected_keys"]
    for name, value in host.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], value), name
    assert model.graph_encoder.text_node_proj.weight.std() > 0
    if backbone == "videoprism":
        assert math.isclose(model.host_adapter.logit_scale.item(), INITIAL_VIDEOPRISM_LOGIT_SCALE, rel_tol=1e-6)


@pytest.mark.parametrize("backbone", HOSTS)
def test_fused_mode_is_order_sensitive(backbone):
    """Reversing a clip (frames and annotated DSG) moves the fused embedding; SigLIP's meanP host alone cannot tell."""
    model = build(backbone)
    inputs = example_inputs()
    graph = annotated_video_scene_graph(frames=4)
    pixels = inputs["pixel_values"]
    reversed_graph = {key: value.flip(1) for key, value in graph.items()}
    embeds = {}
    with torch.no_grad():
        for mode in ("distilled", "fused"):
            model.config.inference_mode = mode
            embeds[mode] = (
                model.get_video_features(pixels, video_scene_graph=graph).pooler_output,
                model.get_video_features(pixels.flip(1), video_scene_graph=reversed_graph).pooler_output,
            )
    fused_change = (embeds["fused"][0] - embeds["fused"][1]).norm(dim=-1)
    assert (fused_change > 1e-3).all(), fused_change
    host_change = (embeds["distilled"][0] - embeds["distilled"][1]).norm(dim=-1)
    if backbone in ("siglip", "siglip2"):
        assert (host_change < 1e-5).all(), host_change  # meanP: a mean over frames is order-blind


def test_sigmoid_loss_by_hand_with_k_hard_negatives():
    text, video = torch.randn(3, 4), torch.randn(3, 4)
    negatives, mask = torch.randn(3, 2, 4), torch.tensor([[True, False], [True, True], [False, False]])
    scale, bias = torch.tensor(5.0), torch.tensor(-2.0)
    cos = F.normalize(text, dim=-1) @ F.normalize(video, dim=-1).t()
    expected = []
    for i in range(3):
        total = 0.0
        for j in range(3):
            label = 1.0 if i == j else -1.0
            total -= math.log(1 / (1 + math.exp(-label * (scale * cos[i, j] + bias))))
        for k in range(2):
            if mask[i, k]:
                logit = scale * F.cosine_similarity(video[i], negatives[i, k], dim=0) + bias
                total -= math.log(1 / (1 + math.exp(logit)))
        expected.append(total)
    loss = sigmoid_contrastive_loss(text, video, scale, bias, negatives, mask)
    assert math.isclose(loss.item(), sum(expected) / 3, rel_tol=1e-5)
    # No negatives: the plain pairwise loss; K = 1 equals a single negative per video.
    plain = sigmoid_contrastive_loss(text, video, scale, bias)
    assert plain.item() < loss.item()
    assert torch.allclose(
        sigmoid_contrastive_loss(text, video, scale, bias, negatives[:, 0], mask[:, 0]),
        sigmoid_contrastive_loss(text, video, scale, bias, negatives[:, :1], mask[:, :1]),
    )


def test_siglip_host_objective_is_the_sigmoid_loss_with_the_hosts_scale_and_bias():
    model = build("siglip", inference_mode="distilled", graph_contrastive_loss_weight=0.0, distillation_loss_weight=0.0,
                  use_osc=False, use_ptc=False)  # fmt: skip
    with torch.no_grad():
        model.backbone.logit_scale.fill_(math.log(7.0))
        model.backbone.logit_bias.fill_(-3.0)
    inputs = example_inputs()
    with torch.no_grad():
        out = model(**{k: v for k, v in inputs.items() if k != "text_scene_graph"}, return_loss=True)
    expected = sigmoid_contrastive_loss(out.host_text_embeds, out.host_video_embeds, torch.tensor(7.0), torch.tensor(-3.0))
    assert math.isclose(out.contrastive_loss.item(), expected.item(), rel_tol=1e-5)
    assert math.isclose(out.loss.item(), expected.item(), rel_tol=1e-5)


def test_configs_without_a_shared_joint_space_are_refused():
    config = tiny_siglip_config()
    config.text_config.projection_size = 16
    with pytest.raises(ValueError, match="projection_size"):
        FinstaConfig(backbone_config=config)
    prism = tiny_videoprism_config()
    prism.vision_config.tubelet_size = [2, 8, 8]
    with pytest.raises(ValueError, match="tubelet_size"):
        FinstaConfig(backbone_config=prism)
    assert FinstaConfig(backbone_config=tiny_siglip_config()).projection_dim == 32


def test_gathered_sigmoid_loss_equals_the_global_batch_loss_over_gloo(tmp_path):
    """Two gloo processes, each with half the batch (and its K hard negatives), average to the single-process
    sigmoid loss on the whole batch, with the same gradients for the captions and the (gathered) videos."""
    import socket
    import subprocess
    import sys
    import textwrap

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = textwrap.dedent(
        f"""
        import os, sys, torch, torch.distributed as dist
        rank = int(sys.argv[1])
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:{port}", rank=rank, world_size=2)
        import importlib.util  # losses.py needs torch only: load it alone, without the package's transformers import
        spec = importlib.util.spec_from_file_location("losses", {str(Path(__file__).resolve().parents[1] / "modeling_finsta" / "losses.py")!r})
        losses = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(losses)
        sigmoid_contrastive_loss = losses.sigmoid_contrastive_loss
        torch.manual_seed(0)
        text, video, negatives = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 3, 8)
        mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]]).bool()
        part = slice(2 * rank, 2 * rank + 2)
        local_text = text[part].clone().requires_grad_(True)
        local_video = video[part].clone().requires_grad_(True)
        loss = sigmoid_contrastive_loss(local_text, local_video, torch.tensor(5.0), torch.tensor(-2.0), negatives[part], mask[part])
        loss.backward()
        dist.all_reduce(loss, op=dist.ReduceOp.SUM)
        torch.save({{"loss": loss / 2, "text": local_text.grad, "video": local_video.grad}}, "{tmp_path}/rank%d.pt" % rank)
        dist.barrier()
        sys.stdout.flush()
        os._exit(0)
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(rank)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(2)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), "\n".join(output[-2000:] for output in outputs)
    torch.manual_seed(0)
    text, video, negatives = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 3, 8)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]]).bool()
    text.requires_grad_(True)
    video.requires_grad_(True)
    reference = sigmoid_contrastive_loss(text, video, torch.tensor(5.0), torch.tensor(-2.0), negatives, mask)
    (reference * 2).backward()  # a rank's gradient is d(sum over ranks)/d(its rows)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    assert torch.allclose(results[0]["loss"], reference, atol=1e-6)
    assert torch.allclose(torch.cat([r["text"] for r in results]), text.grad, atol=1e-5)
    assert torch.allclose(torch.cat([r["video"] for r in results]), video.grad, atol=1e-5)


@pytest.mark.parametrize("backbone", ["siglip", "videoprism"])
def test_lora_reaches_the_new_hosts_backbone_and_trains_the_head_in_full(backbone):
    from modeling_finsta.training import get_finsta_peft_model

    model = get_finsta_peft_model(build(backbone))
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert any("lora_" in name and ".backbone." in name for name in trainable)
    assert not any("lora_" in name for name in trainable if "graph_encoder" in name)
    assert any("graph_encoder.modules_to_save" in name for name in trainable)
    if backbone == "videoprism":  # the adapter's temperature is a trained parameter too
        assert any("host_adapter.modules_to_save" in name and "logit_scale" in name for name in trainable)
