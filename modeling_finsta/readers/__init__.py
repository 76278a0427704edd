"""Dataset readers from local folders (tooling; nothing here travels with a checkpoint as remote code).

* ``retrieval.py``: text-video retrieval splits (MSR-VTT, MSVD, DiDeMo) in CLIP4Clip's file formats,
  ``load_retrieval_split`` dispatching by name;
* ``action_genome.py``: Action Genome annotations -> ``ParsedVideoSceneGraph``
  (``read_action_genome_annotations``).
"""

from .action_genome import (
    ACTION_GENOME_PERSON_TRACK_ID,
    ACTION_GENOME_RELATIONSHIP_FIELDS,
    read_action_genome_annotations,
)
from .retrieval import (
    LIST_SPLITS,
    MSRVTT_SPLIT_FILES,
    RETRIEVAL_DATASET_READERS,
    SCENE_GRAPH_FOLDER,
    VIDEO_EXTENSIONS,
    PathLike,
    RetrievalDatasetError,
    RetrievalSplit,
    load_retrieval_split,
    read_didemo,
    read_msrvtt,
    read_msvd,
)
from .video_qa import (
    CaptionRecord,
    MultipleChoiceRecord,
    VideoQADatasetError,
    VideoQuestionRecord,
    find_video,
    read_msrvtt_captions,
    read_msrvtt_mc,
    read_video_qa,
)

__all__ = [
    "CaptionRecord",
    "MultipleChoiceRecord",
    "VideoQADatasetError",
    "VideoQuestionRecord",
    "find_video",
    "read_msrvtt_captions",
    "read_msrvtt_mc",
    "read_video_qa",
    "ACTION_GENOME_PERSON_TRACK_ID",
    "ACTION_GENOME_RELATIONSHIP_FIELDS",
    "LIST_SPLITS",
    "MSRVTT_SPLIT_FILES",
    "RETRIEVAL_DATASET_READERS",
    "SCENE_GRAPH_FOLDER",
    "VIDEO_EXTENSIONS",
    "PathLike",
    "RetrievalDatasetError",
    "RetrievalSplit",
    "load_retrieval_split",
    "read_action_genome_annotations",
    "read_didemo",
    "read_msrvtt",
    "read_msvd",
]
