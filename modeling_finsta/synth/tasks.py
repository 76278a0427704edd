"""Finsta-Synth task suites beyond retrieval: action classification whose classes differ only in order
or role, and five-way multiple choice. Separate streams of the same config: they never change what
`generate_finsta_synth` produces.

**Classification** (`synth_classification_suite`). A fixed set of ``num_objects`` objects (distinct
shapes and colours, drawn from the config's vocabulary) and one class per event:

* ``A moves towards B`` / ``A moves away from B`` / ``A passes B`` for every ordered pair (A, B), and
* ``A appears`` / ``A disappears`` for every object,

named by the caption the grammar gives that event (``"the red circle moves towards the blue
square"``), with its gold TSG. Each clip shows two of the objects and one event of a class drawn
uniformly, so every class has a time-reversed twin (towards <-> away, appear <-> disappear, pass <->
pass with the other side) and the relational ones a role-swapped twin (A <-> B): a model that only
recognises the objects and the kind of motion is left guessing between them. ``class_groups``:
``order`` (classes whose time reversal is another class: towards, away, appear, disappear) and
``role`` (classes whose role swap is another class: towards, away, pass).

**Multiple choice** (`synth_multiple_choice_suite`). Clips of the config's own distribution, each with
five candidate captions in random order: the true one, the caption of the time-reversed clip
(``temporal``), subject and object swapped (``role``), two objects' colours swapped (``binding``) and
another clip's caption (``other``); clips without all three hard negatives are skipped.

`export_classification_suite` / `export_multiple_choice_suite` write them in the official layouts of
Kinetics and MSR-VTT-MC (plus ``text_scene_graphs.jsonl`` and ``scene_graphs/``), which
``finsta-eval --task classification|multiple-choice`` reads.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..scene_graphs import ParsedTextSceneGraph
from ..video_scene_graph_io import write_video_scene_graph
from .config import FinstaSynthConfig
from .export import write_video
from .grammar import render_caption
from .hard_negatives import build_hard_negatives
from .samples import ClipEvent, ClipScript, FinstaSynthSample, SynthObject
from .tracks import Renderer, sample_clip, tracks_for_script

TASK_STREAMS = {"classification": 100, "multiple_choice": 101}
"""Generator streams of the suites (``SPLIT_IDS`` of the dataset itself are small integers)."""

CLASSIFICATION_KINDS = ("towards", "away", "pass", "appear", "disappear")
ORDER_KINDS = ("towards", "away", "appear", "disappear")
ROLE_KINDS = ("towards", "away", "pass")
MULTIPLE_CHOICE_KINDS = ("temporal", "role", "binding")


@dataclass(frozen=True)
class SynthClass:
    """One class: ``kind`` done by object ``subject`` (to object ``landmark`` when relational)."""

    kind: str
    subject: int
    landmark: Optional[int]
    name: str
    graph: ParsedTextSceneGraph = field(compare=False, hash=False)


@dataclass
class ClassificationSuite:
    config: FinstaSynthConfig
    objects: list[SynthObject]
    classes: list[SynthClass]
    samples: list[FinstaSynthSample]
    labels: list[int]

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def label_graphs(self) -> list[ParsedTextSceneGraph]:
        return [c.graph for c in self.classes]

    @property
    def class_groups(self) -> dict[str, list[int]]:
        return {
            "order": [i for i, c in enumerate(self.classes) if c.kind in ORDER_KINDS],
            "role": [i for i, c in enumerate(self.classes) if c.kind in ROLE_KINDS],
        }


@dataclass
class MultipleChoiceSuite:
    config: FinstaSynthConfig
    samples: list[FinstaSynthSample]
    candidates: list[list[str]]
    candidate_graphs: list[list[ParsedTextSceneGraph]]
    answers: list[int]
    kinds: list[list[str]]  # per candidate: "true", "temporal", "role", "binding" or "other"


def _clip_script(kind: str) -> ClipScript:
    """The one-event script of a class, with the subject as clip object 0 and the landmark as object 1."""
    return ClipScript(((ClipEvent(kind, 0, landmark=1 if kind in ROLE_KINDS else None),),))


def suite_objects(config: FinstaSynthConfig, num_objects: int) -> list[SynthObject]:
    """``num_objects`` objects with distinct shapes and distinct colours, drawn once per config seed."""
    if not 2 <= num_objects <= min(len(config.shapes), len(config.colours)):
        raise ValueError(
            f"num_objects must be 2..{min(len(config.shapes), len(config.colours))} (distinct shapes and colours of "
            f"the config), got {num_objects}"
        )
    rng = np.random.default_rng([config.seed, TASK_STREAMS["classification"]])
    shapes = rng.choice(len(config.shapes), size=num_objects, replace=False)
    colours = rng.choice(len(config.colours), size=num_objects, replace=False)
    return [SynthObject(config.shapes[s], config.colours[c]) for s, c in zip(shapes, colours)]


def classification_classes(objects: list[SynthObject]) -> list[SynthClass]:
    """Every relational class over ordered pairs, then appear / disappear per object (see the module docstring)."""
    classes = []
    for kind in CLASSIFICATION_KINDS:
        pairs = (
            [(a, b) for a in range(len(objects)) for b in range(len(objects)) if a != b]
            if kind in ROLE_KINDS
            else [(a, None) for a in range(len(objects))]
        )
        for subject, landmark in pairs:
            clip_objects = [objects[subject]] + ([objects[landmark]] if landmark is not None else [])
            name, graph = render_caption(_clip_script(kind), clip_objects)
            classes.append(SynthClass(kind, subject, landmark, name, graph))
    return classes


def _sample(renderer: Renderer, video_id: str, objects, script, positions, visible) -> FinstaSynthSample:
    caption, graph = render_caption(script, objects)
    return FinstaSynthSample(
        video_id=video_id, split="test", frames=renderer.frames(objects, positions, visible), caption=caption,
        text_graph=graph, video_graph=renderer.video_graph(objects, positions, visible), objects=list(objects),
        script=script, positions=positions, visible=visible,
    )  # fmt: skip


def synth_classification_suite(config: FinstaSynthConfig, num_clips: int = 200, num_objects: int = 3) -> ClassificationSuite:
    """The classification suite of ``config`` (its seed, frames and image size): ``num_clips`` clips."""
    clip_config = replace(config, objects_per_clip=2)
    renderer = Renderer(clip_config)
    objects = suite_objects(config, num_objects)
    classes = classification_classes(objects)
    samples, labels = [], []
    for index in range(num_clips):
        rng = np.random.default_rng([config.seed, TASK_STREAMS["classification"], index])
        label = int(rng.integers(len(classes)))
        chosen = classes[label]
        other = chosen.landmark
        if other is None:  # appear / disappear: a second, unmentioned object stays in the clip
            others = [k for k in range(len(objects)) if k != chosen.subject]
            other = others[int(rng.integers(len(others)))]
        clip_objects = [objects[chosen.subject], objects[other]]
        script = _clip_script(chosen.kind)
        positions, visible = tracks_for_script(script, rng, clip_config)
        sample = _sample(renderer, f"cls{index}", clip_objects, script, positions, visible)
        if sample.caption != chosen.name:
            raise AssertionError(f"clip {index}: caption {sample.caption!r} differs from its class {chosen.name!r}")
        samples.append(sample)
        labels.append(label)
    return ClassificationSuite(config, objects, classes, samples, labels)


def synth_multiple_choice_suite(config: FinstaSynthConfig, num_items: int = 200) -> MultipleChoiceSuite:
    """``num_items`` five-way items (see the module docstring) from clips of ``config``'s distribution."""
    clip_config = replace(config, objects_per_clip=max(2, config.objects_per_clip))
    renderer = Renderer(clip_config)
    samples: list[FinstaSynthSample] = []
    chosen: list[tuple[FinstaSynthSample, dict]] = []
    attempt = 0
    while len(chosen) < num_items:
        batch = []
        for _ in range(max(2 * (num_items - len(chosen)), 16)):
            # the third seed entry stays 0 (it was an unused offset) so the generated items do not change
            rng = np.random.default_rng([config.seed, TASK_STREAMS["multiple_choice"], 0, 0, attempt])
            objects, script, positions, visible = sample_clip(rng, clip_config)
            if rng.random() < 0.5:  # time-reversal symmetric, as the dataset itself
                script, positions, visible = script.reversed(), positions[::-1].copy(), visible[::-1].copy()
            batch.append(_sample(renderer, f"mc{attempt}", objects, script, positions, visible))
            attempt += 1
        negatives: list[dict] = [{} for _ in batch]
        for suite, items in build_hard_negatives(batch, clip_config).items():
            for item in items:
                negatives[item.video_index][suite] = item
        for sample, found in zip(batch, negatives):
            if all(kind in found for kind in MULTIPLE_CHOICE_KINDS) and len(chosen) < num_items:
                chosen.append((sample, found))
    candidates, graphs, answers, kinds = [], [], [], []
    captions = [sample.caption for sample, _ in chosen]
    for index, (sample, found) in enumerate(chosen):
        rng = np.random.default_rng([config.seed, TASK_STREAMS["multiple_choice"], 0, 1, index])
        texts = [sample.caption] + [found[kind].negative for kind in MULTIPLE_CHOICE_KINDS]
        options = [j for j, caption in enumerate(captions) if caption not in texts]
        other = chosen[options[int(rng.integers(len(options)))]][0]
        rows = [("true", sample.caption, sample.text_graph)]
        rows += [(kind, found[kind].negative, found[kind].negative_graph) for kind in MULTIPLE_CHOICE_KINDS]
        rows.append(("other", other.caption, other.text_graph))
        order = rng.permutation(len(rows))
        rows = [rows[i] for i in order]
        samples.append(sample)
        kinds.append([kind for kind, _, _ in rows])
        candidates.append([text for _, text, _ in rows])
        graphs.append([graph for _, _, graph in rows])
        answers.append(kinds[-1].index("true"))
    return MultipleChoiceSuite(config, samples, candidates, graphs, answers, kinds)


