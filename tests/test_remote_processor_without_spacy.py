"""A processor saved with ``parser_backend="rules"`` loads from the Hub as remote code without spaCy.

transformers' remote-code loader runs ``check_imports`` on every file that travels with the
processor and demands each third-party package ``get_imports`` finds there; it skips only imports
inside ``try`` blocks and inside ``if is_xxx_available():`` blocks. So an ``import spacy`` anywhere
in a travelling file (inside a function or under ``if TYPE_CHECKING:`` included) made spaCy a
requirement even for the rule backend (issue 13 item 8). The optional packages (spaCy, lemminflect,
PyAV, tqdm) are now imported inside ``try`` blocks, with a clear error where one is really needed.
"""

import json
import shutil
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from test_hub_offline import lay_out_as_hub_cache, run_script
from tiny_models import tiny_clip_tokenizer, tiny_finsta_config
from transformers.dynamic_module_utils import get_imports

import modeling_finsta
from modeling_finsta import text_parser_spacy
from modeling_finsta import text_scene_graph_parser as tsg
from modeling_finsta.processing_finsta import FinstaProcessor
from modeling_finsta.text_parser_rules import RuleBackend

REPO_ID = "org/finsta-processor-rules"
PACKAGE = Path(modeling_finsta.__file__).parent

# The files that travel with a saved processor as remote code (processing_finsta.py and what it
# imports, the lazy imports of the caption parser and the DSG reader included).
PROCESSOR_FILES = {
    "processing_finsta.py",
    "scene_graph_batching.py",
    "scene_graphs.py",
    "video_io.py",
    "video_scene_graph_io.py",
    "text_scene_graph_parser.py",
    "text_parser_common.py",
    "text_parser_rules.py",
    "text_parser_spacy.py",
}
# What every user of the processor must have: tensors, the tokenizer/processor machinery, frame
# arrays and frame resizing (pillow resizes every decoded frame, so it is not optional).
PROCESSOR_REQUIREMENTS = {"PIL", "numpy", "torch", "transformers"}
# Needed only by some uses: spaCy (backend="spacy"/"auto"), lemminflect (parsing captions), PyAV
# (decoding video files), tqdm (progress bars). The checker must not demand them.
OPTIONAL_PACKAGES = {"spacy", "lemminflect", "av", "tqdm"}
# Installed with transformers itself, so any user of remote code has them (the model names corrupt weight files).
TRANSFORMERS_DEPENDENCIES = {"safetensors"}


def third_party_imports(path) -> set[str]:
    """The packages transformers' ``check_imports`` demands for one file."""
    return {name for name in get_imports(path) if name not in sys.stdlib_module_names}


@pytest.fixture(scope="module")
def saved_processor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("processor") / "saved"
    FinstaProcessor(tokenizer=tiny_clip_tokenizer(), num_frames=4, parser_backend="rules").save_pretrained(folder)
    return folder


def test_saved_processor_names_its_module_and_carries_the_parser(saved_processor):
    config = json.loads((saved_processor / "processor_config.json").read_text())
    assert config["auto_map"] == {"AutoProcessor": "processing_finsta.FinstaProcessor"}
    assert config["parser_backend"] == "rules"
    assert {path.name for path in saved_processor.glob("*.py")} == PROCESSOR_FILES
    for name in PROCESSOR_FILES:  # copies of the package's own top-level modules
        assert (saved_processor / name).read_bytes() == (PACKAGE / name).read_bytes(), name
    assert "\nclass FinstaProcessor(" in (saved_processor / "processing_finsta.py").read_text()


def test_travelling_files_require_exactly_the_processor_packages(saved_processor):
    required = {name: third_party_imports(saved_processor / name) for name in PROCESSOR_FILES}
    assert set().union(*required.values()) == PROCESSOR_REQUIREMENTS, required
    # Every top-level module travels as remote code (model or processor): none may demand an
    # optional package either.
    for path in sorted(PACKAGE.glob("*.py")):
        found = third_party_imports(path)
        assert not found & OPTIONAL_PACKAGES, (path.name, found)
        assert found <= PROCESSOR_REQUIREMENTS | TRANSFORMERS_DEPENDENCIES, (path.name, found)


