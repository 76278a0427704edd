"""Zero-shot video classification: prompt ensembles against hand-computed embeddings, top-k with ties,
the ``zero-shot-video-classification`` pipeline (in process and as remote code in a fresh process
without the package), and the 10,000 x 400 scoring budget."""

import json
import math
import textwrap
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_hub_offline import lay_out_as_hub_cache, run_script
from tiny_models import tiny_clip_tokenizer, tiny_finsta_config

from modeling_finsta import FinstaModel, FinstaProcessor, ParsedTextSceneGraph
from modeling_finsta.zero_shot import (
    DEFAULT_TEMPLATES,
    class_scores,
    encode_class_prompts,
    ensemble_class_embeddings,
    prompt_text_graph,
    render_prompts,
    top_k_accuracy,
    top_k_predictions,
    zero_shot_pipeline,
)

LABELS = ["man throws a ball", "dog runs away", "cat moves left"]
TEMPLATES = ["a video of a {label}.", "the {label}"]
REPO_ID = "org/finsta-zero-shot"


def test_ensemble_of_normalised_prompt_embeddings_by_hand():
    prompts = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0], [5.0, 0.0]])  # class-major: 2 classes x 2 templates
    expected_first = torch.tensor([0.3, 0.9]) / math.hypot(0.3, 0.9)  # mean of (0.6, 0.8) and (0, 1), normalised
    result = ensemble_class_embeddings(prompts, num_classes=2)
    torch.testing.assert_close(result[0], expected_first)
    torch.testing.assert_close(result[1], torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="not 3 classes"):
        ensemble_class_embeddings(prompts, num_classes=3)


def test_prompts_are_class_major_and_graphs_follow_the_template():
    prompts, graphs = render_prompts(["run", "jump"], ["a {label}.", "{label} now"])
    assert prompts == ["a run.", "run now", "a jump.", "jump now"] and graphs is None
    graph = ParsedTextSceneGraph(caption="man runs")
    graph.add_node("object", "man", "man", [(0, 3)])
    graph.add_node("predicate", "runs", "run", [(4, 8)])
    graph.add_edge(0, 1, "subject")
    shifted = prompt_text_graph(graph, "a video of a {label}.")
    assert shifted.caption == "a video of a man runs."
    assert [shifted.caption[s:e] for node in shifted.nodes for s, e in node.spans] == ["man", "runs"]
    assert shifted.edges == graph.edges
    for bad in (["no field"], ["{label} and {label}"], []):
        with pytest.raises(ValueError, match="template|at least one"):
            render_prompts(["run"], bad)
    with pytest.raises(ValueError, match="repeat"):
        render_prompts(["run", "run"])


def test_top_k_with_ties_counts_the_chance_of_random_tie_breaking():
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.1, 0.1],  # true 0: clear top-1
            [0.5, 0.5, 0.1, 0.0],  # true 1: tied with one other for first place -> top1 1/2, top2 1
            [0.2, 0.2, 0.2, 0.2],  # true 3: all tied -> top1 1/4, top2 2/4
            [0.9, 0.8, 0.7, 0.1],  # true 3: last -> 0, 0
        ]
    )
    targets = torch.tensor([0, 1, 3, 3])
    result = top_k_accuracy(scores, targets, ks=(1, 2, 4))
    assert math.isclose(result["top1"], 100 * (1 + 0.5 + 0.25 + 0) / 4)
    assert math.isclose(result["top2"], 100 * (1 + 1 + 0.5 + 0) / 4)
    assert math.isclose(result["top4"], 100.0)
    values, indices = top_k_predictions(scores[:1], k=2)
    assert indices[0, 0].item() == 0 and values.shape == (1, 2)
    with pytest.raises(ValueError, match="class indices"):
        top_k_accuracy(scores, torch.tensor([0, 1, 2, 4]))


