"""Scene-graph data: parsed graphs (plain Python) and the padded tensor batches the model consumes.

Two layers, kept apart on purpose:

* ``ParsedTextSceneGraph`` / ``ParsedVideoSceneGraph`` are what parsers and annotation readers
  produce: nodes with labels and character spans, relations keyed by track id. They are easy to
  inspect, serialise to JSON and score against gold data.
* ``TextSceneGraphBatch`` / ``VideoSceneGraphBatch`` are dense, padded tensors: what
  ``FinstaModel.forward`` takes. No graph library is needed; a graph encoder reads node types,
  typed edge matrices and masks directly.

Text scene graph (TSG) tensors, for a batch of ``B`` captions with at most ``N`` nodes and ``L``
text tokens:

``node_types``      ``LongTensor [B, N]``: 0 = padding, then ``TEXT_NODE_TYPES`` (1 object,
                    2 attribute, 3 predicate, 4 predicate-attribute/adverb).
``node_token_mask`` ``FloatTensor [B, N, L]``: 1 where a token belongs to the node's span(s); the
                    model mean-pools the text encoder's token states with it. A node whose span
                    was truncated away has an all-zero row and is ignored by the model.
``edge_types``      ``LongTensor [B, N, N]``: directed, ``edge_types[b, i, j]`` is the type of the
                    edge i -> j, 0 = none, then ``TEXT_EDGE_TYPES``. Direction carries roles:
                    subject -> predicate and predicate -> object are different types.
``grounding``       optional ``FloatTensor [B, N, S]``: how much text node i refers to track s of
                    the *paired* video's scene graph (rows may be all zero). Given by annotated
                    data (e.g. label matches); otherwise the model infers cross-modal edges.

Video scene graph (DSG) tensors, for ``B`` videos of ``T`` frames and at most ``S`` tracks. Slot
index is the track: node ``s`` of frame ``t`` and node ``s`` of frame ``t - 1`` are the same object,
which is exactly a temporal coreference edge. Both DSG sources use this layout (the latent builder
initialises frame t's slots from frame t-1's slots, so the same holds for it).

``boxes``           ``FloatTensor [B, T, S, 4]``: normalised ``(x1, y1, x2, y2)`` in ``[0, 1]``.
``node_mask``       ``BoolTensor [B, T, S]``: track s is visible in frame t.
``relation_types``  ``LongTensor [B, T, S, S]``: directed relation ids within a frame, 0 = none,
                    1..R as assigned by a relation vocabulary (or hashing) in the processor.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import torch

TEXT_NODE_TYPES = {"object": 1, "attribute": 2, "predicate": 3, "predicate_attribute": 4}
"""Node type ids of the TSG; 0 is padding."""

TEXT_EDGE_TYPES = {"attribute": 1, "subject": 2, "object": 3, "predicate_attribute": 4}
"""Directed edge type ids of the TSG; 0 is no edge.

