"""The command-line converters end to end on synthetic checkpoints: files written, embeddings of
the reloaded folder equal the independent reference forwards of test_checkpoint_conversion, the
built-in check catches a wrong conversion, unsupported inputs are refused clearly."""

import importlib
import json

import pytest
import torch
from huggingface_hub import ModelCard
from test_checkpoint_conversion import (
    CLIP_LAYER_NORM_EPS,
    make_clip4clip_state_dict,
    reference_encode_image,
    reference_encode_text,
    reference_seq_transf,
    with_tiny_temporal_variance,
)
from test_hub_offline import lay_out_as_hub_cache
from tiny_models import tiny_clip_config, tiny_clip_tokenizer, tiny_xclip_config
from transformers import AutoModel, CLIPModel, XCLIPModel

import modeling_finsta.hub as hub
from modeling_finsta.hub import ConversionVerificationError

TINY_HEAD = ["--set", "graph_hidden_size=32", "--set", "text_graph_num_layers=1", "--set", "video_graph_num_layers=1"]
# widths 64 -> one 64-wide head everywhere, as CLIP4Clip's head count convention (width // 64) requires
SIZES = dict(vision_width=64, text_width=64, embed=64, vision_layers=1, text_layers=1, context=16)
PROCESSOR_FILES = {"processor_config.json", "tokenizer.json", "tokenizer_config.json", "processing_finsta.py"}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    tiny_clip_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vocab_size():
    return len(tiny_clip_tokenizer())


def save_checkpoint(tmp_path, header, vocab_size, **extra):
    state_dict = make_clip4clip_state_dict(header, temporal_layers=2, frame_positions=12, vocab=vocab_size, **SIZES)
    state_dict.update(extra)
    path = tmp_path / "pytorch_model.bin.4"
    torch.save(state_dict, path)
    return path, state_dict


def text_and_video(folder, input_ids, pixel_values, video_mask):
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        text = model.host_adapter.encode_text(model.backbone, input_ids, None).text_embeds
        video = model.host_adapter.encode_video(model.backbone, pixel_values, video_mask).video_embeds
    return model, text, video


def test_seq_transf_checkpoint_converts_and_matches_the_reference(tmp_path, tokenizer_dir, vocab_size, capsys):
    path, state_dict = save_checkpoint(tmp_path, "seqTransf", vocab_size)
    out = tmp_path / "out"
    assert hub.convert_clip4clip_main([str(path), str(out), "--tokenizer", str(tokenizer_dir), *TINY_HEAD]) == 0
    log = capsys.readouterr().out
    assert "CLIP4Clip seqTransf" in log and "OK: text max |diff|" in log and "success" in log
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "modeling_finsta.py"} | PROCESSOR_FILES <= files
    assert not any(name.endswith((".bin", ".pt")) for name in files)
    config = json.loads((out / "config.json").read_text())
    assert (config["temporal_head"], config["num_frame_positions"], config["temporal_num_layers"]) == ("seqTransf", 12, 2)

    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(1, vocab_size - 2, (2, 16), generator=generator)
    ids[0, 5:], ids[1, 15] = 0, vocab_size - 1
    ids[0, 5] = vocab_size - 1
    pixels = torch.randn(2, 3, 3, 32, 32, generator=generator)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    _, text, video = text_and_video(out, ids, pixels, mask)
    torch.testing.assert_close(text, reference_encode_text(state_dict, ids, layers=1, num_heads=1), atol=1e-5, rtol=1e-5)
    frames = reference_encode_image(state_dict, pixels.flatten(0, 1), layers=1, num_heads=1).view(2, 3, -1)
    _, pooled = reference_seq_transf(state_dict, frames, mask.float(), layers=2, num_heads=1)
    torch.testing.assert_close(video, pooled, atol=1e-5, rtol=1e-5)

    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "feature-extraction"
    assert "Finsta-CLIP4Clip ViT-B/32 (seqTransf)" in card.text and "pytorch_model.bin.4" in card.text
    assert "- image size: `32`" in card.text


