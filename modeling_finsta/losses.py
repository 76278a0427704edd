"""Finsta's objectives: gathered video-text InfoNCE, OSC, PTC and host distillation.

All functions are plain and explicit (in the spirit of open_clip's ``loss.py``): they take
embeddings and masks, return a scalar, and say in their docstrings what is positive and what is
negative.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``tensor [B, ...]`` across processes keeping gradients; returns (gathered, offset of this rank).

    Without an initialised process group (or with one process) it is the identity. Every rank must
    pass the same batch size, as DDP and Accelerate's even batches guarantee.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    from torch.distributed.nn.functional import all_gather

    gathered = torch.cat(all_gather(tensor.contiguous()), dim=0)
    return gathered, dist.get_rank() * tensor.shape[0]


def cosine_logits(queries: torch.Tensor, keys: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """``logit_scale * cos(query_i, key_j)``: ``[Q, D] x [K, D] -> [Q, K]``.

    The one logits helper behind every contrastive term (host, fused, graph, OSC, PTC, distillation).
    """
    return logit_scale * F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).t()


def paired_cosine_logits(queries: torch.Tensor, candidates: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Each query against its own candidates only: ``[B, D] x [B, K, D] -> [B, K]``."""
    return logit_scale * torch.einsum("bd,bkd->bk", F.normalize(queries, dim=-1), F.normalize(candidates, dim=-1))


