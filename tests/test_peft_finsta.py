"""LoRA on the Finsta backbone: targets scoped to the backbone, head trained via modules_to_save,
adapter save/load, merge_and_unload back to a plain FinstaModel, and a short Trainer run."""

import pytest
import torch
from peft import PeftModel
from peft.utils.other import ModulesToSaveWrapper
from tiny_models import example_inputs, tiny_finsta_config
from transformers import Trainer, TrainingArguments

from modeling_finsta import FinstaModel
from modeling_finsta.training import backbone_lora_target_regex, finsta_lora_config, get_finsta_peft_model


def _stack(values):
    if isinstance(values[0], dict):
        return {key: _stack([value[key] for value in values]) for key in values[0]}
    return torch.stack(values)


def collate(examples):
    batch = {key: _stack([example[key] for example in examples]) for key in examples[0]}
    batch["return_loss"] = True
    return batch


def split_examples(inputs):
    """A batch dict -> a list of per-example dicts (nested scene-graph dicts included)."""
    size = inputs["input_ids"].shape[0]

    def pick(value, index):
        return {k: pick(v, index) for k, v in value.items()} if isinstance(value, dict) else value[index]

    return [pick(inputs, index) for index in range(size)]


@pytest.fixture()
def base_folder(tmp_path):
    torch.manual_seed(0)
    model = FinstaModel(tiny_finsta_config("clip", temporal_head="seqTransf"))
    model.save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def outputs(model, inputs):
    model.eval()
    with torch.no_grad():
        out = model(**inputs)
    return out.text_embeds, out.video_embeds


def test_lora_targets_only_the_backbone_and_head_is_fully_trained(base_folder):
    model = FinstaModel.from_pretrained(base_folder)
    peft_model = get_finsta_peft_model(model)
    wrapped = [name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")]
    assert wrapped and all(".backbone." in name for name in wrapped)
    assert any("text_model" in name for name in wrapped) and any("vision_model" in name for name in wrapped)
    assert {name.rsplit(".", 1)[-1] for name in wrapped} == {"q_proj", "v_proj"}
    # the graph layers and the seqTransf header have q_proj/v_proj too; none is wrapped
    assert any(n.endswith("q_proj") for n, _ in model.named_modules() if "temporal_encoder" in n)
    inner = peft_model.base_model.model
    assert isinstance(inner.graph_encoder, ModulesToSaveWrapper) and isinstance(inner.host_adapter, ModulesToSaveWrapper)
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert all("lora_" in name or ".modules_to_save." in name for name in trainable)
    assert any("graph_encoder.modules_to_save" in name for name in trainable)
    assert any("host_adapter.modules_to_save" in name for name in trainable)
    # a naive list target would also wrap the head's layers: the regex is what prevents it
    assert backbone_lora_target_regex() == r"backbone\..*\.(q_proj|v_proj)"
    meanp = finsta_lora_config(tiny_finsta_config("xclip"))
    assert meanp.modules_to_save == ["graph_encoder"]
    with pytest.raises(ValueError, match="plain module name"):
        backbone_lora_target_regex(["q_proj|.*"])


def test_trainer_run_save_load_and_merge(base_folder, tmp_path):
    inputs = example_inputs(batch=4, seed=1)
    dataset = split_examples(inputs)
    peft_model = get_finsta_peft_model(FinstaModel.from_pretrained(base_folder), r=4)
    inner = peft_model.base_model.model
    head_before = inner.graph_encoder.original_module.text_node_proj.weight.clone()
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2, learning_rate=5e-2,
        report_to=[], remove_unused_columns=False, save_strategy="no", use_cpu=True, logging_steps=1,
        dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(model=peft_model, args=args, train_dataset=dataset, data_collator=collate)
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b), "LoRA B starts at zero and must have been trained"
    trained_head = inner.graph_encoder.modules_to_save["default"].text_node_proj.weight
    assert not torch.equal(trained_head, head_before)
    assert torch.equal(inner.graph_encoder.original_module.text_node_proj.weight, head_before)

    expected = outputs(peft_model, inputs)
    peft_model.save_pretrained(tmp_path / "adapter")
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert any("graph_encoder" in key for key in saved) and any("lora_A" in key for key in saved)
    assert not any(key.startswith("base_model.model.backbone") and "lora" not in key for key in saved)

    reloaded = PeftModel.from_pretrained(FinstaModel.from_pretrained(base_folder), tmp_path / "adapter")
    for got, want in zip(outputs(reloaded, inputs), expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)

    merged = reloaded.merge_and_unload()
    assert type(merged) is FinstaModel
    assert not any(hasattr(module, "lora_A") or isinstance(module, ModulesToSaveWrapper) for module in merged.modules())
    for got, want in zip(outputs(merged, inputs), expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    plain = FinstaModel.from_pretrained(tmp_path / "merged")
    for got, want in zip(outputs(plain, inputs), expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
