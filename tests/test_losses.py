"""Distillation objectives: what they pull, what they leave alone."""

from __future__ import annotations

import torch

from modeling_finsta.losses import similarity_distillation_loss


def test_similarity_distillation_is_zero_when_rankings_agree_and_trains_only_the_student():
    torch.manual_seed(0)
    text, video, negative = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    mask = torch.tensor([True, False, True, True])
    scale = torch.tensor(10.0)
    same = similarity_distillation_loss(text, video, text, video, scale, negative, negative, mask)
    assert same.abs() < 1e-5

    student_text = torch.randn(4, 8, requires_grad=True)
    teacher_text = text.clone().requires_grad_(True)
    loss = similarity_distillation_loss(student_text, video, teacher_text, video, scale, negative, negative, mask)
    assert loss > 0.01 and torch.isfinite(loss)
    loss.backward()
    assert student_text.grad.abs().sum() > 0 and teacher_text.grad is None


def test_similarity_distillation_ignores_embedding_scale_and_rotation():
    """Only rankings are matched, so a rotated and rescaled student with the same cosines costs nothing."""
    torch.manual_seed(1)
    text, video = torch.randn(5, 6), torch.randn(5, 6)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6))
    loss = similarity_distillation_loss(3 * text @ rotation, video @ rotation, text, video, torch.tensor(20.0))
    assert loss.abs() < 1e-4
