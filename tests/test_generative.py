"""FinstaForConditionalGeneration around tiny random Video-LLaVA, Qwen2-VL and Qwen2.5-VL hosts: shapes and
losses, what trains, plain-host loading, a fresh head leaves generation unchanged, Qwen token reordering,
multiple-choice scoring, the processor and bad input."""

import math

import pytest
import torch
from transformers import AutoModelForImageTextToText

from modeling_finsta import FinstaForConditionalGeneration, FinstaGenerationConfig, GENERATIVE_LOSS_COMPONENTS
from modeling_finsta.generative_adapters import Qwen2VLAdapter
from modeling_finsta.graph_encoder import INITIAL_LOGIT_SCALE
from modeling_finsta.processing_finsta_generation import FinstaGenerationProcessor, qwen_patchify
from modeling_finsta.synth import FinstaSynthConfig
from modeling_finsta.synth import generate_generative_finsta_synth, generative_vocabulary
from modeling_finsta.training import tiny_video_llm_config, video_llm_tokenizer

FAMILIES = ("video_llava", "qwen2_vl", "qwen2_5_vl")
GENERATIVE_MODEL_FILES = {
    "modeling_finsta_generation.py",
    "configuration_finsta_generation.py",
    "generative_adapters.py",
    "configuration_finsta.py",
    "graph_encoder.py",
    "graph_layers.py",
    "attention.py",
    "latent_scene_graph.py",
    "losses.py",
    "finite_checks.py",
    "scene_graphs.py",
}
GENERATIVE_PROCESSOR_FILES = {
    "processing_finsta_generation.py",
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
PROMPT = "{video} question: {question} answer:"
HEAD = dict(graph_hidden_size=32, graph_num_heads=4, text_graph_num_layers=1, video_graph_num_layers=2, num_latent_slots=4)


@pytest.fixture(scope="module")
def synth():
    data = generate_generative_finsta_synth(FinstaSynthConfig(objects_per_clip=3, num_frames=4, num_train=8, num_test=6))
    tokenizer = video_llm_tokenizer(generative_vocabulary(data) + ["question", "answer", ":"])
    return data, tokenizer


def build(family, tokenizer, seed=0, vision_layers=1, **overrides):
    host = tiny_video_llm_config(
        family, tokenizer, patch_size=8 if family == "video_llava" else 4, text_layers=1, vision_layers=vision_layers
    )
    torch.manual_seed(seed)
    model = FinstaForConditionalGeneration(FinstaGenerationConfig(backbone_config=host, **{**HEAD, **overrides}))
    processor = FinstaGenerationProcessor.from_host_config(tokenizer, host, num_frames=4, image_size=32, prompt_template=PROMPT)
    return model.eval(), processor


def training_batch(data, processor, count=4, annotated=True):
    items = data.train_items[:count]
    samples = [data.train[item.video_index] for item in items]
    return dict(
        processor(
            questions=[i.question for i in items], videos=[s.frames for s in samples], answers=[i.answer for i in items],
            captions=[s.caption for s in samples], text_scene_graphs=[s.text_graph for s in samples],
            video_scene_graphs=[s.video_graph for s in samples] if annotated else None,
            negative_captions=[data.train_negatives.get(i.video_index, []) for i in items],
        )
    )  # fmt: skip


def host_inputs(batch):
    return {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw", "mm_token_type_ids") if k in batch}


# --------------------------------------------------------------------------- shapes and losses


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("annotated", [True, False], ids=["annotated-dsg", "latent-dsg"])
def test_training_forward_gives_every_finite_loss_and_token_shapes(synth, family, annotated):
    data, tokenizer = synth
    model, processor = build(family, tokenizer, fused_contrastive_loss_weight=0.5)  # every component on
    batch = training_batch(data, processor, annotated=annotated)
    model.train()
    out = model(**batch)
    for name in GENERATIVE_LOSS_COMPONENTS:
        value = getattr(out, name)
        assert value is not None and torch.isfinite(value), name
    assert torch.isfinite(out.loss)
    visual = out.visual_tokens
    steps = 4 // model.host_adapter.frames_per_step
    assert visual.shape[:2] == (4, steps) and visual.shape[-1] == model.config.text_config.hidden_size
    assert out.refined_visual_tokens.shape == visual.shape
    assert visual.shape[1] * visual.shape[2] == processor.num_video_tokens()
    assert out.logits.shape[:2] == batch["input_ids"].shape
    assert out.video_graph_boxes.shape[:2] == (4, steps)
    # A fresh head's residual is exactly zero, so both LM losses agree and nothing is distilled yet.
    assert torch.equal(out.refined_visual_tokens, visual)
    assert torch.allclose(out.lm_loss, out.fused_lm_loss) and out.distillation_loss.abs() < 1e-6


def test_fused_contrastive_loss_reads_the_fused_pass_and_trains_the_refiner(synth):
    data, tokenizer = synth
    model, processor = build("qwen2_vl", tokenizer, fused_contrastive_loss_weight=0.5)
    batch = training_batch(data, processor)
    model.train()
    out = model(**batch)
    # A fresh head leaves the refined tokens equal to the host's, so both passes give the same InfoNCE.
    assert torch.allclose(out.fused_contrastive_loss, out.contrastive_loss, atol=1e-6)
    weights = {f"{name}_weight": 0.0 for name in GENERATIVE_LOSS_COMPONENTS if name != "fused_contrastive_loss"}
    weights["fused_contrastive_loss_weight"] = 0.5
    model, _ = build("qwen2_vl", tokenizer, **weights)
    model.train()
    with torch.no_grad():  # a non-zero residual, so the refiner's input weights get a gradient too
        model.finsta_head.refiner.output.weight.normal_(std=0.02)
    out = model(**batch)
    assert out.loss is not None and torch.equal(out.loss, 0.5 * out.fused_contrastive_loss)
    out.loss.backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert {"finsta_head.refiner.output.weight", "finsta_head.refiner.norm.weight"} <= grads
    model, _ = build("qwen2_vl", tokenizer, fused_contrastive_loss_weight=0.0)
    model.train()
    assert model(**batch).fused_contrastive_loss is None


def test_gradients_reach_the_head_projector_and_llm_and_a_trained_head_changes_the_tokens(synth):
    data, tokenizer = synth
    model, processor = build("video_llava", tokenizer)
    batch = training_batch(data, processor)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(**batch).loss.backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert "finsta_head.refiner.output.weight" in grads
    assert any(n.startswith("finsta_head.graph_encoder.text_layers") for n in grads)
    assert any(n.startswith("finsta_head.graph_encoder.video_layers") for n in grads)
    assert any("multi_modal_projector" in n for n in grads)
    assert any("language_model.layers" in n for n in grads)
    optimizer.step()
    model.eval()
    with torch.no_grad():
        out = model(**host_inputs(batch))
    assert not torch.equal(out.refined_visual_tokens, out.visual_tokens)


def test_lora_under_trainer_trains_only_lora_projector_and_head(synth, tmp_path):
    from modeling_finsta.training import synth_examples, train_generative
    from modeling_finsta.training import get_generative_peft_model

    data, tokenizer = synth
    model, processor = build("qwen2_vl", tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    peft_model = get_generative_peft_model(model, r=4)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or "finsta_head" in n or ".merger." in n for n in trainable), sorted(trainable)[:10]
    assert any("lora_" in n and "language_model" in n for n in trainable)
    assert not any("lora_" in n and ("visual.blocks" in n or "graph_encoder" in n) for n in trainable)
    train_generative(peft_model, processor, synth_examples(data)[:8], str(tmp_path), max_steps=2, batch_size=4, learning_rate=1e-2, finsta=True)
    merged = peft_model.merge_and_unload()
    after = dict(merged.named_parameters())
    changed = {n for n, p in before.items() if not torch.equal(p, after[n].detach())}
    assert any(n.startswith("finsta_head.") for n in changed)
    assert any(".merger." in n for n in changed)
    assert any("language_model.layers" in n and "q_proj" in n for n in changed)  # merged LoRA
    assert not any("visual.blocks" in n or "embed_tokens" in n or "language_model.layers.0.mlp" in n for n in changed)


# -------------------------------------------------------------- host loading and generation


@pytest.mark.parametrize("family", ["video_llava", "qwen2_vl"])
def test_a_plain_host_folder_loads_with_only_the_head_initialised(synth, tmp_path, family):
    _, tokenizer = synth
    model, _ = build(family, tokenizer)
    host = model.backbone
    host.save_pretrained(tmp_path)
    loaded, info = FinstaForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True, **HEAD)
    assert isinstance(loaded.config, FinstaGenerationConfig) and loaded.config.backbone_type == family
    assert {key.split(".")[0] for key in info["missing_keys"]} == {"finsta_head"}
    assert not info["unexpected_keys"]
    for name, value in host.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[name], value), name
    assert loaded.finsta_head.graph_encoder.text_node_proj.weight.std() > 0
    assert torch.count_nonzero(loaded.finsta_head.refiner.output.weight) == 0
    assert math.isclose(loaded.finsta_head.contrastive_logit_scale.item(), INITIAL_LOGIT_SCALE, rel_tol=1e-6)


