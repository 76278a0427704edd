"""Retrieval evaluation for Finsta models: Recall@K / ranks, hard-negative suites, latent-DSG quality.

Everything here encodes text and video *separately*, as an index-based retrieval system must: a
caption's embedding never sees a video and a video's embedding never sees a caption (text scene
graphs lose their video ``grounding`` before encoding). Similarities are cosine similarities of the
embeddings the model returns in ``.pooler_output`` of ``get_text_features`` / ``get_video_features``.

Two evaluation settings are arguments rather than model state:

* ``mode``: the model's ``config.inference_mode`` (``"distilled"``, host only, or ``"fused"``),
  set for the call and restored afterwards;
* ``dsg``: ``"latent"`` (no ``video_scene_graph`` is passed, the model builds slots from its own
  patch tokens) or ``"annotated"`` (the processor's DSG tensors are passed). Distilled mode never
  reads a DSG, so both sources give the same numbers there.

Inputs are the per-example tensor dicts that ``FinstaProcessor`` produces (see
``modeling_finsta.training.encode_examples``) or raw captions/videos that are processed here chunk
by chunk, so a large test set is never decoded into memory at once.

``finsta-eval`` (``cli.main``, ``python -m modeling_finsta.evaluation``) runs all of it on a dataset
folder read with ``modeling_finsta.readers``.

This package is tooling: it does not travel with a saved checkpoint as remote code. Its files:

* ``encoding.py``: evaluation settings, batching, ``encode_texts`` / ``encode_videos`` / ``encode_captions``;
* ``retrieval.py``: ``similarity_matrix``, ``evaluate_retrieval``;
* ``metrics.py``: ``retrieval_metrics``, ``hard_negative_accuracy`` (plain functions on score arrays);
* ``hard_negatives.py``: hard-negative suites, ``evaluate_hard_negatives``, ``read_hard_negative_suites``;
* ``dsg_quality.py``: ``SlotLocalisationCounts``, ``latent_dsg_quality``;
* ``model_evaluation.py``: ``evaluate_model``, ``evaluate_finsta_synth``, ``format_results_table``,
  ``read_text_scene_graphs``;
* ``parser_scoring.py``: gold-set scoring of the caption parser (``load_gold_records``, ``score_parser``);
* ``cli.py``: the ``finsta-eval`` command line;
* ``classification.py``: ``evaluate_classification`` (zero-shot prompt ensembles or a trained head, top-k);
* ``multiple_choice.py``: ``evaluate_multiple_choice`` (K candidates per video, accuracy, per-distractor wins);
* ``task_cli.py``: ``finsta-eval --task classification | multiple-choice``.
"""

from .cli import main
from .classification import embed_videos, evaluate_classification, head_scores, video_settings
from .multiple_choice import evaluate_multiple_choice, multiple_choice_accuracy, pairwise_by_kind
from .task_cli import TASKS, format_task_table
from .dsg_quality import SlotLocalisationCounts, latent_dsg_quality
from .encoding import (
    DSG_SOURCES,
    INFERENCE_MODES,
    PROGRESS_MIN_BATCHES,
    TEXT_KEYS,
    VIDEO_KEYS,
    collate_examples,
    encode_captions,
    encode_captions_or_examples,
    encode_texts,
    encode_videos,
    evaluation_settings,
)
from .hard_negatives import (
    HARD_NEGATIVES_FOLDER,
    HardNegativeItem,
    evaluate_hard_negatives,
    read_hard_negative_suites,
    text_prior_accuracy,
)
from .metrics import RECALL_LEVELS, VIDEO_TO_TEXT_PROTOCOLS, ArrayLike, hard_negative_accuracy, retrieval_metrics
from .model_evaluation import (
    TABLE_METRICS,
    TEXT_SCENE_GRAPHS_FILE,
    evaluate_finsta_synth,
    evaluate_model,
    format_results_table,
    read_text_scene_graphs,
)
from .parser_scoring import GOLD_SET_PATH, load_gold_records, score_parser
from .retrieval import evaluate_retrieval, similarity_matrix
from .generative import (
    candidate_log_likelihoods,
    caption_scores,
    evaluate_generative_multiple_choice,
    evaluate_open_ended,
    exact_match,
    generate_answers,
    normalize_answer,
)

__all__ = [
    "text_prior_accuracy",
    "TASKS",
    "embed_videos",
    "evaluate_classification",
    "evaluate_multiple_choice",
    "format_task_table",
    "head_scores",
    "multiple_choice_accuracy",
    "pairwise_by_kind",
    "video_settings",
    "candidate_log_likelihoods",
    "caption_scores",
    "evaluate_generative_multiple_choice",
    "evaluate_open_ended",
    "exact_match",
    "generate_answers",
    "normalize_answer",
    "ArrayLike",
    "DSG_SOURCES",
    "GOLD_SET_PATH",
    "HARD_NEGATIVES_FOLDER",
    "INFERENCE_MODES",
    "PROGRESS_MIN_BATCHES",
    "RECALL_LEVELS",
    "TABLE_METRICS",
    "TEXT_KEYS",
    "TEXT_SCENE_GRAPHS_FILE",
    "VIDEO_KEYS",
    "VIDEO_TO_TEXT_PROTOCOLS",
    "HardNegativeItem",
    "SlotLocalisationCounts",
    "collate_examples",
    "encode_captions",
    "encode_captions_or_examples",
    "encode_texts",
    "encode_videos",
    "evaluate_finsta_synth",
    "evaluate_hard_negatives",
    "evaluate_model",
    "evaluate_retrieval",
    "evaluation_settings",
    "format_results_table",
    "hard_negative_accuracy",
    "latent_dsg_quality",
    "load_gold_records",
    "main",
    "read_hard_negative_suites",
    "read_text_scene_graphs",
    "retrieval_metrics",
    "score_parser",
    "similarity_matrix",
]
