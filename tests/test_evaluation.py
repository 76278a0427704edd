"""Evaluation: retrieval plumbing, text/video independence, hard-negative scoring, latent-DSG quality, finsta-eval."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from tiny_models import TINY_TEXT, TINY_TOWER
from torch import nn
from transformers import CLIPConfig

from modeling_finsta import FinstaConfig, FinstaModel
from modeling_finsta.evaluation import (
    HardNegativeItem,
    SlotLocalisationCounts,
    encode_texts,
    encode_videos,
    evaluate_hard_negatives,
    evaluate_model,
    evaluate_retrieval,
    format_results_table,
    latent_dsg_quality,
    main,
    retrieval_metrics,
    similarity_matrix,
)
from modeling_finsta.latent_scene_graph import box_patch_weights
from modeling_finsta.processing_finsta import FinstaProcessor
from modeling_finsta.synth import FinstaSynthConfig, export_finsta_synth, generate_finsta_synth
from modeling_finsta.training import finsta_synth_examples, finsta_synth_tokenizer

NUM_FRAMES = 8


def synth_model(seed: int = 0) -> FinstaModel:
    """A tiny random Finsta-CLIP whose text tower uses the finsta-synth tokenizer's special ids."""
    tokenizer = finsta_synth_tokenizer()
    text = dict(TINY_TEXT, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    backbone = CLIPConfig(text_config=text, vision_config=dict(TINY_TOWER, image_size=32, patch_size=8), projection_dim=64)
    config = FinstaConfig(
        backbone_config=backbone, graph_hidden_size=32, graph_num_heads=4, text_graph_num_layers=1,
        video_graph_num_layers=2, temporal_num_layers=1, num_latent_slots=4, num_frame_positions=16,
    )
    torch.manual_seed(seed)
    return FinstaModel(config).eval()


def synth_processor() -> FinstaProcessor:
    return FinstaProcessor(
        tokenizer=finsta_synth_tokenizer(), video_preprocessing={"size": 32, "crop_size": 32},
        num_frames=NUM_FRAMES, parser_backend=None,
    )


@pytest.fixture(scope="module")
def synth():
    dataset = generate_finsta_synth(FinstaSynthConfig(num_train=0, num_test=12, num_frames=NUM_FRAMES))
    processor = synth_processor()
    return SimpleNamespace(dataset=dataset, processor=processor, examples=finsta_synth_examples(dataset.test, processor))


@pytest.fixture(scope="module")
def model():
    return synth_model()


def test_inference_mode_as_sets_restores_on_error_and_leaves_plain_hosts_alone():
    from modeling_finsta.configuration_finsta import inference_mode_as

    finsta = SimpleNamespace(config=SimpleNamespace(inference_mode="distilled"))
    with pytest.raises(RuntimeError, match="inside"):
        with inference_mode_as(finsta, "fused"):
            assert finsta.config.inference_mode == "fused"
            raise RuntimeError("inside")
    assert finsta.config.inference_mode == "distilled"
    with inference_mode_as(finsta, None):
        assert finsta.config.inference_mode == "distilled"
    host = SimpleNamespace(config=SimpleNamespace(hidden_size=8))  # a plain host: no inference_mode field
    with inference_mode_as(host, "fused") as same:
        assert same is host and not hasattr(host.config, "inference_mode")


# ---------------------------------------------------------------------------------------- retrieval


def test_retrieval_metrics_match_the_embeddings_and_settings_are_restored(model, synth):
    model.config.inference_mode = "distilled"
    model.train()
    try:
        metrics = evaluate_retrieval(model, synth.examples, mode="fused", dsg="annotated")
        assert model.config.inference_mode == "distilled" and model.training  # restored
    finally:
        model.config.inference_mode = "fused"
        model.eval()
    expected = retrieval_metrics(
        similarity_matrix(
            encode_texts(model, synth.examples, mode="fused"),
            encode_videos(model, synth.examples, mode="fused", use_annotated_dsg=True),
        ),
        list(range(12)),
    )
    assert metrics == pytest.approx(expected)
    assert set(metrics) == {f"{d}_{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")}

    # Several captions per video: captions kept apart from the videos, or paired examples grouped.
    texts = synth.examples + synth.examples[:4]
    targets = list(range(12)) + [0, 1, 2, 3]
    apart = evaluate_retrieval(model, texts, targets, video_examples=synth.examples, mode="distilled")
    paired = evaluate_retrieval(model, texts, targets, mode="distilled")
    manual = retrieval_metrics(
        similarity_matrix(encode_texts(model, texts, mode="distilled"), encode_videos(model, synth.examples, mode="distilled")),
        targets,
    )
    assert apart == pytest.approx(manual) and paired == pytest.approx(manual)

    # The modes really differ, and distilled mode is the host's own embedding.
    fused = encode_texts(model, synth.examples[:3], mode="fused")
    distilled = encode_texts(model, synth.examples[:3], mode="distilled")
    assert not torch.allclose(fused, distilled)
    host = model(**{k: synth.examples[0][k].unsqueeze(0) for k in ("input_ids", "attention_mask", "pixel_values")}, return_loss=False)
    assert torch.allclose(distilled[0], host.host_text_embeds[0], atol=1e-5)