``attribute``: object -> attribute; ``subject``: subject object -> predicate; ``object``:
predicate -> object; ``predicate_attribute``: predicate -> adverb/particle.
"""


@dataclass
class SceneGraphNode:
    """One TSG node: its kind (a key of ``TEXT_NODE_TYPES``), surface text, lemma and char spans."""

    kind: str
    text: str
    lemma: str
    spans: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in TEXT_NODE_TYPES:
            raise ValueError(f"SceneGraphNode.kind must be one of {sorted(TEXT_NODE_TYPES)}, got {self.kind!r}")


@dataclass
class ParsedTextSceneGraph:
    """A caption's scene graph: nodes plus directed typed edges ``(source, target, kind)``."""

    caption: str
    nodes: list[SceneGraphNode] = field(default_factory=list)
    edges: list[tuple[int, int, str]] = field(default_factory=list)

    def add_node(self, kind: str, text: str, lemma: str, spans: list[tuple[int, int]]) -> int:
        self.nodes.append(SceneGraphNode(kind, text, lemma, list(spans)))
        return len(self.nodes) - 1

    def add_edge(self, source: int, target: int, kind: str) -> None:
        if kind not in TEXT_EDGE_TYPES:
            raise ValueError(f"edge kind must be one of {sorted(TEXT_EDGE_TYPES)}, got {kind!r}")
        if (source, target, kind) not in self.edges:
            self.edges.append((source, target, kind))

    def objects(self) -> list[str]:
        """Lemmas of the object nodes, in node order."""
        return [node.lemma for node in self.nodes if node.kind == "object"]

    def triplets(self) -> list[tuple[str, str, Optional[str]]]:
        """``(subject, predicate, object)`` lemma triplets; object is ``None`` for intransitive predicates."""
        subjects: dict[int, list[int]] = {}
        objects: dict[int, list[int]] = {}
        for source, target, kind in self.edges:
            if kind == "subject":
                subjects.setdefault(target, []).append(source)
            elif kind == "object":
                objects.setdefault(source, []).append(target)
        result = []
        for index, node in enumerate(self.nodes):
            if node.kind != "predicate":
                continue
            for subject in subjects.get(index, []):
                for obj in objects.get(index, []) or [None]:
                    result.append(
                        (self.nodes[subject].lemma, node.lemma, None if obj is None else self.nodes[obj].lemma)
                    )
        return result

    def to_dict(self) -> dict:
        return {
            "caption": self.caption,
            "nodes": [
                {"kind": n.kind, "text": n.text, "lemma": n.lemma, "spans": [list(s) for s in n.spans]}
                for n in self.nodes
            ],
            "edges": [list(e) for e in self.edges],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ParsedTextSceneGraph":
        graph = cls(caption=data["caption"])
        for node in data.get("nodes", []):
            graph.add_node(node["kind"], node["text"], node["lemma"], [tuple(s) for s in node.get("spans", [])])
        for source, target, kind in data.get("edges", []):
            graph.add_edge(int(source), int(target), kind)
        return graph


@dataclass
class VideoObject:
    """One object in one keyframe of an annotated video scene graph."""

    track_id: int
    box: tuple[float, float, float, float]  # normalised x1, y1, x2, y2
    label: Optional[str] = None
    attributes: list[str] = field(default_factory=list)


@dataclass
class VideoRelation:
    subject: int  # track id
    predicate: str
    object: int  # track id


@dataclass
class VideoKeyframe:
    index: int  # frame index in the source video
    objects: list[VideoObject] = field(default_factory=list)
    relations: list[VideoRelation] = field(default_factory=list)
    timestamp: Optional[float] = None  # seconds


@dataclass
class ParsedVideoSceneGraph:
    """An annotated dynamic scene graph: keyframes of objects (normalised boxes) and relations."""

    frames: list[VideoKeyframe] = field(default_factory=list)
    source: Optional[str] = None  # file it was read from, for error messages

    def track_ids(self) -> list[int]:
        """Track ids in order of first appearance."""
        seen: dict[int, None] = {}
        for frame in self.frames:
            for obj in frame.objects:
                seen.setdefault(obj.track_id, None)
        return list(seen)

    def track_labels(self) -> dict[int, Optional[str]]:
        labels: dict[int, Optional[str]] = {}
        for frame in self.frames:
            for obj in frame.objects:
                if labels.get(obj.track_id) is None:
                    labels[obj.track_id] = obj.label
        return labels


def move_tensor(value: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """``Tensor.to`` where only floating tensors follow a dtype change; ids and masks keep theirs."""
    if value.is_floating_point():
        return value.to(*args, **kwargs)
    device_args = [a for a in args if not isinstance(a, torch.dtype)]
    device_kwargs = {k: v for k, v in kwargs.items() if k != "dtype"}
    return value.to(*device_args, **device_kwargs)


class _TensorBatch:
    """Shared helpers for the padded scene-graph batches (device moves, dict round trips)."""

    def to(self, *args, **kwargs):
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = move_tensor(value, *args, **kwargs) if isinstance(value, torch.Tensor) else value
        return type(self)(**values)

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def select(self, index: torch.Tensor):
        """The graphs of batch rows ``index`` (repeats allowed, e.g. one per beam)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return type(self)(**{name: None if v is None else v[index.to(v.device)] for name, v in values.items()})

    @classmethod
    def from_value(cls, value):
        """Accept an instance, a dict of tensors (as a data collator produces) or ``None``."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, dict):
            names = {f.name for f in fields(cls)}
            unknown = set(value) - names
            if unknown:
                raise ValueError(f"{cls.__name__} got unknown fields {sorted(unknown)}; expected {sorted(names)}")
            return cls(**value)
        raise TypeError(f"expected {cls.__name__}, a dict of tensors or None, got {type(value).__name__}")


@dataclass
class TextSceneGraphBatch(_TensorBatch):
    """Padded TSG tensors for a batch of captions (see the module docstring)."""

    node_types: torch.Tensor
    node_token_mask: torch.Tensor
    edge_types: torch.Tensor
    grounding: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        batch, nodes = self.node_types.shape
        if self.node_token_mask.shape[:2] != (batch, nodes):
            raise ValueError(
                f"text_scene_graph.node_token_mask must be [B={batch}, N={nodes}, L], got {tuple(self.node_token_mask.shape)}"
            )
        if tuple(self.edge_types.shape) != (batch, nodes, nodes):
            raise ValueError(
                f"text_scene_graph.edge_types must be [B={batch}, N={nodes}, N={nodes}], got {tuple(self.edge_types.shape)}"
            )
        if self.grounding is not None and self.grounding.shape[:2] != (batch, nodes):
            raise ValueError(
                f"text_scene_graph.grounding must be [B={batch}, N={nodes}, S], got {tuple(self.grounding.shape)}"
            )

    @property
    def node_mask(self) -> torch.Tensor:
        return self.node_types > 0


@dataclass
class VideoSceneGraphBatch(_TensorBatch):
    """Padded DSG tensors for a batch of videos; slot index = track (see the module docstring)."""

    boxes: torch.Tensor
    node_mask: torch.Tensor
    relation_types: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        if self.boxes.dim() != 4 or self.boxes.shape[-1] != 4:
            raise ValueError(f"video_scene_graph.boxes must be [B, T, S, 4], got {tuple(self.boxes.shape)}")
        if tuple(self.node_mask.shape) != tuple(self.boxes.shape[:3]):
            raise ValueError(
                f"video_scene_graph.node_mask must be {tuple(self.boxes.shape[:3])}, got {tuple(self.node_mask.shape)}"
            )
        if self.relation_types is not None:
            b, t, s = self.boxes.shape[:3]
            if tuple(self.relation_types.shape) != (b, t, s, s):
                raise ValueError(
                    f"video_scene_graph.relation_types must be [B={b}, T={t}, S={s}, S={s}], "
                    f"got {tuple(self.relation_types.shape)}"
                )
        self.node_mask = self.node_mask.bool()