def test_ten_thousand_cached_videos_against_four_hundred_classes_in_under_two_seconds():
    videos, classes = torch.randn(10_000, 512), torch.randn(400, 512)
    targets = torch.randint(0, 400, (10_000,))
    class_scores(videos[:10], classes)  # warm-up
    start = time.perf_counter()
    scores = class_scores(videos, classes)
    accuracy = top_k_accuracy(scores, targets)
    elapsed = time.perf_counter() - start
    assert scores.shape == (10_000, 400) and 0 <= accuracy["top1"] <= 100
    assert elapsed < 2.0, elapsed


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zero-shot") / "model"
    torch.manual_seed(0)
    model = FinstaModel(tiny_finsta_config("clip", temporal_head="seqTransf")).eval()
    processor = FinstaProcessor(
        tokenizer=tiny_clip_tokenizer(), video_preprocessing={"size": 32, "crop_size": 32}, num_frames=4,
        parser_backend="rules",
    )  # fmt: skip
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model, processor


def videos(count=2, seed=0):
    return [np.random.default_rng(seed + i).integers(0, 255, (6, 40, 48, 3), dtype=np.uint8) for i in range(count)]


@pytest.mark.parametrize("mode", ["distilled", "fused"])
def test_class_embeddings_equal_the_hand_averaged_prompt_embeddings(saved_folder, mode):
    _, model, processor = saved_folder
    classes = encode_class_prompts(model, processor, LABELS, TEMPLATES, mode=mode)
    assert classes.mode == mode and model.config.inference_mode == "fused"  # restored
    previous = model.config.inference_mode
    model.config.inference_mode = mode
    with torch.no_grad():
        expected = []
        for label in LABELS:
            rows = []
            for template in TEMPLATES:
                batch = processor(text=[template.replace("{label}", label)])
                rows.append(F.normalize(model.get_text_features(**batch).pooler_output[0], dim=-1))
            expected.append(F.normalize(torch.stack(rows).mean(0), dim=-1))
    model.config.inference_mode = previous
    torch.testing.assert_close(classes.embeds, torch.stack(expected), atol=1e-5, rtol=0)


def test_saved_model_declares_the_pipeline_and_carries_its_code(saved_folder):
    folder, _, _ = saved_folder
    config = json.loads((folder / "config.json").read_text())
    entry = config["custom_pipelines"]["zero-shot-video-classification"]
    assert entry["impl"] == "pipeline_finsta.FinstaZeroShotVideoClassificationPipeline" and entry["pt"] == ["AutoModel"]
    assert (folder / "pipeline_finsta.py").is_file() and (folder / "zero_shot.py").is_file()


def expected_ranking(model, processor, video, mode):
    classes = encode_class_prompts(model, processor, LABELS, DEFAULT_TEMPLATES, mode=mode)
    previous = model.config.inference_mode
    model.config.inference_mode = mode
    with torch.no_grad():
        embeds = model.get_video_features(**{k: v for k, v in processor(videos=[video]).items()}).pooler_output
    model.config.inference_mode = previous
    similarity = classes.scores(embeds)[0]
    probabilities = torch.softmax(model.host_adapter.contrastive_logit_scale(model.backbone) * similarity, dim=-1)
    return {LABELS[i]: probabilities[i].item() for i in range(len(LABELS))}