def test_errors_are_specific_and_leave_the_model_as_it_was(model, synth):
    latent_only = finsta_synth_examples(synth.dataset.test[:3], synth.processor, annotated=False)
    with pytest.raises(ValueError, match="annotated video scene graph for every video"):
        encode_videos(model, latent_only, use_annotated_dsg=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        encode_texts(model, latent_only, mode="hybrid")
    broken = [{**latent_only[0], "input_ids": torch.zeros(3, 3, dtype=torch.long)}]
    with pytest.raises(Exception):
        encode_texts(model, broken, mode="distilled")
    assert model.config.inference_mode == "fused"


def test_evaluate_model_from_raw_inputs_equals_processed_examples(model, synth):
    samples = synth.dataset.test
    raw = evaluate_model(
        model, synth.processor, [s.caption for s in samples], [s.frames for s in samples],
        text_scene_graphs=[s.text_graph for s in samples], video_scene_graphs=[s.video_graph for s in samples],
        hard_negatives=synth.dataset.hard_negatives, batch_size=5,
    )
    processed = evaluate_model(model, synth.processor, synth.examples, synth.examples, hard_negatives=synth.dataset.hard_negatives)
    for mode in ("distilled", "fused"):
        for dsg in ("latent", "annotated"):
            assert raw[mode][dsg] == pytest.approx(processed[mode][dsg])
            assert {"temporal_acc", "binding_acc", "role_acc", "static_acc"} <= set(raw[mode][dsg])
    assert raw["distilled"]["latent"] == raw["distilled"]["annotated"]  # distilled mode reads no DSG
    retrieval_only = {k: v for k, v in raw["fused"]["annotated"].items() if not k.endswith("_acc")}
    assert retrieval_only == pytest.approx(evaluate_retrieval(model, synth.examples, mode="fused", dsg="annotated"))
    expected_suites = evaluate_hard_negatives(
        model, synth.processor, synth.examples, synth.dataset.hard_negatives, mode="fused", dsg="latent"
    )
    assert {f"{s}_acc": v for s, v in expected_suites.items()} == pytest.approx(
        {k: v for k, v in raw["fused"]["latent"].items() if k.endswith("_acc")}
    )
    quality = raw["latent_dsg_quality"]
    assert quality["gold_objects"] == int(sum(s.visible.sum() for s in samples))
    assert 0 <= quality["centroid_in_box"] <= 100 and 0 <= quality["track_consistency"] <= 100
    table = format_results_table(raw)
    assert "temporal_acc" in table and "latent DSG" in table and table.count("\n") >= 5


# ---------------------------------------------------------------------------- text/video separation


def test_encoders_never_mix_text_and_video(model, synth):
    examples = synth.examples
    # A caption's embedding does not depend on the video it is paired with, nor on its batch.
    shuffled_videos = [{**e, "pixel_values": examples[(i + 5) % 12]["pixel_values"]} for i, e in enumerate(examples)]
    together = encode_texts(model, examples, batch_size=12)
    assert torch.equal(together, encode_texts(model, shuffled_videos, batch_size=12))
    one_by_one = encode_texts(model, examples, batch_size=1)
    assert torch.allclose(together, one_by_one, atol=1e-5)
    # Grounding (a link to the paired video) is ignored: with and without it the embedding is the same.
    assert "grounding" in examples[0]["text_scene_graph"]
    without_grounding = [
        {**e, "text_scene_graph": {k: v for k, v in e["text_scene_graph"].items() if k != "grounding"}} for e in examples
    ]
    assert torch.equal(together, encode_texts(model, without_grounding, batch_size=12))

    # A video's embedding does not depend on the captions, nor on the other videos of its batch.
    other_captions = [{**e, "input_ids": examples[(i + 3) % 12]["input_ids"]} for i, e in enumerate(examples)]
    for annotated in (False, True):
        videos = encode_videos(model, examples, batch_size=12, use_annotated_dsg=annotated)
        assert torch.equal(videos, encode_videos(model, other_captions, batch_size=12, use_annotated_dsg=annotated))
        assert torch.allclose(videos, encode_videos(model, examples, batch_size=1, use_annotated_dsg=annotated), atol=1e-5)
    assert not torch.allclose(
        encode_videos(model, examples[:4], use_annotated_dsg=True), encode_videos(model, examples[:4], use_annotated_dsg=False)
    )


# --------------------------------------------------------------------------------- hard negatives


class StubModel(nn.Module):
    """Embeddings set by hand: each caption (decoded from its tokens) and each video (its pixel value) maps to a vector."""

    def __init__(self, tokenizer, caption_vectors, video_vectors):
        super().__init__()
        self.config = SimpleNamespace(inference_mode="distilled")
        self.tokenizer = tokenizer
        self.caption_vectors = caption_vectors
        self.video_vectors = video_vectors
        self.modes_seen = []
        self.graphs_seen = []

    def get_text_features(self, input_ids, attention_mask=None, text_scene_graph=None, **kwargs):
        self.modes_seen.append(self.config.inference_mode)
        self.graphs_seen.append(text_scene_graph is not None)
        captions = [self.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in input_ids]
        return SimpleNamespace(pooler_output=torch.stack([self.caption_vectors[c] for c in captions]))

    def get_video_features(self, pixel_values, video_mask=None, video_scene_graph=None, **kwargs):
        index = pixel_values.flatten(1)[:, 0].round().long()
        return SimpleNamespace(pooler_output=self.video_vectors[index])


def test_hard_negative_accuracy_on_a_hand_built_case(synth):
    e = torch.eye(3)
    captions = {
        "the red circle": e[0], "the blue circle": e[1],  # video 0: true wins
        "the blue square": e[1], "the red square": e[1],  # video 1: tie, counts half
        "the green circle": e[0], "the green square": e[2],  # video 2: negative wins
    }
    stub = StubModel(synth.processor.tokenizer, captions, video_vectors=2.0 * e)  # scale must not matter (cosine)
    videos = [{"pixel_values": torch.full((2, 3, 4, 4), float(i)), "video_mask": torch.ones(2, dtype=torch.long)} for i in range(3)]
    gold = synth.dataset.test[0].text_graph
    suites = {
        "mixed": [
            HardNegativeItem(0, "the red circle", "the blue circle", gold, gold),
            {"video_index": 1, "caption": "the blue square", "negative": "the red square"},
            SimpleNamespace(video_index=2, caption="the green circle", negative="the green square", caption_graph=None, negative_graph=None),
        ],
        "easy": [HardNegativeItem(0, "the red circle", "the green square")],
        "empty": [],
    }
    accuracies = evaluate_hard_negatives(stub, synth.processor, videos, suites, mode="fused", dsg="latent")
    assert accuracies == {"mixed": pytest.approx(50.0), "easy": 100.0, "empty": None}
    assert set(stub.modes_seen) == {"fused"} and stub.config.inference_mode == "distilled"
    assert any(stub.graphs_seen)  # the gold graphs reached the model
    with pytest.raises(ValueError, match="outside the 3 videos"):
        evaluate_hard_negatives(stub, synth.processor, videos, {"bad": [HardNegativeItem(7, "the red circle", "the blue circle")]})


# ------------------------------------------------------------------------------- latent DSG quality


def test_slot_localisation_counts_known_answers():
    # A 4x4 patch grid, two objects moving right over 3 frames.
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]]).repeat(3, 1, 1)
    boxes[:, :, [0, 2]] += torch.tensor([0.0, 0.1, 0.2]).view(3, 1, 1) * torch.tensor([1.0, 0.0]).view(1, 2, 1)
    boxes = boxes.clamp(0, 1)
    gold_mask = torch.ones(3, 2, dtype=torch.bool)
    slots = box_patch_weights(boxes, 4, 4)

    exact = SlotLocalisationCounts()
    exact.update(slots[None], gold_mask[None], (4, 4), boxes[None], gold_mask[None])
    assert exact.result() == {"centroid_in_box": 100.0, "track_consistency": 100.0, "gold_objects": 6, "track_pairs": 4}

    swapped = SlotLocalisationCounts()  # slots trade objects at frame 2: both pairs (1, 2) break
    swapped_slots = slots.clone()
    swapped_slots[2] = slots[2].flip(0)
    swapped.update(swapped_slots[None], gold_mask[None], (4, 4), boxes[None], gold_mask[None])
    assert swapped.result()["centroid_in_box"] == 100.0 and swapped.result()["track_consistency"] == 50.0

    collapsed = SlotLocalisationCounts()  # every slot spread over the whole image: centroid at the centre
    uniform = torch.ones(1, 3, 2, 16)
    off_centre = boxes.clone()
    off_centre[:, 1] = torch.tensor([0.7, 0.7, 1.0, 1.0])  # the second object keeps away from the centre
    collapsed.update(uniform, torch.ones(1, 3, 2, dtype=torch.bool), (4, 4), off_centre[None], gold_mask[None])
    result = collapsed.result()
    assert result["centroid_in_box"] == 50.0  # object 0's boxes all touch the centre, object 1's never

    absent = SlotLocalisationCounts()  # slots exactly on the objects but marked absent: nothing counts
    absent.update(slots[None], torch.zeros(1, 3, 2, dtype=torch.bool), (4, 4), boxes[None], gold_mask[None])
    assert absent.result()["centroid_in_box"] == 0.0 and absent.result()["track_consistency"] == 0.0
    assert SlotLocalisationCounts().result()["centroid_in_box"] is None


