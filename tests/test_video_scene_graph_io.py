import copy
import json
import pickle

import numpy as np
import pytest

from modeling_finsta.readers import read_action_genome_annotations
from modeling_finsta.scene_graphs import ParsedVideoSceneGraph, VideoKeyframe, VideoObject, VideoRelation
from modeling_finsta.video_scene_graph_io import (
    VIDEO_SCENE_GRAPH_SCHEMA,
    VideoSceneGraphError,
    read_video_scene_graph,
    video_scene_graph_from_dict,
    video_scene_graph_to_dict,
    write_video_scene_graph,
)


def pixel_document():
    return {
        "schema": VIDEO_SCENE_GRAPH_SCHEMA,
        "video": "video3.mp4",
        "width": 200,
        "height": 100,
        "fps": 20.0,
        "num_frames": 60,
        "frames": [
            {
                "frame_index": 0,
                "timestamp": 0.0,
                "objects": [
                    {"track_id": 1, "label": "circle", "box": [20, 10, 60, 50], "attributes": ["red", "small"]},
                    {"track_id": 2, "label": None, "box": [100, 0, 200, 100]},
                ],
                "relations": [{"subject": 1, "predicate": "left of", "object": 2}],
            },
            {
                "frame_index": 40,
                "objects": [{"track_id": 1, "label": "circle", "box": [-10, 20, 40, 120]}],
            },
        ],
    }


def test_pixel_xyxy_document_is_normalised_and_clipped():
    graph = video_scene_graph_from_dict(pixel_document(), source="video3.json")
    assert graph.source == "video3.json"
    assert [frame.index for frame in graph.frames] == [0, 40]
    first, second = graph.frames
    assert first.timestamp == 0.0 and second.timestamp is None
    assert first.objects[0] == VideoObject(1, (0.1, 0.1, 0.3, 0.5), "circle", ["red", "small"])
    assert first.objects[1].label is None and first.objects[1].attributes == []
    assert first.objects[1].box == (0.5, 0.0, 1.0, 1.0)
    assert first.relations == [VideoRelation(1, "left of", 2)]
    # Out-of-frame parts are clipped to [0, 1].
    assert second.objects[0].box == pytest.approx((0.0, 0.2, 0.2, 1.0))
    assert graph.track_ids() == [1, 2]


def test_xywh_and_normalized_units():
    document = pixel_document()
    document["box_format"] = "xywh"
    document["frames"][0]["objects"][0]["box"] = [20, 10, 40, 40]
    document["frames"][0]["objects"][1]["box"] = [100, 0, 100, 100]
    document["frames"][1]["objects"][0]["box"] = [0, 20, 40, 80]
    graph = video_scene_graph_from_dict(document)
    assert graph.frames[0].objects[0].box == pytest.approx((0.1, 0.1, 0.3, 0.5))
    assert graph.frames[1].objects[0].box == pytest.approx((0.0, 0.2, 0.2, 1.0))

    normalized = {
        "box_units": "normalized",
        "frames": [{"frame_index": 3, "objects": [{"track_id": 7, "box": [0.25, 0.5, 1.02, 0.75]}]}],
    }
    graph = video_scene_graph_from_dict(normalized)
    assert graph.frames[0].objects[0].box == pytest.approx((0.25, 0.5, 1.0, 0.75))


