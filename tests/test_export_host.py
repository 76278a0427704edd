"""finsta-export-host: a Finsta model's host written back in the host's own format.

The pure inverse remappings round-trip key for key with the forward ones; each export (CLIP4Clip
meanP -> CLIPModel, X-CLIP -> XCLIPModel, CLIP4Clip seqTransf -> original CLIP4Clip checkpoint +
CLIPModel towers) is loaded in a fresh process where ``modeling_finsta`` cannot be imported, and what
that process computes equals the Finsta model's distilled embeddings (the seqTransf checkpoint through
this file's own original-layout reference forwards); the seqTransf export converts back through
``finsta-convert-clip4clip`` to the same host; the built-in checks catch a wrong export; bad input is
refused with a clear message.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_checkpoint_conversion import (
    make_clip4clip_state_dict,
    make_openai_clip_state_dict,
    reference_encode_image,
    reference_encode_text,
    reference_seq_transf,
)
from tiny_models import tiny_clip_config, tiny_clip_tokenizer, tiny_finsta_config
from transformers import CLIPConfig, CLIPModel

import modeling_finsta.hub as hub
import modeling_finsta.hub.export as export_module
from modeling_finsta import FinstaConfig, FinstaModel
from modeling_finsta.hub import (
    CheckpointConversionError,
    HostExportError,
    convert_clip4clip_checkpoint,
    convert_clip4clip_temporal_head,
    convert_openai_clip_state_dict,
    convert_residual_block,
    export_clip4clip_checkpoint,
    export_clip4clip_temporal_head,
    export_host,
    export_host_main,
    export_openai_clip_state_dict,
    export_residual_block,
    fuse_qkv,
    split_fused_qkv,
)
from modeling_finsta.processing_finsta import FinstaProcessor

TOKENIZER = tiny_clip_tokenizer()
VOCAB = len(TOKENIZER)  # its end token is the last id, as in OpenAI's CLIP vocabulary
TINY_HEAD = dict(
    graph_hidden_size=32, graph_num_heads=4, text_graph_num_layers=1, video_graph_num_layers=1, num_latent_slots=4
)
# CLIP4Clip's own code builds width // 64 heads and 4 x width MLPs: 64-wide towers with one head
C4C_SIZES = dict(
    vision_width=64,
    text_width=64,
    embed=64,
    vision_layers=1,
    text_layers=1,
    context=16,
    vocab=VOCAB,
    patch=8,
    image=32,
)
# each host's own preprocessing, deliberately not the family preset, so the export must carry it
VIDEO_SETTINGS = {
    "clip": dict(size=36, crop_size=32, image_mean=[0.4, 0.45, 0.5], image_std=[0.2, 0.25, 0.3], resample="bicubic"),
    "xclip": dict(
        size=40, crop_size=32, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], resample="bilinear"
    ),
}
HOST_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "processor_config.json",
              "preprocessor_config.json", "finsta_export.json"}  # fmt: skip


def clip4clip_clip_config() -> CLIPConfig:
    tower = dict(
        hidden_size=64, intermediate_size=256, num_hidden_layers=1, num_attention_heads=1, hidden_act="quick_gelu"
    )
    return CLIPConfig(
        text_config=dict(
            tower, vocab_size=VOCAB, max_position_embeddings=16, bos_token_id=VOCAB - 2, eos_token_id=VOCAB - 1
        ),
        vision_config=dict(tower, image_size=32, patch_size=8),
        projection_dim=64,
    )


def post_trained(model: FinstaModel, seed: int) -> FinstaModel:
    """Move every weight away from its initialisation, as post-training would (and away from any source)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def save_finsta(folder, config, backbone_type, seed):
    model = post_trained(FinstaModel(config), seed)
    model.save_pretrained(folder)
    processor = FinstaProcessor(
        tokenizer=TOKENIZER, backbone_type=backbone_type, num_frames=4, parser_backend=None,
        video_preprocessing=VIDEO_SETTINGS[backbone_type], max_length=16,
    )  # fmt: skip
    processor.save_pretrained(folder)
    return model, processor