@pytest.mark.parametrize("mode", ["distilled", "fused"])
def test_pipeline_in_process_ranks_like_the_hand_computed_scores_and_caches_prompts(saved_folder, mode, monkeypatch):
    from transformers import pipeline

    folder, model, processor = saved_folder
    classifier = pipeline("zero-shot-video-classification", model=str(folder), trust_remote_code=True, device="cpu")
    clips = videos(2)
    calls = []
    original = type(classifier.model).get_text_features

    def counting(self, *args, **kwargs):
        if self is classifier.model:
            calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(classifier.model), "get_text_features", counting)
    results = classifier(clips, candidate_labels=LABELS, mode=mode)
    assert len(calls) == 1  # 3 classes x 6 templates in one batch, once for both videos
    for clip, result in zip(clips, results):
        expected = expected_ranking(model, processor, clip, mode)
        assert [r["label"] for r in result] == sorted(expected, key=expected.get, reverse=True)
        for r in result:
            assert math.isclose(r["score"], expected[r["label"]], rel_tol=1e-4, abs_tol=1e-6)
        assert math.isclose(sum(r["score"] for r in result), 1.0, rel_tol=1e-5)
    top = classifier(clips[0], candidate_labels=LABELS, top_k=1, mode=mode)
    assert len(top) == 1 and top[0]["label"] == results[0][0]["label"]
    assert len(calls) == 1  # still cached
    with pytest.raises(ValueError, match="candidate_labels"):
        classifier(clips[0])
    with pytest.raises(ValueError, match="batch_size=1"):
        classifier(clips, candidate_labels=LABELS, batch_size=2)


def test_zero_shot_pipeline_helper_without_trust_remote_code(saved_folder):
    _, model, processor = saved_folder
    classifier = zero_shot_pipeline(model, processor, device="cpu")
    result = classifier(videos(1)[0], candidate_labels=LABELS, templates=["{label}"], mode="distilled")
    assert {r["label"] for r in result} == set(LABELS)


REMOTE_SCRIPT = """
import json, sys
sys.modules["modeling_finsta"] = None  # the package must not be importable
import numpy as np
from transformers import pipeline
classifier = pipeline("zero-shot-video-classification", model={repo!r}, trust_remote_code=True, device="cpu")
videos = [np.random.default_rng(i).integers(0, 255, (6, 40, 48, 3), dtype=np.uint8) for i in range(2)]
out = {{}}
for mode in ("distilled", "fused"):
    out[mode] = classifier(videos, candidate_labels={labels!r}, mode=mode)
out["pipeline_module"] = type(classifier).__module__
out["model_module"] = type(classifier.model).__module__
print(json.dumps(out))
"""


def test_pipeline_loads_as_remote_code_in_a_fresh_process_without_the_package(saved_folder, tmp_path):
    folder, model, processor = saved_folder
    cache = tmp_path / "cache"
    lay_out_as_hub_cache(folder, cache, REPO_ID)
    report = run_script(textwrap.dedent(REMOTE_SCRIPT).format(repo=REPO_ID, labels=LABELS), cache, tmp_path)
    assert report["pipeline_module"].startswith("transformers_modules") and report["pipeline_module"].endswith("pipeline_finsta")
    assert report["model_module"].startswith("transformers_modules")
    for mode in ("distilled", "fused"):
        for clip, result in zip(videos(2), report[mode]):
            expected = expected_ranking(model, processor, clip, mode)
            assert [r["label"] for r in result] == sorted(expected, key=expected.get, reverse=True)
            for r in result:
                assert math.isclose(r["score"], expected[r["label"]], rel_tol=1e-4, abs_tol=1e-6)


def test_publishing_keeps_the_pipeline_code_or_points_it_at_the_code_repo(saved_folder, tmp_path):
    from huggingface_hub import ModelCard

    from modeling_finsta.hub import files_to_publish, point_auto_map_at_code_repo

    folder, _, _ = saved_folder
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(folder, repo)
    ModelCard("---\nlibrary_name: transformers\n---\n# tiny").save(repo / "README.md")
    uploaded, _ = files_to_publish(repo)
    assert {"pipeline_finsta.py", "zero_shot.py"} <= set(uploaded)
    (repo / "pipeline_finsta.py").unlink()
    with pytest.raises(Exception, match="pipeline_finsta"):
        files_to_publish(repo)
    config = point_auto_map_at_code_repo(json.loads((folder / "config.json").read_text()), "org/finsta-code")
    impl = config["custom_pipelines"]["zero-shot-video-classification"]["impl"]
    assert impl == "org/finsta-code--pipeline_finsta.FinstaZeroShotVideoClassificationPipeline"