def test_round_trip_through_file(tmp_path):
    graph = ParsedVideoSceneGraph(
        frames=[
            VideoKeyframe(
                index=2,
                objects=[
                    VideoObject(0, (0.1, 0.2, 0.3, 0.4), "person"),
                    VideoObject(5, (0.5, 0.5, 0.9, 0.6), "cup", ["blue"]),
                ],
                relations=[VideoRelation(0, "holding", 5)],
                timestamp=0.1,
            ),
            VideoKeyframe(index=9, objects=[VideoObject(5, (1 / 3, 0.0, 2 / 3, 1.0), None)]),
        ]
    )
    path = tmp_path / "scene_graphs" / "video1.json"
    write_video_scene_graph(graph, path, width=320, height=240, video="video1.mp4", fps=30.0, num_frames=12)
    data = json.loads(path.read_text())
    assert data["schema"] == VIDEO_SCENE_GRAPH_SCHEMA
    assert data["box_units"] == "normalized" and data["box_format"] == "xyxy"
    assert (data["width"], data["height"], data["video"], data["fps"], data["num_frames"]) == (
        320,
        240,
        "video1.mp4",
        30.0,
        12,
    )
    read_back = read_video_scene_graph(path)
    assert read_back.source == str(path)
    assert read_back.frames == graph.frames


def test_writer_refuses_invalid_graph(tmp_path):
    graph = ParsedVideoSceneGraph(
        frames=[
            VideoKeyframe(
                index=0, objects=[VideoObject(1, (0.1, 0.1, 0.2, 0.2))], relations=[VideoRelation(1, "near", 4)]
            )
        ]
    )
    with pytest.raises(VideoSceneGraphError, match=r"relations\[0\]\.object: track 4 is not an object of this frame"):
        write_video_scene_graph(graph, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    with pytest.raises(VideoSceneGraphError, match="at least one frame"):
        video_scene_graph_to_dict(ParsedVideoSceneGraph(frames=[]))


def test_error_names_file_frame_and_field(tmp_path):
    document = pixel_document()
    document["frames"][1]["objects"].append({"track_id": 2, "box": [1, 2, 3]})
    path = tmp_path / "video3.json"
    path.write_text(json.dumps(document))
    with pytest.raises(VideoSceneGraphError) as error:
        read_video_scene_graph(path)
    assert str(error.value) == f"{path}: frames[1] (frame_index 40): objects[1].box: expected 4 numbers, got 3"


def _mutated(mutate):
    document = copy.deepcopy(pixel_document())
    mutate(document)
    return document


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(schema="finsta-video-scene-graph/9"), r"doc\.json: schema: unknown schema"),
        (lambda d: d.update(box_format="cxcywh"), r"box_format: expected one of \['xyxy', 'xywh'\]"),
        (lambda d: d.update(box_units="percent"), r"box_units: expected one of"),
        (lambda d: d.pop("width"), r"missing field 'width', required because box_units is 'pixels'"),
        (lambda d: d.update(height=0), r"height: expected a positive finite number, got 0"),
        (lambda d: d.update(frames=[]), r"frames: expected at least one frame"),
        (lambda d: d.pop("frames"), r"missing field 'frames'"),
        (
            lambda d: d["frames"][1].update(frame_index=0),
            r"frames\[1\] \(frame_index 0\): frame_index must be greater",
        ),
        (lambda d: d["frames"][1].update(frame_index=-1), r"frames\[1\]\.frame_index: expected an int >= 0, got -1"),
        (lambda d: d["frames"][1].update(frame_index=60), r"frame_index: 60 is beyond num_frames 60"),
        (lambda d: d["frames"][0]["objects"][1].update(track_id=1), r"objects\[1\]\.track_id: track 1 appears twice"),
        (
            lambda d: d["frames"][0]["objects"][1].update(track_id="2"),
            r"objects\[1\]\.track_id: expected an int, got '2'",
        ),
        (lambda d: d["frames"][0]["objects"][1].update(track_id=True), r"objects\[1\]\.track_id: expected an int"),
        (lambda d: d["frames"][0]["objects"][0].update(label=3), r"objects\[0\]\.label: expected a string or null"),
        (
            lambda d: d["frames"][0]["objects"][0].update(attributes=["red", 1]),
            r"objects\[0\]\.attributes\[1\]: expected a string",
        ),
        (
            lambda d: d["frames"][0]["objects"][0].update(box=[10, 10, 10, 20]),
            r"objects\[0\]\.box: xyxy box must have x2 > x1",
        ),
        (lambda d: d["frames"][0]["objects"][0].update(box=[10, float("nan"), 30, 20]), r"expected 4 finite numbers"),
        (lambda d: d["frames"][0]["objects"][0].update(box=[300, 10, 400, 20]), r"has no area inside the frame"),
        (
            lambda d: d["frames"][0]["relations"][0].update(object=9),
            r"relations\[0\]\.object: track 9 is not an object of this frame",
        ),
        (lambda d: d["frames"][0]["relations"][0].pop("subject"), r"relations\[0\]: missing field 'subject'"),
        (
            lambda d: d["frames"][0]["relations"][0].update(predicate=""),
            r"relations\[0\]\.predicate: expected a non-empty string",
        ),
        (lambda d: d["frames"][0].update(timestamp=-1.0), r"\(frame_index 0\): timestamp: expected seconds >= 0"),
    ],
)
def test_validation_errors(mutate, message):
    with pytest.raises(VideoSceneGraphError, match=message) as error:
        video_scene_graph_from_dict(_mutated(mutate), source="doc.json")
    assert str(error.value).startswith("doc.json: ")


