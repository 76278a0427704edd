"""Finsta-Synth task suites, K-negative / multiple-choice training data, the classification and
multiple-choice evaluations against hand computations, and ``finsta-eval --task`` end to end on
exported suites (read back through the Kinetics and MSR-VTT-MC readers)."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from modeling_finsta import FinstaConfig, FinstaDataCollator, FinstaModel, FinstaProcessor
from modeling_finsta.evaluation import evaluate_classification, evaluate_multiple_choice, multiple_choice_accuracy, pairwise_by_kind
from modeling_finsta.losses import contrastive_loss
from modeling_finsta.synth import (
    FinstaSynthConfig,
    export_classification_suite,
    export_multiple_choice_suite,
    generate_finsta_synth,
    reverse_sample,
    synth_classification_suite,
    synth_multiple_choice_suite,
)
from modeling_finsta.training import (
    finsta_synth_k_negative_examples,
    finsta_synth_tokenizer,
    multiple_choice_examples,
    tiny_clip_config,
)
from modeling_finsta.zero_shot import class_scores, encode_class_prompts, top_k_accuracy

CONFIG = FinstaSynthConfig(seed=3, num_train=12, num_test=6)


@pytest.fixture(scope="module")
def suites():
    return synth_classification_suite(CONFIG, num_clips=24), synth_multiple_choice_suite(CONFIG, num_items=8)


@pytest.fixture(scope="module")
def tiny(suites):
    tokenizer = finsta_synth_tokenizer(CONFIG)
    processor = FinstaProcessor(tokenizer, {"size": 32, "crop_size": 32}, num_frames=8, max_length=32, parser_backend=None)
    torch.manual_seed(0)
    config = FinstaConfig(
        backbone_config=tiny_clip_config(tokenizer, max_length=32, image_size=32, width=32), graph_hidden_size=32,
        text_graph_num_layers=1, video_graph_num_layers=1, num_latent_slots=4,
    )  # fmt: skip
    return FinstaModel(config).eval(), processor


def test_classification_suite_classes_differ_only_in_order_or_role(suites):
    suite, _ = suites
    assert len(suite.classes) == 24  # 3 objects: 6 ordered pairs x (towards, away, pass) + 3 x (appear, disappear)
    names = suite.class_names
    assert len(set(names)) == 24
    by_key = {(c.kind, c.subject, c.landmark): i for i, c in enumerate(suite.classes)}
    for c in suite.classes:
        if c.kind in ("towards", "away", "pass"):
            assert (c.kind, c.landmark, c.subject) in by_key  # its role twin
        twin = {"towards": "away", "away": "towards", "appear": "disappear", "disappear": "appear"}.get(c.kind)
        if twin:
            assert (twin, c.subject, c.landmark) in by_key  # its time-reversed twin
    for sample, label in zip(suite.samples, suite.labels):
        assert sample.caption == names[label]
        reverse = reverse_sample(sample, CONFIG)
        chosen = suite.classes[label]
        if chosen.kind != "pass":  # reversing the clip turns it into its order twin's clip
            twin = {"towards": "away", "away": "towards", "appear": "disappear", "disappear": "appear"}[chosen.kind]
            assert reverse.caption == names[by_key[(twin, chosen.subject, chosen.landmark)]]
    assert set(suite.class_groups["order"]) | set(suite.class_groups["role"]) == set(range(24))
    again = synth_classification_suite(CONFIG, num_clips=24)
    assert again.labels == suite.labels and all((a.frames == b.frames).all() for a, b in zip(again.samples, suite.samples))


def test_suites_leave_the_dataset_generator_unchanged():
    before = generate_finsta_synth(CONFIG)
    synth_classification_suite(CONFIG, num_clips=4)
    synth_multiple_choice_suite(CONFIG, num_items=4)
    after = generate_finsta_synth(CONFIG)
    assert [s.caption for s in before.train + before.test] == [s.caption for s in after.train + after.test]
    assert all((a.frames == b.frames).all() for a, b in zip(before.test, after.test))


def test_multiple_choice_suite_has_five_distinct_candidates_of_each_kind(suites):
    _, suite = suites
    for sample, options, kinds, answer in zip(suite.samples, suite.candidates, suite.kinds, suite.answers):
        assert sorted(kinds) == ["binding", "other", "role", "temporal", "true"] and kinds[answer] == "true"
        assert len(set(options)) == 5 and options[answer] == sample.caption
        assert options[kinds.index("temporal")] == reverse_sample(sample, CONFIG).caption
    assert len(set(suite.answers)) > 1  # the right answer is not always in the same place


def test_multiple_choice_accuracy_and_pairwise_wins_by_hand():
    scores = [[0.9, 0.1, 0.2], [0.5, 0.5, 0.1], [0.1, 0.3, 0.3]]
    assert math.isclose(multiple_choice_accuracy(scores, [0, 1, 0]), 100 * (1 + 0.5 + 0) / 3)
    kinds = [["true", "temporal", "role"], ["temporal", "true", "role"], ["true", "temporal", "role"]]
    wins = pairwise_by_kind(scores, [0, 1, 0], kinds)
    assert math.isclose(wins["temporal_pairwise"], 100 * (1 + 0.5 + 0) / 3)
    assert math.isclose(wins["role_pairwise"], 100 * (1 + 1 + 0) / 3)


def test_evaluate_multiple_choice_equals_hand_computed_scores(suites, tiny):
    _, suite = suites
    model, processor = tiny
    results = evaluate_multiple_choice(
        model, processor, [s.frames for s in suite.samples], suite.candidates, suite.answers,
        candidate_graphs=suite.candidate_graphs, candidate_kinds=suite.kinds, show_progress=False,
    )  # fmt: skip
    for mode in ("distilled", "fused"):
        model.config.inference_mode = mode
        with torch.no_grad():
            videos = F.normalize(model.get_video_features(**processor(videos=[s.frames for s in suite.samples])).pooler_output, dim=-1)
            rows = []
            for video, options, graphs in zip(videos, suite.candidates, suite.candidate_graphs):
                text = model.get_text_features(**processor(text=options, text_scene_graphs=graphs)).pooler_output
                rows.append((F.normalize(text, dim=-1) @ video).tolist())
        expected = multiple_choice_accuracy(rows, suite.answers)
        assert math.isclose(results[mode]["latent"]["accuracy"], expected, abs_tol=1e-6), mode
        assert set(results[mode]["latent"]) >= {"temporal_pairwise", "role_pairwise", "binding_pairwise", "other_pairwise"}
    model.config.inference_mode = "fused"


def test_evaluate_classification_equals_the_zero_shot_scores(suites, tiny):
    suite, _ = suites
    model, processor = tiny
    frames = [s.frames for s in suite.samples]
    results = evaluate_classification(
        model, processor, frames, suite.labels, suite.class_names, templates=["{label}"], label_graphs=suite.label_graphs,
        class_groups=suite.class_groups, show_progress=False,
    )  # fmt: skip
    classes = encode_class_prompts(model, processor, suite.class_names, ["{label}"], label_graphs=suite.label_graphs, mode="fused")
    with torch.no_grad():
        videos = model.get_video_features(**processor(videos=frames)).pooler_output
    expected = top_k_accuracy(class_scores(videos, classes.embeds), suite.labels)
    assert math.isclose(results["fused"]["latent"]["top1"], expected["top1"], abs_tol=1e-6)
    assert math.isclose(results["fused"]["latent"]["top5"], expected["top5"], abs_tol=1e-6)
    assert results["fused"]["latent"]["order_top1"] is not None and results["num_classes"] == 24


def test_k_negative_training_examples_reach_the_contrastive_loss(suites, tiny):
    model, processor = tiny
    dataset = generate_finsta_synth(CONFIG)
    examples = finsta_synth_k_negative_examples(dataset.train[:6], processor, CONFIG)
    assert examples[0]["negative_input_ids"].shape == (3, 32) and examples[0]["negative_mask"].shape == (3,)
    assert "negative_text_scene_graph" in examples[0]
    batch = FinstaDataCollator()(examples)
    assert batch["negative_input_ids"].shape == (6, 3, 32) and batch["negative_text_scene_graph"]["node_types"].dim() == 3
    model.train()
    torch.manual_seed(0)
    out = model(**batch)
    model.eval()
    assert torch.isfinite(out.loss)
    # The host term is InfoNCE with the K negatives of each video as extra candidates.
    with torch.no_grad():
        model.config.inference_mode = "distilled"
        negatives = model.get_text_features(
            batch["negative_input_ids"].flatten(0, 1), batch["negative_attention_mask"].flatten(0, 1)
        ).pooler_output.view(6, 3, -1)
        model.config.inference_mode = "fused"
        scale = model.host_adapter.contrastive_logit_scale(model.backbone)
        expected = contrastive_loss(out.host_text_embeds, out.host_video_embeds, scale, negatives, batch["negative_mask"])
    assert math.isclose(out.contrastive_loss.item(), expected.item(), rel_tol=1e-4)
    # Multiple-choice items as training pairs: the right candidate is the caption, the rest its negatives.
    _, mc = suites
    items = multiple_choice_examples(processor, [s.frames for s in mc.samples[:2]], mc.candidates[:2], mc.answers[:2],
                                     candidate_graphs=mc.candidate_graphs[:2])  # fmt: skip
    decoded = processor.tokenizer.decode(items[0]["input_ids"], skip_special_tokens=True)
    assert decoded.replace(" ", "") == mc.candidates[0][mc.answers[0]].replace(" ", "")
    assert items[0]["negative_input_ids"].shape[0] == 4 and bool(items[0]["negative_mask"].all())


def test_finsta_eval_tasks_end_to_end_on_exported_suites(suites, tiny, tmp_path, capsys):
    from modeling_finsta.evaluation import main

    classification, mc = suites
    model, processor = tiny
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    export_classification_suite(classification, tmp_path / "cls")
    export_multiple_choice_suite(mc, tmp_path / "mc")
    assert (tmp_path / "cls" / "annotations" / "test.csv").is_file() and (tmp_path / "mc" / "msrvtt_mc_test.json").is_file()
    argv = ["--model", str(tmp_path / "model"), "--no-progress", "--batch-size", "16"]
    assert main([*argv, "--task", "classification", "--dataset", "kinetics", "--data", str(tmp_path / "cls"),
                 "--templates", "{label}", "--output", str(tmp_path / "cls.json")]) == 0  # fmt: skip
    assert main([*argv, "--task", "multiple-choice", "--dataset", "msrvtt-mc", "--data", str(tmp_path / "mc"),
                 "--output", str(tmp_path / "mc.json")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "24 classes" in printed and "5 candidates each" in printed
    cls = json.loads((tmp_path / "cls.json").read_text())
    mcq = json.loads((tmp_path / "mc.json").read_text())
    # Every video has its gold DSG in scene_graphs/, so both DSG sources are evaluated.
    assert set(cls["fused"]) == {"latent", "annotated"} and set(mcq["fused"]) == {"latent", "annotated"}
    # Decoded from the exported (lossless) videos, the numbers are those of the in-memory suites.
    direct = evaluate_classification(
        model, processor, [s.frames for s in classification.samples], classification.labels, classification.class_names,
        templates=["{label}"], label_graphs=classification.label_graphs, modes=("distilled",), show_progress=False,
    )  # fmt: skip
    assert math.isclose(cls["distilled"]["latent"]["top1"], direct["distilled"]["latent"]["top1"], abs_tol=1e-6)
    direct_mc = evaluate_multiple_choice(
        model, processor, [s.frames for s in mc.samples], mc.candidates, mc.answers, candidate_graphs=mc.candidate_graphs,
        modes=("fused",), show_progress=False,
    )  # fmt: skip
    assert math.isclose(mcq["fused"]["latent"]["accuracy"], direct_mc["fused"]["latent"]["accuracy"], abs_tol=1e-6)
    with pytest.raises(SystemExit):
        main([*argv, "--task", "classification", "--dataset", "msrvtt-mc", "--data", str(tmp_path / "mc")])
