"""Text-video retrieval of a Finsta model: cosine similarity matrix and Recall@K / ranks (``evaluate_retrieval``)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from .encoding import check_dsg, check_mode, encode_texts, encode_videos
from .metrics import retrieval_metrics


def similarity_matrix(text_embeds: torch.Tensor, video_embeds: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``[num_texts, num_videos]``."""
    return F.normalize(text_embeds.float(), dim=-1) @ F.normalize(video_embeds.float(), dim=-1).t()


def _videos_of_paired_examples(examples: Sequence[Mapping[str, Any]], caption_to_video: Sequence[int]) -> list:
    """Video j of a paired example list: the first example whose caption belongs to video j."""
    first: dict[int, int] = {}
    for position, video_index in enumerate(caption_to_video):
        first.setdefault(int(video_index), position)
    num_videos = max(first) + 1
    missing = [j for j in range(num_videos) if j not in first]
    if missing:
        raise ValueError(f"caption_to_video never names videos {missing[:5]}; every video needs a caption")
    return [examples[first[j]] for j in range(num_videos)]


def evaluate_retrieval(
    model,
    examples: Sequence[Mapping[str, Any]],
    caption_to_video: Optional[Sequence[int]] = None,
    *,
    video_examples: Optional[Sequence[Mapping[str, Any]]] = None,
    mode: str = "fused",
    dsg: str = "latent",
    batch_size: int = 64,
    video_to_text: str = "captions",
    show_progress: Optional[bool] = None,
) -> dict[str, float]:
    """t2v / v2t R@1, R@5, R@10 (percent), MdR and MnR of ``model`` (see ``retrieval_metrics``).

    Args:
        examples: processed caption examples, one per caption. Without ``video_examples`` they are
            paired (caption, video) examples: video j is taken from the first example of video j.
        caption_to_video: video index of every caption; default: caption i describes video i.
        video_examples: processed videos, one per video, when captions and videos are kept apart
            (several captions per video without repeating the pixels).
        mode, dsg: inference mode and DSG source (see the module docstring).
        video_to_text: multi-caption protocol of ``retrieval_metrics``.
    """
    check_mode(mode)
    check_dsg(dsg)
    if caption_to_video is None:
        caption_to_video = list(range(len(examples)))
    if len(caption_to_video) != len(examples):
        raise ValueError(f"caption_to_video has {len(caption_to_video)} entries for {len(examples)} caption examples")
    videos = video_examples if video_examples is not None else _videos_of_paired_examples(examples, caption_to_video)
    text_embeds = encode_texts(model, examples, batch_size, mode=mode, show_progress=show_progress)
    video_embeds = encode_videos(
        model, videos, batch_size, mode=mode, use_annotated_dsg=dsg == "annotated", show_progress=show_progress
    )
    similarity = similarity_matrix(text_embeds, video_embeds)
    return retrieval_metrics(similarity, [int(v) for v in caption_to_video], video_to_text=video_to_text)
