"""FinstaProcessor: token alignment, video graphs, save/load, collator, end to end into FinstaModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from modeling_finsta import FinstaDataCollator, FinstaModel, FinstaProcessor
from modeling_finsta.scene_graph_batching import crop_box, text_graph_tensors, video_graph_tensors
from modeling_finsta.scene_graphs import (
    ParsedTextSceneGraph,
    ParsedVideoSceneGraph,
    VideoKeyframe,
    VideoObject,
    VideoRelation,
)
from tiny_models import tiny_clip_tokenizer, tiny_finsta_config

CAPTION = "the red circle moves towards the blue square"


def caption_graph(caption: str = CAPTION) -> ParsedTextSceneGraph:
    graph = ParsedTextSceneGraph(caption)
    circle = graph.add_node("object", "circle", "circle", [(8, 14)])
    red = graph.add_node("attribute", "red", "red", [(4, 7)])
    move = graph.add_node("predicate", "moves", "move", [(15, 20)])
    towards = graph.add_node("predicate_attribute", "towards", "towards", [(21, 28)])
    square = graph.add_node("object", "square", "square", [(38, 44)])
    blue = graph.add_node("attribute", "blue", "blue", [(33, 37)])
    graph.add_edge(circle, red, "attribute")
    graph.add_edge(square, blue, "attribute")
    graph.add_edge(circle, move, "subject")
    graph.add_edge(move, square, "object")
    graph.add_edge(move, towards, "predicate_attribute")
    return graph


def two_object_graph(frames: int = 6) -> ParsedVideoSceneGraph:
    return ParsedVideoSceneGraph(
        frames=[
            VideoKeyframe(
                index=i,
                objects=[
                    VideoObject(1, (0.1 + 0.05 * i, 0.1, 0.3 + 0.05 * i, 0.3), "circle", ["red"]),
                    VideoObject(2, (0.6, 0.6, 0.9, 0.9), "square", ["blue"]),
                ],
                relations=[VideoRelation(1, "moving towards", 2)],
            )
            for i in range(frames)
        ]
    )


def make_processor(**overrides) -> FinstaProcessor:
    settings = dict(video_preprocessing={"size": 32, "crop_size": 32}, num_frames=4, max_length=16, parser_backend=None)
    settings.update(overrides)
    return FinstaProcessor(tokenizer=tiny_clip_tokenizer(), **settings)


def test_node_spans_map_onto_the_right_tokens():
    tokenizer = tiny_clip_tokenizer()
    encoded = tokenizer([CAPTION], return_offsets_mapping=True, padding="max_length", max_length=16)
    offsets = [tuple(o) for o in encoded["offset_mapping"][0]]
    tensors = text_graph_tensors(caption_graph(), offsets)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    for n, node in enumerate(caption_graph().nodes):
        pieces = [tokens[t] for t in tensors["node_token_mask"][n].nonzero().flatten().tolist()]
        assert "".join(pieces).replace("</w>", "") == node.text
    assert tensors["edge_types"][0, 2] == 2 and tensors["edge_types"][2, 4] == 3


def test_truncated_spans_give_empty_rows_and_the_model_ignores_them():
    tokenizer = tiny_clip_tokenizer()
    encoded = tokenizer([CAPTION], return_offsets_mapping=True, padding="max_length", max_length=5, truncation=True)
    tensors = text_graph_tensors(caption_graph(), [tuple(o) for o in encoded["offset_mapping"][0]])
    assert tensors["node_token_mask"][4].sum() == 0  # "square" was cut off
    assert tensors["node_token_mask"][0].sum() == 1  # "circle" survived
    model = FinstaModel(tiny_finsta_config()).eval()
    batch = {k: v.unsqueeze(0) for k, v in tensors.items()}
    encoding = model.graph_encoder.encode_text_graph(torch.randn(1, 5, 32), type("G", (), {
        "node_types": batch["node_types"], "node_token_mask": batch["node_token_mask"], "edge_types": batch["edge_types"]
    })())
    assert not encoding.node_mask[0, 4] and encoding.node_mask[0, 0]


def test_video_graph_follows_sampling_and_crop():
    graph = two_object_graph()
    tensors = video_graph_tensors(graph, [0, 5], frame_size=(40, 80), resize_to=20, crop_size=(20, 20))
    assert tensors["boxes"].shape == (2, 2, 4)
    # frame 80x40 -> 40x20 after resize, centre crop keeps x in [10, 30) of 40: x 0.1..0.3 of 80 -> 4..12 -> cropped away partly
    expected = crop_box((0.35, 0.1, 0.55, 0.3), (40, 80), 20, (20, 20))
    assert torch.allclose(tensors["boxes"][1, 0], torch.tensor(expected))
    assert tensors["relation_types"][0, 0, 1] > 0 and tensors["relation_types"][0, 1, 0] == 0
    # A box cropped away entirely marks the node absent.
    gone = ParsedVideoSceneGraph(frames=[VideoKeyframe(0, [VideoObject(1, (0.0, 0.0, 0.1, 0.1))])])
    assert not video_graph_tensors(gone, [0], frame_size=(40, 80), resize_to=20, crop_size=(20, 20))["node_mask"].any()


def test_processor_outputs_and_grounding():
    processor = make_processor()
    videos = [np.random.randint(0, 255, (6, 32, 32, 3), dtype=np.uint8), np.random.randint(0, 255, (3, 32, 32, 3), dtype=np.uint8)]
    batch = processor(
        text=[CAPTION, "a dog"],
        videos=videos,
        video_scene_graphs=[two_object_graph(), None],
        text_scene_graphs=[caption_graph(), None],
    )
    assert batch["input_ids"].shape == (2, 16)
    assert batch["pixel_values"].shape == (2, 4, 3, 32, 32)
    assert batch["video_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    graph = batch["text_scene_graph"]
    assert graph["node_types"].shape == (2, 6) and graph["node_types"][1].sum() == 0
    assert graph["grounding"][0, 0].tolist() == [1.0, 0.0]  # circle -> track 1
    assert graph["grounding"][0, 4].tolist() == [0.0, 1.0]  # square -> track 2
    assert batch["video_scene_graph"]["boxes"].shape == (2, 4, 2, 4)
    assert not batch["video_scene_graph"]["node_mask"][1].any()


@pytest.mark.parametrize("backbone", ["clip", "xclip"])
def test_processor_output_trains_the_model(backbone):
    processor = make_processor(backbone_type=backbone)
    videos = [np.random.randint(0, 255, (5, 32, 32, 3), dtype=np.uint8) for _ in range(2)]
    batch = processor(text=[CAPTION, CAPTION], videos=videos, video_scene_graphs=[two_object_graph(), two_object_graph()],
                      text_scene_graphs=[caption_graph(), caption_graph()])
    torch.manual_seed(0)
    model = FinstaModel(tiny_finsta_config(backbone)).train()
    out = model(**batch)
    assert torch.isfinite(out.loss) and out.osc_loss is not None and out.ptc_loss is not None
    out.loss.backward()


def test_save_load_round_trip_and_auto_processor(tmp_path):
    processor = make_processor(relation_vocabulary=["moving towards", "left of"], backbone_type="xclip")
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "processor_config.json").exists()
    reloaded = FinstaProcessor.from_pretrained(tmp_path)
    assert reloaded.num_frames == 4 and reloaded.relation_vocabulary == ["moving towards", "left of"]
    assert reloaded.video_preprocessing == processor.video_preprocessing
    assert reloaded.video_preprocessing["image_mean"] == pytest.approx([0.485, 0.456, 0.406])  # X-CLIP preset filled in
    video = np.random.randint(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    a = processor(text=CAPTION, videos=[video], text_scene_graphs=[caption_graph()])
    b = reloaded(text=CAPTION, videos=[video], text_scene_graphs=[caption_graph()])
    assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["input_ids"], b["input_ids"])
    from tiny_models import tiny_finsta_config as config_factory

    config_factory().save_pretrained(tmp_path)
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), FinstaProcessor)


def test_collator_pads_processed_examples_and_requests_the_loss():
    processor = make_processor()
    examples = []
    for frames in (4, 2):
        item = processor(text=[CAPTION], videos=[np.zeros((frames, 32, 32, 3), np.uint8)], text_scene_graphs=[caption_graph()],
                         video_scene_graphs=[two_object_graph()])
        examples.append({k: ({kk: vv[0] for kk, vv in v.items()} if isinstance(v, dict) else v[0]) for k, v in item.items()})
    examples[1]["text_scene_graph"] = {k: v[:3] if k != "edge_types" else v[:3, :3] for k, v in examples[1]["text_scene_graph"].items()}
    batch = FinstaDataCollator()(examples)
    assert batch["return_loss"] is True
    assert batch["text_scene_graph"]["node_types"].shape == (2, 6)
    assert batch["text_scene_graph"]["node_types"][1, 3:].sum() == 0
    assert batch["pixel_values"].shape == (2, 4, 3, 32, 32)


def test_bad_inputs_raise_clear_errors():
    processor = make_processor()
    with pytest.raises(ValueError, match="needs `text`, `videos`"):
        processor()
    with pytest.raises(ValueError, match="video_scene_graphs"):
        processor(videos=[np.zeros((2, 32, 32, 3), np.uint8)], video_scene_graphs=[None, None])
    with pytest.raises(ValueError, match="return_tensors"):
        processor(text="a dog", return_tensors="np")


def test_captions_are_parsed_and_aligned_end_to_end():
    processor = make_processor(parser_backend="spacy", max_length=24)
    captions = ["a man opens the fridge and takes out a bottle", "the red circle moves towards the blue square"]
    batch = processor(text=captions, videos=[np.random.randint(0, 255, (4, 32, 32, 3), dtype=np.uint8)] * 2)
    graph = batch["text_scene_graph"]
    parsed = processor.parse_captions(captions)
    assert ("man", "open", "fridge") in parsed[0].triplets()
    for b, caption_graph_ in enumerate(parsed):
        kinds = [n.kind for n in caption_graph_.nodes]
        assert graph["node_types"][b, : len(kinds)].tolist() == [
            {"object": 1, "attribute": 2, "predicate": 3, "predicate_attribute": 4}[k] for k in kinds
        ]
        assert (graph["node_token_mask"][b, : len(kinds)].sum(-1) > 0).all()  # every node found its tokens
    model = FinstaModel(tiny_finsta_config()).train()
    assert torch.isfinite(model(**batch).loss)


def test_a_caption_without_a_ready_graph_is_parsed_and_the_ready_ones_are_kept():
    processor = make_processor(parser_backend="spacy", max_length=24)
    gold = caption_graph()
    gold.add_node("object", "extra", "extra", [])  # a node the parser would never produce: shows the gold graph is kept
    mixed = processor(text=[CAPTION, CAPTION], text_scene_graphs=[gold, None])["text_scene_graph"]
    parsed = processor(text=[CAPTION])["text_scene_graph"]
    nodes = lambda graph, b: int((graph["node_types"][b] > 0).sum())  # noqa: E731
    assert nodes(mixed, 0) == len(gold.nodes)
    assert nodes(mixed, 1) == nodes(parsed, 0) > 0
    assert torch.equal(mixed["node_types"][1], parsed["node_types"][0])
    without_parser = make_processor(max_length=24)(text=[CAPTION, CAPTION], text_scene_graphs=[gold, None])["text_scene_graph"]
    assert nodes(without_parser, 1) == 0