def _per_video(negatives: torch.Tensor, mask: Optional[torch.Tensor]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Hard negatives as ``[B, K, D]`` with mask ``[B, K]`` (one caption per video ``[B, D]`` / ``[B]`` is K = 1)."""
    if negatives.dim() == 2:
        negatives = negatives.unsqueeze(1)
        mask = None if mask is None else mask.reshape(-1, 1)
    return negatives, mask


def hard_negative_logits(
    video_embeds: torch.Tensor, negative_text_embeds: torch.Tensor, logit_scale: torch.Tensor, negative_mask=None
) -> torch.Tensor:
    """Each video's scaled cosine with its own hard-negative captions: ``[B, K]``.

    ``negative_text_embeds`` is ``[B, K, D]`` (K candidates per video, e.g. multiple-choice answers) or
    ``[B, D]`` (one each). Missing candidates (``negative_mask`` false) get -1e4: no probability
    after a softmax, and finite, so that KL terms over masked candidates are 0 rather than NaN.
    """
    negatives, mask = _per_video(negative_text_embeds, negative_mask)
    extra = paired_cosine_logits(video_embeds, negatives, logit_scale)
    if mask is not None:
        extra = extra.masked_fill(~mask.bool(), -1e4)
    return extra


def contrastive_loss(
    text_embeds: torch.Tensor,
    video_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    negative_text_embeds: Optional[torch.Tensor] = None,
    negative_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Symmetric InfoNCE between text and video embeddings, gathered across processes.

    Each local caption is scored against every video of the global batch (and vice versa); the
    positive is its own video. Averaged over ranks by DDP, this equals the single-process loss on
    the global batch. ``negative_text_embeds`` (``[B, D]`` or ``[B, K, D]``) are hard-negative
    captions (e.g. the caption of the time-reversed clip): extra candidates for their own video
    only, where ``negative_mask`` is true.
    """
    all_text, offset = gather_with_grad(text_embeds)
    all_video, _ = gather_with_grad(video_embeds)
    labels = torch.arange(text_embeds.shape[0], device=text_embeds.device) + offset
    logits_per_text = cosine_logits(text_embeds, all_video, logit_scale)
    logits_per_video = cosine_logits(video_embeds, all_text, logit_scale)
    if negative_text_embeds is not None:
        extra = hard_negative_logits(video_embeds, negative_text_embeds, logit_scale, negative_mask)
        logits_per_video = torch.cat([logits_per_video, extra], dim=1)
    return (F.cross_entropy(logits_per_text.float(), labels) + F.cross_entropy(logits_per_video.float(), labels)) / 2


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a target distribution, over candidates where ``valid`` is true."""
    logits = logits.float().masked_fill(~valid, float("-inf"))
    log_probs = torch.log_softmax(logits, dim=-1).masked_fill(~valid, 0.0)
    return -(targets * log_probs).sum(-1).mean()


def neighbourhood_mean(states: torch.Tensor, adjacency: torch.Tensor, include_self: bool = True) -> torch.Tensor:
    """Mean of each node's state with its neighbours' (``adjacency [..., N, N]`` 0/1 or soft)."""
    weights = adjacency.to(states.dtype)
    if include_self:
        weights = weights + torch.eye(weights.shape[-1], dtype=weights.dtype, device=weights.device)
    return weights @ states / weights.sum(-1, keepdim=True).clamp(min=1e-6)


def object_spatial_contrastive_loss(
    anchors: torch.Tensor,
    anchor_batch_index: torch.Tensor,
    anchor_targets: torch.Tensor,
    regions: torch.Tensor,
    region_mask: torch.Tensor,
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    """OSC: each TSG object (with its attributes) against every DSG track region in the batch.

    anchors ``[A, H]``: object-node states (pooled with their attribute neighbours).
    anchor_batch_index ``[A]``: which caption (and so which paired video) each anchor comes from.
    anchor_targets ``[A, S]``: cross-modal coreference weights over the paired video's tracks.
    regions ``[B, S, H]``: 2-hop neighbourhood regions of every track.
    Positives are the coreferent tracks of the paired video (soft), negatives are its other tracks
    and all tracks of the other videos.
    """
    batch, slots, _ = regions.shape
    logits = cosine_logits(anchors, regions.reshape(batch * slots, -1), logit_scale)  # [A, B*S]
    targets = torch.zeros_like(logits, dtype=torch.float32)
    columns = anchor_batch_index.unsqueeze(1) * slots + torch.arange(slots, device=logits.device)
    targets.scatter_(1, columns, anchor_targets.float())
    keep = targets.sum(-1) > 0
    if not keep.any():
        return logits.sum() * 0.0
    valid = region_mask.reshape(1, -1).expand_as(logits)
    return soft_target_cross_entropy(logits[keep], targets[keep], valid[keep])


def predicate_temporal_contrastive_loss(
    anchors: torch.Tensor,
    anchor_batch_index: torch.Tensor,
    positives: torch.Tensor,
    order_negatives: torch.Tensor,
    video_summaries: torch.Tensor,
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    """PTC: each TSG predicate (with subject, object and adverbs) against temporal track features.

    anchors ``[A, H]``; positives ``[A, H]``: the subject/object tracks of the paired video, encoded
    in true frame order; order_negatives ``[A, K, H]``: the same tracks encoded from the same video
    with frames reversed / shuffled (what teaches temporal order); video_summaries ``[B, H]``: a
    temporal summary of every video, those of the other videos are negatives. Cosines throughout
    (`cosine_logits`), so no input needs to be normalised.
    """
    own_logits = paired_cosine_logits(anchors, torch.cat([positives.unsqueeze(1), order_negatives], dim=1), logit_scale)
    other_logits = cosine_logits(anchors, video_summaries, logit_scale)
    logits = torch.cat([own_logits, other_logits], dim=-1)
    # Mask after scaling: -inf times the scale's gradient would give NaN.
    own = F.one_hot(anchor_batch_index, video_summaries.shape[0]).bool()
    own = F.pad(own, (own_logits.shape[1], 0))
    logits = logits.masked_fill(own, float("-inf"))
    labels = torch.zeros(anchors.shape[0], dtype=torch.long, device=anchors.device)
    return F.cross_entropy(logits.float(), labels)


def clip_order_contrastive_loss(
    text_embeds: torch.Tensor, video_embeds: torch.Tensor, order_negatives: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """[ours, clip-level PTC] each caption against its own clip and the same clip with frames reordered.

    text_embeds, video_embeds ``[B, D]``: the embeddings retrieval uses (fused or host);
    order_negatives ``[B, K, D]``: the same videos with frames reversed / shuffled. The other videos
    are the main contrastive loss's business; this term only asks "which frame order does the
    caption describe", so that order reaches the embedding retrieval ranks by, not only PTC's heads.
    """
    logits = paired_cosine_logits(text_embeds, torch.cat([video_embeds.unsqueeze(1), order_negatives], dim=1), logit_scale)
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), labels)


def _retrieval_logits(text, video, logit_scale, negative_text=None, negative_mask=None):
    """Scaled cosine logits per caption ``[B, B]`` and per video ``[B, B (+K hard-negative captions)]``."""
    text, video = text.float(), video.float()
    per_text = cosine_logits(text, video, logit_scale)
    per_video = per_text.t()
    if negative_text is not None:
        extra = hard_negative_logits(video, negative_text.float(), logit_scale, negative_mask)
        per_video = torch.cat([per_video, extra], dim=1)
    return per_text, per_video


def similarity_distillation_loss(
    student_text: torch.Tensor,
    student_video: torch.Tensor,
    teacher_text: torch.Tensor,
    teacher_video: torch.Tensor,
    logit_scale: torch.Tensor,
    student_negative: Optional[torch.Tensor] = None,
    teacher_negative: Optional[torch.Tensor] = None,
    negative_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """[ours] The host learns to *rank* like the graph-aware (fused) model: KL(teacher || student).

    Over each caption's distribution across the batch's videos and each video's across the captions
    (and its hard-negative caption, when given); the teacher is detached and the batch is local.
    Matching rankings rather than embeddings leaves the host's embedding space to its own objective:
    pulling host embeddings onto the graph embeddings (``distillation_loss``) cost the distilled host
    most of its retrieval accuracy on Finsta-Synth.
    """
    student = _retrieval_logits(student_text, student_video, logit_scale, student_negative, negative_mask)
    with torch.no_grad():
        teacher = _retrieval_logits(
            teacher_text.detach(), teacher_video.detach(), logit_scale.detach(),
            None if teacher_negative is None else teacher_negative.detach(), negative_mask,
        )  # fmt: skip
    kl = [
        F.kl_div(F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), log_target=True, reduction="batchmean")
        for s, t in zip(student, teacher)
    ]
    return (kl[0] + kl[1]) / 2


def hard_negative_distillation_loss(
    student_text: torch.Tensor,
    student_video: torch.Tensor,
    student_negative: torch.Tensor,
    teacher_text: torch.Tensor,
    teacher_video: torch.Tensor,
    teacher_negative: torch.Tensor,
    logit_scale: torch.Tensor,
    negative_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """[ours] The host learns the teacher's choice between each video's own caption and its hard negatives.

    KL(teacher || student) over ``[own caption, K hard negatives]`` per video (``*_negative [B, K, D]``):
    the fine-grained decision alone, which the batch-wide distributions dilute among B captions.
    Videos without any hard negative are left out.
    """
    def choice_logits(text, video, negative):
        own = logit_scale * F.cosine_similarity(video.float(), text.float(), dim=-1).unsqueeze(-1)
        return torch.cat([own, hard_negative_logits(video.float(), negative.float(), logit_scale, negative_mask)], dim=-1)

    student = choice_logits(student_text, student_video, student_negative)
    with torch.no_grad():
        teacher = choice_logits(teacher_text.detach(), teacher_video.detach(), teacher_negative.detach())
    kl = F.kl_div(F.log_softmax(student, dim=-1), F.log_softmax(teacher, dim=-1), log_target=True, reduction="none").sum(-1)
    if negative_mask is None:
        return kl.mean()
    has_negative = _per_video(teacher_negative, negative_mask)[1].any(-1).to(kl.dtype)
    return (kl * has_negative).sum() / has_negative.sum().clamp(min=1)


def distillation_loss(
    host_embeds: torch.Tensor, graph_embeds: torch.Tensor, mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """[ours] 1 - cosine between a student and its detached teacher (``[..., D]``, ``mask [...]`` of valid rows).

    Used for the transfer into the host: host embeddings towards graph or fused embeddings, and host
    token / patch features towards graph node states (``token_distillation_loss``).
    """
    cosine = F.cosine_similarity(host_embeds.float(), graph_embeds.detach().float(), dim=-1)
    if mask is None:
        return (1 - cosine).mean()
    mask = mask.to(cosine.dtype)
    return ((1 - cosine) * mask).sum() / mask.sum().clamp(min=1)


def reversed_frame_order(video_mask: torch.Tensor) -> torch.Tensor:
    """Per-video frame indices ``[B, T]`` that reverse the valid frames and keep padding in place."""
    frames = video_mask.shape[1]
    positions = torch.arange(frames, device=video_mask.device).expand_as(video_mask)
    lengths = video_mask.long().sum(-1, keepdim=True)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def shuffled_frame_order(video_mask: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-video random permutation ``[B, T]`` of the valid frames (never the identity when 3+ frames)."""
    frames = video_mask.shape[1]
    keys = torch.rand(video_mask.shape, generator=generator, device="cpu").to(video_mask.device)
    keys = keys.masked_fill(~video_mask.bool(), 2.0) + torch.arange(frames, device=video_mask.device) * (~video_mask.bool())
    order = keys.argsort(dim=-1)
    identity = torch.arange(frames, device=video_mask.device).expand_as(order)
    lengths = video_mask.long().sum(-1, keepdim=True)
    unchanged = (order == identity).all(-1, keepdim=True) & (lengths >= 3)
    # Fall back to a rotation of the valid frames, which always differs from the identity.
    rotated = torch.where(identity < lengths, (identity + 1) % lengths.clamp(min=1), identity)
    return torch.where(unchanged, rotated, order)


def sigmoid_contrastive_loss(
    text_embeds: torch.Tensor,
    video_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor,
    negative_text_embeds: Optional[torch.Tensor] = None,
    negative_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023), kept as the objective of SigLIP-family hosts.

    Every (caption, video) pair of the global batch is an independent binary problem: label +1 for a
    caption and its own video, -1 otherwise, logit ``logit_scale * cos + logit_bias``; the loss sums
    ``-log sigmoid(label * logit)`` over a caption's pairs and averages over captions. Local captions
    are scored against the gathered videos, so averaged over ranks this equals the single-process
    loss on the global batch (as ``contrastive_loss``). Hard-negative captions (``[B, D]`` or
    ``[B, K, D]``, where ``negative_mask``) add one more -1 pair each for their own video, summed
    into that video's caption row count (they are extra negatives, not extra rows).
    """
    all_video, offset = gather_with_grad(video_embeds)
    logits = cosine_logits(text_embeds, all_video, logit_scale).float() + logit_bias.float()
    labels = -torch.ones_like(logits)
    rows = torch.arange(text_embeds.shape[0], device=logits.device)
    labels[rows, rows + offset] = 1.0
    loss = -F.logsigmoid(labels * logits).sum(-1)
    if negative_text_embeds is not None:
        negatives, mask = _per_video(negative_text_embeds, negative_mask)
        extra = paired_cosine_logits(video_embeds, negatives, logit_scale).float() + logit_bias.float()
        extra_loss = -F.logsigmoid(-extra)
        if mask is not None:
            extra_loss = extra_loss * mask.to(extra_loss.dtype)
        loss = loss + extra_loss.sum(-1)
    return loss.mean()