class GoldSlots(nn.Module):
    """Stands in for the latent builder: slots are the gold boxes (optionally rotated each frame)."""

    def __init__(self, boxes, node_mask, rotate=False):
        super().__init__()
        self.boxes, self.node_mask, self.rotate = boxes, node_mask, rotate

    def forward(self, patch_tokens, grid_size, video_mask=None):
        weights = box_patch_weights(self.boxes, *grid_size) * self.node_mask.unsqueeze(-1)
        mask = self.node_mask
        if self.rotate:
            frames = weights.shape[1]
            weights = torch.stack([weights[:, t].roll(t, dims=1) for t in range(frames)], dim=1)
            mask = torch.stack([mask[:, t].roll(t, dims=1) for t in range(frames)], dim=1)
        return {"assignment": weights, "boxes": self.boxes, "node_mask": mask}


@contextlib.contextmanager
def latent_builder_replaced(model, builder):
    """Swap the encoder's latent builder for the block, through nn.Module's own attribute handling
    (pytest's monkeypatch restores attributes via the instance __dict__, where a child module is not)."""
    original = model.graph_encoder.latent_builder
    model.graph_encoder.latent_builder = builder
    try:
        yield
    finally:
        model.graph_encoder.latent_builder = original


def test_latent_dsg_quality_on_rendered_clips(model, synth):
    examples = synth.examples[:4]
    visible = int(sum(s.visible.sum() for s in synth.dataset.test[:4]))
    real = latent_dsg_quality(model, examples)  # the model's own latent builder
    assert real["gold_objects"] == visible and 0 <= real["centroid_in_box"] <= 100
    parsed = latent_dsg_quality(model, examples, [s.video_graph for s in synth.dataset.test[:4]])
    assert parsed == real  # synth frames are not cropped: the gold boxes hold as they are

    gold = {k: torch.stack([e["video_scene_graph"][k] for e in examples]) for k in ("boxes", "node_mask")}
    with latent_builder_replaced(model, GoldSlots(gold["boxes"], gold["node_mask"])):
        perfect = latent_dsg_quality(model, examples)
    assert perfect["centroid_in_box"] == 100.0 and perfect["track_consistency"] == 100.0
    with latent_builder_replaced(model, GoldSlots(gold["boxes"], gold["node_mask"], rotate=True)):
        rotated = latent_dsg_quality(model, examples)
    assert rotated["centroid_in_box"] == 100.0 and rotated["track_consistency"] == 0.0

    with pytest.raises(ValueError, match="keyframes but the video"):
        short = synth.dataset.test[0].video_graph
        latent_dsg_quality(model, examples[:1], [type(short)(frames=short.frames[:3])])


