"""Dataset readers from local folders (tooling; nothing here travels with a checkpoint as remote code).

* ``retrieval.py``: text-video retrieval splits (MSR-VTT, MSVD, DiDeMo) in CLIP4Clip's file formats,
  ``load_retrieval_split`` dispatching by name;
* ``action_genome.py``: Action Genome annotations -> ``ParsedVideoSceneGraph``
  (``read_action_genome_annotations``);
* ``kinetics.py``, ``something_something.py``, ``ucf_hmdb.py``: action recognition splits
  (``ClassificationSplit``): Kinetics CSVs, SSv2 label/split JSONs, UCF-101 / HMDB-51 split files;
* ``msrvtt_mc.py``: MSR-VTT multiple choice (``MultipleChoiceSplit``);
* ``task_splits.py``: the split types, ``TaskDatasetError`` (names file and line) and file helpers;
* ``tasks.py``: ``load_classification_split`` / ``load_multiple_choice_split`` by dataset name.
"""

from .action_genome import (
    ACTION_GENOME_PERSON_TRACK_ID,
    ACTION_GENOME_RELATIONSHIP_FIELDS,
    read_action_genome_annotations,
)
from .kinetics import KINETICS_CLASS_FILE, KINETICS_COLUMNS, kinetics_class_names, kinetics_clip_name, read_kinetics
from .msrvtt_mc import MSRVTT_MC_FILES, read_msrvtt_mc
from .something_something import SSV2_LABELS_FILE, read_something_something_v2, ssv2_class_name
from .task_splits import ClassificationSplit, MultipleChoiceSplit, TaskDatasetError, VideoIndex
from .tasks import (
    CLASSIFICATION_DATASET_READERS,
    MULTIPLE_CHOICE_DATASET_READERS,
    load_classification_split,
    load_multiple_choice_split,
)
from .ucf_hmdb import read_hmdb51, read_ucf101
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
    VideoQADatasetError,
    VideoQuestionRecord,
    find_video,
    read_msrvtt_captions,
    read_video_qa,
)

__all__ = [
    "CLASSIFICATION_DATASET_READERS",
    "KINETICS_CLASS_FILE",
    "KINETICS_COLUMNS",
    "MSRVTT_MC_FILES",
    "MULTIPLE_CHOICE_DATASET_READERS",
    "SSV2_LABELS_FILE",
    "ClassificationSplit",
    "MultipleChoiceSplit",
    "TaskDatasetError",
    "VideoIndex",
    "kinetics_class_names",
    "kinetics_clip_name",
    "load_classification_split",
    "load_multiple_choice_split",
    "read_hmdb51",
    "read_kinetics",
    "read_msrvtt_mc",
    "read_something_something_v2",
    "read_ucf101",
    "ssv2_class_name",
    "CaptionRecord",
    "VideoQADatasetError",
    "VideoQuestionRecord",
    "find_video",
    "read_msrvtt_captions",
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
