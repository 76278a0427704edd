"""FinstaForVideoClassification: loading a Finsta or plain host checkpoint (only the head initialised),
AutoModelForVideoClassification in process and as remote code in a fresh process, the head started at
the zero-shot classifier, and fine-tuning with Trainer."""

import json
import math
import textwrap

import numpy as np
import pytest
import torch
from test_hub_offline import lay_out_as_hub_cache, run_script
from tiny_models import example_inputs, tiny_clip_config, tiny_clip_tokenizer, tiny_finsta_config
from transformers import AutoModel, AutoModelForVideoClassification, CLIPModel

from modeling_finsta import FinstaForVideoClassification, FinstaModel, FinstaProcessor
from modeling_finsta.zero_shot import class_scores

CLASSES = ["man throws a ball", "dog runs away", "cat moves left"]
REPO_ID = "org/finsta-action"


def processor():
    return FinstaProcessor(tiny_clip_tokenizer(), {"size": 32, "crop_size": 32}, num_frames=4, parser_backend="rules")


@pytest.fixture(scope="module")
def finsta_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finsta") / "model"
    torch.manual_seed(0)
    model = FinstaModel(tiny_finsta_config()).eval()
    model.save_pretrained(folder)
    processor().save_pretrained(folder)
    return folder, model


def test_loads_a_finsta_checkpoint_with_only_the_classifier_initialised(finsta_folder):
    folder, finsta = finsta_folder
    model, info = FinstaForVideoClassification.from_pretrained(folder, num_labels=3, output_loading_info=True)
    assert {key.split(".")[0] for key in info["missing_keys"]} == {"classifier"} and not info["unexpected_keys"]
    for name, value in finsta.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    pixels = example_inputs()["pixel_values"]
    with torch.no_grad():
        out = model.eval()(pixel_values=pixels, labels=torch.tensor([0, 1, 2]))
        expected = finsta.get_video_features(pixels).pooler_output
    assert out.logits.shape == (3, 3) and torch.isfinite(out.loss)
    torch.testing.assert_close(out.video_embeds, expected)


def test_loads_a_plain_host_checkpoint(tmp_path):
    torch.manual_seed(0)
    CLIPModel(tiny_clip_config()).save_pretrained(tmp_path)
    model, info = FinstaForVideoClassification.from_pretrained(tmp_path, num_labels=4, output_loading_info=True)
    assert {key.split(".")[0] for key in info["missing_keys"]} <= {"classifier", "graph_encoder", "host_adapter"}
    assert model.config.num_labels == 4 and model.classifier.weight.shape == (4, model.config.projection_dim)


def test_head_started_from_class_prompts_gives_the_zero_shot_scores(finsta_folder):
    folder, _ = finsta_folder
    model = FinstaForVideoClassification.from_pretrained(folder, num_labels=3).eval()
    classes = model.initialize_classifier_from_prompts(processor(), CLASSES, templates=["a {label}", "{label}"])
    assert model.config.id2label == dict(enumerate(CLASSES))
    pixels = example_inputs()["pixel_values"]
    with torch.no_grad():
        out = model(pixel_values=pixels)
    scale = model.host_adapter.contrastive_logit_scale(model.backbone)
    torch.testing.assert_close(out.logits, scale * class_scores(out.video_embeds, classes.embeds), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="num_labels=3"):
        model.initialize_classifier_from_text(torch.randn(2, model.config.projection_dim))