def test_missing_optional_packages_give_clear_errors(monkeypatch):
    pytest.importorskip("lemminflect")  # imported first: it checks `"spacy" in sys.modules` on import
    monkeypatch.setitem(sys.modules, "spacy", None)  # `import spacy` raises ImportError
    monkeypatch.setattr(text_parser_spacy, "_SPACY_PIPELINES", {})
    monkeypatch.setattr(tsg, "_WARNED_FALLBACK", set())
    with pytest.raises(OSError, match="needs spaCy"):
        tsg.TextSceneGraphParser(backend="spacy").parse("a man is running")
    with pytest.warns(RuntimeWarning, match="falling back to the rule backend"):
        parser = tsg.TextSceneGraphParser(backend="auto")
        assert parser.backend == "rules"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tsg.TextSceneGraphParser(backend="rules")("a man is running").triplets() == [("man", "run", None)]
    monkeypatch.setitem(sys.modules, "lemminflect", None)
    with pytest.raises(ImportError, match="needs `lemminflect`"):
        RuleBackend()


LOAD_SCRIPT = """
import importlib.abc, json, os, sys

BLOCKED = ("spacy", "modeling_finsta")


class BlockImports(importlib.abc.MetaPathFinder):
    '''spaCy is not installed and the package is not importable: only the Hub's remote code runs.'''

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{fullname!r}}", name=fullname)
        return None


sys.meta_path.insert(0, BlockImports())
for name in BLOCKED:
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(name + " was importable")

from transformers import AutoProcessor

processor = AutoProcessor.from_pretrained({repo!r}, trust_remote_code=True)
batch = processor(text=["a man opens the fridge and takes out a bottle"])
graph = processor.parse_captions(["a man opens the fridge and takes out a bottle"])[0]
processor.save_pretrained({resaved!r})
with open(os.path.join({resaved!r}, "processor_config.json")) as handle:
    resaved_auto_map = json.load(handle)["auto_map"]
print(json.dumps({{
    "class": type(processor).__name__,
    "module": type(processor).__module__,
    "backend": processor.parser.backend,
    "keys": sorted(batch.keys()),
    "node_types": batch["text_scene_graph"]["node_types"].tolist(),
    "triplets": sorted(graph.triplets(), key=str),
    "blocked_loaded": sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED),
    "resaved_auto_map": resaved_auto_map,
    "resaved_files": sorted(name for name in os.listdir({resaved!r}) if name.endswith(".py")),
}}))
"""


def test_processor_loads_from_the_hub_as_remote_code_without_spacy(saved_processor, tmp_path):
    # A Hub repo holds the model's config.json next to the processor (AutoTokenizer reads it).
    repo = tmp_path / "repo"
    shutil.copytree(saved_processor, repo)
    tiny_finsta_config("clip").save_pretrained(repo)
    cache = tmp_path / "cache"
    lay_out_as_hub_cache(repo, cache, REPO_ID)
    script = textwrap.dedent(LOAD_SCRIPT).format(repo=REPO_ID, resaved=str(tmp_path / "resaved"))
    report = run_script(script, cache, tmp_path)
    assert report["class"] == "FinstaProcessor"
    assert report["module"].startswith("transformers_modules") and report["module"].endswith(".processing_finsta")
    assert report["backend"] == "rules"
    assert report["blocked_loaded"] == []
    assert "text_scene_graph" in report["keys"] and "input_ids" in report["keys"]
    # objects man, fridge, bottle (type 1) and predicates open, take out (type 3); 0 is padding
    assert sorted(kind for kind in report["node_types"][0] if kind) == [1, 1, 1, 3, 3]
    assert report["triplets"] == sorted([["man", "open", "fridge"], ["man", "take out", "bottle"]], key=str)
    # Saved again from the remote code, the processor still names its own module and carries its files.
    assert report["resaved_auto_map"]["AutoProcessor"].endswith("processing_finsta.FinstaProcessor")
    assert set(report["resaved_files"]) == PROCESSOR_FILES
