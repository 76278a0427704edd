"""Gold-set scoring of the caption -> text scene graph parser.

The gold set ``modeling_finsta/evaluation/data/caption_scene_graph_gold.jsonl`` (JSONL: caption,
objects, triplets, attributes, adverbs, split, hard_cases) follows the annotation conventions in
the docstring of ``modeling_finsta/text_scene_graph_parser.py``. Its "dev" split was written
before the parser and used while developing it; its "heldout" split was written afterwards and not
used for tuning. ``score_parser`` scores either.

This is tooling: it does not travel with a saved processor as remote code.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Optional, Sequence

from ..readers.text_files import DataFileError, read_jsonl
from ..scene_graphs import ParsedTextSceneGraph
from ..text_scene_graph_parser import TextSceneGraphParser

GOLD_SET_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "caption_scene_graph_gold.jsonl")


def load_gold_records(path: Optional[str] = None) -> list[dict[str, Any]]:
    """Read the caption scene-graph gold set (JSONL: caption, objects, triplets, attributes, adverbs)."""
    path = path or GOLD_SET_PATH
    records = []
    for line_number, record in read_jsonl(path, "caption scene-graph gold set"):
        for key, kind in (("caption", str), ("objects", list), ("triplets", list)):
            if not isinstance(record.get(key), kind):
                raise DataFileError(f"{path}: line {line_number}: field {key!r} must be a {kind.__name__}")
        for triplet in record["triplets"]:
            if not (isinstance(triplet, list) and len(triplet) == 3):
                raise DataFileError(
                    f"{path}: line {line_number}: each triplet must be [subject, predicate, object|null], got {triplet!r}"
                )
        records.append(record)
    return records


def _f1(matched: int, predicted: int, gold: int) -> dict[str, float]:
    precision = matched / predicted if predicted else 0.0
    recall = matched / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _graph_attributes(graph: ParsedTextSceneGraph) -> list[tuple[str, str]]:
    return [
        (graph.nodes[source].lemma, graph.nodes[target].lemma)
        for source, target, kind in graph.edges
        if kind == "attribute" and graph.nodes[source].kind == "object"
    ]


def score_parser(parser: TextSceneGraphParser, gold_records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Micro precision/recall/F1 of objects, triplets, attributes and adverbs against gold records.

    Matching is on lower-cased lemmas, as multisets per caption: an object matches a gold object
    with the same lemma; a triplet matches when subject, predicate (with particle/preposition,
    e.g. "take out") and object lemmas (or both ``None``) are equal; an attribute is an
    (object lemma, attribute lemma) pair; an adverb is its lemma.
    """
    graphs = parser.parse_batch([record["caption"] for record in gold_records], show_progress=False)
    totals = {name: [0, 0, 0] for name in ("objects", "triplets", "attributes", "adverbs")}
    errors = []

    def normalise(value: Optional[str]) -> Optional[str]:
        return None if value is None else " ".join(value.lower().split())

    for record, graph in zip(gold_records, graphs):
        predicted = {
            "objects": Counter(normalise(o) for o in graph.objects()),
            "triplets": Counter(tuple(normalise(x) for x in t) for t in graph.triplets()),
            "attributes": Counter((normalise(o), normalise(a)) for o, a in _graph_attributes(graph)),
            "adverbs": Counter(normalise(n.lemma) for n in graph.nodes if n.kind == "predicate_attribute"),
        }
        gold = {
            "objects": Counter(normalise(o) for o in record["objects"]),
            "triplets": Counter(tuple(normalise(x) for x in t) for t in record["triplets"]),
            "attributes": Counter((normalise(o), normalise(a)) for o, a in record.get("attributes", [])),
            "adverbs": Counter(normalise(a) for a in record.get("adverbs", [])),
        }
        for name in totals:
            totals[name][0] += sum((predicted[name] & gold[name]).values())
            totals[name][1] += sum(predicted[name].values())
            totals[name][2] += sum(gold[name].values())
        if predicted["triplets"] != gold["triplets"] or predicted["objects"] != gold["objects"]:
            errors.append({
                "caption": record["caption"],
                "missing_triplets": sorted(map(str, (gold["triplets"] - predicted["triplets"]).elements())),
                "extra_triplets": sorted(map(str, (predicted["triplets"] - gold["triplets"]).elements())),
                "missing_objects": sorted((gold["objects"] - predicted["objects"]).elements()),
                "extra_objects": sorted(map(str, (predicted["objects"] - gold["objects"]).elements())),
            })
    scores: dict[str, Any] = {name: _f1(*values) for name, values in totals.items()}
    scores["object_f1"] = scores["objects"]["f1"]
    scores["triplet_f1"] = scores["triplets"]["f1"]
    scores["num_captions"] = len(gold_records)
    scores["errors"] = errors
    return scores


__all__ = [
    "GOLD_SET_PATH",
    "load_gold_records",
    "score_parser",
]
