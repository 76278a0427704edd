"""Publishing through a fake HfApi (exact uploaded files, private, branch, PR, code repo) and model
cards rendered from model_cards/ that parse back with ModelCard.load."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from tiny_models import tiny_clip_tokenizer, tiny_finsta_config

from modeling_finsta import FinstaModel
from modeling_finsta.hub import (
    PublishError,
    load_card_data,
    publish_folder,
    publish_main,
    render_model_card,
    write_converted_folder,
)

CARDS = Path(__file__).resolve().parent.parent / "model_cards"
CARD_NAMES = ["finsta-clip4clip-vit-b-32-meanP", "finsta-clip4clip-vit-b-32-seqTransf", "finsta-xclip-base-patch32"]
CODE_FILES = [
    "backbone_adapters.py", "configuration_finsta.py", "graph_encoder.py", "graph_layers.py",
    "latent_scene_graph.py", "losses.py", "modeling_finsta.py", "scene_graphs.py",
]  # fmt: skip


class FakeHfApi:
    """Records calls instead of talking to the Hub."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        files = {op.path_in_repo: _read(op.path_or_fileobj) for op in operations}
        self.calls.append(("create_commit", repo_id, {**kwargs, "files": files}))
        return type("CommitInfo", (), {"commit_url": "https://hub/fake/commit", "pr_url": None})()

    def commit(self):
        return next(call for call in self.calls if call[0] == "create_commit")


def _read(value):
    return value if isinstance(value, bytes) else Path(value).read_bytes()


@pytest.fixture(scope="module")
def card():
    return render_model_card(
        load_card_data(CARDS / f"{CARD_NAMES[0]}.yaml"),
        CARDS / "template.md",
        repo_id="org/finsta-test",
        provenance={"source": "openai/clip-vit-base-patch32", "converter": "finsta-transformers test"},
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory, card):
    folder = tmp_path_factory.mktemp("converted")
    torch.manual_seed(0)
    model = FinstaModel(tiny_finsta_config("clip"))
    write_converted_folder(model, folder, tokenizer=tiny_clip_tokenizer(), model_card=card)
    return folder