@pytest.fixture(scope="module")
def finsta_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("finsta")
    specs = {
        "meanP": (tiny_finsta_config("clip", **TINY_HEAD), "clip"),
        "xclip": (tiny_finsta_config("xclip", **TINY_HEAD), "xclip"),
        "seqTransf": (
            FinstaConfig(backbone_config=clip4clip_clip_config(), temporal_head="seqTransf", temporal_num_layers=2,
                         num_frame_positions=12, **TINY_HEAD),
            "clip",
        ),
    }  # fmt: skip
    folders = {}
    for seed, (name, (config, backbone_type)) in enumerate(specs.items()):
        folders[name] = root / name
        save_finsta(folders[name], config, backbone_type, seed)
    return folders


def distilled(folder, inputs):
    """The Finsta folder's distilled embeddings (host alone) and per-frame embeddings, loaded here."""
    model = FinstaModel.from_pretrained(folder).eval()
    assert model.config.inference_mode == "fused"  # the export must switch to distilled by itself
    return model, hub.distilled_host_embeddings(model, inputs)


def check_inputs(frames=4, seed=7):
    """Captions ending with the end token (last id) at different places, videos with a padded frame."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB - 2, (3, 12), generator=generator)
    for row, end in enumerate((4, 8, 11)):
        ids[row, end] = VOCAB - 1
        ids[row, end + 1 :] = 0
    mask = torch.ones(3, frames, dtype=torch.long)
    mask[1, -1] = 0
    return {
        "input_ids": ids,
        "pixel_values": torch.randn(3, frames, 3, 32, 32, generator=generator),
        "video_mask": mask,
    }


LOAD_WITHOUT_FINSTA = """
import json, sys, torch
sys.modules["modeling_finsta"] = None  # the package must not be importable here
try:
    import modeling_finsta
except ImportError:
    pass
else:
    raise SystemExit("modeling_finsta was importable")
import transformers
from transformers import AutoProcessor
folder, io = {folder!r}, {io!r}
inputs = torch.load(io + "/inputs.pt")
model = getattr(transformers, {model_class!r}).from_pretrained(folder).eval()
processor = AutoProcessor.from_pretrained(folder)
out = {{"model": type(model).__module__ + "." + type(model).__name__, "processor": type(processor).__name__,
        "image_processor": type(processor.image_processor).__name__}}
with torch.no_grad():
    out["text"] = model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
    if {model_class!r} == "XCLIPModel":
        out["video"] = model.get_video_features(pixel_values=inputs["pixel_values"]).pooler_output
        out["pixels"] = processor(videos=[list(inputs["frames"].numpy())], return_tensors="pt")["pixel_values"][0]
    else:
        out["frames"] = model.get_image_features(pixel_values=inputs["pixel_values"].flatten(0, 1)).pooler_output
        out["pixels"] = processor(images=list(inputs["frames"].numpy()), return_tensors="pt")["pixel_values"]
    out["ids"] = processor(text=["a man throws a ball"], padding="max_length", max_length=16)["input_ids"]
if {original!r}:
    weights = torch.load(folder + "/" + {original!r}, map_location="cpu", weights_only=True)
    out["original"] = weights
