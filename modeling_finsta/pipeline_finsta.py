"""The ``zero-shot-video-classification`` pipeline: a video and candidate class names -> ranked labels.

transformers ships ``zero-shot-image-classification`` but no video counterpart, so this is a custom
pipeline. Every saved Finsta model names it in ``config.custom_pipelines`` and carries this file as
remote code, so a user without this package gets the familiar call::

    from transformers import pipeline

    classifier = pipeline("zero-shot-video-classification", model="path/or/org/finsta-model", trust_remote_code=True)
    classifier("video.mp4", candidate_labels=["playing guitar", "riding a bike"])
    # [{"label": "riding a bike", "score": 0.93, "similarity": 0.31}, {"label": "playing guitar", ...}]

(transformers requires ``trust_remote_code=True`` for any task a repo declares in ``custom_pipelines``,
even with this package imported; ``pipeline_class=FinstaZeroShotVideoClassificationPipeline`` or
``modeling_finsta.zero_shot.zero_shot_pipeline(model, processor)`` avoids that in-process.)

Class names go through a prompt-template ensemble (``templates``, default
``zero_shot.DEFAULT_TEMPLATES``); the class embeddings are computed once per (labels, templates,
mode) and cached on the pipeline, so classifying many videos against the same labels encodes the
prompts once. ``mode`` picks the inference mode (``"distilled"``: the host alone; ``"fused"``: host plus
scene-graph embeddings, the latent DSG from the frames or an annotated ``video_scene_graph``).
``score`` is the softmax over the candidates of the host's scaled cosine similarity.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

import torch
from transformers import Pipeline

from .configuration_finsta import INFERENCE_MODES, inference_mode_as
from .zero_shot import DEFAULT_TEMPLATES, ClassPromptEmbeddings, check_labels, check_templates, encode_class_prompts


def _graphs_key(label_graphs: Optional[Sequence[Any]]) -> Optional[tuple]:
    """A hashable cache key for ``label_graphs`` (each graph as sorted JSON; None stays None)."""
    if label_graphs is None:
        return None
    return tuple(None if graph is None else json.dumps(graph.to_dict(), sort_keys=True) for graph in label_graphs)


class FinstaZeroShotVideoClassificationPipeline(Pipeline):
    """Zero-shot video classification with a Finsta dual encoder; see the module docstring.

    Call arguments: ``videos`` (a path, encoded bytes, a ``uint8 [T, H, W, 3]`` array, or a list of such
    videos), ``candidate_labels`` (class names), ``templates`` (prompt templates with ``{label}``; a
    single ``hypothesis_template`` string is accepted as well), ``top_k`` (default: all), ``mode``,
    ``label_graphs`` (gold text scene graphs of the class names, for fused mode) and
    ``video_scene_graph`` (an annotated DSG, a `ParsedVideoSceneGraph` or JSON path, for fused mode).
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                "zero-shot-video-classification needs the model's FinstaProcessor (processor_config.json in the "
                "model folder, or processor=...)"
            )
        self._class_cache: dict[tuple, ClassPromptEmbeddings] = {}

    def __call__(self, videos: Any, candidate_labels: Optional[Sequence[str]] = None, **kwargs: Any):
        if kwargs.get("batch_size") not in (None, 1):
            raise ValueError(
                "zero-shot-video-classification embeds one video per forward (batch_size=1); the class prompts are "
                "encoded once and cached. For a whole dataset use modeling_finsta.evaluation.evaluate_classification."
            )
        return super().__call__(videos, candidate_labels=candidate_labels, **kwargs)

    def _sanitize_parameters(
        self,
        candidate_labels=None,
        templates=None,
        hypothesis_template=None,
        top_k=None,
        mode=None,
        label_graphs=None,
        video_scene_graph=None,
        **unknown,
    ):
        if unknown:
            raise TypeError(f"zero-shot-video-classification got unexpected arguments {sorted(unknown)}")
        preprocess: dict[str, Any] = {}
        forward: dict[str, Any] = {}
        postprocess: dict[str, Any] = {}
        if video_scene_graph is not None:
            preprocess["video_scene_graph"] = video_scene_graph
        if candidate_labels is not None:
            forward["candidate_labels"] = check_labels(candidate_labels)
        if hypothesis_template is not None and templates is not None:
            raise ValueError("give either templates (a list) or hypothesis_template (one template), not both")
        if hypothesis_template is not None:
            templates = [hypothesis_template]
        if templates is not None:
            forward["templates"] = check_templates(templates)
        if mode is not None:
            if mode not in INFERENCE_MODES:
                raise ValueError(f"mode must be one of {INFERENCE_MODES}, got {mode!r}")
            forward["mode"] = mode
        if label_graphs is not None:
            forward["label_graphs"] = list(label_graphs)
            # serialised once per call here, not once per video in _forward
            forward["label_graphs_key"] = _graphs_key(forward["label_graphs"])
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
                raise ValueError(f"top_k must be a positive int, got {top_k!r}")
            postprocess["top_k"] = top_k
        return preprocess, forward, postprocess

    # ------------------------------------------------------------------------------ class side
    def class_embeddings(
        self,
        candidate_labels: Sequence[str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        mode: Optional[str] = None,
        label_graphs: Optional[Sequence[Any]] = None,
    ) -> ClassPromptEmbeddings:
        """The (cached) prompt-ensemble embeddings of ``candidate_labels`` in ``mode``."""
        return self._class_embeddings(candidate_labels, templates, mode, label_graphs, _graphs_key(label_graphs))

    def _class_embeddings(self, candidate_labels, templates, mode, label_graphs, graphs_key) -> ClassPromptEmbeddings:
        mode = mode or self.model.config.inference_mode
        key = (tuple(candidate_labels), tuple(templates), mode, graphs_key)
        if key not in self._class_cache:
            self._class_cache[key] = encode_class_prompts(
                self.model, self.processor, candidate_labels, templates, label_graphs=label_graphs, mode=mode
            )
        return self._class_cache[key]

    # ------------------------------------------------------------------------------- the steps
    def preprocess(self, video, video_scene_graph=None):
        batch = self.processor(videos=[video], video_scene_graphs=None if video_scene_graph is None else [video_scene_graph])
        return {key: batch[key] for key in ("pixel_values", "video_mask", "video_scene_graph") if batch.get(key) is not None}

    def _forward(
        self,
        model_inputs,
        candidate_labels=None,
        templates=DEFAULT_TEMPLATES,
        mode=None,
        label_graphs=None,
        label_graphs_key=None,
    ):
        if candidate_labels is None:
            raise ValueError("zero-shot-video-classification needs candidate_labels (the class names)")
        if label_graphs is not None and label_graphs_key is None:
            label_graphs_key = _graphs_key(label_graphs)
        classes = self._class_embeddings(candidate_labels, templates, mode, label_graphs, label_graphs_key)
        with inference_mode_as(self.model, classes.mode):
            video = self.model.get_video_features(**model_inputs).pooler_output
        similarity = classes.scores(video.float().cpu())[0]
        scale = self.model.host_adapter.contrastive_logit_scale(self.model.backbone).detach().float().cpu()
        return {"similarity": similarity, "probabilities": torch.softmax(scale * similarity, dim=-1), "labels": classes.labels}

    def postprocess(self, model_outputs, top_k=None):
        probabilities, similarity, labels = model_outputs["probabilities"], model_outputs["similarity"], model_outputs["labels"]
        order = torch.argsort(probabilities, descending=True, stable=True).tolist()
        if top_k is not None:
            order = order[:top_k]
        return [
            {"label": labels[i], "score": float(probabilities[i]), "similarity": float(similarity[i])} for i in order
        ]


__all__ = ["FinstaZeroShotVideoClassificationPipeline", "INFERENCE_MODES"]