def expected_files(folder, with_code=True):
    names = ["README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    names += sorted(p.name for p in folder.iterdir() if p.suffix == ".py") if with_code else []
    return sorted(names)


def test_publish_uploads_exactly_the_model_files(folder, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    for path in folder.iterdir():
        (extra / path.name).write_bytes(path.read_bytes())
    (extra / "trainer_state.json").write_text("{}")
    (extra / "checkpoint-10").mkdir()
    (extra / "checkpoint-10" / "model.safetensors").write_bytes(b"x")
    api = FakeHfApi()
    messages = []
    publish_folder(extra, "org/finsta-test", api, progress=messages.append)
    assert [call[0] for call in api.calls] == ["create_repo", "create_commit"]
    assert api.calls[0][2]["private"] is False and api.calls[0][2]["exist_ok"] is True
    commit = api.commit()[2]
    assert sorted(commit["files"]) == expected_files(folder)
    assert set(CODE_FILES) <= set(commit["files"])
    assert commit["revision"] is None and commit["create_pr"] is False
    assert commit["files"]["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert any("trainer_state.json" in message for message in messages)


def test_private_branch_and_pull_request(folder):
    api = FakeHfApi()
    assert publish_main([str(folder), "org/finsta-test", "--private", "--revision", "v1"], api=api) == 0
    assert [call[0] for call in api.calls] == ["create_repo", "create_branch", "create_commit"]
    assert api.calls[0][2]["private"] is True
    assert api.calls[1][2]["branch"] == "v1"
    assert api.commit()[2]["revision"] == "v1" and api.commit()[2]["create_pr"] is False

    api = FakeHfApi()
    publish_folder(folder, "org/finsta-test", api, revision="v1", create_pr=True)
    assert [call[0] for call in api.calls] == ["create_repo", "create_commit"]
    assert api.commit()[2]["create_pr"] is True and api.commit()[2]["revision"] == "v1"


def test_code_repo_option_points_auto_map_and_leaves_code_out(folder):
    api = FakeHfApi()
    publish_folder(folder, "org/finsta-weights", api, code_repo="org/finsta-code")
    files = api.commit()[2]["files"]
    assert sorted(files) == expected_files(folder, with_code=False)
    auto_map = json.loads(files["config.json"])["auto_map"]
    assert auto_map == {
        "AutoConfig": "org/finsta-code--configuration_finsta.FinstaConfig",
        "AutoModel": "org/finsta-code--modeling_finsta.FinstaModel",
    }
    assert json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"] == "modeling_finsta.FinstaModel"


def test_unpublishable_folders_are_refused_clearly(folder, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in folder.iterdir():
        if path.name not in ("README.md", "graph_layers.py"):
            (broken / path.name).write_bytes(path.read_bytes())
    with pytest.raises(PublishError, match=r"missing \['README.md'\]"):
        publish_folder(broken, "org/x", FakeHfApi())
    (broken / "README.md").write_text("card")
    (broken / "modeling_finsta.py").unlink()
    with pytest.raises(PublishError, match="auto_map names.*modeling_finsta.py"):
        publish_folder(broken, "org/x", FakeHfApi())
    (broken / "modeling_finsta.py").write_text("")
    (broken / "training_args.bin").write_bytes(b"pickle")
    with pytest.raises(PublishError, match="pickle"):
        publish_folder(broken, "org/x", FakeHfApi())
    with pytest.raises(PublishError, match="org/name"):
        publish_folder(folder, "not a repo id", FakeHfApi())
    api = FakeHfApi()
    assert publish_main([str(broken), "org/x"], api=api) == 2 and api.calls == []


@pytest.mark.parametrize("name", CARD_NAMES)
def test_model_cards_render_and_parse_back(name, tmp_path):
    data = load_card_data(CARDS / f"{name}.yaml")
    card = render_model_card(data, CARDS / "template.md", provenance={"source": "src", "converter": "v0"})
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    meta = loaded.data.to_dict()
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "feature-extraction"
    assert meta["base_model"] == data["base_model"] and meta["license"] == data["license"]
    assert "finsta" in meta["tags"] and "model-index" not in meta
    for section in ("## Provenance", "## Preprocessing", "## How to use", "## Training recipe", "## Results",
                    "## Limitations", "## Citation"):  # fmt: skip
        assert section in loaded.text, section
    assert "No retrieval numbers have been measured" in loaded.text
    assert "fei2024finsta" in loaded.text and data["backbone_citation"].split("{")[1].split(",")[0] in loaded.text
    assert str(data["preprocessing"]["image_mean"]) in loaded.text
    assert "trust_remote_code=True" in loaded.text and f"\"{data['repo_id']}\"" in loaded.text


def test_model_index_only_from_measured_results(tmp_path):
    data = load_card_data(CARDS / f"{CARD_NAMES[0]}.yaml")
    data["results"] = [
        {"dataset_type": "msrvtt", "dataset_name": "MSR-VTT 1k-A", "dataset_split": "test",
         "metric_type": "recall@1", "metric_value": 12.5, "source": "benchmarks/retrieval.py run 2026-11-01"},
    ]  # fmt: skip
    card = render_model_card(data, CARDS / "template.md", preprocessing_overrides={"num_frames": 8})
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    (result,) = loaded.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_split) == ("recall@1", 12.5, "test")
    assert "- num frames: `8`" in loaded.text and "No retrieval numbers" not in loaded.text
    data["results"][0].pop("source")
    with pytest.raises(ValueError, match="only measured numbers"):
        render_model_card(data, CARDS / "template.md")
    with pytest.raises(ValueError, match="missing model card field"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("model_name: x\n")
        load_card_data(bad)
