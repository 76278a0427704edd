"""FinstaGenerationProcessor: prompts (with the host's expanded video placeholders), answers as labels,
videos as the host's pixel inputs, and captions with their text scene graphs for Finsta's objectives.

One call prepares what `FinstaForConditionalGeneration.forward` / `generate` / `score_answers` take, for
Video-LLaVA (``pixel_values_videos [B, T, C, H, W]``, ``T * (1 + N)`` placeholders) and Qwen2-VL /
Qwen2.5-VL (flat 2-frame-tubelet patches in the processor's merge-block-major layout, ``video_grid_thw``,
``mm_token_type_ids``). Frames are resized on the shortest side, centre-cropped to a square and
normalised with `VideoPreprocessor` (PIL and NumPy only, no torchvision). For real checkpoints the
host's own processor gives equivalent inputs (Qwen2-VL's keeps the aspect ratio instead of cropping);
this one exists so that the training and evaluation tooling needs nothing beyond the host tokenizer.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from transformers.processing_utils import ProcessorMixin

from .processing_finsta import FinstaBatch
from .scene_graph_batching import collate_scene_graphs, grounding_tensor, text_graph_tensors, video_graph_tensors
from .scene_graphs import ParsedTextSceneGraph, ParsedVideoSceneGraph
from .video_io import CLIP_MEAN, CLIP_STD, VideoPreprocessor, load_video

HOST_TYPES = ("video_llava", "qwen2_vl", "qwen2_5_vl")
DEFAULT_PROMPT_TEMPLATES = {
    "video_llava": "USER: {video}\n{question} ASSISTANT:",
    "qwen2_vl": "<|im_start|>user\n<|vision_start|>{video}<|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n",
    "qwen2_5_vl": "<|im_start|>user\n<|vision_start|>{video}<|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n",
}


class FinstaGenerationProcessor(ProcessorMixin):
    r"""
    Args:
        tokenizer: the host's tokenizer (fast: caption offsets align the TSG with tokens).
        host_type (`str`): one of `HOST_TYPES`; `from_host_config` reads it and the sizes below from a host config.
        video_token (`str`): the placeholder token the host's config names by `video_token_id`.
        num_frames (`int`, 8): frames per video (Qwen2-VL needs a multiple of `temporal_patch_size`).
        image_size (`int`, 224), patch_size (`int`, 14): square frames after resize and crop; the patch grid.
        merge_size (`int`, 2), temporal_patch_size (`int`, 2): Qwen2-VL's spatial merge and tubelet length.
        image_mean, image_std: normalisation (OpenAI CLIP statistics, as both hosts use).
        prompt_template (`str`): the prompt with `{video}` (replaced by the expanded placeholders) and `{question}`.
        caption_max_length (`int`, 48): caption tokens for the text-only pass.
        parser_backend (`str`, `None`): TSG parser for captions given without a TSG (`"auto"`, `"spacy"`, `"rules"`).
    """

    tokenizer_class = "AutoTokenizer"

    def __init__(
        self,
        tokenizer=None,
        host_type: str = "video_llava",
        video_token: str = "<video>",
        num_frames: int = 8,
        image_size: int = 224,
        patch_size: int = 14,
        merge_size: int = 2,
        temporal_patch_size: int = 2,
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        prompt_template: Optional[str] = None,
        caption_max_length: int = 48,
        parser_backend: Optional[str] = None,
        **kwargs,
    ):
        if host_type not in HOST_TYPES:
            raise ValueError(f"FinstaGenerationProcessor.host_type must be one of {HOST_TYPES}, got {host_type!r}")
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"FinstaGenerationProcessor.num_frames: expected a positive int, got {num_frames!r}")
        self.host_type = host_type
        self.video_token = video_token
        self.num_frames = num_frames
        self.image_size = image_size
        self.patch_size = patch_size
        self.merge_size = merge_size
        self.temporal_patch_size = temporal_patch_size
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.prompt_template = prompt_template or DEFAULT_PROMPT_TEMPLATES[host_type]
        if "{video}" not in self.prompt_template or "{question}" not in self.prompt_template:
            raise ValueError("FinstaGenerationProcessor.prompt_template needs '{video}' and '{question}'")
        self.caption_max_length = caption_max_length
        self.parser_backend = parser_backend
        self._parser = None
        self._check_grid()
        super().__init__(tokenizer, **kwargs)

    @classmethod
    def from_host_config(cls, tokenizer, backbone_config, **kwargs) -> "FinstaGenerationProcessor":
        """Sizes and the placeholder token from a host config (`VideoLlavaConfig`, `Qwen2VLConfig`, ...)."""
        vision = backbone_config.vision_config
        settings: dict[str, Any] = dict(host_type=backbone_config.model_type, patch_size=vision.patch_size)
        settings["video_token"] = tokenizer.convert_ids_to_tokens(backbone_config.video_token_id)
        if backbone_config.model_type == "video_llava":
            settings["image_size"] = vision.image_size
        else:
            settings.update(merge_size=vision.spatial_merge_size, temporal_patch_size=vision.temporal_patch_size)
        settings.update(kwargs)
        return cls(tokenizer=tokenizer, **settings)

    # ------------------------------------------------------------------------------- layout
    @property
    def is_qwen(self) -> bool:
        return self.host_type != "video_llava"

    def _check_grid(self) -> None:
        unit = self.patch_size * (self.merge_size if self.is_qwen else 1)
        if self.image_size % unit:
            raise ValueError(f"FinstaGenerationProcessor.image_size={self.image_size} is not a multiple of {unit}")
        if self.is_qwen and self.num_frames % self.temporal_patch_size:
            raise ValueError(
                f"Qwen2-VL encodes frames in tubelets of temporal_patch_size={self.temporal_patch_size}: num_frames must "
                f"be a multiple of it, got {self.num_frames}"
            )

    @property
    def video_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.video_token)

    def num_video_tokens(self) -> int:
        """Placeholders per video in the prompt."""
        grid = self.image_size // self.patch_size
        if not self.is_qwen:
            return self.num_frames * (grid * grid + 1)
        return (self.num_frames // self.temporal_patch_size) * (grid // self.merge_size) ** 2

    # ------------------------------------------------------------------------------- videos
    def preprocess_videos(self, videos: Sequence[Any], frame_sizes: Optional[list] = None) -> dict[str, torch.Tensor]:
        """Videos (paths, bytes or uint8 ``[T, H, W, 3]`` arrays of exactly ``num_frames`` frames) -> host inputs.

        ``frame_sizes``, when given, receives each video's original (height, width)."""
        arrays = []
        for position, video in enumerate(videos):
            if not isinstance(video, np.ndarray):
                video, _ = load_video(video, sampling="uniform", num_frames=self.num_frames)
            if video.ndim != 4 or video.shape[0] != self.num_frames:
                raise ValueError(
                    f"video {position} has shape {tuple(video.shape)}; the host prompt is built for {self.num_frames} "
                    f"frames [T, H, W, 3] (set num_frames, or sample the video with load_video)"
                )
            arrays.append(video)
            if frame_sizes is not None:
                frame_sizes.append(tuple(video.shape[1:3]))
        preprocessor = VideoPreprocessor(
            size=self.image_size, crop_size=self.image_size, image_mean=self.image_mean, image_std=self.image_std
        )
        pixels = preprocessor(arrays, num_frames=self.num_frames)["pixel_values"]  # [B, T, C, H, W]
        if not self.is_qwen:
            return {"pixel_values_videos": pixels}
        return qwen_patchify(pixels, self.patch_size, self.merge_size, self.temporal_patch_size)

    # ------------------------------------------------------------------------------- text
    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, question: str) -> list[int]:
        before, after = self.prompt_template.split("{video}", 1)
        ids = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
        ids += self._ids(before.replace("{question}", question)) if before.strip() else []
        ids += [self.video_token_id] * self.num_video_tokens()
        return ids + self._ids(after.format(question=question))

    def answer_ids(self, answer: str) -> list[int]:
        return self._ids(" " + answer.strip()) + [self.tokenizer.eos_token_id]

    @property
    def parser(self):
        if self._parser is None:
            from .text_scene_graph_parser import TextSceneGraphParser

            self._parser = TextSceneGraphParser(backend=self.parser_backend)
        return self._parser

    def __call__(
        self,
        questions: Optional[Sequence[str]] = None,
        videos: Optional[Sequence[Any]] = None,
        answers: Optional[Sequence[str]] = None,
        captions: Optional[Sequence[str]] = None,
        text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
        video_scene_graphs: Optional[Sequence[Optional[ParsedVideoSceneGraph]]] = None,
        negative_captions: Optional[Sequence[Sequence[str]]] = None,
        return_tensors: Optional[str] = "pt",
        **kwargs,
    ) -> FinstaBatch:
        """Prepare a batch.

        Args:
            questions / videos: one question (or instruction) and one video per example.
            answers: targets; with them the sequences end with answer + EOS, ``labels`` mark those tokens and
                padding is on the right (training). Without them padding is on the left (``generate``).
            captions (+ text_scene_graphs): the caption of each video for Finsta's objectives; parsed with
                ``parser_backend`` when no TSG is given. video_scene_graphs: annotated DSGs (optional).
            negative_captions: per example a list of hard-negative captions (padded to the longest list).
        """
        if return_tensors not in ("pt", None):
            raise ValueError("FinstaGenerationProcessor returns PyTorch tensors only")
        data: dict[str, Any] = {}
        if questions is not None:
            questions = [questions] if isinstance(questions, str) else list(questions)
            if answers is not None and len(answers) != len(questions):
                raise ValueError(f"got {len(answers)} answers for {len(questions)} questions")
            rows, label_rows = [], []
            for i, question in enumerate(questions):
                prompt = self.prompt_ids(question)
                answer = [] if answers is None else self.answer_ids(answers[i])
                rows.append(prompt + answer)
                label_rows.append([-100] * len(prompt) + answer)
            data.update(_pad(rows, label_rows if answers is not None else None, self.tokenizer.pad_token_id, left=answers is None))
            if self.is_qwen:
                data["mm_token_type_ids"] = (data["input_ids"] == self.video_token_id).long() * 2
        frame_sizes: list[tuple[int, int]] = []
        if videos is not None:
            videos = list(videos)
            if questions is not None and len(videos) != len(questions):
                raise ValueError(f"got {len(videos)} videos for {len(questions)} questions")
            data.update(self.preprocess_videos(videos, frame_sizes))
        if captions is not None:
            data.update(self._captions(list(captions), text_scene_graphs, video_scene_graphs))
        if video_scene_graphs is not None and any(g is not None for g in video_scene_graphs):
            data["video_scene_graph"] = collate_scene_graphs(
                [
                    None
                    if g is None
                    else video_graph_tensors(
                        g, list(range(self.num_frames)), frame_size=frame_sizes[i] if i < len(frame_sizes) else None,
                        resize_to=self.image_size, crop_size=(self.image_size, self.image_size),
                    )  # fmt: skip
                    for i, g in enumerate(video_scene_graphs)
                ]
            )
        if negative_captions is not None:
            data.update(self._negatives([list(n) for n in negative_captions]))
        return FinstaBatch(data)

    def _captions(self, captions, text_scene_graphs, video_scene_graphs) -> dict[str, Any]:
        encoded = self.tokenizer(
            captions, padding="longest", truncation=True, max_length=self.caption_max_length,
            return_offsets_mapping=True, return_tensors="pt", add_special_tokens=False,
        )  # fmt: skip
        out: dict[str, Any] = {"caption_input_ids": encoded["input_ids"], "caption_attention_mask": encoded["attention_mask"]}
        graphs = list(text_scene_graphs) if text_scene_graphs is not None else None
        if graphs is None and self.parser_backend is not None:
            graphs = list(self.parser.parse_batch(captions))
        if graphs is None:
            return out
        if len(graphs) != len(captions):
            raise ValueError(f"got {len(graphs)} text_scene_graphs for {len(captions)} captions")
        offsets = encoded["offset_mapping"].tolist()
        tensors = collate_scene_graphs(
            [None if g is None else text_graph_tensors(g, [tuple(o) for o in offsets[i]]) for i, g in enumerate(graphs)]
        )
        if tensors is None:
            return out
        if video_scene_graphs is not None and len(video_scene_graphs) == len(graphs):
            nodes = tensors["node_types"].shape[1]
            slots = max((len(v.track_ids()) for v in video_scene_graphs if v is not None), default=0)
            if slots:
                tensors["grounding"] = torch.stack(
                    [
                        torch.zeros(nodes, slots) if (t is None or v is None) else grounding_tensor(t, v, nodes, slots)
                        for t, v in zip(graphs, video_scene_graphs)
                    ]
                )
        out["text_scene_graph"] = tensors
        return out

    def _negatives(self, negatives: list[list[str]]) -> dict[str, torch.Tensor]:
        count = max((len(n) for n in negatives), default=0)
        if count == 0:
            return {}
        flat = [n[k] if k < len(n) else "" for n in negatives for k in range(count)]
        encoded = self.tokenizer(
            flat, padding="longest", truncation=True, max_length=self.caption_max_length, return_tensors="pt", add_special_tokens=False
        )
        shape = (len(negatives), count, -1)
        mask = torch.tensor([[k < len(n) for k in range(count)] for n in negatives])
        attention = encoded["attention_mask"].view(shape).clone()
        attention[~mask] = 0
        attention[..., 0] = 1  # an empty slot still attends to one token (it is masked out of the loss)
        return {
            "negative_caption_input_ids": encoded["input_ids"].view(shape),
            "negative_caption_attention_mask": attention,
            "negative_mask": mask,
        }

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)