# ------------------------------------------------------------------------------------- export


def _write_videos_and_graphs(samples, config: FinstaSynthConfig, video_folder: Path, root: Path, codec: str) -> None:
    video_folder.mkdir(parents=True, exist_ok=True)
    (root / "scene_graphs").mkdir(parents=True, exist_ok=True)
    for sample in samples:
        name = f"{sample.video_id}.mp4"
        write_video(sample.frames, video_folder / name, fps=config.fps, codec=codec)
        write_video_scene_graph(
            sample.video_graph, root / "scene_graphs" / f"{sample.video_id}.json", width=config.image_size,
            height=config.image_size, video=name, fps=config.fps, num_frames=config.num_frames,
        )  # fmt: skip


def _write_text_graphs(path: Path, pairs) -> None:
    graphs: dict[str, ParsedTextSceneGraph] = {}
    for caption, graph in pairs:
        graphs.setdefault(caption, graph)
    with open(path, "w", encoding="utf-8") as handle:
        for caption, graph in graphs.items():
            handle.write(json.dumps({"caption": caption, "graph": graph.to_dict()}) + "\n")


def export_classification_suite(
    suite: ClassificationSuite, root: Union[str, os.PathLike], split: str = "test", codec: str = "libx264"
) -> Path:
    """Write the suite in the Kinetics layout (``annotations/{split}.csv``, ``classes.txt``, clips
    ``{split}/{youtube_id}_{start:06d}_{end:06d}.mp4``) plus ``scene_graphs/`` and the class names' TSGs
    in ``text_scene_graphs.jsonl``; ``modeling_finsta.readers.read_kinetics`` reads it back."""
    from ..readers import kinetics_clip_name

    root = Path(root)
    config = suite.config
    end = max(1, math.ceil(config.num_frames / config.fps))
    clips = []
    for sample in suite.samples:  # each clip file is named as Kinetics names its trimmed clips
        clips.append(replace(sample, video_id=kinetics_clip_name(sample.video_id, 0, end)))
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("".join(name + "\n" for name in suite.class_names), encoding="utf-8")
    lines = ["label,youtube_id,time_start,time_end,split"]
    for sample, label in zip(suite.samples, suite.labels):
        lines.append(f'"{suite.class_names[label]}",{sample.video_id},0,{end},{split}')
    (root / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_videos_and_graphs(clips, config, root / split, root, codec)
    _write_text_graphs(root / "text_scene_graphs.jsonl", [(c.name, c.graph) for c in suite.classes])
    return root


def export_multiple_choice_suite(suite: MultipleChoiceSuite, root: Union[str, os.PathLike], codec: str = "libx264") -> Path:
    """Write the suite in the MSR-VTT-MC layout (``msrvtt_mc_test.json`` of ``{"video", "caption": [5], "answer"}``,
    ``videos/all/``) plus ``scene_graphs/`` and every candidate's TSG in ``text_scene_graphs.jsonl``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    items = [
        {"video": f"{sample.video_id}.mp4", "caption": options, "answer": answer}
        for sample, options, answer in zip(suite.samples, suite.candidates, suite.answers)
    ]
    (root / "msrvtt_mc_test.json").write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
    _write_videos_and_graphs(suite.samples, suite.config, root / "videos" / "all", root, codec)
    pairs = [(text, graph) for options, graphs in zip(suite.candidates, suite.candidate_graphs) for text, graph in zip(options, graphs)]
    _write_text_graphs(root / "text_scene_graphs.jsonl", pairs)
    return root


__all__ = [
    "CLASSIFICATION_KINDS",
    "MULTIPLE_CHOICE_KINDS",
    "ORDER_KINDS",
    "ROLE_KINDS",
    "TASK_STREAMS",
    "ClassificationSuite",
    "MultipleChoiceSuite",
    "SynthClass",
    "classification_classes",
    "export_classification_suite",
    "export_multiple_choice_suite",
    "suite_objects",
    "synth_classification_suite",
    "synth_multiple_choice_suite",
]