def test_auto_classes_save_and_load_in_process(tmp_path, finsta_folder):
    folder, _ = finsta_folder
    model = AutoModelForVideoClassification.from_pretrained(folder, num_labels=3)
    assert isinstance(model, FinstaForVideoClassification)
    assert isinstance(AutoModelForVideoClassification.from_config(tiny_finsta_config(num_labels=2)), FinstaForVideoClassification)
    model.save_pretrained(tmp_path / "classifier")
    auto_map = json.loads((tmp_path / "classifier" / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForVideoClassification"] == "modeling_finsta.FinstaForVideoClassification"
    assert auto_map["AutoModel"] == "modeling_finsta.FinstaModel"
    reloaded = AutoModelForVideoClassification.from_pretrained(tmp_path / "classifier").eval()
    pixels = example_inputs()["pixel_values"]
    with torch.no_grad():
        assert torch.equal(reloaded(pixels).logits, model.eval()(pixels).logits)
    # The same folder still serves retrieval / zero-shot through AutoModel.
    assert type(AutoModel.from_pretrained(tmp_path / "classifier")) is FinstaModel


REMOTE = """
import json, sys, torch
sys.modules["modeling_finsta"] = None
from transformers import AutoModelForVideoClassification
model = AutoModelForVideoClassification.from_pretrained({repo!r}, trust_remote_code=True).eval()
pixels = torch.load({pixels!r})
with torch.no_grad():
    out = model(pixel_values=pixels, labels=torch.tensor([0, 1, 2]))
print(json.dumps({{"module": type(model).__module__, "logits": out.logits.tolist(), "loss": out.loss.item(),
                   "labels": model.config.id2label}}))
"""


def test_remote_code_in_a_fresh_process_without_the_package(tmp_path, finsta_folder):
    folder, _ = finsta_folder
    model = FinstaForVideoClassification.from_pretrained(folder, num_labels=3).eval()
    model.initialize_classifier_from_prompts(processor(), CLASSES)
    model.save_pretrained(tmp_path / "saved")
    processor().save_pretrained(tmp_path / "saved")
    pixels = example_inputs()["pixel_values"]
    torch.save(pixels, tmp_path / "pixels.pt")
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
    lay_out_as_hub_cache(tmp_path / "saved", tmp_path / "cache", REPO_ID)
    report = run_script(textwrap.dedent(REMOTE).format(repo=REPO_ID, pixels=str(tmp_path / "pixels.pt")), tmp_path / "cache", tmp_path)
    assert report["module"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(report["logits"]), expected, atol=1e-5, rtol=0)
    assert report["labels"] == {str(i): name for i, name in enumerate(CLASSES)} and math.isfinite(report["loss"])


def coloured_clips(count, seed=0):
    """Three classes of 4-frame clips: a red, green or blue square at a random place, on noise."""
    rng = np.random.default_rng(seed)
    clips, labels = [], []
    for index in range(count):
        label = index % 3
        clip = rng.integers(0, 60, (4, 32, 32, 3), dtype=np.uint8)
        x, y = rng.integers(0, 20, 2)
        clip[:, y : y + 12, x : x + 12, label] = 255
        clips.append(clip)
        labels.append(label)
    return clips, labels


def test_fine_tuning_with_trainer_learns_the_classes(tmp_path):
    from dataclasses import replace

    from modeling_finsta.evaluation import evaluate_classification
    from modeling_finsta.training import FinstaExampleDataset, TrainingRecipe, TrainingSettings, classification_examples, train

    proc = processor()
    clips, labels = coloured_clips(48)
    examples = classification_examples(proc, clips, labels)
    assert set(examples[0]) == {"pixel_values", "video_mask", "labels"} and examples[0]["labels"].dim() == 0
    torch.manual_seed(0)
    model = FinstaForVideoClassification(tiny_finsta_config(num_labels=3, inference_mode="distilled"))
    test_clips, test_labels = coloured_clips(30, seed=1)
    before = evaluate_classification(model, proc, test_clips, test_labels, modes=("distilled",), show_progress=False)
    recipe = replace(
        TrainingRecipe(),
        training=TrainingSettings(max_steps=40, per_device_batch_size=12, learning_rate=3e-3, save_steps=None, logging_steps=10),
    )
    result = train(recipe, tmp_path / "run", train_dataset=FinstaExampleDataset(examples), model=model, processor=proc)
    losses = [entry["loss"] for entry in result.log_history if "loss" in entry]
    assert losses[-1] < losses[0]
    after = evaluate_classification(result.model, proc, test_clips, test_labels, modes=("distilled",), show_progress=False)
    assert after["distilled"]["latent"]["top1"] >= 90 > before["distilled"]["latent"]["top1"], (before, after)
    reloaded = AutoModelForVideoClassification.from_pretrained(tmp_path / "run")
    assert isinstance(reloaded, FinstaForVideoClassification)


def test_a_saved_classifier_carries_exactly_the_model_files(tmp_path):
    from test_model_contract import MODEL_FILES

    FinstaForVideoClassification(tiny_finsta_config(num_labels=2)).save_pretrained(tmp_path)
    assert {path.name for path in tmp_path.glob("*.py")} == MODEL_FILES
    assert "zero-shot-video-classification" in json.loads((tmp_path / "config.json").read_text())["custom_pipelines"]
