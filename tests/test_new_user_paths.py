"""What a new user hits: silent loss of meaning and unclear errors, each turned into a clear warning or error."""

import json
import logging
import shutil

import pytest
import torch
from tiny_models import example_inputs, tiny_clip_tokenizer, tiny_finsta_config
from transformers import Trainer, TrainingArguments

from modeling_finsta import FinstaDataCollator, FinstaModel, FinstaProcessor
from modeling_finsta.modeling_finsta import NonFiniteValueError


@pytest.fixture
def warnings_of(caplog):
    """The warning messages logged by transformers-style loggers during the test."""
    from transformers.utils import logging as hf_logging

    hf_logging.enable_propagation()
    hf_logging.warning_once.cache_clear()  # "once per process": earlier tests may have shown ours already
    caplog.set_level(logging.WARNING)
    yield lambda: [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    hf_logging.disable_propagation()


def test_caption_the_vocabulary_cannot_spell_warns_once_with_the_lost_text(warnings_of):
    processor = FinstaProcessor(tokenizer=tiny_clip_tokenizer(), parser_backend=None, max_length=16)
    processor(text=["a man runs", "a 中文 dog"])
    processor(text=["a 中文 dog"])
    messages = [m for m in warnings_of() if "lose text" in m]
    assert len(messages) == 1 and "'a 中文 dog'" in messages[0] and "'中文'" in messages[0]


def test_caption_longer_than_max_length_warns_with_what_was_cut(warnings_of):
    processor = FinstaProcessor(tokenizer=tiny_clip_tokenizer(), parser_backend=None, max_length=6)
    processor(text=["the red circle moves left then the blue square moves right"])
    (message,) = [m for m in warnings_of() if "lose text" in m]
    assert "cut at max_length=6" in message and "moves right" in message
    processor = FinstaProcessor(tokenizer=tiny_clip_tokenizer(), parser_backend=None, max_length=32)
    processor(text=["the red circle moves left"])  # fits: nothing to say


def test_caption_with_a_lone_surrogate_names_the_caption():
    processor = FinstaProcessor(tokenizer=tiny_clip_tokenizer(), parser_backend=None)
    with pytest.raises(ValueError, match=r"caption 1 .* unencodable character '\\udcff'"):
        processor(text=["a man runs", "a man\udcff runs"])


def test_saved_processor_records_the_parser_it_used(tmp_path):
    processor = FinstaProcessor(tokenizer=tiny_clip_tokenizer(), parser_backend="auto")
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())["parser_backend"]
    assert saved in ("spacy", "rules") and saved == processor.parser.backend
    reloaded = FinstaProcessor.from_pretrained(tmp_path)
    caption = "the red circle moves left"
    assert torch.equal(
        reloaded(text=[caption])["text_scene_graph"]["node_types"], processor(text=[caption])["text_scene_graph"]["node_types"]
    )


def test_fused_text_without_a_scene_graph_warns(warnings_of):
    torch.manual_seed(0)
    model = FinstaModel(tiny_finsta_config()).eval()
    inputs = example_inputs()
    with torch.no_grad():
        model.get_text_features(inputs["input_ids"], inputs["attention_mask"], inputs["text_scene_graph"])
    assert not [m for m in warnings_of() if "text_scene_graph" in m]
    with torch.no_grad():
        model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    assert [m for m in warnings_of() if "without a text_scene_graph" in m]
    with torch.no_grad():  # the last example caption has words but no nodes
        model.get_text_features(inputs["input_ids"], inputs["attention_mask"], inputs["text_scene_graph"])
    assert [m for m in warnings_of() if "empty text scene graph" in m]


@pytest.mark.parametrize("where", ["forward", "get_video_features"])
def test_nan_pixels_raise_naming_the_input_and_batch_item(where):
    torch.manual_seed(0)
    model = FinstaModel(tiny_finsta_config()).eval()
    inputs = example_inputs(batch=3)
    inputs["pixel_values"][2, 1, 0, 5, 5] = float("inf")
    with pytest.raises(NonFiniteValueError, match=r"pixel_values contains NaN or Inf values \(batch items \[2\]\)"):
        if where == "forward":
            model(**inputs)
        else:
            model.get_video_features(inputs["pixel_values"])


def test_missing_config_and_truncated_weights_name_the_file(tmp_path):
    torch.manual_seed(0)
    FinstaModel(tiny_finsta_config()).save_pretrained(tmp_path / "model")
    (tmp_path / "weights-only").mkdir()
    shutil.copy(tmp_path / "model" / "model.safetensors", tmp_path / "weights-only")
    with pytest.raises(FileNotFoundError, match=r"weights-only: no config\.json found"):
        FinstaModel.from_pretrained(tmp_path / "weights-only")
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(OSError, match=r"model\.safetensors: the weights file is truncated or corrupt"):
        FinstaModel.from_pretrained(tmp_path / "model")


def test_plain_trainer_with_raw_examples_says_what_to_set(tmp_path):
    torch.manual_seed(0)
    model = FinstaModel(tiny_finsta_config())
    processor = FinstaProcessor(tokenizer=tiny_clip_tokenizer(), num_frames=4, parser_backend=None,
                                video_preprocessing={"size": 32, "crop_size": 32})  # fmt: skip
    video = (torch.rand(4, 32, 32, 3) * 255).to(torch.uint8)
    raw = [{"text": "a red circle moves left", "video": video} for _ in range(4)]
    arguments = TrainingArguments(tmp_path, max_steps=1, per_device_train_batch_size=2, report_to=[], use_cpu=True)
    trainer = Trainer(model=model, args=arguments, train_dataset=raw, data_collator=FinstaDataCollator(processor))
    with pytest.raises(KeyError, match=r"remove_unused_columns=False"):
        trainer.train()
    arguments = TrainingArguments(
        tmp_path, max_steps=1, per_device_train_batch_size=2, report_to=[], use_cpu=True, remove_unused_columns=False
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=raw, data_collator=FinstaDataCollator(processor))
    assert trainer.train().global_step == 1


def test_trainer_finds_the_hosts_special_tokens_so_nothing_is_realigned(warnings_of):
    """Trainer aligns PAD/BOS/EOS of the tokenizer with ``config.get_text_config()``: the host's text config
    (which the tiny CLIP builder fills from the tokenizer), so no "new PAD/BOS/EOS tokens" warning per run."""
    from transformers.trainer_utils import align_special_tokens

    from modeling_finsta.demo import VARIANTS, build_model, prepare_data

    data = prepare_data(8, 2, seed=0)
    model = build_model(VARIANTS["finsta_auto"], data, seed=0)
    before = model.config.get_text_config().to_dict()
    align_special_tokens(model, data.processor)
    assert not [m for m in warnings_of() if "PAD/BOS/EOS" in m]
    assert model.config.get_text_config().to_dict() == before
