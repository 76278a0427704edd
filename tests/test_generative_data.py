"""Generative Finsta-Synth items, the QA / captioning / MC readers on fixture files in the official formats,
captioning metrics, the open-ended evaluation and the generative recipes."""

import json

import pytest
import torch

from modeling_finsta.evaluation import caption_scores, evaluate_generative_multiple_choice, evaluate_open_ended, exact_match
from modeling_finsta.readers import (
    VideoQADatasetError,
    find_video,
    read_msrvtt_captions,
    TaskDatasetError,
    read_msrvtt_mc,
    read_video_qa,
)
from modeling_finsta.synth import FinstaSynthConfig, reverse_sample
from modeling_finsta.synth import (
    MULTIPLE_CHOICE_NEGATIVES,
    generate_generative_finsta_synth,
    questions_for_sample,
)
from modeling_finsta.training import load_generative_recipe, run_generative_recipe
from modeling_finsta.training import RecipeError


@pytest.fixture(scope="module")
def synth():
    return generate_generative_finsta_synth(FinstaSynthConfig(objects_per_clip=3, num_frames=4, num_train=12, num_test=30))


# ------------------------------------------------------------------------------ Finsta-Synth


def test_order_and_direction_answers_flip_with_time_reversal_and_roles_follow_the_script(synth):
    config = synth.config
    flipped = checked = 0
    for index, sample in enumerate(synth.test):
        forward = {(q.category, q.question): q.answer for q in questions_for_sample(index, sample)}
        backward = {(q.category, q.question): q.answer for q in questions_for_sample(index, reverse_sample(sample, config))}
        for (category, question), answer in forward.items():
            if category in ("order", "direction") and (category, question) in backward:
                checked += 1
                flipped += backward[(category, question)] != answer
            if category == "attribute":
                assert backward[(category, question)] == answer  # colours do not depend on time
        for event in sample.script.events():
            if event.kind == "towards":
                subject, landmark = sample.objects[event.subject].phrase, sample.objects[event.landmark].phrase
                if ("role", f"which shape moves towards {landmark}?") in forward:
                    assert forward[("role", f"which shape moves towards {landmark}?")] == subject
    assert checked > 10 and flipped / checked > 0.9, (flipped, checked)


def test_multiple_choice_items_hold_the_true_caption_first_and_named_hard_negatives(synth):
    assert synth.test_multiple_choice
    for item in synth.test_multiple_choice:
        sample = synth.test[item.video_index]
        assert item.candidates[0] == sample.caption and item.kinds[0] == "true"
        assert set(item.kinds[1:]) <= set(MULTIPLE_CHOICE_NEGATIVES)
        assert len(set(item.candidates)) == len(item.candidates)
    categories = {q.category for q in synth.test_items}
    assert categories == {"order", "direction", "role", "attribute", "caption"}


# ---------------------------------------------------------------------------------- readers


def test_video_qa_reader_reads_the_official_json_and_names_bad_records(tmp_path):
    records = [
        {"video": "video7010", "question": "what is a man doing?", "answer": "sing", "id": 0},
        {"video_id": 7011, "question": "who plays?", "answer": ["man", "guy"], "id": 1},
    ]
    (tmp_path / "test_qa.json").write_text(json.dumps(records))
    (tmp_path / "videos" / "all").mkdir(parents=True)
    (tmp_path / "videos" / "all" / "video7010.mp4").write_bytes(b"")
    read = read_video_qa(tmp_path, "msrvtt", "test")
    assert [(r.video_id, r.question, r.answers, r.category) for r in read] == [
        ("video7010", "what is a man doing?", ["sing"], "what"), ("video7011", "who plays?", ["man", "guy"], "who"),
    ]  # fmt: skip
    assert find_video(tmp_path, "msrvtt", "video7010") == tmp_path / "videos" / "all" / "video7010.mp4"
    msvd = tmp_path / "msvd"
    msvd.mkdir()
    (msvd / "train_qa.json").write_text(json.dumps([{"video": 3, "question": "what runs?", "answer": "dog"}]))
    assert read_video_qa(msvd, "msvd", "train")[0].video_id == "vid3"
    (tmp_path / "val_qa.json").write_text(json.dumps([{"video": "video1", "answer": "x"}]))
    with pytest.raises(VideoQADatasetError, match="val_qa.json: record 0: missing field 'question'"):
        read_video_qa(tmp_path, "msrvtt", "val")
    with pytest.raises(FileNotFoundError, match="train_qa.json"):
        read_video_qa(tmp_path, "msrvtt", "train")


