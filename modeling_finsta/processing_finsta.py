"""FinstaProcessor: captions -> tokens + textual scene graphs; videos -> frames + (optional) video scene graphs.

One call prepares everything `FinstaModel.forward` takes. It tokenizes with the backbone's tokenizer
(with offsets, for node-to-token alignment), parses captions into TSGs, decodes and samples videos
with PyAV, preprocesses frames with the backbone's statistics and turns annotated DSGs into padded
tensors aligned with the sampled frames and the crop. It saves and loads with
`save_pretrained`/`from_pretrained` (`processor_config.json`) and travels as Hub remote code.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import logging

from .scene_graph_batching import (
    collate_scene_graphs,
    grounding_tensor,
    pad_stack,
    text_graph_tensors,
    video_graph_tensors,
)
from .scene_graphs import ParsedTextSceneGraph, ParsedVideoSceneGraph, move_tensor
from .video_io import VideoPreprocessor, load_video, preprocessor_for_backbone

REPEAT_SHORT_VIDEOS = ("videoprism",)
"""Hosts without a frame mask (fixed frame count): a video shorter than ``num_frames`` keeps its repeated frames."""

logger = logging.get_logger(__name__)


def _check_captions(captions: Sequence[Any]) -> None:
    """Captions must be strings that can be encoded (a lone surrogate would crash deep in the tokenizer)."""
    for index, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f"FinstaProcessor: caption {index} is a {type(caption).__name__}; expected a str")
        try:
            caption.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"FinstaProcessor: caption {index} ({caption!r}) has the unencodable character {caption[error.start]!r} "
                f"at position {error.start} (a lone surrogate: text decoded with errors='surrogateescape'?)"
            ) from None


class FinstaBatch(BatchFeature):
    """A `BatchFeature` whose nested scene-graph dicts also move with `.to(...)`."""

    def to(self, *args, **kwargs) -> "FinstaBatch":
        for key, value in list(self.data.items()):
            if isinstance(value, torch.Tensor):
                self.data[key] = move_tensor(value, *args, **kwargs)
            elif isinstance(value, dict):
                self.data[key] = FinstaBatch(value).to(*args, **kwargs).data
        return self


class FinstaProcessor(ProcessorMixin):
    r"""
    Args:
        tokenizer: the backbone's tokenizer (a fast tokenizer: offsets are needed for alignment).
        video_preprocessing (`dict`, *optional*): `VideoPreprocessor` settings (size, crop, mean, std);
            defaults to the preset of `backbone_type`.
        backbone_type (`str`, defaults to `"clip"`): picks default statistics (CLIP or ImageNet for X-CLIP).
        num_frames (`int`, defaults to 12): frames per video; shorter videos are padded with a mask.
        frame_sampling (`str`, defaults to `"uniform"`): `"uniform"` K frames, or `"fps"` (CLIP4Clip style).
        sampling_fps (`float`, defaults to 1.0), slice_mode (`str`, defaults to `"uniform"`): for `"fps"`.
        max_length (`int`, defaults to 32): caption tokens (CLIP4Clip uses 32).
        max_text_nodes (`int`, *optional*): cap on TSG nodes per caption.
        parser_backend (`str`, defaults to `"auto"`): `"spacy"`, `"rules"` or `"auto"`; `None` disables parsing.
        relation_vocabulary (`list[str]`, *optional*): predicate names mapped to relation ids 1..R in order;
            other predicates hash into the same range.
        num_video_relation_types (`int`, defaults to 16): R, must match the model config.
    """

    tokenizer_class = "AutoTokenizer"

    def __init__(
        self,
        tokenizer=None,
        video_preprocessing: Optional[dict[str, Any]] = None,
        backbone_type: str = "clip",
        num_frames: int = 12,
        frame_sampling: str = "uniform",
        sampling_fps: float = 1.0,
        slice_mode: str = "uniform",
        max_length: int = 32,
        max_text_nodes: Optional[int] = None,
        parser_backend: Optional[str] = "auto",
        relation_vocabulary: Optional[list[str]] = None,
        num_video_relation_types: int = 16,
        **kwargs,
    ):
        # The backbone's preset (statistics, resampling) fills whatever the caller leaves out.
        settings = preprocessor_for_backbone(backbone_type).to_dict()
        settings.update(video_preprocessing or {})
        self.video_preprocessing = settings
        self.video_preprocessor = VideoPreprocessor.from_dict(self.video_preprocessing)
        self.backbone_type = backbone_type
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"FinstaProcessor.num_frames: expected a positive int, got {num_frames!r}")
        self.num_frames = num_frames
        self.frame_sampling = frame_sampling
        self.sampling_fps = sampling_fps
        self.slice_mode = slice_mode
        self.max_length = max_length
        self.max_text_nodes = max_text_nodes
        self.parser_backend = parser_backend
        self.relation_vocabulary = None if relation_vocabulary is None else [" ".join(r.lower().split()) for r in relation_vocabulary]
        self.num_video_relation_types = num_video_relation_types
        self._parser = None
        self._warned_lost_text: set[str] = set()
        super().__init__(tokenizer, **kwargs)

    # --------------------------------------------------------------------------------- parsing
    @property
    def parser(self):
        if self._parser is None:
            from .text_scene_graph_parser import TextSceneGraphParser

            self._parser = TextSceneGraphParser(backend=self.parser_backend)
        return self._parser

    def parse_captions(self, captions: Sequence[str]) -> list[ParsedTextSceneGraph]:
        return list(self.parser.parse_batch(list(captions)))

    def to_dict(self) -> dict[str, Any]:
        """As saved in ``processor_config.json``. ``parser_backend="auto"`` is saved as the backend actually in
        use (``"spacy"`` or ``"rules"``), so the saved processor parses captions exactly as the model was trained,
        wherever it is loaded, or fails clearly when that backend is missing (never falls back silently)."""
        output = super().to_dict()
        if output.get("parser_backend") == "auto":
            output["parser_backend"] = self.parser.backend
        return output

    # ---------------------------------------------------------------------------------- call
    def __call__(
        self,
        text: Optional[Union[str, Sequence[str]]] = None,
        videos: Optional[Any] = None,
        video_scene_graphs: Optional[Sequence[Union[ParsedVideoSceneGraph, str, None]]] = None,
        text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
        return_tensors: Optional[str] = "pt",
        **kwargs,
    ) -> FinstaBatch:
        """Prepare captions and/or videos for `FinstaModel`.

        Args:
            text: a caption or a list of captions.
            videos: one video or a list (or a `[B, T, ...]` tensor); each a path, bytes, a uint8 array or tensor
                `[T, H, W, 3]` / `[T, 3, H, W]` (floats in [0, 1] accepted), or a list of frames (PIL images,
                arrays or tensors).
            video_scene_graphs: per video an annotated DSG (`ParsedVideoSceneGraph` or a JSON path), or None.
            text_scene_graphs: per caption a ready TSG; captions without one (None, or no list at all) are parsed
                when a parser backend is set.
        """
        if return_tensors not in ("pt", None):
            raise ValueError(f"FinstaProcessor returns PyTorch tensors only (return_tensors='pt'), got {return_tensors!r}")
        if text is None and videos is None:
            raise ValueError("FinstaProcessor needs `text`, `videos` or both")
        data: dict[str, Any] = {}
        parsed_text: Optional[list[ParsedTextSceneGraph]] = None
        if text is not None:
            captions = [text] if isinstance(text, str) else list(text)
            _check_captions(captions)
            encoded = self.tokenizer(
                captions,
                padding="max_length",
                truncation=True,
                max_length=self.max_length,
                return_offsets_mapping=True,
                return_tensors="pt",
            )
            data["input_ids"] = encoded["input_ids"]
            data["attention_mask"] = encoded["attention_mask"]
            self._warn_about_lost_text(captions, encoded)
            if text_scene_graphs is not None:
                if len(text_scene_graphs) != len(captions):
                    raise ValueError(f"got {len(text_scene_graphs)} text_scene_graphs for {len(captions)} captions")
                parsed_text = list(text_scene_graphs)
                missing = [i for i, graph in enumerate(parsed_text) if graph is None]
                if missing and self.parser_backend is not None:  # a caption without a ready graph is parsed
                    for i, graph in zip(missing, self.parse_captions([captions[i] for i in missing])):
                        parsed_text[i] = graph
            elif self.parser_backend is not None:
                parsed_text = self.parse_captions(captions)
            if parsed_text is not None:
                offsets = encoded["offset_mapping"].tolist()
                data["text_scene_graph"] = collate_scene_graphs(
                    [
                        None if graph is None else text_graph_tensors(graph, [tuple(o) for o in offsets[i]], self.max_text_nodes)
                        for i, graph in enumerate(parsed_text)
                    ]
                )
                if data["text_scene_graph"] is None:
                    data.pop("text_scene_graph")
        if videos is not None:
            video_list = self._as_video_list(videos)
            frames, infos = [], []
            for video in video_list:
                array, info = load_video(
                    video,
                    **(
                        {"sampling": "uniform", "num_frames": self.num_frames}
                        if self.frame_sampling == "uniform"
                        else {"sampling": "fps", "fps": self.sampling_fps, "max_frames": self.num_frames, "slice_mode": self.slice_mode}
                    ),
                )
                if len(set(info.frame_indices)) < len(info.frame_indices) and self.backbone_type not in REPEAT_SHORT_VIDEOS:
                    # A video shorter than num_frames: keep each frame once; the rest is padding with mask 0.
                    keep = sorted({index: position for position, index in reversed(list(enumerate(info.frame_indices)))}.values())
                    array = array[keep]
                    info.frame_indices = [info.frame_indices[k] for k in keep]
                frames.append(array)
                infos.append(info)
            processed = self.video_preprocessor(frames, num_frames=self.num_frames)
            data["pixel_values"] = processed["pixel_values"]
            data["video_mask"] = processed["video_mask"]
            if video_scene_graphs is not None:
                graphs = [self._read_graph(g) for g in video_scene_graphs]  # each JSON file read once
                data["video_scene_graph"] = self._video_graphs(graphs, frames, infos)
                if parsed_text is not None and len(parsed_text) == len(video_list):
                    text_tensors = data.get("text_scene_graph")
                    if text_tensors is not None:
                        nodes = text_tensors["node_types"].shape[1]
                        slots = data["video_scene_graph"]["boxes"].shape[2]
                        text_tensors["grounding"] = torch.stack(
                            [
                                torch.zeros(nodes, slots) if (t is None or v is None) else grounding_tensor(t, v, nodes, slots)
                                for t, v in zip(parsed_text, graphs)
                            ]
                        )
        return FinstaBatch(data)

    # ---------------------------------------------------------------------------------- helpers
    def _warn_about_lost_text(self, captions: Sequence[str], encoded) -> None:
        """Warn (once per kind) when a caption loses words: characters the vocabulary cannot spell (they
        become the unknown token) or text cut off by ``max_length``. Either silently changes its meaning."""
        unknown = self.tokenizer.unk_token_id
        lost: dict[str, list[tuple[str, str]]] = {"vocabulary": [], "truncation": []}
        for caption, ids, offsets in zip(captions, encoded["input_ids"].tolist(), encoded["offset_mapping"].tolist()):
            spelled = [(start, end) for token, (start, end) in zip(ids, offsets) if end > start and token != unknown]
            reached = max((end for _, end in offsets), default=0)  # how far the kept tokens (unknown ones too) reach
            covered = bytearray(len(caption))
            for start, end in spelled:
                covered[start:end] = b"\x01" * (end - start)
            unspelled = "".join(ch for i, ch in enumerate(caption[:reached]) if not covered[i] and not ch.isspace())
            if unspelled:
                lost["vocabulary"].append((caption, unspelled))
            if caption[reached:].strip() and len(self.tokenizer(caption)["input_ids"]) > self.max_length:
                lost["truncation"].append((caption, caption[reached:].strip()))
        for kind, cases in lost.items():
            if cases and kind not in self._warned_lost_text:
                self._warned_lost_text.add(kind)
                caption, text = cases[0]
                what = (
                    f"is cut at max_length={self.max_length} tokens, dropping {text!r}"
                    if kind == "truncation"
                    else f"has characters the tokenizer's vocabulary cannot represent ({text!r} became the unknown token)"
                )
                logger.warning(
                    f"FinstaProcessor: {len(cases)} of {len(captions)} captions lose text; e.g. {caption!r} {what}. "
                    "Their embeddings do not see those words (this warning is shown once)."
                )

    @staticmethod
    def _as_video_list(videos: Any) -> list:
        import numpy as np

        if isinstance(videos, (str, bytes)) or (hasattr(videos, "__fspath__")):
            return [videos]
        if isinstance(videos, torch.Tensor):
            return [videos] if videos.dim() == 4 else list(videos)
        if isinstance(videos, np.ndarray):
            return [videos] if videos.ndim == 4 else list(videos)
        videos = list(videos)
        if videos and not isinstance(videos[0], (str, bytes, np.ndarray, torch.Tensor, list, tuple)) and not hasattr(
            videos[0], "__fspath__"
        ):
            return [videos]  # a single list of PIL images
        if videos and isinstance(videos[0], (np.ndarray, torch.Tensor)) and videos[0].ndim == 3:
            return [videos]  # a single list of frames
        return videos

    @staticmethod
    def _read_graph(graph: Union[ParsedVideoSceneGraph, str, None]) -> Optional[ParsedVideoSceneGraph]:
        if graph is None or isinstance(graph, ParsedVideoSceneGraph):
            return graph
        from .video_scene_graph_io import read_video_scene_graph

        return read_video_scene_graph(graph)

    def _video_graphs(self, graphs, frames, infos) -> Optional[dict[str, torch.Tensor]]:
        if len(graphs) != len(frames):
            raise ValueError(f"got {len(graphs)} video_scene_graphs for {len(frames)} videos")
        tensors = []
        preprocessing = self.video_preprocessor
        for graph, array, info in zip(graphs, frames, infos):
            if graph is None:
                tensors.append(None)
                continue
            tensors.append(
                video_graph_tensors(
                    graph,
                    list(info.frame_indices),
                    frame_size=tuple(array.shape[1:3]),
                    resize_to=preprocessing.size if preprocessing.do_resize else min(array.shape[1:3]),
                    crop_size=tuple(preprocessing.crop_size) if preprocessing.do_center_crop else tuple(array.shape[1:3]),
                    relation_vocabulary=self.relation_vocabulary,
                    num_relation_types=self.num_video_relation_types,
                )
            )
        batch = collate_scene_graphs(tensors)
        if batch is not None and batch["boxes"].shape[1] < self.num_frames:  # videos padded to num_frames
            pad = self.num_frames - batch["boxes"].shape[1]
            batch = {key: torch.nn.functional.pad(value, (0, 0) * (value.dim() - 2) + (0, pad)) for key, value in batch.items()}
        return batch


class FinstaDataCollator:
    """Batches examples for `Trainer` and asks the model for its loss (`return_loss=True`).

    Examples are either raw (`{"text": str, "video": ..., "video_scene_graph": optional}`; the
    processor prepares the batch) or already processed per example (unbatched tensors, with
    `text_scene_graph` / `video_scene_graph` dicts; video-only ones with `labels` for classification),
    which are padded here.
    """

    def __init__(self, processor: Optional[FinstaProcessor] = None):
        self.processor = processor

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if "input_ids" not in examples[0] and "pixel_values" not in examples[0]:  # raw text/video (processed: tensors)
            missing = [key for key in ("text", "video") if key not in examples[0]]
            if missing:
                raise KeyError(
                    f"FinstaDataCollator: the examples have neither processed inputs (input_ids, pixel_values) nor the "
                    f"raw fields {missing} (got {sorted(examples[0])}). With raw examples ({{'text': ..., 'video': ...}}), "
                    "transformers.Trainer drops these fields because FinstaModel.forward has no such arguments: set "
                    "TrainingArguments(remove_unused_columns=False), or process the examples first "
                    "(modeling_finsta.training.encode_examples), which works with the default arguments."
                )
            if self.processor is None:
                raise ValueError("raw examples (text/video) need FinstaDataCollator(processor=...)")
            graphs = [e.get("video_scene_graph") for e in examples]
            batch = dict(
                self.processor(
                    text=[e["text"] for e in examples],
                    videos=[e["video"] for e in examples],
                    video_scene_graphs=graphs if any(g is not None for g in graphs) else None,
                )
            )
        else:
            batch = {}
            for key in examples[0]:
                values = [e.get(key) for e in examples]
                if key.endswith("scene_graph"):
                    batch[key] = collate_scene_graphs(values)
                elif isinstance(values[0], torch.Tensor):
                    batch[key] = pad_stack(values, value=0)
                else:
                    batch[key] = values
        batch["return_loss"] = True
        return batch


FinstaProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["FinstaProcessor", "FinstaDataCollator", "FinstaBatch"]
