"""Finsta-Synth: a procedural video-text dataset with gold text and video scene graphs.

Tiny clips (default 8 frames of 32x32 RGB) of coloured shapes that move, appear or disappear, each
with a caption from a small grammar, the caption's gold text scene graph (TSG) with exact
character spans, and the clip's gold dynamic scene graph (DSG) with pixel-exact boxes. It exists so
that Finsta and plain CLIP4Clip baselines (meanP, seqTransf) can be trained from pixels on a CPU in
minutes, and compared on hard-negative suites that isolate what scene-graph alignment should add:

* ``temporal``: the negative is the caption of the *time-reversed* clip. Reversal keeps the set of
  frames, so any order-blind video model (e.g. a mean of per-frame embeddings) scores both captions
  against the same embedding: it sits at 50% by construction.
* ``binding``: the colours of two mentioned objects are swapped.
* ``role``: subject and object of a relational event are swapped.
* ``static``: one object's colour or shape is replaced by one that is absent from the clip (a
  control that any model, even a static one, should pass).

Caption grammar (``NP`` = ``"the <colour> <shape>"``; every mention is a full noun phrase)::

    clause  := NP "moves" ("left" | "right" | "up" | "down")
             | NP "moves towards" NP | NP "moves away from" NP | NP "passes" NP
             | NP "appears" | NP "disappears" | NP "stays still"
    caption := clause                     # one phase over the whole clip
             | clause " while " clause    # two simultaneous events (the first is never relational)
             | clause ", then " clause    # two phases: first half, then second half of the clip

Gold TSG conventions (kept identical for true and negative captions):

* one ``object`` node per *entity* (lemma = shape), holding the spans of all its mentions, and one
  ``attribute`` node for its colour (edge object -> attribute);
* motion verbs are predicate ``move`` (text "moves"); the direction is a ``predicate_attribute``
  node: "left", "right", "up", "down", "towards" or "away from" (the last two also get a
  predicate -> object edge to the landmark). Other predicates: ``pass`` (with an object),
  ``appear``, ``disappear``, ``stay`` (with the predicate attribute "still");
* the connective of the second clause is a predicate attribute of its predicate: "then" marks
  event order, "while" simultaneity.

Gold DSG: every frame is a keyframe; each visible object has track id ``index + 1``, label = shape,
attributes = ``[colour]`` and the tight normalised box of its drawn pixels (objects never touch, so a
box holds only its own object's pixels). Relations per frame and ordered pair of visible objects:
one of "left of"/"right of"/"above"/"below" by the dominant axis of the centre offset, "near" when
the centres are closer than two object sizes, and "moving towards"/"moving away from" when the
subject moved since the previous frame (judged against the object's previous centre).

Every clip's event distribution is symmetric under time reversal (each generated clip is reversed
with probability 1/2), colours and roles are drawn uniformly, so text-only priors cannot solve the
suites.

Files (only this package's ``__init__`` is the interface; import names from ``modeling_finsta.synth``):

* ``config.py``: vocabularies (``PALETTE``, ``SHAPES``, ``EVENT_KINDS``, ...) and `FinstaSynthConfig`;
* ``samples.py``: objects, events and scripts of a clip, `FinstaSynthSample`, `HardNegative`, `FinstaSynthDataset`;
* ``grammar.py``: script sampling, captions and their gold TSGs (`render_caption`);
* ``tracks.py``: track synthesis, rendering (`shape_stamp`) and the gold DSG;
* ``hard_negatives.py``: the four suites (`build_hard_negatives`);
* ``dataset.py``: `generate_sample`, `reverse_sample`, `generate_finsta_synth`, the compositional held-out
  split (``FinstaSynthConfig.held_out``: combinations of colour, shape, event kind and role that no
  training clip contains; ``num_compositional`` clips that each contain one);
* ``export.py``: `write_video` and `export_finsta_synth` (MSR-VTT layout);
* ``cli.py``: ``finsta-synth`` (also ``python -m modeling_finsta.synth``);
* ``tasks.py``: the classification suite (classes that differ only in order or role) and the five-way
  multiple-choice suite, with exports in the Kinetics and MSR-VTT-MC layouts.
"""

from .cli import main
from .config import (
    COMPOSITIONAL_HELD_OUT,
    DIRECTIONS,
    EVENT_KINDS,
    PALETTE,
    RELATIONAL_KINDS,
    ROLES,
    SHAPES,
    FinstaSynthConfig,
)
from .dataset import SPLITS, generate_finsta_synth, generate_sample, reverse_sample, script_combinations
from .export import export_finsta_synth, write_video
from .grammar import render_caption
from .hard_negatives import HARD_NEGATIVE_SUITES, build_hard_negatives
from .samples import ClipEvent, ClipScript, FinstaSynthDataset, FinstaSynthSample, HardNegative, SynthObject
from .tracks import MOTION_RELATIONS, NEAR_RELATION, SPATIAL_RELATIONS, shape_stamp, tracks_for_script
from .tasks import (
    CLASSIFICATION_KINDS,
    MULTIPLE_CHOICE_KINDS,
    ClassificationSuite,
    MultipleChoiceSuite,
    SynthClass,
    classification_classes,
    export_classification_suite,
    export_multiple_choice_suite,
    suite_objects,
    synth_classification_suite,
    synth_multiple_choice_suite,
)

from .generative import (
    CAPTION_QUESTION,
    MULTIPLE_CHOICE_NEGATIVES,
    ORDER_SENSITIVE_CATEGORIES,
    QA_CATEGORIES,
    ROLE_SENSITIVE_CATEGORIES,
    GenerativeFinstaSynth,
    MultipleChoiceItem,
    VideoQuestion,
    generate_generative_finsta_synth,
    generative_vocabulary,
    multiple_choice_items,
    questions_for_sample,
)

__all__ = [
    "COMPOSITIONAL_HELD_OUT",
    "ROLES",
    "SPLITS",
    "script_combinations",
    "CLASSIFICATION_KINDS",
    "MULTIPLE_CHOICE_KINDS",
    "ClassificationSuite",
    "MultipleChoiceSuite",
    "SynthClass",
    "classification_classes",
    "export_classification_suite",
    "export_multiple_choice_suite",
    "suite_objects",
    "synth_classification_suite",
    "synth_multiple_choice_suite",
    "tracks_for_script",
    "CAPTION_QUESTION",
    "MULTIPLE_CHOICE_NEGATIVES",
    "ORDER_SENSITIVE_CATEGORIES",
    "QA_CATEGORIES",
    "ROLE_SENSITIVE_CATEGORIES",
    "GenerativeFinstaSynth",
    "MultipleChoiceItem",
    "VideoQuestion",
    "generate_generative_finsta_synth",
    "generative_vocabulary",
    "multiple_choice_items",
    "questions_for_sample",
    "DIRECTIONS",
    "EVENT_KINDS",
    "HARD_NEGATIVE_SUITES",
    "MOTION_RELATIONS",
    "NEAR_RELATION",
    "PALETTE",
    "RELATIONAL_KINDS",
    "SHAPES",
    "SPATIAL_RELATIONS",
    "ClipEvent",
    "ClipScript",
    "FinstaSynthConfig",
    "FinstaSynthDataset",
    "FinstaSynthSample",
    "HardNegative",
    "SynthObject",
    "build_hard_negatives",
    "export_finsta_synth",
    "generate_finsta_synth",
    "generate_sample",
    "main",
    "render_caption",
    "reverse_sample",
    "shape_stamp",
    "write_video",
]