# ------------------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_cli")
    dataset = generate_finsta_synth(FinstaSynthConfig(num_train=4, num_test=6, num_frames=NUM_FRAMES))
    export_finsta_synth(dataset, root / "data", progress=False)
    model = synth_model(seed=1)
    model.save_pretrained(root / "model")
    synth_processor().save_pretrained(root / "model")
    return SimpleNamespace(root=root, data=root / "data", model_dir=root / "model", model=model)


def test_cli_end_to_end_on_an_exported_finsta_synth(exported, tmp_path):
    output = tmp_path / "results.json"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "TRANSFORMERS_VERBOSITY": "error",
    }
    command = [
        sys.executable, "-m", "modeling_finsta.evaluation", "--model", str(exported.model_dir), "--data", str(exported.data),
        "--dataset", "msrvtt", "--split", "test", "--hard-negatives", "--output", str(output), "--batch-size", "4",
        "--device", "cpu", "--no-progress",
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    assert "temporal_acc" in completed.stdout and "latent DSG" in completed.stdout
    results = json.loads(output.read_text())
    assert results["num_videos"] == 6 and results["num_captions"] == 6 and results["meta"]["dataset"] == "msrvtt"
    for mode in ("distilled", "fused"):
        for dsg in ("latent", "annotated"):
            metrics = results[mode][dsg]
            assert 0 <= metrics["t2v_R@1"] <= metrics["t2v_R@5"] <= metrics["t2v_R@10"] == 100.0  # 6 videos
            assert all(metrics[f"{s}_acc"] is None or 0 <= metrics[f"{s}_acc"] <= 100 for s in ("temporal", "binding", "role", "static"))
    assert results["latent_dsg_quality"]["gold_objects"] > 0

    # The same numbers in process, from the same files, with the natively imported model.
    from modeling_finsta.evaluation import read_hard_negative_suites, read_text_scene_graphs
    from modeling_finsta.readers import read_msrvtt

    split = read_msrvtt(exported.data, "test")
    graphs = read_text_scene_graphs(exported.data / "text_scene_graphs.jsonl")
    suites, dropped = read_hard_negative_suites(exported.data / "hard_negatives", split.video_ids, graphs)
    assert dropped == 0 and set(suites) == {"temporal", "binding", "role", "static"}
    expected = evaluate_model(
        exported.model, FinstaProcessor.from_pretrained(exported.model_dir), [c for c, _ in split.captions],
        [str(p) for _, p in split.videos], split.caption_to_video, text_scene_graphs=[graphs[c] for c, _ in split.captions],
        video_scene_graphs=[str(p) for p in split.scene_graph_paths], hard_negatives=suites,
    )
    for mode in ("distilled", "fused"):
        for dsg in ("latent", "annotated"):
            assert results[mode][dsg] == pytest.approx(expected[mode][dsg], abs=1e-6)


def test_cli_refuses_annotated_dsg_without_scene_graphs(exported, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(exported.data, data, ignore=shutil.ignore_patterns("scene_graphs"))
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "unused"), "--data", str(data), "--dataset", "msrvtt", "--dsg", "annotated"])
    assert "scene_graphs" in capsys.readouterr().err
