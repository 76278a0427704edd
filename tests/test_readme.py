"""The README's Python snippets marked ``<!-- tested: tests/test_readme.py -->`` run as written, in a fresh
process, against a tiny checkpoint made the way the demo makes its own (only paths are substituted)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- tested: tests/test_readme.py -->"


def readme_snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture(scope="module")
def demo_like_checkpoint(tmp_path_factory):
    """The fully automatic Finsta variant at a one-step budget, saved with its processor (as the demo saves it)."""
    from modeling_finsta.demo import SAVED_VARIANT, VARIANTS, build_model, prepare_data
    from modeling_finsta.synth import write_video

    root = tmp_path_factory.mktemp("readme")
    data = prepare_data(16, 4, seed=0)
    model = build_model(VARIANTS[SAVED_VARIANT], data, seed=0)
    model.save_pretrained(root / "finsta-checkpoint")
    data.processor.save_pretrained(root / "finsta-checkpoint")
    write_video(data.dataset.test[0].frames, root / "clip.mp4", fps=1.0)
    return root


def test_the_readme_has_readme_snippets():
    snippets = readme_snippets()
    assert len(snippets) >= 2
    assert any("AutoProcessor" in s and "get_text_features(**processor(text=" in s for s in snippets)
    assert any("Trainer(" in s and "TrainingArguments(" in s for s in snippets)


@pytest.mark.parametrize("index", range(len(readme_snippets())))
def test_readme_snippet_runs(demo_like_checkpoint, index, tmp_path):
    code = readme_snippets()[index].replace("finsta-demo-output/finsta-checkpoint", str(demo_like_checkpoint / "finsta-checkpoint"))
    code = code.replace('"clip.mp4"', repr(str(demo_like_checkpoint / "clip.mp4")))
    code = code.replace("max_steps=20", "max_steps=2")  # the snippet's budget, shortened for the test
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    if "trainer.save_model" in code:
        assert (tmp_path / "finsta-finetuned" / "model.safetensors").is_file()
