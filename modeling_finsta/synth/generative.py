"""Generative Finsta-Synth: open-ended QA, captioning and multiple-choice items from the same clips and
gold scene graphs as Finsta-Synth (the generator itself is unchanged; this module only reads its
samples' scripts, objects and captions).

Question categories (answers are short phrases of the caption grammar):

* ``order`` (order-sensitive): two-phase clips. "what happens first?" / "what happens last?" -> the
  clause of that phase; "what does the red circle do first?" -> the first phase's action ("moves left").
* ``direction`` (order-sensitive): "does the red circle move left or right?" / "... up or down?" ->
  "left"; "does the red circle move towards or away from the blue square?" -> "towards" / "away from".
  Time reversal flips every order and direction answer, and clips are reversed with probability 1/2,
  so these cannot be answered from the question alone.
* ``role`` (role-sensitive): relational events. "which shape moves towards the blue square?" -> "the red
  circle"; "which shape does the red circle pass?" -> "the blue square". Clips have three objects by
  default, so the answer is not simply "the other object".
* ``attribute`` (control): "what colour is the circle?" -> "red".

Captioning: "describe the video." -> the clip's caption. Multiple choice (MSR-VTT-MC style): the true
caption against Finsta-Synth's hard negatives of the clip: the time-reversed caption (``temporal``),
subject and object swapped (``role``) and two objects' colours swapped (``binding``); scored by summed
log-likelihood as the answer to the captioning prompt.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

from .config import FinstaSynthConfig
from .dataset import generate_sample
from .grammar import render_caption
from .hard_negatives import build_hard_negatives
from .samples import ClipEvent, ClipScript, FinstaSynthSample, SynthObject
from .tracks import Renderer

QA_CATEGORIES = ("order", "direction", "role", "attribute")
ORDER_SENSITIVE_CATEGORIES = ("order", "direction")
ROLE_SENSITIVE_CATEGORIES = ("role",)
MULTIPLE_CHOICE_NEGATIVES = ("temporal", "role", "binding")
CAPTION_QUESTION = "describe the video."
QUESTION_WORDS = (
    "what happens first last does do the move or which shape colour is describe video . ? towards away from "
    "left right up down"
).split()
"""Words of the questions (captions and answers use the Finsta-Synth caption vocabulary)."""

_RELATION_VERBS = {"towards": ("moves towards", "move towards"), "away": ("moves away from", "move away from"), "pass": ("passes", "pass")}


@dataclass
class VideoQuestion:
    """One open-ended question about clip ``video_index`` of its split."""

    video_index: int
    video_id: str
    category: str  # one of QA_CATEGORIES, or "caption"
    question: str
    answer: str


@dataclass
class MultipleChoiceItem:
    """The true caption (``candidates[answer_index]``) against the clip's hard negatives."""

    video_index: int
    video_id: str
    candidates: list[str]
    kinds: list[str]  # "true" or the hard-negative suite of each candidate
    answer_index: int = 0


@dataclass
class GenerativeFinstaSynth:
    """Clips (with gold graphs) and their QA, caption and multiple-choice items per split."""

    config: FinstaSynthConfig
    train: list[FinstaSynthSample]
    test: list[FinstaSynthSample]
    train_items: list[VideoQuestion] = field(default_factory=list)
    test_items: list[VideoQuestion] = field(default_factory=list)
    test_multiple_choice: list[MultipleChoiceItem] = field(default_factory=list)
    train_negatives: dict[int, list[str]] = field(default_factory=dict)  # hard-negative captions per train clip


def _clause(event: ClipEvent, objects: list[SynthObject]) -> str:
    return render_caption(ClipScript(((event,),)), objects)[0]


def _action(event: ClipEvent, objects: list[SynthObject]) -> str:
    """The clause without its subject: "moves left", "passes the blue square"."""
    return _clause(event, objects)[len(objects[event.subject].phrase) + 1 :]