def test_normalized_units_reject_pixel_values():
    document = {
        "box_units": "normalized",
        "frames": [{"frame_index": 0, "objects": [{"track_id": 1, "box": [0.1, 0.1, 40, 0.5]}]}],
    }
    with pytest.raises(VideoSceneGraphError, match=r"normalized coordinates must lie in \[0, 1\]"):
        video_scene_graph_from_dict(document)


def test_invalid_json_names_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"frames": [')
    with pytest.raises(VideoSceneGraphError, match=r"broken\.json: invalid JSON at line 1"):
        read_video_scene_graph(path)


# ---------------------------------------------------------------------------------------------
# Action Genome: fixtures in the layout of object_bbox_and_relationship.pkl and person_bbox.pkl
# ---------------------------------------------------------------------------------------------


def action_genome_fixture():
    meta = {"tag": "001YG.mp4/cup/000089", "set": "train"}
    objects = {
        "001YG.mp4/000089.png": [
            {
                "class": "cup/glass/bottle",
                "bbox": [40.0, 30.0, 20.0, 10.0],
                "attention_relationship": ["looking_at"],
                "spatial_relationship": ["in_front_of"],
                "contacting_relationship": ["holding"],
                "visible": True,
                "metadata": meta,
            },
            {
                "class": "table",
                "bbox": None,
                "attention_relationship": None,
                "spatial_relationship": None,
                "contacting_relationship": None,
                "visible": False,
                "metadata": meta,
            },
        ],
        "001YG.mp4/000012.png": [
            {
                "class": "table",
                "bbox": (0.0, 50.0, 100.0, 60.0),
                "attention_relationship": ["unsure"],
                "spatial_relationship": ["beneath"],
                "contacting_relationship": ["not_contacting"],
                "visible": True,
                "metadata": meta,
            },
            {
                "class": "cup/glass/bottle",
                "bbox": [10.0, 10.0, 10.0, 10.0],
                "attention_relationship": ["not_looking_at"],
                "spatial_relationship": ["on_the_side_of"],
                "contacting_relationship": [],
                "visible": True,
                "metadata": meta,
            },
        ],
        "0A8CF.mp4/000001.png": [
            {
                "class": "door",
                "bbox": [0, 0, 5, 5],
                "attention_relationship": [],
                "spatial_relationship": [],
                "contacting_relationship": [],
                "visible": True,
                "metadata": meta,
            },
        ],
    }
    persons = {
        "001YG.mp4/000089.png": {
            "bbox": np.array([[10.0, 10.0, 50.0, 90.0]], dtype=np.float32),
            "bbox_score": np.array([0.99], dtype=np.float32),
            "bbox_size": (160, 100),
            "bbox_mode": "xyxy",
        },
        "001YG.mp4/000012.png": {
            "bbox": np.zeros((0, 4), dtype=np.float32),
            "bbox_score": np.zeros((0,), dtype=np.float32),
            "bbox_size": (160, 100),
            "bbox_mode": "xyxy",
        },
        "0A8CF.mp4/000001.png": {"bbox": np.zeros((0, 4)), "bbox_size": (10, 10), "bbox_mode": "xyxy"},
    }
    return objects, persons


def test_action_genome_conversion(tmp_path):
    objects, persons = action_genome_fixture()
    objects_path = tmp_path / "object_bbox_and_relationship.pkl"
    objects_path.write_bytes(pickle.dumps(objects))
    graph = read_action_genome_annotations(objects_path, "001YG", person_bboxes=persons, fps=24.0)

    assert [frame.index for frame in graph.frames] == [12, 89]
    early, late = graph.frames
    assert early.timestamp == pytest.approx(12 / 24)
    # Frame 12 has no person: objects kept, relations (all person -> object) dropped.
    assert [(o.track_id, o.label) for o in early.objects] == [(1, "table"), (2, "cup/glass/bottle")]
    assert early.objects[0].box == pytest.approx((0.0, 0.5, 100 / 160, 1.0))  # y2 = 110 clipped to 100
    assert early.relations == []
    # Frame 89: the person is track 0, the cup keeps track 2, the invisible table is left out.
    assert [(o.track_id, o.label) for o in late.objects] == [(0, "person"), (2, "cup/glass/bottle")]
    assert late.objects[0].box == pytest.approx((10 / 160, 0.1, 50 / 160, 0.9))
    assert late.objects[1].box == pytest.approx((40 / 160, 0.3, 60 / 160, 0.4))
    assert late.relations == [
        VideoRelation(0, "looking at", 2),
        VideoRelation(0, "in front of", 2),
        VideoRelation(0, "holding", 2),
    ]
    assert graph.track_labels() == {1: "table", 2: "cup/glass/bottle", 0: "person"}

    # The converted graph serialises to a valid file.
    write_video_scene_graph(graph, tmp_path / "001YG.json", video="001YG.mp4", width=160, height=100)
    assert read_video_scene_graph(tmp_path / "001YG.json").frames == graph.frames


def test_action_genome_without_persons_needs_frame_size():
    objects, persons = action_genome_fixture()
    with pytest.raises(VideoSceneGraphError, match=r"frame size unknown"):
        read_action_genome_annotations(objects, "001YG.mp4")
    graph = read_action_genome_annotations(objects, "001YG.mp4", frame_size=(160, 100))
    assert all(o.track_id != 0 for frame in graph.frames for o in frame.objects)
    assert all(frame.relations == [] for frame in graph.frames)
    # "unsure" is dropped by default but can be kept.
    graph = read_action_genome_annotations(objects, "001YG", person_bboxes=persons, ignored_predicates=())
    assert graph.frames[1].relations[0].predicate == "looking at"


def test_action_genome_errors():
    objects, persons = action_genome_fixture()
    with pytest.raises(VideoSceneGraphError, match=r"no frames of video 'ZZZZZ\.mp4'"):
        read_action_genome_annotations(objects, "ZZZZZ", person_bboxes=persons)
    del persons["001YG.mp4/000012.png"]
    with pytest.raises(VideoSceneGraphError, match=r"person_bbox: missing frame '001YG\.mp4/000012\.png'"):
        read_action_genome_annotations(objects, "001YG", person_bboxes=persons)
    objects, persons = action_genome_fixture()
    objects["001YG.mp4/000089.png"][0]["bbox"] = [1.0, 2.0, 3.0]
    with pytest.raises(VideoSceneGraphError, match=r"\[0\]\.bbox: expected 4 finite numbers \(x, y, w, h\)"):
        read_action_genome_annotations(objects, "001YG", person_bboxes=persons)