out["finsta_modules"] = sorted(
    m for m in sys.modules if m.startswith(("modeling_finsta", "transformers_modules")) and sys.modules[m]
)
torch.save(out, io + "/out.pt")
"""


def load_without_finsta(folder, tmp_path, model_class, inputs, frames, original=None):
    io = tmp_path / "io"
    io.mkdir()
    torch.save({**inputs, "frames": torch.from_numpy(frames)}, io / "inputs.pt")
    script = LOAD_WITHOUT_FINSTA.format(folder=str(folder), io=str(io), model_class=model_class, original=original)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = torch.load(io / "out.pt", weights_only=False)
    family = "x_clip" if model_class == "XCLIPModel" else "clip"
    assert (
        out["finsta_modules"] == [] and out["model"] == f"transformers.models.{family}.modeling_{family}.{model_class}"
    )
    return out


def files_under(folder):
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def a_video(seed=1):
    return np.random.default_rng(seed).integers(0, 256, (4, 45, 61, 3), dtype=np.uint8)


def assert_processor_reproduced(out, source_folder, frames):
    finsta_processor = FinstaProcessor.from_pretrained(source_folder)
    expected = finsta_processor.video_preprocessor([frames])["pixel_values"][0]
    torch.testing.assert_close(out["pixels"], expected, atol=1e-5, rtol=0)
    ids = finsta_processor.tokenizer(["a man throws a ball"], padding="max_length", max_length=16)["input_ids"]
    assert out["ids"] == ids


# ------------------------------------------------------------------ pure inverse functions, key for key


@pytest.mark.parametrize("header", ["meanP", "seqTransf"])
def test_original_clip4clip_checkpoint_round_trips_key_for_key(header):
    original = make_clip4clip_state_dict(header, temporal_layers=2, frame_positions=12)
    converted = convert_clip4clip_checkpoint(original, attention_head_dim=16)
    back = export_clip4clip_checkpoint(converted.clip_state_dict, converted.temporal_state_dict or None)
    assert set(back) == set(original)
    for key, value in original.items():
        assert back[key].shape == value.shape and torch.equal(back[key], value), key
    converted_ptrs = {
        t.data_ptr() for t in [*converted.clip_state_dict.values(), *converted.temporal_state_dict.values()]
    }
    assert not converted_ptrs & {t.data_ptr() for t in back.values()}  # nothing shares storage with the model


def test_transformers_and_finsta_layouts_round_trip_key_for_key():
    clip_state = CLIPModel(tiny_clip_config()).state_dict()
    openai = export_openai_clip_state_dict(clip_state, prefix="")
    assert "visual.proj" in openai and "transformer.resblocks.1.attn.in_proj_weight" in openai
    again, dropped = convert_openai_clip_state_dict(openai, prefix="")
    assert dropped == {} and set(again) == set(clip_state)
    assert all(torch.equal(again[key], value) for key, value in clip_state.items())

    head = FinstaModel(
        tiny_finsta_config("clip", temporal_head="seqTransf", temporal_num_layers=2)
    ).host_adapter.state_dict()
    original = export_clip4clip_temporal_head(head)
    assert {key.split(".resblocks.")[0] for key in original} == {"frame_position_embeddings.weight", "transformerClip"}
    again, num_layers, positions = convert_clip4clip_temporal_head(original)
    assert (num_layers, positions) == (2, 16) and set(again) == set(head)
    assert all(torch.equal(again[key], value) for key, value in head.items())


def test_fuse_qkv_inverts_split_fused_qkv_and_checks_shapes():
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(24, 8, generator=generator), torch.randn(24, generator=generator)
    fused_weight, fused_bias = fuse_qkv(*split_fused_qkv(weight, bias))
    assert torch.equal(fused_weight, weight) and torch.equal(fused_bias, bias)
    q, qb, k, kb, v, vb = split_fused_qkv(weight, bias)
    with pytest.raises(CheckpointConversionError, match=r"k_weight has shape \(4, 8\), expected \(8, 8\)"):
        fuse_qkv(q, qb, k[:4], kb, v, vb)
    with pytest.raises(CheckpointConversionError, match=r"v_bias has shape \(7,\)"):
        fuse_qkv(q, qb, k, kb, v, vb[:7])


def test_export_residual_block_inverts_convert_and_names_bad_keys():
    block = {
        key: value
        for key, value in make_openai_clip_state_dict("").items()
        if key.startswith("transformer.resblocks.0.")
    }
    layer = convert_residual_block(block, "transformer.resblocks.0.", "layers.0.")
    back = export_residual_block(layer, "layers.0.", "transformer.resblocks.0.")
    assert set(back) == set(block) and all(torch.equal(back[key], value) for key, value in block.items())
    with pytest.raises(CheckpointConversionError, match=r"missing key\(s\): layers\.0\.mlp\.fc2\.bias"):
        export_residual_block({k: v for k, v in layer.items() if k != "layers.0.mlp.fc2.bias"}, "layers.0.", "x.")
    with pytest.raises(CheckpointConversionError, match=r"unexpected key\(s\): layers\.0\.self_attn\.q_proj\.lora_A"):
        export_residual_block({**layer, "layers.0.self_attn.q_proj.lora_A": torch.zeros(1)}, "layers.0.", "x.")
    clip_state = CLIPModel(tiny_clip_config()).state_dict()
    with pytest.raises(
        CheckpointConversionError, match=r"no counterpart in OpenAI CLIP: text_model\.embeddings\.position_ids"
    ):
        export_openai_clip_state_dict({**clip_state, "text_model.embeddings.position_ids": torch.arange(4)})


# ------------------------------------------------------------------------------ the three exports


def test_mean_p_export_is_a_plain_clip_folder_loaded_without_finsta(finsta_folders, tmp_path, capsys):
    out = tmp_path / "clip"
    assert export_host_main([str(finsta_folders["meanP"]), str(out)]) == 0, capsys.readouterr().out
    log = capsys.readouterr().out
    assert "OK CLIPModel: text max |diff|" in log and "OK processor" in log and "success" in log
    assert files_under(out) == HOST_FILES
    assert "auto_map" not in json.loads((out / "config.json").read_text())
    info = json.loads((out / "finsta_export.json").read_text())
    assert (
        info["format"] == "clip" and info["host"] == "CLIP4Clip meanP" and info["finsta_processor"]["num_frames"] == 4
    )

    inputs = check_inputs()
    _, expected = distilled(finsta_folders["meanP"], inputs)
    frames = a_video()
    loaded = load_without_finsta(out, tmp_path, "CLIPModel", inputs, frames)
    assert (loaded["processor"], loaded["image_processor"]) == ("CLIPProcessor", "CLIPImageProcessorPil")
    torch.testing.assert_close(loaded["text"], expected["text"], atol=1e-5, rtol=0)
    video = hub.clip4clip_mean_pooling(loaded["frames"].view(3, 4, -1), inputs["video_mask"])
    torch.testing.assert_close(video, expected["video"], atol=1e-5, rtol=0)
    assert_processor_reproduced(loaded, finsta_folders["meanP"], frames)


def test_xclip_export_is_a_plain_xclip_folder_loaded_without_finsta(finsta_folders, tmp_path, capsys):
    out = tmp_path / "xclip"
    assert export_host_main([str(finsta_folders["xclip"]), str(out)]) == 0, capsys.readouterr().out
    assert "OK XCLIPModel" in capsys.readouterr().out
    assert files_under(out) == HOST_FILES
    assert json.loads((out / "config.json").read_text())["model_type"] == "xclip"

    inputs = check_inputs()
    inputs["video_mask"] = torch.ones_like(inputs["video_mask"])
    _, expected = distilled(finsta_folders["xclip"], inputs)
    frames = a_video(2)
    loaded = load_without_finsta(out, tmp_path, "XCLIPModel", inputs, frames)
    assert (loaded["processor"], loaded["image_processor"]) == ("XCLIPProcessor", "VideoMAEImageProcessorPil")
    torch.testing.assert_close(loaded["text"], expected["text"], atol=1e-5, rtol=0)
    torch.testing.assert_close(loaded["video"], expected["video"], atol=1e-5, rtol=0)
    assert_processor_reproduced(loaded, finsta_folders["xclip"], frames)


@pytest.fixture(scope="module")
def seq_transf_export(finsta_folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "clip4clip"
    report = export_host(finsta_folders["seqTransf"], out)
    return out, report


def test_seq_transf_export_writes_the_original_clip4clip_layout(finsta_folders, seq_transf_export, tmp_path):
    out, report = seq_transf_export
    assert report.format == "clip4clip" and set(report.checks) == {"CLIPModel", "CLIP4Clip checkpoint"}
    assert files_under(out) == HOST_FILES | {"clip4clip/pytorch_model.bin"} and set(report.files) == files_under(out)

    inputs = check_inputs()
    _, expected = distilled(finsta_folders["seqTransf"], inputs)
    frames = a_video(3)
    loaded = load_without_finsta(out, tmp_path, "CLIPModel", inputs, frames, original="clip4clip/pytorch_model.bin")
    weights = loaded["original"]
    # exactly the keys and shapes CLIP4Clip's own seqTransf model has at these sizes
    layout = make_clip4clip_state_dict("seqTransf", temporal_layers=2, frame_positions=12, **C4C_SIZES)
    assert {k: tuple(v.shape) for k, v in weights.items()} == {k: tuple(v.shape) for k, v in layout.items()}
    # this file's own original-layout forwards (fused in_proj, x @ proj, CLIP4Clip's header) on the checkpoint
    text = reference_encode_text(weights, inputs["input_ids"], layers=1, num_heads=1)
    torch.testing.assert_close(text, expected["text"], atol=1e-5, rtol=0)
    per_frame = reference_encode_image(weights, inputs["pixel_values"].flatten(0, 1), layers=1, num_heads=1)
    _, video = reference_seq_transf(
        weights, per_frame.view(3, 4, -1), inputs["video_mask"].float(), layers=2, num_heads=1
    )
    torch.testing.assert_close(video, expected["video"], atol=1e-5, rtol=0)
    # the CLIPModel folder carries the towers: its per-frame embeddings are the header's input
    torch.testing.assert_close(loaded["text"], expected["text"], atol=1e-5, rtol=0)
    torch.testing.assert_close(loaded["frames"], expected["frames"], atol=1e-5, rtol=0)
    assert_processor_reproduced(loaded, finsta_folders["seqTransf"], frames)


def architecture(config):
    """The sizes and conventions that define the host (not the Finsta head, which the export leaves out)."""
    fields = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "hidden_act",
        "layer_norm_eps",
    )
    text, vision = config.backbone_config.text_config, config.backbone_config.vision_config
    return (
        {name: getattr(text, name) for name in (*fields, "vocab_size", "max_position_embeddings", "eos_token_id")},
        {name: getattr(vision, name) for name in (*fields, "image_size", "patch_size", "num_channels")},
        config.projection_dim, config.temporal_head, config.temporal_num_layers, config.num_frame_positions,
    )  # fmt: skip


def test_seq_transf_export_converts_back_to_the_same_model(finsta_folders, seq_transf_export, tmp_path, capsys):
    out, _ = seq_transf_export
    back = tmp_path / "back"
    argv = [str(out / "clip4clip" / "pytorch_model.bin"), str(back), "--tokenizer", str(out), "--num-frames", "4"]
    argv += [arg for key, value in TINY_HEAD.items() for arg in ("--set", f"{key}={value}")]
    assert hub.convert_clip4clip_main(argv) == 0, capsys.readouterr().out
    source = FinstaModel.from_pretrained(finsta_folders["seqTransf"]).eval()
    reloaded = FinstaModel.from_pretrained(back).eval()
    for part in ("backbone", "host_adapter"):
        expected, actual = getattr(source, part).state_dict(), getattr(reloaded, part).state_dict()
        assert set(actual) == set(expected), part
        for key, value in expected.items():
            assert torch.equal(actual[key], value), f"{part}.{key}"
    assert architecture(reloaded.config) == architecture(source.config)
    inputs = check_inputs()
    a, b = hub.distilled_host_embeddings(source, inputs), hub.distilled_host_embeddings(reloaded, inputs)
    torch.testing.assert_close(b["text"], a["text"], atol=1e-6, rtol=0)
    torch.testing.assert_close(b["video"], a["video"], atol=1e-6, rtol=0)


def test_in_memory_export_leaves_the_model_as_it_was(finsta_folders, tmp_path):
    model = FinstaModel.from_pretrained(finsta_folders["meanP"]).eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    config_before = model.config.to_dict()
    report = export_host(model, tmp_path / "clip", processor=FinstaProcessor.from_pretrained(finsta_folders["meanP"]))
    assert report.format == "clip" and report.saved_processor and report.processor_max_abs_diff <= 1e-5
    assert model.config.inference_mode == "fused" and model.config.to_dict() == config_before
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())
    # without a processor the folder still loads as a plain CLIPModel
    report = export_host(model, tmp_path / "bare")
    assert not report.saved_processor and files_under(tmp_path / "bare") == {
        "config.json",
        "model.safetensors",
        "finsta_export.json",
    }


# ------------------------------------------------------------------------ the checks can fail


def test_a_wrong_clip4clip_checkpoint_is_refused(finsta_folders, tmp_path, monkeypatch, capsys):
    def swapped_qk(clip_state_dict, temporal_state_dict=None):
        checkpoint = export_clip4clip_checkpoint(clip_state_dict, temporal_state_dict)
        key = "transformerClip.resblocks.0.attn.in_proj_weight"
        q, k, v = checkpoint[key].chunk(3)
        checkpoint[key] = torch.cat([k, q, v])
        return checkpoint

    monkeypatch.setattr(export_module, "export_clip4clip_checkpoint", swapped_qk)
    out = tmp_path / "wrong"
    assert export_host_main([str(finsta_folders["seqTransf"]), str(out)]) == 2
    log = capsys.readouterr().out
    assert (
        "CLIP4Clip checkpoint, run in its original layout, does not reproduce" in log
        and "video embeddings differ" in log
    )
    assert "success" not in log and not out.exists() and (tmp_path / ".incomplete-wrong").is_dir()


def test_a_processor_with_other_statistics_is_refused(finsta_folders, tmp_path, monkeypatch, capsys):
    original = export_module.host_processor

    def wrong_mean(finsta_processor, backbone_type):
        processor = original(finsta_processor, backbone_type)
        processor.image_processor.image_mean = [0.5, 0.5, 0.5]
        return processor

    monkeypatch.setattr(export_module, "host_processor", wrong_mean)
    out = tmp_path / "wrong"
    assert export_host_main([str(finsta_folders["meanP"]), str(out)]) == 2
    log = capsys.readouterr().out
    assert "image processor's pixel values differ from the Finsta processor's" in log and not out.exists()


# ------------------------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def not_finsta_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("not-finsta")
    CLIPModel(tiny_clip_config()).save_pretrained(root / "plain-clip")
    (root / "empty").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json")
    torch.save({"clip.logit_scale": torch.tensor(1.0)}, root / "pytorch_model.bin.4")
    return root


@pytest.mark.parametrize(
    "source, extra, message",
    [
        ("xclip", ["--format", "clip4clip"], "hosts X-CLIP, which cannot be exported as 'clip4clip'.*--format xclip"),
        ("xclip", ["--format", "clip"], "hosts X-CLIP.*use --format xclip"),
        ("meanP", ["--format", "xclip"], "hosts CLIP4Clip meanP, not X-CLIP"),
        ("seqTransf", ["--format", "clip"], "seqTransf, whose temporal Transformer has no place.*--format clip4clip"),
        ("meanP", ["--format", "clip4clip"], "could not rebuild this host.*4 attention heads of width 32.*--format clip"),
        ("not:plain-clip", [], "model_type 'clip', not 'finsta'.*already a plain 'clip' checkpoint"),
        ("not:empty", [], "no config.json, so this is not a saved Finsta model folder"),
        ("not:broken", [], r"broken/config.json: not valid JSON"),
        ("not:pytorch_model.bin.4", [], "is a file, not a saved Finsta model folder.*finsta-convert-clip4clip"),
        ("not:missing", [], "no such folder"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_clearly(finsta_folders, not_finsta_folders, tmp_path, capsys, source, extra, message):
    folder = not_finsta_folders / source[4:] if source.startswith("not:") else finsta_folders[source]
    out = tmp_path / "out"
    assert export_host_main([str(folder), str(out), *extra]) == 2
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(message, errors[0]), errors
    assert not out.exists()


def test_unknown_format_and_unsafe_outputs_are_refused(finsta_folders, tmp_path, capsys):
    with pytest.raises(
        HostExportError, match="unknown export format 'onnx'; expected one of auto, clip, xclip, clip4clip"
    ):
        export_host(finsta_folders["meanP"], tmp_path / "out", format="onnx")
    with pytest.raises(SystemExit):
        export_host_main([str(finsta_folders["meanP"]), str(tmp_path / "out"), "--format", "onnx"])
    assert "invalid choice: 'onnx'" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(HostExportError, match="already exists and is not empty"):
        export_host(finsta_folders["meanP"], tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(HostExportError, match="the output folder is the source folder"):
        export_host(finsta_folders["meanP"], finsta_folders["meanP"])
    with pytest.raises(HostExportError, match="expected a FinstaModel or the folder of a saved one, got CLIPModel"):
        export_host(CLIPModel(tiny_clip_config()), tmp_path / "out")
    model = FinstaModel.from_pretrained(finsta_folders["meanP"]).to(torch.bfloat16)
    with pytest.raises(HostExportError, match="weights are torch.bfloat16.*float32"):
        export_host(model, tmp_path / "out")


def test_console_script_and_thin_script_point_at_the_cli():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["finsta-export-host"] == "modeling_finsta.hub.cli:export_host_main"
    result = subprocess.run(
        [sys.executable, str(root / "conversion" / "export_host.py"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "finsta-export-host" in result.stdout and "clip4clip" in result.stdout