def questions_for_sample(index: int, sample: FinstaSynthSample) -> list[VideoQuestion]:
    """All questions a clip answers unambiguously (see the module docstring); the caption item last."""
    objects, script = sample.objects, sample.script
    items: list[VideoQuestion] = []

    def ask(category: str, question: str, answer: str) -> None:
        items.append(VideoQuestion(index, sample.video_id, category, question, answer))

    events = script.events()
    if len(script.phases) == 2:
        first, last = script.phases[0][0], script.phases[1][0]
        ask("order", "what happens first?", _clause(first, objects))
        ask("order", "what happens last?", _clause(last, objects))
        ask("order", f"what does {objects[first.subject].phrase} do first?", _action(first, objects))
    moves = defaultdict(list)
    for event in events:
        if event.kind in ("move", "towards", "away"):
            moves[event.subject].append(event)
    for subject, subject_events in moves.items():
        if len(subject_events) != 1:
            continue
        event, phrase = subject_events[0], objects[subject].phrase
        if event.kind == "move":
            options = "left or right" if event.direction in ("left", "right") else "up or down"
            ask("direction", f"does {phrase} move {options}?", event.direction)
        else:
            landmark = objects[event.landmark].phrase
            ask("direction", f"does {phrase} move towards or away from {landmark}?", "towards" if event.kind == "towards" else "away from")
    relational = [event for event in events if event.kind in _RELATION_VERBS]
    for event in relational:
        if sum(e.kind == event.kind for e in relational) > 1:
            continue
        third_person, infinitive = _RELATION_VERBS[event.kind]
        subject, landmark = objects[event.subject].phrase, objects[event.landmark].phrase
        ask("role", f"which shape {third_person} {landmark}?", subject)
        ask("role", f"which shape does {subject} {infinitive}?", landmark)
    mentioned = {entity for event in events for entity in event.entities()}
    for entity in sorted(mentioned):
        shape = objects[entity].shape
        if sum(objects[other].shape == shape for other in mentioned) == 1:
            ask("attribute", f"what colour is the {shape}?", objects[entity].colour)
    ask("caption", CAPTION_QUESTION, sample.caption)
    return items


def multiple_choice_items(samples: list[FinstaSynthSample], config: FinstaSynthConfig) -> list[MultipleChoiceItem]:
    """Per clip with at least one hard negative: the true caption first, then its temporal/role/binding negatives."""
    by_video: dict[int, dict[str, str]] = defaultdict(dict)
    for suite, negatives in build_hard_negatives(samples, config).items():
        if suite in MULTIPLE_CHOICE_NEGATIVES:
            for negative in negatives:
                by_video[negative.video_index][suite] = negative.negative
    items = []
    for index, sample in enumerate(samples):
        negatives = by_video.get(index, {})
        kinds = [suite for suite in MULTIPLE_CHOICE_NEGATIVES if suite in negatives and negatives[suite] != sample.caption]
        if kinds:
            items.append(MultipleChoiceItem(index, sample.video_id, [sample.caption] + [negatives[k] for k in kinds], ["true"] + kinds))
    return items


def generate_generative_finsta_synth(config: Optional[FinstaSynthConfig] = None) -> GenerativeFinstaSynth:
    """Finsta-Synth clips (three objects per clip by default) with their QA, caption and MC items."""
    config = config or FinstaSynthConfig(objects_per_clip=3)
    renderer = Renderer(config)
    train = [generate_sample(config, "train", i, renderer) for i in range(config.num_train)]
    test = [generate_sample(config, "test", i, renderer) for i in range(config.num_test)]
    dataset = GenerativeFinstaSynth(config, train, test)
    dataset.train_items = [item for i, sample in enumerate(train) for item in questions_for_sample(i, sample)]
    dataset.test_items = [item for i, sample in enumerate(test) for item in questions_for_sample(i, sample)]
    dataset.test_multiple_choice = multiple_choice_items(test, config)
    for item in multiple_choice_items(train, config):
        dataset.train_negatives[item.video_index] = item.candidates[1:]
    return dataset


def generative_vocabulary(dataset: GenerativeFinstaSynth) -> list[str]:
    """Every word of the captions, questions and answers (for a closed-vocabulary tokenizer)."""
    from ..training import caption_words

    texts = [item.question + " " + item.answer for item in dataset.train_items + dataset.test_items]
    texts += [caption for item in dataset.test_multiple_choice for caption in item.candidates]
    texts += [caption for captions in dataset.train_negatives.values() for caption in captions]
    return caption_words(texts + [" ".join(QUESTION_WORDS)])


__all__ = [
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
]