def fixed_clip_inputs(vocab_size, seed=3):
    """Two captions (end token = highest id) and two 3-frame 32x32 videos, the second one padded."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab_size - 2, (2, 16), generator=generator)
    ids[0, 5:], ids[1, 15] = 0, vocab_size - 1
    ids[0, 5] = vocab_size - 1
    pixels = torch.randn(2, 3, 3, 32, 32, generator=generator)
    return ids, pixels, torch.tensor([[1, 1, 1], [1, 1, 0]])


def expected_seq_transf_video(state_dict, pixels, mask, eps=None):
    frames = reference_encode_image(state_dict, pixels.flatten(0, 1), layers=1, num_heads=1).view(2, 3, -1)
    kwargs = {} if eps is None else {"eps": eps}
    return reference_seq_transf(state_dict, frames, mask.float(), layers=2, num_heads=1, **kwargs)[1]


def test_data_parallel_checkpoint_converts_end_to_end(tmp_path, tokenizer_dir, vocab_size, capsys):
    """A DDP/DataParallel checkpoint (every key ``module.``-prefixed) converts through the CLI; the
    reference forward of the built-in check used to get the unstripped keys (KeyError)."""
    state_dict = make_clip4clip_state_dict("seqTransf", temporal_layers=2, frame_positions=12, vocab=vocab_size, **SIZES)
    state_dict["clip.input_resolution"] = torch.tensor(32)
    path = tmp_path / "pytorch_model.bin.2"
    torch.save({"module." + key: value for key, value in state_dict.items()}, path)
    out = tmp_path / "out"
    argv = [str(path), str(out), "--tokenizer", str(tokenizer_dir), *TINY_HEAD]
    assert hub.convert_clip4clip_main(argv) == 0, capsys.readouterr().out
    assert "OK: text max |diff|" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["temporal_num_layers"] == 2
    assert "clip.input_resolution" in (out / "README.md").read_text()  # dropped keys named without `module.`

    ids, pixels, mask = fixed_clip_inputs(vocab_size)
    _, text, video = text_and_video(out, ids, pixels, mask)
    torch.testing.assert_close(text, reference_encode_text(state_dict, ids, layers=1, num_heads=1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(video, expected_seq_transf_video(state_dict, pixels, mask), atol=1e-5, rtol=1e-5)


def test_reference_forward_uses_clip4clip_temporal_layer_norm_eps(vocab_size):
    """The check's own reference runs CLIP4Clip's temporal Transformer with LayerNorm eps 1e-12
    (module_cross.py), the CLIP towers with 1e-5; at a tiny temporal variance the two differ."""
    state_dict = with_tiny_temporal_variance(
        make_clip4clip_state_dict("seqTransf", temporal_layers=2, frame_positions=12, vocab=vocab_size, **SIZES)
    )
    ids, pixels, mask = fixed_clip_inputs(vocab_size)
    text, video = hub.clip4clip_reference_embeddings(state_dict, ids, pixels, mask, attention_head_dim=64)
    torch.testing.assert_close(text, reference_encode_text(state_dict, ids, layers=1, num_heads=1), atol=1e-5, rtol=1e-5)
    expected = expected_seq_transf_video(state_dict, pixels, mask)
    torch.testing.assert_close(video, expected, atol=1e-5, rtol=1e-5)
    # guards the guard: with the towers' eps in the temporal blocks the video embedding moves a lot
    wrong_eps = expected_seq_transf_video(state_dict, pixels, mask, eps=CLIP_LAYER_NORM_EPS)
    assert (wrong_eps - expected).abs().max() > 1e-2


def test_seq_transf_temporal_layer_norm_eps_is_clip4clips(tmp_path, tokenizer_dir, vocab_size, capsys):
    """End to end on a checkpoint where the temporal LayerNorm eps matters: the converted model's
    seqTransf head must use eps 1e-12 as CLIP4Clip does (the towers keep 1e-5)."""
    state_dict = with_tiny_temporal_variance(
        make_clip4clip_state_dict("seqTransf", temporal_layers=2, frame_positions=12, vocab=vocab_size, **SIZES)
    )
    path = tmp_path / "pytorch_model.bin.1"
    torch.save(state_dict, path)
    out = tmp_path / "out"
    argv = [str(path), str(out), "--tokenizer", str(tokenizer_dir), *TINY_HEAD]
    assert hub.convert_clip4clip_main(argv) == 0, capsys.readouterr().out
    ids, pixels, mask = fixed_clip_inputs(vocab_size)
    _, _, video = text_and_video(out, ids, pixels, mask)
    expected = expected_seq_transf_video(state_dict, pixels, mask)
    assert (expected_seq_transf_video(state_dict, pixels, mask, eps=CLIP_LAYER_NORM_EPS) - expected).abs().max() > 1e-2
    torch.testing.assert_close(video, expected, atol=1e-5, rtol=1e-5)


def test_mean_p_without_tokenizer_writes_model_and_card(tmp_path, vocab_size):
    path, state_dict = save_checkpoint(tmp_path, "meanP", vocab_size, **{"clip.input_resolution": torch.tensor(32)})
    report = hub.convert_clip4clip_original(path, tmp_path / "out", config_overrides={"graph_hidden_size": 32})
    assert report.temporal_head == "meanP" and set(report.dropped_keys) == {"clip.input_resolution"}
    assert not report.saved_processor and "tokenizer.json" not in report.files
    assert report.check.text_max_abs_diff <= 1e-5 and report.check.video_max_abs_diff <= 1e-5
    assert "meanP" in (tmp_path / "out" / "README.md").read_text()


def test_built_in_check_catches_a_wrong_qkv_split(tmp_path, vocab_size, monkeypatch, capsys):
    path, _ = save_checkpoint(tmp_path, "meanP", vocab_size)
    real = hub.convert_clip4clip_checkpoint
    converters = importlib.import_module("modeling_finsta.hub.converters")  # where the converter looks it up

    def swapped_q_and_k(state_dict, **kwargs):
        converted = real(state_dict, **kwargs)
        layer = "vision_model.encoder.layers.0.self_attn."
        sd = converted.clip_state_dict
        sd[layer + "q_proj.weight"], sd[layer + "k_proj.weight"] = sd[layer + "k_proj.weight"], sd[layer + "q_proj.weight"]
        return converted

    monkeypatch.setattr(converters, "convert_clip4clip_checkpoint", swapped_q_and_k)
    with pytest.raises(ConversionVerificationError, match="video embeddings differ by up to"):
        hub.convert_clip4clip_original(path, tmp_path / "out", config_overrides={"graph_hidden_size": 32})
    assert hub.convert_clip4clip_main([str(path), str(tmp_path / "out2"), *TINY_HEAD]) == 2
    assert "does not reproduce the source" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"lstm_visual.weight_ih_l0": torch.zeros(4, 4)}, "seqLSTM"),
        ({"cross.embeddings.weight": torch.zeros(4, 4)}, "tightTransf"),
        ({"clip.visual.conv2.weight": torch.zeros(64, 3, 3, 8, 8)}, "linear_patch 3d"),
        ({"clip.visual.extra_token": torch.zeros(4)}, "clip.visual.extra_token"),
        ({"loss_fct.weight": torch.zeros(1)}, "loss_fct.weight"),
    ],
)
def test_unsupported_or_unknown_keys_are_refused(tmp_path, vocab_size, capsys, extra, message):
    path, _ = save_checkpoint(tmp_path, "meanP", vocab_size, **extra)
    assert hub.convert_clip4clip_main([str(path), str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_wrong_files_and_mismatched_tokenizer_are_refused(tmp_path, vocab_size, tokenizer_dir, capsys):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a checkpoint")
    assert hub.convert_clip4clip_main([str(text_file), str(tmp_path / "out")]) == 2
    assert "torch.load(weights_only=True)" in capsys.readouterr().out
    assert hub.convert_clip4clip_main([str(tmp_path / "missing.bin"), str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().out
    path, _ = save_checkpoint(tmp_path, "meanP", vocab_size + 5)
    assert hub.convert_clip4clip_main([str(path), str(tmp_path / "out"), "--tokenizer", str(tokenizer_dir)]) == 2
    assert "does not fit the checkpoint" in capsys.readouterr().out


def test_clip_from_a_cached_hub_id_offline(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    source = CLIPModel(tiny_clip_config()).eval()
    source.save_pretrained(tmp_path / "clip")
    tiny_clip_tokenizer().save_pretrained(tmp_path / "clip")
    (tmp_path / "clip" / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 36}, "crop_size": {"height": 32, "width": 32},
         "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "resample": 3}
    ))  # fmt: skip
    lay_out_as_hub_cache(tmp_path / "clip", tmp_path / "cache", "org/tiny-clip")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("transformers.utils.hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"), raising=False)
    out = tmp_path / "out"
    argv = ["org/tiny-clip", str(out), "--local-files-only", "--card-data", "finsta-clip4clip-vit-b-32-meanP", *TINY_HEAD]
    assert hub.convert_clip_main(argv) == 0, capsys.readouterr().out
    files = {p.name for p in out.iterdir()}
    assert PROCESSOR_FILES <= files
    processor_config = json.loads((out / "processor_config.json").read_text())
    assert processor_config["video_preprocessing"]["image_mean"] == [0.5, 0.5, 0.5]
    assert processor_config["video_preprocessing"]["size"] == 36
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    for name, value in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], value), name
    assert "org/tiny-clip" in (out / "README.md").read_text()


def test_clip_seq_transf_and_wrong_model_type(tmp_path, capsys):
    torch.manual_seed(0)
    CLIPModel(tiny_clip_config()).save_pretrained(tmp_path / "clip")
    report = hub.convert_clip(str(tmp_path / "clip"), tmp_path / "out", temporal_head="seqTransf", temporal_num_layers=1,
                              config_overrides={"graph_hidden_size": 32})  # fmt: skip
    assert report.check.video_level == "frames" and report.temporal_head == "seqTransf"
    assert json.loads((tmp_path / "out" / "config.json").read_text())["num_frame_positions"] == 32
    XCLIPModel(tiny_xclip_config()).save_pretrained(tmp_path / "xclip")
    assert hub.convert_clip_main([str(tmp_path / "xclip"), str(tmp_path / "out2")]) == 2
    assert "use finsta-convert-xclip" in capsys.readouterr().out


def test_xclip_converts_and_matches_the_source(tmp_path):
    torch.manual_seed(0)
    source = XCLIPModel(tiny_xclip_config()).eval()
    source.save_pretrained(tmp_path / "xclip")
    tiny_clip_tokenizer().save_pretrained(tmp_path / "xclip")
    assert hub.convert_xclip_main([str(tmp_path / "xclip"), str(tmp_path / "out"), *TINY_HEAD]) == 0
    assert PROCESSOR_FILES <= {p.name for p in (tmp_path / "out").iterdir()}
    pixels = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    ids = torch.randint(0, 40, (2, 7), generator=torch.Generator().manual_seed(6))
    _, text, video = text_and_video(tmp_path / "out", ids, pixels, None)
    with torch.no_grad():
        torch.testing.assert_close(text, source.get_text_features(input_ids=ids).pooler_output, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(video, source.get_video_features(pixel_values=pixels).pooler_output, atol=1e-5, rtol=1e-5)
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.base_model == "microsoft/xclip-base-patch32"