def test_config_less_load_refuses_a_host_without_a_generative_adapter(tmp_path):
    from transformers import CLIPConfig

    CLIPConfig().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'clip'.*wraps one of"):
        FinstaGenerationConfig.from_pretrained(tmp_path)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_fresh_head_generates_exactly_the_hosts_tokens_and_distilled_is_the_host(synth, family):
    data, tokenizer = synth
    model, processor = build(family, tokenizer, seed=3)
    items = data.test_items[:3]
    batch = host_inputs(processor(questions=[i.question for i in items], videos=[data.test[i.video_index].frames for i in items]))
    settings = dict(max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=None)
    with torch.no_grad():
        host = model.backbone.generate(**batch, **settings)
        fused = model.generate(**batch, **settings)
        beams_host = model.backbone.generate(**batch, num_beams=2, **settings)
        beams_fused = model.generate(**batch, num_beams=2, **settings)
        torch.nn.init.normal_(model.finsta_head.refiner.output.weight, std=1.0)  # a (very) trained head
        changed = model.generate(**batch, **settings)
        model.config.inference_mode = "distilled"
        distilled = model.generate(**batch, **settings)
    assert torch.equal(fused, host) and torch.equal(beams_fused, beams_host)
    assert not torch.equal(changed, host)
    assert torch.equal(distilled, host)