def qwen_patchify(pixels: torch.Tensor, patch_size: int, merge_size: int, temporal_patch_size: int) -> dict[str, torch.Tensor]:
    """``[B, T, C, H, W]`` -> Qwen2-VL's flat patches ``[B * t * h * w, C * tp * p * p]`` (merge-block-major:
    t, h/m, w/m, m, m; each patch a ``tp``-frame tubelet) and ``video_grid_thw [B, 3]``, as its video processor lays them out."""
    batch, frames, channels, height, width = pixels.shape
    if frames % temporal_patch_size:
        raise ValueError(f"{frames} frames do not form tubelets of temporal_patch_size={temporal_patch_size}")
    t, h, w = frames // temporal_patch_size, height // patch_size, width // patch_size
    patches = pixels.reshape(
        batch, t, temporal_patch_size, channels, h // merge_size, merge_size, patch_size, w // merge_size, merge_size, patch_size
    )
    patches = patches.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    flat = patches.reshape(batch * t * h * w, channels * temporal_patch_size * patch_size * patch_size)
    return {"pixel_values_videos": flat, "video_grid_thw": torch.tensor([[t, h, w]] * batch, dtype=torch.long)}


def _pad(rows: list[list[int]], label_rows: Optional[list[list[int]]], pad_id: int, left: bool) -> dict[str, torch.Tensor]:
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(length - len(row), length) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row)
        mask[i, span] = 1
        if label_rows is not None:
            labels[i, span] = torch.tensor(label_rows[i])
    out = {"input_ids": ids, "attention_mask": mask}
    if label_rows is not None:
        out["labels"] = labels
    return out


FinstaGenerationProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["DEFAULT_PROMPT_TEMPLATES", "FinstaGenerationProcessor", "HOST_TYPES", "qwen_patchify"]