def test_msrvtt_caption_and_mc_readers(tmp_path):
    data = {
        "videos": [{"video_id": "video0", "split": "train"}, {"video_id": "video7010", "split": "test"}],
        "sentences": [
            {"video_id": "video0", "caption": "a dog runs", "sen_id": 0},
            {"video_id": "video7010", "caption": "a man sings", "sen_id": 1},
            {"video_id": "video7010", "caption": "someone is singing ", "sen_id": 2},
        ],
    }
    (tmp_path / "MSRVTT_data.json").write_text(json.dumps(data))
    test = read_msrvtt_captions(tmp_path, "test")
    assert [(r.video_id, r.captions) for r in test] == [("video7010", ["a man sings", "someone is singing"])]
    (tmp_path / "MSR_MC_test.csv").write_text(
        "key,vid_key,a1,a2,a3,a4,a5,answer\nmsr0,msr7010,a man sings,a dog runs,a cat,a car,a boat,0\n"
    )
    mc = read_msrvtt_mc(tmp_path, require_videos=False)  # the one MSR-VTT-MC reader (comma form, vid_key ids)
    assert mc.video_ids == ["video7010"] and mc.answers == [0] and len(mc.candidates[0]) == 5
    (tmp_path / "MSR_MC_test.csv").write_text("key,vid_key,a1,a2,a3,a4,a5,answer\nmsr0,msr1,a,b,c,d,e,7\n")
    with pytest.raises(TaskDatasetError, match="MSR_MC_test.csv:2: answer 7 is not one of the 5"):
        read_msrvtt_mc(tmp_path, require_videos=False)


# ---------------------------------------------------------------------------------- metrics


def test_caption_metrics_come_from_pycocoevalcap_and_rank_sensibly():
    references = [["a red circle moves left"], ["the blue square appears"], ["a green triangle passes a circle"]]
    perfect = caption_scores([r[0] for r in references], references)
    partial = caption_scores(["a red circle moves right", "the blue square appears", "a circle"], references)
    assert perfect["bleu4"] > 99 and perfect["cider"] > partial["cider"] > 0
    assert partial["bleu4"] < perfect["bleu4"]
    assert exact_match("The red circle.", "the red circle") and not exact_match("red", "the red circle")


def test_open_ended_and_multiple_choice_evaluation_run_on_a_tiny_model(synth):
    from test_generative import build

    from modeling_finsta.synth import CAPTION_QUESTION, generative_vocabulary
    from modeling_finsta.training import video_llm_tokenizer

    tokenizer = video_llm_tokenizer(generative_vocabulary(synth) + ["question", "answer", ":"])
    model, processor = build("qwen2_vl", tokenizer)
    videos = [s.frames for s in synth.test]
    items = [i for i in synth.test_items if i.video_index < 3]
    results = evaluate_open_ended(model, processor, items, videos, max_new_tokens=3)
    assert {"qa_accuracy", "qa_attribute", "bleu4", "cider"} <= set(results)
    mc = evaluate_generative_multiple_choice(model, processor, synth.test_multiple_choice[:3], videos, CAPTION_QUESTION)
    assert 0 <= mc["mc_accuracy"] <= 100 and any(key.startswith("mc_") and key != "mc_accuracy" for key in mc)


def test_evaluation_hands_the_annotated_dsg_to_the_fused_model(synth):
    """A model trained with annotated DSGs is evaluated with them: generate and MC scoring must read the
    DSG given (the same logits as a forward with it), and a wrong count is refused."""
    from test_generative import build

    from modeling_finsta.evaluation import candidate_log_likelihoods, generate_answers
    from modeling_finsta.scene_graphs import VideoSceneGraphBatch
    from modeling_finsta.synth import CAPTION_QUESTION, generative_vocabulary
    from modeling_finsta.training import video_llm_tokenizer

    tokenizer = video_llm_tokenizer(generative_vocabulary(synth) + ["question", "answer", ":"])
    model, processor = build("video_llava", tokenizer, seed=5)
    torch.nn.init.normal_(model.finsta_head.refiner.output.weight, std=1.0)  # a head whose residual matters
    item = synth.test_multiple_choice[0]
    video, graph = synth.test[item.video_index].frames, synth.test[item.video_index].video_graph
    with_graph = candidate_log_likelihoods(model, processor, CAPTION_QUESTION, video, item.candidates, video_scene_graph=graph)
    latent = candidate_log_likelihoods(model, processor, CAPTION_QUESTION, video, item.candidates)
    batch = dict(processor(questions=[CAPTION_QUESTION] * len(item.candidates), answers=list(item.candidates),
                           videos=[video] * len(item.candidates), video_scene_graphs=[graph] * len(item.candidates)))  # fmt: skip
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       pixel_values_videos=batch["pixel_values_videos"], video_scene_graph=batch["video_scene_graph"]).logits  # fmt: skip
    from modeling_finsta.modeling_finsta_generation import answer_log_likelihood

    torch.testing.assert_close(with_graph, answer_log_likelihood(logits, batch["input_ids"], batch["labels"] != -100), atol=1e-4, rtol=0)
    assert not torch.allclose(with_graph, latent)
    questions = [i.question for i in synth.test_items[:2]]
    videos = [synth.test[i.video_index].frames for i in synth.test_items[:2]]
    graphs = [synth.test[i.video_index].video_graph for i in synth.test_items[:2]]
    inputs = processor(questions=questions, videos=videos, video_scene_graphs=graphs)
    with torch.no_grad():
        first = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                      pixel_values_videos=inputs["pixel_values_videos"], video_scene_graph=inputs["video_scene_graph"]).logits[:, -1]  # fmt: skip
    seen = []  # the prefill's DSG, as generate hands it to forward
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs.get("video_scene_graph")), with_kwargs=True)
    answers = generate_answers(model, processor, questions, videos, video_scene_graphs=graphs, max_new_tokens=1)
    hook.remove()
    assert seen and torch.equal(VideoSceneGraphBatch.from_value(seen[0]).boxes, inputs["video_scene_graph"]["boxes"])
    assert answers == [a.strip() for a in tokenizer.batch_decode(first.argmax(-1, keepdim=True), skip_special_tokens=True)]
    with pytest.raises(ValueError, match="video_scene_graphs for 2 videos"):
        generate_answers(model, processor, questions, videos, video_scene_graphs=graphs[:1])