@pytest.mark.parametrize("family", ["video_llava", "qwen2_vl"])
def test_beam_search_repeats_each_videos_annotated_dsg_with_its_video(synth, family):
    data, tokenizer = synth
    model, processor = build(family, tokenizer, seed=6)
    torch.nn.init.normal_(model.finsta_head.refiner.output.weight, std=1.0)  # the DSG changes the tokens
    items = [next(i for i in data.test_items if i.video_index == v) for v in (0, 1)]  # two videos
    samples = [data.test[i.video_index] for i in items]
    settings = dict(max_new_tokens=4, do_sample=False, num_beams=2, pad_token_id=tokenizer.pad_token_id, eos_token_id=None,
                    output_scores=True, return_dict_in_generate=True)  # fmt: skip

    def inputs(chosen_items, chosen_samples):
        batch = processor(questions=[i.question for i in chosen_items], videos=[s.frames for s in chosen_samples],
                          video_scene_graphs=[s.video_graph for s in chosen_samples])  # fmt: skip
        return {**host_inputs(batch), "video_scene_graph": batch["video_scene_graph"]}

    with torch.no_grad():
        together = model.generate(**inputs(items, samples), **settings)
        alone = [model.generate(**inputs([item], [sample]), **settings) for item, sample in zip(items, samples)]
    for row, single in enumerate(alone):  # the new tokens (the batch pads the shorter prompt on the left) and their scores
        assert torch.equal(together.sequences[row, -4:], single.sequences[0, -4:])
        torch.testing.assert_close(together.sequences_scores[row], single.sequences_scores[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["fused", "distilled"])
def test_a_fresh_head_forward_gives_exactly_the_hosts_logits_and_lm_loss(synth, family, mode):
    data, tokenizer = synth
    model, processor = build(family, tokenizer, seed=4, inference_mode=mode)
    batch = training_batch(data, processor)
    inputs = {**host_inputs(batch), "labels": batch["labels"]}
    with torch.no_grad():
        host = model.backbone(**inputs)
        ours = model(**inputs)  # eval mode: the inference mode's pass only (Qwen's M-RoPE needs video_grid_thw)
    torch.testing.assert_close(ours.logits, host.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.loss, host.loss, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------ Qwen token order


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_patch_tokens_restore_to_row_major_and_re_merge_into_the_towers_output(synth, family):
    data, tokenizer = synth
    model, processor = build(family, tokenizer, vision_layers=2)
    adapter = model.host_adapter
    assert isinstance(adapter, Qwen2VLAdapter)
    if family == "qwen2_5_vl":  # a windowed block and a full-attention block, as in the real tower
        assert model.config.backbone_config.vision_config.fullatt_block_indexes == [1]
    # 1. Index round trip: the processor's layout, restored, is row-major (t, row, column) per video.
    videos, frames, size, patch = 2, 4, 32, 4
    grid = size // patch
    index = torch.arange(videos * frames * size * size, dtype=torch.float32).view(videos, frames, 1, size, size)
    flat = qwen_patchify(index.expand(-1, -1, 3, -1, -1).contiguous(), patch, 2, 2)
    first_pixel = flat["pixel_values_videos"][:, 0]  # channel 0, first frame of the tubelet, patch's top-left pixel
    if adapter._windowed:  # the tower emits blocks window by window
        first_pixel = first_pixel.view(-1, 4)[adapter._window_index(flat["video_grid_thw"])].reshape(-1)
    restored = adapter.restore_patch_order(first_pixel.unsqueeze(-1), flat["video_grid_thw"]).squeeze(-1)
    rows = torch.arange(grid).view(-1, 1) * patch * size
    columns = torch.arange(grid).view(1, -1) * patch
    steps = torch.arange(frames // 2).view(-1, 1) * 2 * size * size
    expected = (steps + (rows + columns).view(1, -1)).unsqueeze(0) + torch.arange(videos).view(-1, 1, 1) * frames * size * size
    assert torch.equal(restored, expected.float())
    # 2. The tower's real patch states, restored and re-merged, reproduce its own merged tokens.
    batch = processor(videos=[s.frames for s in data.test[:2]])
    with torch.no_grad():
        encoded = adapter.encode_video(model.backbone, {k: batch[k] for k in ("pixel_values_videos", "video_grid_thw")})
        merged = model.backbone.model.visual.merger(adapter.merge_restored_patches(encoded.patch_tokens, batch["video_grid_thw"]))
    assert encoded.patch_tokens.shape == (2, 2, grid * grid, adapter.vision_hidden_size)
    torch.testing.assert_close(merged.view_as(encoded.visual_tokens), encoded.visual_tokens, atol=1e-6, rtol=0)


# -------------------------------------------------------------------- multiple choice


def test_multiple_choice_scores_are_the_hand_computed_summed_log_likelihoods(synth):
    from modeling_finsta.evaluation import candidate_log_likelihoods

    data, tokenizer = synth
    model, processor = build("video_llava", tokenizer, seed=1)
    item = data.test_multiple_choice[0]
    video = data.test[item.video_index].frames
    scores = candidate_log_likelihoods(model, processor, "describe the video.", video, item.candidates)
    pixel_values = processor(videos=[video])["pixel_values_videos"]
    for k, candidate in enumerate(item.candidates):
        prompt = processor.prompt_ids("describe the video.")
        answer = processor.answer_ids(candidate)
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logits = model.backbone(input_ids=ids, pixel_values_videos=pixel_values).logits[0]
        expected = sum(torch.log_softmax(logits[len(prompt) + j - 1].double(), -1)[token].item() for j, token in enumerate(answer))
        assert math.isclose(scores[k].item(), expected, rel_tol=1e-4), (k, scores[k].item(), expected)
    host_scores = candidate_log_likelihoods(model.backbone, processor, "describe the video.", video, item.candidates)
    torch.testing.assert_close(host_scores, scores, atol=1e-4, rtol=0)


# ------------------------------------------------------------------ processor, bad input


def test_processor_expands_the_video_token_and_labels_only_the_answer(synth):
    data, tokenizer = synth
    _, processor = build("qwen2_vl", tokenizer)
    batch = processor(questions=["what colour is the circle?"] * 2, videos=[s.frames for s in data.test[:2]], answers=["red", "the blue square"])
    video = processor.video_token_id
    assert ((batch["input_ids"] == video).sum(-1) == processor.num_video_tokens()).all()
    assert torch.equal(batch["mm_token_type_ids"], (batch["input_ids"] == video).long() * 2)
    labelled = [tokenizer.decode(row[row != -100]) for row in batch["labels"]]
    assert [text.replace(tokenizer.eos_token, "").strip() for text in labelled] == ["red", "the blue square"]
    assert batch["attention_mask"][0, -1] == 0 and batch["attention_mask"][1, -1] == 1  # right padding for training
    prompts = processor(questions=["a", "what colour is the circle?"], videos=[s.frames for s in data.test[:2]])
    assert prompts["attention_mask"][0, 0] == 0 and prompts["attention_mask"][:, -1].all()  # left padding for generate
    assert batch["video_grid_thw"].tolist() == [[2, 8, 8]] * 2


def test_bad_input_gives_clear_errors(synth):
    data, tokenizer = synth
    model, processor = build("video_llava", tokenizer)
    frames = data.test[0].frames
    batch = host_inputs(processor(questions=["what happens first?"], videos=[frames]))
    no_video = {**batch, "input_ids": batch["input_ids"].masked_fill(batch["input_ids"] == processor.video_token_id, 5)}
    with pytest.raises(ValueError, match="no video placeholder token"):
        model(**no_video)
    with pytest.raises(ValueError, match="gives 51 visual tokens \\(3 frames"):
        model(**{**batch, "pixel_values_videos": batch["pixel_values_videos"][:, :3]})
    with pytest.raises(ValueError, match="built for 4 frames"):
        processor(questions=["what happens first?"], videos=[frames[:3]])
    with pytest.raises(ValueError, match="tubelets of temporal_patch_size=2"):
        build("qwen2_vl", tokenizer)[1].__class__.from_host_config(tokenizer, tiny_video_llm_config("qwen2_vl", tokenizer), num_frames=3, image_size=32)
    qwen, qwen_processor = build("qwen2_vl", tokenizer)
    qwen_batch = host_inputs(qwen_processor(questions=["what happens first?"], videos=[frames]))
    with pytest.raises(ValueError, match="flat pixel_values_videos"):
        qwen(**{**qwen_batch, "pixel_values_videos": torch.zeros(1, 4, 3, 32, 32)})
    with pytest.raises(ValueError, match="NaN"):
        model(**{**batch, "pixel_values_videos": batch["pixel_values_videos"] * float("nan")})
    with pytest.raises(ValueError, match="did you mean 'osc_loss_weight'"):
        FinstaGenerationConfig(osc_los_weight=1.0)
    with pytest.raises(ValueError, match="inference_mode"):
        FinstaGenerationConfig(inference_mode="both")


# -------------------------------------------------------------------- what travels as code


def test_a_saved_generative_model_and_processor_carry_exactly_their_files(synth, tmp_path):
    _, tokenizer = synth
    model, processor = build("qwen2_5_vl", tokenizer)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "processor")
    assert {p.name for p in (tmp_path / "model").glob("*.py")} == GENERATIVE_MODEL_FILES
    assert {p.name for p in (tmp_path / "processor").glob("*.py")} == GENERATIVE_PROCESSOR_FILES
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "model")  # in-process Auto class
    assert type(loaded) is FinstaForConditionalGeneration
    assert loaded.config.backbone_type == "qwen2_5_vl"


def test_from_pretrained_keywords_are_validated_and_derive_like_init(tmp_path):
    config = FinstaGenerationConfig(backbone_config=tiny_video_llm_config("video_llava", video_llm_tokenizer(["a"])), graph_hidden_size=32)
    config.save_pretrained(tmp_path)
    wider = FinstaGenerationConfig.from_pretrained(tmp_path, graph_hidden_size=64)
    assert wider.graph_hidden_size == 64 and wider.graph_intermediate_size == 4 * 64
    with pytest.raises(ValueError, match="inference_mode"):
        FinstaGenerationConfig.from_pretrained(tmp_path, inference_mode="fusd")
