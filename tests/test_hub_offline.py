"""The Hub download path, offline: a saved Finsta folder laid out as a Hugging Face cache snapshot
loads with HF_HUB_OFFLINE=1 in a fresh process, as remote code without the package and natively
with it; a file missing from the cache gives a clear error."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tiny_models import example_inputs, tiny_clip_tokenizer, tiny_finsta_config

from modeling_finsta import FinstaModel

REPO_ID = "org/finsta-clip4clip"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def lay_out_as_hub_cache(folder, cache_dir, repo_id, commit=COMMIT, skip=()):
    """Copy ``folder`` into ``cache_dir`` as the Hub cache does: blobs named by content hash,
    ``snapshots/<commit>/<file>`` relative symlinks to them, ``refs/main`` holding the commit."""
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or path.name in skip:
            continue
        content = path.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


def saved_finsta_folder(folder):
    """A tiny Finsta-CLIP4Clip folder with remote code and (when available) its processor."""
    torch.manual_seed(0)
    model = FinstaModel(tiny_finsta_config("clip", temporal_head="seqTransf")).eval()
    model.save_pretrained(folder)
    tokenizer = tiny_clip_tokenizer()
    try:
        from modeling_finsta.processing_finsta import FinstaProcessor
    except ImportError:
        tokenizer.save_pretrained(folder)
        return model, False
    FinstaProcessor(tokenizer=tokenizer, num_frames=4, parser_backend=None).save_pretrained(folder)
    return model, True


def run_script(script, cache, tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(tmp_path / "home"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "PYTHONPATH": "",
    }
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    model, has_processor = saved_finsta_folder(root / "saved")
    lay_out_as_hub_cache(root / "saved", root / "cache", REPO_ID)
    lay_out_as_hub_cache(root / "saved", root / "cache", "org/finsta-broken", skip=("model.safetensors",))
    inputs = {k: v for k, v in example_inputs(batch=2).items() if k != "text_scene_graph"}
    torch.save(inputs, root / "inputs.pt")
    with torch.no_grad():
        expected = model(**inputs)
    return root, expected, has_processor


def test_cache_layout_is_what_huggingface_hub_reads(hub_cache):
    root, _, _ = hub_cache
    repo = root / "cache" / "models--org--finsta-clip4clip"
    assert (repo / "refs" / "main").read_text() == COMMIT
    link = repo / "snapshots" / COMMIT / "config.json"
    assert link.is_symlink() and link.resolve().parent == (repo / "blobs").resolve()


LOAD_SCRIPT = """
import json, sys, torch
{prelude}
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained("{repo}", {trust}).eval()
inputs = torch.load({inputs!r})
with torch.no_grad():
    out = model(**inputs)
report = {{"module": type(model).__module__, "text": out.text_embeds.tolist(), "video": out.video_embeds.tolist()}}
if {has_processor}:
    processor = AutoProcessor.from_pretrained("{repo}", {trust})
    report["processor"] = type(processor).__name__
    report["ids"] = processor(text=["a man throws a ball"])["input_ids"].shape[-1]
try:
    AutoModel.from_pretrained("org/finsta-broken", {trust})
except Exception as error:
    report["missing"] = type(error).__name__ + ": " + str(error)
try:
    AutoModel.from_pretrained("org/not-in-cache", {trust})
except Exception as error:
    report["absent"] = type(error).__name__ + ": " + str(error)
print(json.dumps(report))
"""


@pytest.mark.parametrize("package_importable", [False, True], ids=["remote-code-without-package", "installed-package"])
def test_offline_load_from_cache_in_a_fresh_process(hub_cache, tmp_path, package_importable):
    root, expected, has_processor = hub_cache
    if package_importable:
        prelude = "import modeling_finsta"
        trust = ""
    else:
        prelude = textwrap.dedent(
            """
            sys.modules["modeling_finsta"] = None  # the package must not be importable
            try:
                import modeling_finsta
            except ImportError:
                pass
            else:
                raise SystemExit("modeling_finsta was importable")
            """
        )
        trust = "trust_remote_code=True"
    script = LOAD_SCRIPT.format(
        prelude=prelude, repo=REPO_ID, trust=trust, inputs=str(root / "inputs.pt"), has_processor=has_processor
    )
    report = run_script(script, root / "cache", tmp_path)
    if package_importable:
        assert report["module"] == "modeling_finsta.modeling_finsta"
    else:
        assert report["module"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(report["text"]), expected.text_embeds, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(report["video"]), expected.video_embeds, atol=1e-6, rtol=0)
    if has_processor:
        assert report["processor"] == "FinstaProcessor" and report["ids"] > 0
    assert "org/finsta-broken" in report["missing"] and "model.safetensors" in report["missing"], report["missing"]
    assert "cached files" in report["absent"] and "offline" in report["absent"].lower(), report["absent"]
