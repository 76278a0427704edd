"""finsta-convert-siglip / finsta-convert-videoprism end to end on tiny random checkpoints: files written,
the reloaded folder reproduces the source's own embeddings, the model card, and clear refusals."""

import json

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub import ModelCard
from tiny_models import tiny_clip_tokenizer, tiny_siglip2_config, tiny_siglip_config, tiny_videoprism_config
from transformers import AutoModel, CLIPModel, Siglip2Model, SiglipModel, VideoPrismClipModel

import modeling_finsta.hub as hub
from modeling_finsta.backbone_adapters import patchify_frames

TINY_HEAD = ["--set", "graph_hidden_size=32", "--set", "text_graph_num_layers=1", "--set", "video_graph_num_layers=1"]


def save_source(folder, host):
    torch.manual_seed(0)
    host.eval().save_pretrained(folder)
    tiny_clip_tokenizer().save_pretrained(folder)
    return host


def inputs(frames=4, side=32, seed=5):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 60, (2, 10), generator=generator)
    return ids, torch.randn(2, frames, 3, side, side, generator=generator)


def reload(folder):
    return AutoModel.from_pretrained(folder, trust_remote_code=True).eval()


@pytest.mark.parametrize("temporal_head", ["meanP", "seqTransf"])
def test_siglip_converts_and_matches_the_source(tmp_path, temporal_head, capsys):
    width = 64 if temporal_head == "seqTransf" else 32  # seqTransf: heads = width // 64, as in CLIP4Clip
    source = save_source(tmp_path / "src", SiglipModel(tiny_siglip_config(width=width)))
    out = tmp_path / "out"
    argv = [str(tmp_path / "src"), str(out), "--temporal-head", temporal_head, "--num-frames", "4", *TINY_HEAD]
    assert hub.convert_siglip_main(argv) == 0, capsys.readouterr().out
    assert "OK: text max |diff|" in capsys.readouterr().out
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "modeling_finsta.py", "processor_config.json", "pipeline_finsta.py"} <= files
    config = json.loads((out / "config.json").read_text())
    assert config["backbone_config"]["model_type"] == "siglip" and config["temporal_head"] == temporal_head
    model = reload(out)
    ids, pixels = inputs()
    with torch.no_grad():
        text = model.host_adapter.encode_text(model.backbone, ids, None).text_embeds
        frames = source.get_image_features(pixel_values=pixels.flatten(0, 1)).pooler_output.view(2, 4, -1)
        host = model.host_adapter.encode_video(model.backbone, pixels, None)
    torch.testing.assert_close(text, source.get_text_features(input_ids=ids).pooler_output, atol=1e-5, rtol=0)
    torch.testing.assert_close(host.frame_inputs, frames, atol=1e-5, rtol=0)
    if temporal_head == "meanP":
        torch.testing.assert_close(host.video_embeds, F.normalize(F.normalize(frames, dim=-1).mean(1), dim=-1), atol=1e-5, rtol=0)
    card = ModelCard.load(out / "README.md")
    assert "google/siglip-base-patch16-224" in card.text and "sigmoid" in card.text
    processor = json.loads((out / "processor_config.json").read_text())
    assert processor["video_preprocessing"]["image_mean"] == [0.5, 0.5, 0.5]


def test_siglip2_naflex_converts_and_matches_the_source(tmp_path, capsys):
    source = save_source(tmp_path / "src", Siglip2Model(tiny_siglip2_config()))
    out = tmp_path / "out"
    assert hub.convert_siglip_main([str(tmp_path / "src"), str(out), "--num-frames", "4", *TINY_HEAD]) == 0, capsys.readouterr().out
    model = reload(out)
    assert model.config.backbone_type == "siglip2"
    ids, pixels = inputs()  # 32 pixels = the 4 x 4 patch grid of the 16-row position table
    patches = patchify_frames(pixels.flatten(0, 1), 8)
    with torch.no_grad():
        frames = source.get_image_features(
            pixel_values=patches, pixel_attention_mask=torch.ones(8, 16, dtype=torch.long), spatial_shapes=torch.tensor([[4, 4]] * 8)
        ).pooler_output.view(2, 4, -1)
        video = model.host_adapter.encode_video(model.backbone, pixels, None).video_embeds
    torch.testing.assert_close(video, F.normalize(F.normalize(frames, dim=-1).mean(1), dim=-1), atol=1e-5, rtol=0)
    assert "- image size: `32`" in ModelCard.load(out / "README.md").text


def test_videoprism_converts_and_matches_the_source(tmp_path, capsys):
    source = save_source(tmp_path / "src", VideoPrismClipModel(tiny_videoprism_config()))
    out = tmp_path / "out"
    assert hub.convert_videoprism_main([str(tmp_path / "src"), str(out), *TINY_HEAD]) == 0, capsys.readouterr().out
    model = reload(out)
    ids, pixels = inputs()
    with torch.no_grad():
        text = model.host_adapter.encode_text(model.backbone, ids, None).text_embeds
        video = model.host_adapter.encode_video(model.backbone, pixels, None).video_embeds
        expected = source.get_video_features(pixel_values_videos=pixels).pooler_output.reshape(2, -1)
    torch.testing.assert_close(text, source.get_text_features(input_ids=ids).pooler_output, atol=1e-5, rtol=0)
    torch.testing.assert_close(video, expected, atol=1e-5, rtol=0)
    processor = json.loads((out / "processor_config.json").read_text())
    assert processor["num_frames"] == 4 and processor["video_preprocessing"]["do_normalize"] is False
    assert "exactly `vision_config.num_frames` frames" in ModelCard.load(out / "README.md").text


def test_wrong_family_is_refused_with_the_right_command(tmp_path, capsys):
    torch.manual_seed(0)
    from tiny_models import tiny_clip_config

    CLIPModel(tiny_clip_config()).save_pretrained(tmp_path / "clip")
    assert hub.convert_siglip_main([str(tmp_path / "clip"), str(tmp_path / "out")]) == 2
    assert "use finsta-convert-clip" in capsys.readouterr().out
    save_source(tmp_path / "prism", VideoPrismClipModel(tiny_videoprism_config()))
    assert hub.convert_clip_main([str(tmp_path / "prism"), str(tmp_path / "out2")]) == 2
    assert "use finsta-convert-videoprism" in capsys.readouterr().out