# ---------------------------------------------------------------------------------- recipes


@pytest.mark.parametrize("name", ["generative-tiny-video-llava", "generative-tiny-qwen2-vl", "generative-video-llava-7b-msvd-qa", "generative-qwen2-vl-2b-msrvtt-qa"])
def test_every_generative_recipe_loads(name):
    recipe = load_generative_recipe(name)
    assert recipe.name == name and recipe.training.max_steps > 0
    if "7b" in name or "2b" in name:
        assert recipe.training.bf16 and recipe.peft.lora_r > 0 and recipe.model.dtype == "bfloat16"


def test_a_tiny_recipe_trains_and_saves_a_loadable_folder(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    recipe = load_generative_recipe(
        "generative-tiny-qwen2-vl",
        ["training.max_steps=2", "training.batch_size=4", "data.finsta_synth={seed: 0, num_train: 4, num_test: 2}", "peft.lora_r=4"],
    )
    run_generative_recipe(recipe, tmp_path)
    model = AutoModelForImageTextToText.from_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(model).__name__ == "FinstaForConditionalGeneration" and type(processor).__name__ == "FinstaGenerationProcessor"
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_recipe_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {backbone: tiny-video-llava, variantt: host}\n")
    with pytest.raises(RecipeError, match="bad.yaml: unknown key model.variantt"):
        load_generative_recipe(path)
    path.write_text("training: {max_steps: many}\n")
    with pytest.raises(RecipeError, match="training.max_steps must be a int"):
        load_generative_recipe(path)
    path.write_text("data: {source: msvd-qa}\n")
    with pytest.raises(RecipeError, match="data.root is needed"):
        load_generative_recipe(path)


def test_the_generative_benchmark_runs_end_to_end_with_the_dsg_it_trains_with(tmp_path, monkeypatch):
    """A smoke run of benchmarks/generative_synth.py: every row is reported, and with ``--dsg annotated`` the
    fused model is evaluated with the gold test DSGs (the evaluation receives them)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "generative_synth.py"
    spec = importlib.util.spec_from_file_location("generative_synth_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    given = []
    real_open_ended = benchmark.evaluate_open_ended

    def spy(model, processor, items, videos, **kwargs):
        given.append(kwargs.get("video_scene_graphs"))
        return real_open_ended(model, processor, items, videos, **kwargs)

    monkeypatch.setattr(benchmark, "evaluate_open_ended", spy)
    output = tmp_path / "results.json"
    report = benchmark.main([
        "--families", "qwen2_vl", "--seeds", "0", "--steps", "2", "--num-train", "12", "--num-test", "3",
        "--skip-cost", "--config-overrides", '{"fused_contrastive_loss_weight": 0.0}', "--output", str(output),
    ])  # fmt: skip
    assert set(report["quality"]) == {"qwen2_vl/host", "qwen2_vl/finsta-fused", "qwen2_vl/finsta-distilled"}
    assert json.loads(output.read_text())["arguments"]["config_overrides"] == {"fused_contrastive_loss_weight": 0.0}
    assert len(given) == 3 and all(graphs is not None and len(graphs) == 3 for graphs in given)
