"""Distillation objectives: what they pull, what they leave alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modeling_finsta.losses import hard_negative_distillation_loss, similarity_distillation_loss


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


def test_hard_negative_distillation_matches_the_teacher_choice_per_video():
    """KL over [own caption, hard negatives] per video; videos without a negative are left out."""
    torch.manual_seed(2)
    text, video, negative = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 2, 8)
    mask = torch.tensor([[True, True], [False, False], [True, False]])
    scale = torch.tensor(10.0)
    assert hard_negative_distillation_loss(text, video, negative, text, video, negative, scale, mask).abs() < 1e-6

    student_negative = negative.clone().requires_grad_(True)
    loss = hard_negative_distillation_loss(text, video, student_negative, text, video, negative + torch.randn(3, 2, 8), scale, mask)
    loss.backward()
    assert loss > 0
    grad = student_negative.grad
    assert grad[1].abs().sum() == 0 and grad[2, 1].abs().sum() == 0 and grad[0].abs().sum() > 0

    # by hand for video 0: both distributions over its own caption and its two negatives
    def choice(t, v, n):
        return torch.log_softmax(scale * F.cosine_similarity(v.unsqueeze(0), torch.cat([t.unsqueeze(0), n]), dim=-1), -1)

    teacher_negative = negative + 1.0
    one = hard_negative_distillation_loss(text[:1], video[:1], negative[:1], text[:1], video[:1], teacher_negative[:1], scale)
    p, q = choice(text[0], video[0], teacher_negative[0]), choice(text[0], video[0], negative[0])
    assert torch.allclose(one, (p.exp() * (p - q)).sum(), atol=1e-5)


def test_similarity_distillation_ignores_embedding_scale_and_rotation():
    """Only rankings are matched, so a rotated and rescaled student with the same cosines costs nothing."""
    torch.manual_seed(1)
    text, video = torch.randn(5, 6), torch.randn(5, 6)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6))
    loss = similarity_distillation_loss(3 * text @ rotation, video @ rotation, text, video, torch.tensor(20.0))
    assert loss.abs() < 1e-4


# ------------------------------------------------------------------ hand-computed objectives
import math  # noqa: E402

import pytest  # noqa: E402

from modeling_finsta.losses import (  # noqa: E402
    contrastive_loss,
    cosine_logits,
    hard_negative_logits,
    object_spatial_contrastive_loss,
    predicate_temporal_contrastive_loss,
)


def unit(*values):
    vector = torch.tensor(values, dtype=torch.float32)
    return vector / vector.norm()


def log_softmax_at(logits, index):
    return logits[index] - math.log(sum(math.exp(v) for v in logits))


def test_cosine_logits_by_hand():
    queries = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    keys = torch.tensor([[0.0, 2.0], [5.0, 0.0]])
    expected = 2.0 * torch.tensor([[0.0, 1.0], [1 / math.sqrt(2), 1 / math.sqrt(2)]])
    assert torch.allclose(cosine_logits(queries, keys, torch.tensor(2.0)), expected)


def test_hard_negative_logits_by_hand_one_and_k_per_video():
    video = torch.stack([unit(1, 0), unit(0, 1)])
    negatives = torch.stack([unit(1, 1), unit(1, 0)])  # one per video
    scale = torch.tensor(10.0)
    one = hard_negative_logits(video, negatives, scale, torch.tensor([True, False]))
    assert one.shape == (2, 1)
    assert math.isclose(one[0, 0].item(), 10 / math.sqrt(2), rel_tol=1e-6) and one[1, 0].item() == -1e4
    k = hard_negative_logits(video, torch.stack([negatives, negatives.flip(0)], dim=1), scale, torch.ones(2, 2, dtype=torch.bool))
    assert k.shape == (2, 2)
    assert torch.allclose(k[:, 0], one[:, 0].where(torch.tensor([True, False]), torch.tensor(0.0)))  # video 1 . (1,0) = 0
    assert math.isclose(k[0, 1].item(), 10.0, rel_tol=1e-6)


def test_contrastive_loss_by_hand_with_a_hard_negative():
    text = torch.stack([unit(1, 0), unit(0, 1)])
    video = torch.stack([unit(1, 0), unit(1, 1)])
    negative = torch.stack([unit(-1, 1), unit(1, 0)])
    s = 5.0
    c = 1 / math.sqrt(2)
    # per text: rows of s * cos(text_i, video_j); per video: s * cos(video_i, text_j) plus its hard negative
    per_text = [[s * 1, s * c], [s * 0, s * c]]
    per_video = [[s * 1, s * 0, s * -c], [s * c, s * c, s * c]]
    expected = -(
        log_softmax_at(per_text[0], 0) + log_softmax_at(per_text[1], 1) + log_softmax_at(per_video[0], 0) + log_softmax_at(per_video[1], 1)
    ) / 4
    loss = contrastive_loss(text, video, torch.tensor(s), negative, torch.tensor([True, True]))
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    # A masked negative adds nothing; no negatives at all is plain InfoNCE.
    masked = contrastive_loss(text, video, torch.tensor(s), negative, torch.tensor([False, False]))
    plain = contrastive_loss(text, video, torch.tensor(s))
    assert math.isclose(masked.item(), plain.item(), rel_tol=1e-5)


def test_k_hard_negatives_reduce_to_one_for_k_equal_one_and_equal_the_hand_computed_cross_entropy():
    torch.manual_seed(0)
    text, video = torch.randn(3, 4), torch.randn(3, 4)
    negatives = torch.randn(3, 2, 4)
    mask = torch.tensor([[True, True], [True, False], [False, False]])
    scale = torch.tensor(7.0)
    one = contrastive_loss(text, video, scale, negatives[:, 0], mask[:, 0])
    assert torch.allclose(one, contrastive_loss(text, video, scale, negatives[:, :1], mask[:, :1]))
    loss = contrastive_loss(text, video, scale, negatives, mask)
    logits_text = cosine_logits(text, video, scale)
    extra = torch.einsum("bd,bkd->bk", F.normalize(video, dim=-1), F.normalize(negatives, dim=-1)) * scale
    logits_video = torch.cat([logits_text.t(), extra.masked_fill(~mask, float("-inf"))], dim=1)
    labels = torch.arange(3)
    expected = (F.cross_entropy(logits_text, labels) + F.cross_entropy(logits_video, labels)) / 2
    assert torch.allclose(loss, expected, atol=1e-5)


def test_object_spatial_contrast_by_hand():
    # One anchor from caption 0; two videos with two tracks each; the anchor corefers with track 1 of video 0.
    anchors = unit(0, 1).unsqueeze(0)
    regions = torch.stack([torch.stack([unit(1, 0), unit(0, 1)]), torch.stack([unit(1, 1), unit(-1, 0)])])
    region_mask = torch.tensor([[True, True], [True, False]])  # video 1's second track is absent
    s = 4.0
    loss = object_spatial_contrastive_loss(
        anchors, torch.tensor([0]), torch.tensor([[0.0, 1.0]]), regions, region_mask, torch.tensor(s)
    )
    logits = [s * 0, s * 1, s / math.sqrt(2)]  # the absent track is not a candidate
    assert math.isclose(loss.item(), -log_softmax_at(logits, 1), rel_tol=1e-5)
    # Soft targets split over two tracks.
    soft = object_spatial_contrastive_loss(
        anchors, torch.tensor([0]), torch.tensor([[0.5, 0.5]]), regions, region_mask, torch.tensor(s)
    )
    assert math.isclose(soft.item(), -(0.5 * log_softmax_at(logits, 0) + 0.5 * log_softmax_at(logits, 1)), rel_tol=1e-5)


def test_predicate_temporal_contrast_by_hand():
    # One predicate of caption 1: positive = true-order tracks, negatives = reversed / shuffled tracks and the
    # summaries of the other videos (its own video's summary is masked out).
    anchors = unit(1, 0).unsqueeze(0)
    positives = unit(1, 1).unsqueeze(0)
    order_negatives = torch.stack([unit(0, 1), unit(-1, 0)]).unsqueeze(0)
    summaries = torch.stack([unit(1, 0), unit(1, 0), unit(0, -1)])
    s = 3.0
    loss = predicate_temporal_contrastive_loss(anchors, torch.tensor([1]), positives, order_negatives, summaries, torch.tensor(s))
    logits = [s / math.sqrt(2), s * 0, s * -1, s * 1, s * 0]  # summary of video 1 dropped
    assert math.isclose(loss.item(), -log_softmax_at(logits, 0), rel_tol=1e-5)


@pytest.mark.parametrize("world", [2])
def test_gathered_loss_equals_the_global_batch_loss_over_gloo(tmp_path, world):
    """The same check as the distributed training test, on the loss function alone: two gloo processes, each
    with half the batch, average to the single-process loss on the whole batch (with gradients)."""
    import socket
    import subprocess
    import sys
    import textwrap

    with socket.socket() as probe:  # a free loopback port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    script = textwrap.dedent(
        f"""
        import os, sys, torch, torch.distributed as dist
        rank = int(sys.argv[1])
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:{port}", rank=rank, world_size={world})
        from modeling_finsta.losses import contrastive_loss
        torch.manual_seed(0)
        text, video, negative = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
        part = slice(2 * rank, 2 * rank + 2)
        local = text[part].clone().requires_grad_(True)
        loss = contrastive_loss(local, video[part], torch.tensor(10.0), negative[part])
        loss.backward()
        dist.all_reduce(loss, op=dist.ReduceOp.SUM)
        torch.save({{"loss": loss / {world}, "grad": local.grad}}, "{tmp_path}/rank%d.pt" % rank)
        dist.barrier()
        sys.stdout.flush()
        os._exit(0)  # skip interpreter teardown of gloo's threads ("terminate called without an active exception")
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(rank)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(world)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), "\n".join(output[-2000:] for output in outputs)
    torch.manual_seed(0)
    text, video, negative = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    text.requires_grad_(True)
    reference = contrastive_loss(text, video, torch.tensor(10.0), negative)
    (reference * world).backward()  # each rank's gradient is d(world-average)/d(its rows) x world
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world)]
    assert torch.allclose(results[0]["loss"], reference, atol=1e-6)
    grads = torch.cat([r["grad"] for r in results])
    assert torch.allclose(grads, text.grad, atol=1e-5)
