"""Training: recipes, the Trainer loop, atomic checkpoints and resume, a Hub-ready output folder,
real-data loading, Accelerate configs, and a 2-process run whose gathered loss matches one process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoProcessor, TrainerCallback

from modeling_finsta.training import (
    STAGING_PREFIX,
    FinstaTrainer,
    RecipeError,
    TrainingRecipe,
    build_datasets,
    build_model_and_processor,
    last_complete_checkpoint,
    load_recipe,
    main,
    train,
    training_arguments,
)

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

# A few-second version of synthetic-tiny.
TINY = [
    "model.tiny.vision_hidden_size=32", "model.tiny.text_hidden_size=32", "model.tiny.projection_dim=32",
    "model.tiny.num_hidden_layers=1", "model.finsta.graph_hidden_size=32", "data.finsta_synth.num_train=16",
    "data.finsta_synth.num_test=4", "data.num_frames=4", "training.per_device_batch_size=4",
    "training.logging_steps=1", "training.save_total_limit=null",
]  # fmt: skip


def tiny_recipe(*overrides: str) -> TrainingRecipe:
    return load_recipe("synthetic-tiny", [*TINY, *overrides])


def parameters(model) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


# ---------------------------------------------------------------------------------------- recipes


def test_both_recipes_load_and_overrides_apply():
    tiny = load_recipe("synthetic-tiny")
    assert tiny.name == "synthetic-tiny" and tiny.model.backbone == "tiny-clip"
    assert tiny.data.source == "finsta-synth" and tiny.data.dsg == "annotated" and tiny.data.hard_negatives
    assert tiny.peft is None and tiny.training.max_steps > 0

    real = load_recipe(REPO / "configuration" / "recipes" / "clip4clip-vit-b-32-msrvtt.yaml")
    assert real.model.backbone == "openai/clip-vit-base-patch32"
    assert real.model.finsta["temporal_head"] == "seqTransf"
    assert (real.data.source, real.data.split, real.data.num_frames, real.data.max_length) == ("msrvtt", "train-9k", 12, 32)
    assert real.training.backbone_learning_rate == 1e-7 and real.training.learning_rate == 1e-4
    assert real.training.bf16 is True

    changed = load_recipe(
        "synthetic-tiny",
        ["training.max_steps=50", "model.finsta.temporal_head=seqTransf", "peft.r=4", "training.learning_rate=1e-2"],
    )
    assert changed.training.max_steps == 50 and changed.model.finsta["temporal_head"] == "seqTransf"
    assert changed.peft.r == 4 and changed.peft.lora_alpha == 16
    assert changed.training.learning_rate == 0.01 and isinstance(changed.training.learning_rate, float)
    arguments = training_arguments(changed, "/tmp/unused")
    assert arguments.max_steps == 50 and arguments.remove_unused_columns is False and arguments.report_to == []


def test_recipe_errors_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("training:\n  max_step: 5\n")
    with pytest.raises(RecipeError, match=r"broken\.yaml: unknown key 'training\.max_step'; did you mean 'max_steps'"):
        load_recipe(path)
    path.write_text("model:\n  finsta:\n    temporal_haed: seqTransf\n")
    with pytest.raises(RecipeError, match=r"broken\.yaml: 'model\.finsta\.temporal_haed' .*did you mean 'temporal_head'"):
        load_recipe(path)
    path.write_text("data:\n  source: kinetics\n")
    with pytest.raises(RecipeError, match=r"'data\.source' must be one of"):
        load_recipe(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(path)
    with pytest.raises(RecipeError, match=r"with --set overrides\): 'training\.max_steps': expected int, got str"):
        load_recipe("synthetic-tiny", ["training.max_steps=many"])
    with pytest.raises(RecipeError, match=r"'training\.bf16': expected bool"):
        load_recipe("synthetic-tiny", ["training.bf16=3"])
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe("synthetic-tiny", ["training.max_steps"])
    with pytest.raises(RecipeError, match=r"'data\.finsta_synth\.num_clips' is not a known option"):
        load_recipe("synthetic-tiny", ["data.finsta_synth.num_clips=3"])
    with pytest.raises(RecipeError, match=r"'training\.trainer_arguments\.no_such_field' is not a transformers"):
        load_recipe("synthetic-tiny", ["training.trainer_arguments.no_such_field=1"])
    with pytest.raises(FileNotFoundError, match="no recipe named 'nonexistent'.*synthetic-tiny"):
        load_recipe("nonexistent")
    real = load_recipe("clip4clip-vit-b-32-msrvtt")
    with pytest.raises(RecipeError, match=r"'data\.root' is required"):
        build_datasets(real, processor=None)
    assert main(["--recipe", "synthetic-tiny", "--output-dir", str(tmp_path / "x"), "--set", "training.max_stepz=1"]) == 2


# ---------------------------------------------------------------------------------------- training


def test_two_step_run_writes_a_hub_ready_folder(tmp_path):
    output = tmp_path / "run"
    overrides = [*TINY, "training.max_steps=2", "training.save_steps=1"]
    assert main(["--recipe", "synthetic-tiny", "--output-dir", str(output), *sum((["--set", o] for o in overrides), [])]) == 0

    for name in ("model.safetensors", "config.json", "modeling_finsta.py", "processor_config.json", "tokenizer.json"):
        assert (output / name).is_file(), name
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["global_step"] == 2 and summary["recipe"]["training"]["max_steps"] == 2
    assert summary["train_examples"] == 16 and summary["metrics"]["train_loss"] > 0
    assert sorted(p.name for p in output.iterdir() if p.name.startswith("checkpoint-")) == ["checkpoint-1", "checkpoint-2"]
    assert not [p for p in output.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert json.loads((output / "config.json").read_text())["auto_map"]["AutoModel"].endswith("FinstaModel")

    loaded = AutoModel.from_pretrained(output, trust_remote_code=True).eval()
    assert type(loaded).__name__ == "FinstaModel"  # the package registers itself; remote code loads the copies
    processor = AutoProcessor.from_pretrained(output, trust_remote_code=True)
    assert processor.num_frames == 4 and processor.max_length == 64

    # The saved weights are the trained ones (those of the last checkpoint, not a fresh build's),
    # and the saved processor is the recipe's.
    from safetensors.torch import load_file

    recipe = tiny_recipe()
    fresh, fresh_processor = build_model_and_processor(recipe)
    state = loaded.state_dict()
    last = load_file(output / "checkpoint-2" / "model.safetensors")
    assert all(torch.equal(state[name], value) for name, value in last.items())
    assert any(not torch.equal(state[name], value) for name, value in fresh.state_dict().items())
    caption = "the red circle moves left, then the blue square moves towards the red circle"
    assert processor.tokenizer(caption)["input_ids"] == fresh_processor.tokenizer(caption)["input_ids"]
    example = build_datasets(recipe, fresh_processor)["test"][0]
    batch = {k: v.unsqueeze(0) for k, v in example.items() if isinstance(v, torch.Tensor)}
    with torch.no_grad():
        text = loaded.get_text_features(batch["input_ids"], batch["attention_mask"]).pooler_output
        video = loaded.get_video_features(batch["pixel_values"], batch["video_mask"]).pooler_output
    assert text.shape == video.shape == (1, 32) and torch.isfinite(text).all() and torch.isfinite(video).all()


class Interrupt(Exception):
    pass


class InterruptAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupt(f"killed at step {state.global_step}")


def test_resume_after_an_interrupted_run_matches_an_uninterrupted_one(tmp_path):
    recipe = tiny_recipe("training.max_steps=6", "training.save_steps=2")
    model, processor = build_model_and_processor(recipe)
    dataset = build_datasets(recipe, processor)["train"]

    def fresh_model():
        return build_model_and_processor(recipe)[0]

    straight = train(recipe, tmp_path / "straight", train_dataset=dataset, model=model, processor=processor)
    assert straight.global_step == 6 and straight.resumed_from is None

    run = tmp_path / "interrupted"
    with pytest.raises(Interrupt):
        train(recipe, run, train_dataset=dataset, model=fresh_model(), processor=processor, callbacks=[InterruptAt(3)])
    assert (run / "checkpoint-2" / "trainer_state.json").is_file() and not (run / "checkpoint-4").exists()
    # A save killed half-way (staging folder) and a half-written checkpoint-5 from a non-atomic writer.
    staged = run / f"{STAGING_PREFIX}checkpoint-4" / "checkpoint-4"
    staged.mkdir(parents=True)
    (staged / "model.safetensors").write_bytes(b"truncated")
    (run / "checkpoint-5").mkdir()
    (run / "checkpoint-5" / "model.safetensors").write_bytes(b"truncated")
    assert last_complete_checkpoint(run) == run / "checkpoint-2"

    resumed = train(recipe, run, resume=True, train_dataset=dataset, model=fresh_model(), processor=processor)
    assert resumed.resumed_from == run / "checkpoint-2"
    assert resumed.global_step == straight.global_step == 6
    assert [entry["step"] for entry in resumed.log_history if "loss" in entry] == [1, 2, 3, 4, 5, 6]
    assert not (run / f"{STAGING_PREFIX}checkpoint-4").exists()
    assert (run / "checkpoint-4" / "trainer_state.json").is_file() and (run / "checkpoint-6" / "trainer_state.json").is_file()
    assert json.loads((run / "training_summary.json").read_text())["resumed_from"] == "checkpoint-2"

    # Same data order, RNG and optimiser state: the resumed run ends where the straight one did.
    def losses(result):
        return [entry["loss"] for entry in result.log_history if "loss" in entry]

    assert losses(resumed) == pytest.approx(losses(straight), rel=1e-4)
    # The mean train loss covers the whole run, not only the resumed part.
    assert resumed.metrics["train_loss"] == pytest.approx(straight.metrics["train_loss"], rel=1e-4)
    want, got = parameters(straight.model), parameters(resumed.model)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=1e-4, msg=name)
    # resume=True on an empty folder starts from step 0
    assert last_complete_checkpoint(tmp_path / "nothing-here") is None


def test_resume_with_a_broken_checkpoint_never_loses_the_good_ones(tmp_path, capsys):
    """A broken checkpoint-7 (and its stale staging folder) must not count towards save_total_limit=2."""
    recipe = tiny_recipe("training.max_steps=8", "training.save_steps=2", "training.save_total_limit=2")
    model, processor = build_model_and_processor(recipe)
    dataset = build_datasets(recipe, processor)["train"]
    run = tmp_path / "run"
    with pytest.raises(Interrupt):
        train(recipe, run, train_dataset=dataset, model=model, processor=processor, callbacks=[InterruptAt(5)])
    (run / "checkpoint-7").mkdir()
    (run / "checkpoint-7" / "model.safetensors").write_bytes(b"truncated")
    (run / f"{STAGING_PREFIX}checkpoint-7").mkdir()

    complete_seen = {}

    class CountGoodCheckpoints(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            complete_seen[state.global_step] = [p.name for p in run.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]

    fresh = build_model_and_processor(recipe)[0]
    capsys.readouterr()
    resumed = train(recipe, run, resume=True, train_dataset=dataset, model=fresh, processor=processor, callbacks=[CountGoodCheckpoints()])
    assert "resuming from" in capsys.readouterr().out and resumed.resumed_from == run / "checkpoint-4"
    assert len(complete_seen[7]) == 2  # after saving checkpoint-6: checkpoint-4 and -6, the broken 7 not counted
    names = sorted(p.name for p in run.iterdir() if "checkpoint" in p.name)
    assert names == ["checkpoint-6", "checkpoint-8"]  # broken 7 and its staging folder cleaned up after 8 exists


def test_rotation_counts_only_complete_checkpoints(tmp_path):
    from modeling_finsta.training import rotate_checkpoints

    def checkpoint(step, complete=True):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")

    checkpoint(2), checkpoint(4), checkpoint(5, complete=False)
    (tmp_path / f"{STAGING_PREFIX}checkpoint-3").mkdir()
    (tmp_path / f"{STAGING_PREFIX}checkpoint-5").mkdir()
    rotate_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["checkpoint-2", "checkpoint-4", "checkpoint-5", f"{STAGING_PREFIX}checkpoint-5"]
    )  # the broken 5 is newer than every good one: kept for now; the stale staging 3 is gone
    checkpoint(6)
    rotate_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-6"]


def test_training_on_nan_stops_with_a_message(tmp_path, capsys):
    from modeling_finsta.training import TrainingDivergedError

    recipe = tiny_recipe("training.max_steps=3", "training.save_steps=null")
    model, processor = build_model_and_processor(recipe)
    dataset = build_datasets(recipe, processor)["train"]
    for index in range(len(dataset)):  # one bad pixel in every clip: the first batch already has it
        poisoned = dict(dataset[index])
        poisoned["pixel_values"] = poisoned["pixel_values"].clone()
        poisoned["pixel_values"][0, 0, 0, 0] = float("nan")
        dataset.examples[index] = poisoned
    with pytest.raises(TrainingDivergedError, match=r"training stopped at step \d+: pixel_values contains NaN"):
        train(recipe, tmp_path / "run", train_dataset=dataset, model=model, processor=processor)


def test_a_save_killed_half_way_leaves_no_checkpoint_behind(tmp_path, monkeypatch):
    def killed(self, output_dir):
        raise Interrupt("killed while writing the RNG state, after the weights and optimizer")

    monkeypatch.setattr(FinstaTrainer, "_save_rng_state", killed)
    run = tmp_path / "run"
    with pytest.raises(Interrupt):
        train(tiny_recipe("training.max_steps=2", "training.save_steps=2"), run)
    assert not (run / "checkpoint-2").exists()  # the stock Trainer would leave a half-written one here
    assert (run / f"{STAGING_PREFIX}checkpoint-2" / "checkpoint-2" / "model.safetensors").is_file()
    assert last_complete_checkpoint(run) is None


def test_lora_run_saves_a_merged_plain_model_and_the_adapter(tmp_path):
    from safetensors.torch import load_file

    result = train(tiny_recipe("training.max_steps=1", "training.save_steps=1", "peft.r=4"), tmp_path / "run")
    assert type(result.model).__name__ == "FinstaModel" and not hasattr(result.model, "peft_config")
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert not any("lora_" in name or "modules_to_save" in name for name in saved)
    loaded = AutoModel.from_pretrained(tmp_path / "run", trust_remote_code=True)
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, msg=name)


def test_backbone_learning_rate_gives_the_backbone_its_own_parameter_group(tmp_path):
    recipe = tiny_recipe("training.backbone_learning_rate=1e-7", "training.learning_rate=1e-3")
    model, processor = build_model_and_processor(recipe)
    trainer = FinstaTrainer(
        model=model, args=training_arguments(recipe, tmp_path), train_dataset=[{}],
        backbone_learning_rate=recipe.training.backbone_learning_rate,
    )  # fmt: skip
    optimizer = trainer.create_optimizer()
    rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    for name, parameter in model.named_parameters():
        expected = 1e-7 if name.startswith("backbone.") else 1e-3
        assert rate_of[id(parameter)] == expected, name
    assert {group["weight_decay"] for group in optimizer.param_groups} == {0.0, 0.01}


def test_real_dataset_folder_trains_lazily_with_annotated_scene_graphs(tmp_path):
    from modeling_finsta.synth import FinstaSynthConfig, export_finsta_synth, generate_finsta_synth

    root = export_finsta_synth(
        generate_finsta_synth(FinstaSynthConfig(num_train=4, num_test=2, num_frames=4)), tmp_path / "msrvtt", progress=False
    )
    recipe = tiny_recipe(
        "data.source=msrvtt", f"data.root={root}", "data.eval_split=test", "data.hard_negatives=false",
        "training.max_steps=2", "training.eval_steps=2", "training.save_steps=null", "training.per_device_batch_size=2",
    )  # fmt: skip
    model, processor = build_model_and_processor(recipe)
    datasets = build_datasets(recipe, processor)
    assert type(datasets["train"]).__name__ == "LazyRetrievalDataset"
    assert (len(datasets["train"]), len(datasets["test"])) == (4, 2)
    example = datasets["train"][0]
    assert example["pixel_values"].shape == (4, 3, 32, 32)
    assert example["video_scene_graph"]["node_mask"].any() and example["text_scene_graph"]["node_types"].gt(0).any()
    result = train(recipe, tmp_path / "run", model=model, processor=processor)
    assert result.global_step == 2 and any("eval_loss" in entry for entry in result.log_history)
    assert not any(p.name.startswith("checkpoint-") for p in (tmp_path / "run").iterdir())
    recipe.data.dsg = "annotated"
    (root / "scene_graphs").rename(root / "moved")
    with pytest.raises(FileNotFoundError, match="no scene_graphs/ folder"):
        build_datasets(recipe, processor)


# ---------------------------------------------------------------------------------------- accelerate


def test_accelerate_configs_load_with_the_intended_fields():
    """Loaded with accelerate's own config loader. DeepSpeed is not installed here: its JSON is checked
    for structure (with accelerate's DeepSpeed config reader), not run."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType
    from accelerate.utils.deepspeed import HfDeepSpeedConfig

    folder = REPO / "configuration" / "accelerate"
    ddp = load_config_from_file(str(folder / "ddp.yaml"))
    assert ddp.distributed_type == DistributedType.MULTI_GPU and ddp.num_processes > 1 and not ddp.use_cpu

    fsdp = load_config_from_file(str(folder / "fsdp2.yaml"))
    assert fsdp.distributed_type == DistributedType.FSDP
    assert fsdp.fsdp_config["fsdp_version"] == 2
    assert fsdp.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"

    zero2 = load_config_from_file(str(folder / "deepspeed_zero2.yaml"))
    assert zero2.distributed_type == DistributedType.DEEPSPEED
    json_path = REPO / zero2.deepspeed_config["deepspeed_config_file"]
    settings = json.loads(json_path.read_text())
    assert settings["zero_optimization"]["stage"] == 2 and "optimizer" not in settings  # Trainer's optimizer, our param groups
    deepspeed = HfDeepSpeedConfig(str(json_path))
    assert deepspeed.is_zero2() and not deepspeed.is_zero3() and not deepspeed.is_offload()
    assert all(not key.startswith("fsdp") for key in zero2.deepspeed_config)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_gather_the_same_loss_and_gradient_as_one(tmp_path):
    """accelerate launch with 2 CPU processes (gloo). accelerate 1.15's `--cpu --num_processes 2` runs
    a single process, so the multi-process launcher is used with the CPU forced through the environment."""
    report = tmp_path / "report.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", ACCELERATE_USE_CPU="true", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), str(TESTS / "distributed_contrastive_check.py"),
        "--report", str(report), "--output-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr[-4000:]
    numbers = json.loads(report.read_text())
    assert numbers["world_size"] == 2 and numbers["backend"] == "gloo"
    assert numbers["rank_losses"][0] != pytest.approx(numbers["rank_losses"][1])  # the ranks saw different rows
    assert numbers["mean_rank_loss"] == pytest.approx(numbers["reference_loss"], rel=1e-5, abs=1e-6)
    assert numbers["gradient_max_magnitude"] > 1e-4
    assert numbers["gradient_max_difference"] < 1e-5 * max(1.0, numbers["gradient_max_magnitude"]) + 1e-6
    # train() itself under the same launch: 2 ranks, checkpoint published with both ranks' RNG states
    assert numbers["global_step"] == 2 and numbers["train_world_size"] == 2
    assert {"rng_state_0.pth", "rng_state_1.pth", "trainer_state.json"} <= set(numbers["checkpoint_files"])
    assert "model.safetensors" in numbers["output_files"] and not any(
        name.startswith(STAGING_PREFIX) for name in numbers["output_files"]
    )


def test_freeze_host_callback_freezes_only_the_host_and_restores_what_was_trainable():
    from types import SimpleNamespace

    from modeling_finsta import FinstaModel
    from modeling_finsta.training.trainer import FreezeHostCallback
    from tiny_models import tiny_finsta_config

    model = FinstaModel(tiny_finsta_config())
    model.backbone.text_model.embeddings.token_embedding.weight.requires_grad_(False)  # frozen by the user
    callback = FreezeHostCallback(steps=2)
    host = lambda: [p.requires_grad for p in model.backbone.parameters()]  # noqa: E731
    before = host()
    callback.on_step_begin(None, SimpleNamespace(global_step=0), None, model=model)
    assert not any(host()) and all(p.requires_grad for p in model.graph_encoder.parameters())
    callback.on_step_begin(None, SimpleNamespace(global_step=1), None, model=model)
    assert not any(host())
    callback.on_step_begin(None, SimpleNamespace(global_step=2), None, model=model)
    assert host() == before
    callback.on_train_end(None, SimpleNamespace(global_step=3), None, model=model)
    assert host() == before and not model.backbone.text_model.embeddings.token_embedding.weight.requires_grad
