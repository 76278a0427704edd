"""Generative Finsta and the Hub, offline: the real host ids (legacy key layouts) load from a hand-made cache
into FinstaForConditionalGeneration with only the head initialised, the converter verifies and saves, and a
saved folder loads as remote code in a fresh process without the package and generates identically."""

import json
import re
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_generative import HEAD, build
from test_hub_offline import lay_out_as_hub_cache, run_script
from transformers import AutoModelForImageTextToText

from modeling_finsta.synth import FinstaSynthConfig
from modeling_finsta.synth import generate_generative_finsta_synth, generative_vocabulary
from modeling_finsta.training import tiny_video_llm_config, video_llm_tokenizer

# How the Hub checkpoints store their keys (converted before transformers' VLM refactor); save_pretrained
# already writes this layout, the renames make sure of it.
LEGACY_LAYOUTS = {
    "LanguageBind/Video-LLaVA-7B-hf": ("video_llava", [(r"^model\.language_model\.", "language_model.model."), (r"^lm_head", "language_model.lm_head"), (r"^model\.", "")]),
    "Qwen/Qwen2-VL-2B-Instruct": ("qwen2_vl", [(r"^model\.language_model\.", "model."), (r"^model\.visual\.", "visual.")]),
}


@pytest.fixture(scope="module")
def tokenizer():
    data = generate_generative_finsta_synth(FinstaSynthConfig(objects_per_clip=3, num_frames=4, num_train=4, num_test=2))
    return video_llm_tokenizer(generative_vocabulary(data) + ["question", "answer", ":"])


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("generative-hub")
    hosts = {}
    for repo, (family, renames) in LEGACY_LAYOUTS.items():
        torch.manual_seed(0)
        host = AutoModelForImageTextToText.from_config(tiny_video_llm_config(family, tokenizer, text_layers=1, vision_layers=1))
        folder = root / family
        host.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        state = load_file(folder / "model.safetensors")
        legacy = {}
        for key, value in state.items():
            for pattern, replacement in renames:
                if re.match(pattern, key):
                    key = re.sub(pattern, replacement, key)
                    break
            legacy[key] = value
        # transformers writes (and the Hub checkpoints hold) the pre-refactor layout.
        legacy_prefix = "language_model.model." if family == "video_llava" else "model.layers."
        assert any(key.startswith(legacy_prefix) for key in legacy) and not any(key.startswith("model.language_model.") for key in legacy)
        save_file(legacy, folder / "model.safetensors", metadata={"format": "pt"})
        lay_out_as_hub_cache(folder, root / "cache", repo)
        hosts[repo] = host
    return root, hosts


LOAD_HOST_SCRIPT = """
import json, torch
import modeling_finsta
from modeling_finsta import FinstaForConditionalGeneration
report = {{}}
for repo in {repos!r}:
    model, info = FinstaForConditionalGeneration.from_pretrained(repo, output_loading_info=True, **{head!r})
    report[repo] = {{"missing": sorted({{k.split(".")[0] for k in info["missing_keys"]}}), "unexpected": sorted(info["unexpected_keys"]),
                    "checksum": sum(float(p.double().sum()) for p in model.backbone.parameters()), "type": model.config.backbone_type}}
print(json.dumps(report))
"""


def test_hub_host_ids_load_from_the_offline_cache_with_only_the_head_initialised(hub_cache, tmp_path):
    root, hosts = hub_cache
    report = run_script(LOAD_HOST_SCRIPT.format(repos=list(hosts), head=HEAD), root / "cache", tmp_path)
    for repo, host in hosts.items():
        assert report[repo]["missing"] == ["finsta_head"] and report[repo]["unexpected"] == [], report[repo]
        expected = sum(float(p.double().sum()) for p in host.parameters())
        assert report[repo]["checksum"] == pytest.approx(expected, rel=1e-9), repo
        assert report[repo]["type"] == LEGACY_LAYOUTS[repo][0]


REMOTE_SCRIPT = """
import json, sys, torch
sys.modules["modeling_finsta"] = None  # the package must not be importable
from transformers import AutoModelForImageTextToText, AutoProcessor
model = AutoModelForImageTextToText.from_pretrained({folder!r}, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained({folder!r}, trust_remote_code=True)
inputs = torch.load({inputs!r})
with torch.no_grad():
    tokens = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=0, eos_token_id=None)
print(json.dumps({{"module": type(model).__module__, "processor": type(processor).__name__, "tokens": tokens.tolist(),
                  "video_tokens": processor.num_video_tokens()}}))
"""


def test_converter_verifies_and_a_saved_folder_generates_identically_as_remote_code(hub_cache, tmp_path, tokenizer):
    from pathlib import Path

    from modeling_finsta.hub import convert_video_llm_to_finsta

    root, _ = hub_cache
    card = Path(__file__).parents[1] / "model_cards" / "finsta-qwen2-vl-2b-instruct.yaml"
    out = convert_video_llm_to_finsta(root / "qwen2_vl", tmp_path / "converted", num_frames=4, image_size=32, card_data=card, **HEAD)
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForImageTextToText"] == "modeling_finsta_generation.FinstaForConditionalGeneration"
    readme = (out / "README.md").read_text()
    assert "pipeline_tag: video-text-to-text" in readme and "base_model: Qwen/Qwen2-VL-2B-Instruct" in readme
    assert json.loads((out / "processor_config.json").read_text())["host_type"] == "qwen2_vl"
    # A trained head (non-zero refiner), saved and reloaded as remote code in a fresh process.
    model, processor = build("qwen2_vl", tokenizer, seed=2)
    torch.nn.init.normal_(model.finsta_head.refiner.output.weight, std=0.5)
    model.save_pretrained(tmp_path / "trained")
    processor.save_pretrained(tmp_path / "trained")
    frames = torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8).numpy()
    batch = {k: v for k, v in processor(questions=["what happens first?"], videos=[frames]).items()}
    torch.save(batch, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = model.generate(**batch, max_new_tokens=4, do_sample=False, pad_token_id=0, eos_token_id=None)
    script = REMOTE_SCRIPT.format(folder=str(tmp_path / "trained"), inputs=str(tmp_path / "inputs.pt"))
    report = run_script(textwrap.dedent(script), root / "cache", tmp_path)
    assert report["module"].startswith("transformers_modules")
    assert report["processor"] == "FinstaGenerationProcessor" and report["video_tokens"] == processor.num_video_tokens()
    assert report["tokens"] == expected.tolist()


def test_converter_refuses_a_model_that_does_not_reproduce_the_host(hub_cache, tmp_path, monkeypatch):
    from modeling_finsta import FinstaForConditionalGeneration
    from modeling_finsta.hub import generative

    root, _ = hub_cache
    original = FinstaForConditionalGeneration.from_pretrained

    def broken(*args, **kwargs):
        model = original(*args, **kwargs)
        torch.nn.init.normal_(model.finsta_head.refiner.output.weight, std=1.0)
        return model

    monkeypatch.setattr(FinstaForConditionalGeneration, "from_pretrained", broken)
    with pytest.raises(RuntimeError, match="differ from the host's"):
        generative.convert_video_llm_to_finsta(root / "video_llava", tmp_path / "bad", num_frames=4, image_size=32, **HEAD)
