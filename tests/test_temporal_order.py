"""What teaches and carries temporal order: the clip-level PTC term, STGD's track motion features, and
the host temporal head re-run on reordered frames."""

from __future__ import annotations

import math

import pytest
import torch

from modeling_finsta.graph_encoder import gather_frames, track_motion_features
from modeling_finsta.losses import clip_order_contrastive_loss, reversed_frame_order
from test_modeling_finsta import BACKBONES, build
from tiny_models import example_inputs


def test_clip_order_loss_matches_a_hand_computed_case():
    text = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    reordered = torch.tensor([[[0.0, 1.0]], [[0.0, 3.0]]])  # video 1's reordered copy is as good as itself
    loss = clip_order_contrastive_loss(text, video, reordered, torch.tensor(2.0))
    first = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0)))
    second = math.log(2.0)
    assert loss.item() == pytest.approx((first + second) / 2, abs=1e-6)


def _boxes_of(centres: list[list[tuple[float, float]]], size: float = 0.1) -> torch.Tensor:
    """``centres[t][k]`` -> boxes ``[1, T, K, 4]``."""
    tensor = torch.tensor(centres)
    return torch.cat([tensor - size / 2, tensor + size / 2], dim=-1).unsqueeze(0)


def test_motion_features_tell_approach_from_retreat_and_mover_from_landmark():
    # Track 0 moves right towards the static track 1 over four frames.
    boxes = _boxes_of([[(0.1 + 0.1 * t, 0.5), (0.8, 0.5)] for t in range(4)])
    mask = torch.ones(1, 4, 2, dtype=torch.bool)
    features = track_motion_features(boxes, mask)[0]
    velocity_x, distance_change, towards = features[:, 0], features[:, 6], features[:, 7]
    assert velocity_x[0] == pytest.approx(1.0, abs=1e-5) and velocity_x[1] == 0  # units of 0.1 image
    assert distance_change[0] < 0 and distance_change[1] < 0  # they come closer, seen from both
    assert towards[0] > 0.9 and towards[1] == 0  # only the mover moves towards the other

    reversed_features = track_motion_features(gather_frames(boxes, reversed_frame_order(mask.any(-1))), mask)[0]
    assert torch.allclose(reversed_features[:, [0, 6, 7]], -features[:, [0, 6, 7]], atol=1e-5)


def test_motion_features_ignore_untracked_frames():
    boxes = _boxes_of([[(0.1, 0.5), (0.8, 0.5)], [(0.9, 0.9), (0.8, 0.5)], [(0.3, 0.5), (0.8, 0.5)]])
    mask = torch.tensor([[[True, True], [False, True], [True, True]]])  # track 0 is hidden in frame 1
    features = track_motion_features(boxes, mask)[0]
    assert torch.all(features[0, [0, 1, 6, 7]] == 0)  # no frame where track 0 is seen twice in a row


@pytest.mark.parametrize("backbone,temporal_head", BACKBONES)
def test_host_temporal_head_alone_reproduces_the_video_embedding(backbone, temporal_head):
    model = build(backbone, temporal_head)
    inputs = example_inputs()
    with torch.no_grad():
        host = model.host_adapter.encode_video(model.backbone, inputs["pixel_values"], inputs["video_mask"])
        pooled, frames = model.host_adapter.pool_frames(model.backbone, host.frame_inputs, inputs["video_mask"])
    assert torch.allclose(pooled, host.video_embeds, atol=1e-6)
    assert torch.allclose(frames, host.frame_embeds, atol=1e-6)


def test_clip_order_term_is_part_of_ptc_and_only_of_ptc():
    inputs = example_inputs()
    with_ptc = build().train()
    torch.manual_seed(0)
    out = with_ptc(**inputs)
    assert out.ptc_loss is not None and torch.isfinite(out.ptc_loss)
    without = build(use_ptc=False).train()
    torch.manual_seed(0)
    plain = without(**inputs)
    assert plain.ptc_loss is None
    assert torch.allclose(plain.contrastive_loss, out.contrastive_loss)
