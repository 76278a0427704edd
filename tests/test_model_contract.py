"""The contract every model inside transformers keeps, checked on tiny FinstaModels (our own tests, written
from what transformers' ModelTesterMixin checks): config-less loading, return_dict / hidden states /
attentions, attention-implementation switching, numerical stability of the fused path, save/load,
batching equivalence, weight init, gradient checkpointing."""

import copy
import math

import pytest
import torch
from tiny_models import annotated_video_scene_graph, example_inputs, tiny_clip_config, tiny_finsta_config, tiny_xclip_config
from transformers import AutoModel, CLIPModel, XCLIPModel
from transformers.modeling_layers import GradientCheckpointingLayer

from modeling_finsta import FinstaConfig, FinstaModel
from modeling_finsta.graph_encoder import INITIAL_LOGIT_SCALE
from modeling_finsta.graph_layers import INITIAL_LOG_SIGMA


def build(backbone="clip", temporal_head="meanP", seed=0, **overrides):
    torch.manual_seed(seed)
    return FinstaModel(tiny_finsta_config(backbone, temporal_head=temporal_head, **overrides)).eval()


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


# ---------------------------------------------------------------------------------- 1. configs


@pytest.mark.parametrize("backbone", ["clip", "xclip"])
def test_plain_host_folder_loads_without_config(tmp_path, backbone):
    torch.manual_seed(0)
    host = CLIPModel(tiny_clip_config()) if backbone == "clip" else XCLIPModel(tiny_xclip_config())
    host.save_pretrained(tmp_path)
    model, info = FinstaModel.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(model.config, FinstaConfig) and model.config.backbone_type == backbone
    assert {key.split(".")[0] for key in info["missing_keys"]} <= {"graph_encoder", "host_adapter"}
    assert not info["unexpected_keys"]
    for name, value in host.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], value), name
    # The Finsta head is initialised, not left at zeros or garbage.
    assert model.graph_encoder.text_node_proj.weight.std() > 0
    assert math.isclose(model.graph_encoder.graph_logit_scale.item(), INITIAL_LOGIT_SCALE, rel_tol=1e-6)


def test_config_less_load_refuses_an_unsupported_host(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'bert'"):
        FinstaConfig.from_pretrained(tmp_path)


@pytest.mark.parametrize("key", ["projection_dim", "backbone_type", "text_config", "vision_config"])
def test_read_only_config_keys_give_a_clear_error(key):
    with pytest.raises(ValueError, match=f"{key} is read-only"):
        FinstaConfig(**{key: 64})


def test_misspelt_config_key_gives_a_suggestion_and_transformers_keys_pass():
    with pytest.raises(ValueError, match="did you mean 'osc_loss_weight'"):
        FinstaConfig(osc_los_weight=1.0)
    config = FinstaConfig(backbone_config=tiny_clip_config(), bos_token_id=1, tie_word_embeddings=False, return_dict=False)
    assert config.bos_token_id == 1 and config.return_dict is False


def test_text_config_is_the_hosts():
    config = tiny_finsta_config()
    assert config.get_text_config() is config.backbone_config.text_config
    assert config.text_config is config.backbone_config.text_config
    assert config.vision_config is config.backbone_config.vision_config


# ------------------------------------------------------------------ 2. return_dict and outputs


def test_return_dict_false_gives_tuples_by_argument_and_by_config():
    model = build()
    inputs = {k: v for k, v in example_inputs().items() if k != "text_scene_graph"}
    with torch.no_grad():
        as_dict = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
        model.config.return_dict = False
        from_config = model(**inputs)
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
        video = model.get_video_features(inputs["pixel_values"])
    assert isinstance(as_tuple, tuple) and isinstance(from_config, tuple)
    assert isinstance(text, tuple) and isinstance(video, tuple)
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected)
    for a, b in zip(as_tuple, expected):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


def test_hidden_states_and_attentions_reach_the_host_towers():
    model = build(temporal_head="seqTransf")
    model.set_attn_implementation("eager")
    inputs = example_inputs()
    layers = model.config.backbone_config.text_config.num_hidden_layers
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True, output_attentions=True)
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"], output_hidden_states=True)
        video = model.get_video_features(inputs["pixel_values"], output_attentions=True)
        plain = model(**inputs)
    assert len(out.text_model_output.hidden_states) == layers + 1
    assert len(out.vision_model_output.hidden_states) == model.config.backbone_config.vision_config.num_hidden_layers + 1
    assert len(out.text_model_output.attentions) == layers and out.text_model_output.attentions[0] is not None
    assert len(text.hidden_states) == layers + 1 and video.attentions is not None
    assert plain.text_model_output.hidden_states is None
    batch, frames = inputs["pixel_values"].shape[:2]
    assert video.last_hidden_state.shape[:2] == (batch, frames)
    assert video.last_hidden_state.shape[-1] == model.config.vision_config.hidden_size
    # The config's flag works as well.
    model.config.output_hidden_states = True
    with torch.no_grad():
        assert len(model.get_text_features(inputs["input_ids"]).hidden_states) == layers + 1


def test_unknown_forward_keyword_is_refused_by_name():
    model = build()
    inputs = example_inputs()
    with pytest.raises(TypeError, match="pixel_valuez"):
        model(**inputs, pixel_valuez=inputs["pixel_values"])


# --------------------------------------------------------------- 3. attention implementation


def count_sdpa_calls(model, inputs, monkeypatch):
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        model(**inputs)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", original)
    return len(calls)


@pytest.mark.parametrize("temporal_head", ["meanP", "seqTransf"])
def test_eager_reaches_every_attention_layer(tmp_path, monkeypatch, temporal_head):
    build(temporal_head=temporal_head).save_pretrained(tmp_path)
    inputs = {**example_inputs(), "video_scene_graph": annotated_video_scene_graph(frames=4)}
    eager = FinstaModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert eager.config._attn_implementation == "eager"
    assert count_sdpa_calls(eager, inputs, monkeypatch) == 0
    eager.set_attn_implementation("sdpa")
    assert count_sdpa_calls(eager, inputs, monkeypatch) > 0
    eager.set_attn_implementation("eager")
    assert count_sdpa_calls(eager, inputs, monkeypatch) == 0


@pytest.mark.parametrize("temporal_head", ["meanP", "seqTransf"])
def test_eager_and_sdpa_give_the_same_outputs(tmp_path, temporal_head):
    build(temporal_head=temporal_head).save_pretrained(tmp_path)
    inputs = {**example_inputs(), "video_scene_graph": annotated_video_scene_graph(frames=4)}
    outputs = {}
    for implementation in ("eager", "sdpa"):
        model = FinstaModel.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        with torch.no_grad():
            outputs[implementation] = model(**inputs)
    for key in ("text_embeds", "video_embeds", "text_graph_embeds", "video_graph_embeds"):
        assert max_diff(outputs["eager"][key], outputs["sdpa"][key]) < 1e-5, key


# -------------------------------------------------------------- 4. numerical stability (fused)


def embeddings(model, pixel_values, video_mask, inputs):
    with torch.no_grad():
        video = model.get_video_features(pixel_values, video_mask).pooler_output
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"], inputs["text_scene_graph"]).pooler_output
    return text, video


def within_ten_times_the_host(fused, host):
    # Host differences are often exactly 0 on CPU; then the fused ones must stay at float32 rounding.
    return fused <= 10 * max(host, 1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_path_does_not_amplify_tiny_numerical_differences(tmp_path, seed):
    build(seed=seed).save_pretrained(tmp_path / "m")
    inputs = example_inputs(batch=4, frames=6, seed=seed)
    pixels, mask = inputs["pixel_values"], inputs["video_mask"]
    noise = 1e-6 * torch.randn(pixels.shape, generator=torch.Generator().manual_seed(seed))
    results = {}
    for implementation in ("eager", "sdpa"):
        model = FinstaModel.from_pretrained(tmp_path / "m", attn_implementation=implementation).eval()
        for mode in ("distilled", "fused"):
            model.config.inference_mode = mode
            base = embeddings(model, pixels, mask, inputs)
            noisy = embeddings(model, pixels + noise, mask, inputs)
            items = [embeddings(model, pixels[i : i + 1], mask[i : i + 1], inputs)[1] for i in range(pixels.shape[0])]
            results[implementation, mode] = base
            results[implementation, mode, "noise"] = max_diff(base[1], noisy[1])
            results[implementation, mode, "batch"] = max_diff(base[1], torch.cat(items))
    for kind in ("noise", "batch"):
        host, fused = results["sdpa", "distilled", kind], results["sdpa", "fused", kind]
        assert within_ten_times_the_host(fused, host), (kind, fused, host)
    for index, name in ((0, "text"), (1, "video")):
        host = max_diff(results["eager", "distilled"][index], results["sdpa", "distilled"][index])
        fused = max_diff(results["eager", "fused"][index], results["sdpa", "fused"][index])
        assert within_ten_times_the_host(fused, host), (name, fused, host)


# ------------------------------------------------------------------------- save / load / batch


def test_save_load_twice_and_from_state_dict_without_checkpoint(tmp_path):
    model = build(temporal_head="seqTransf")
    inputs = example_inputs()
    with torch.no_grad():
        first = model(**inputs)[0]
    model.save_pretrained(tmp_path)
    reloaded = FinstaModel.from_pretrained(tmp_path).eval()
    reloaded.save_pretrained(tmp_path)
    reloaded = FinstaModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        second = reloaded(**inputs)[0]
    assert torch.equal(first, second)
    from_state = FinstaModel.from_pretrained(None, config=model.config, state_dict=model.state_dict())
    for name, value in model.state_dict().items():
        assert torch.equal(from_state.state_dict()[name], value), name


def test_batching_equivalence_of_every_float_output():
    model = build()
    inputs = {k: v for k, v in example_inputs(batch=3).items() if k != "text_scene_graph"}
    single = {k: v[:1] for k, v in inputs.items()}
    with torch.no_grad():
        batched, row = model(**inputs, output_hidden_states=True), model(**single, output_hidden_states=True)

    def check(a, b, key):
        if isinstance(a, (tuple, list)):
            for x, y in zip(a, b):
                check(x, y, key)
        elif isinstance(a, dict):
            for (k, x), y in zip(a.items(), b.values()):
                check(x, y, f"{key}.{k}")
        elif isinstance(a, torch.Tensor) and a.dim() > 0 and a.is_floating_point():
            part = a[tuple(slice(0, n) for n in b.shape)]
            torch.testing.assert_close(part, b, atol=1e-5, rtol=1e-5, msg=key)

    for key in batched:
        check(batched[key], row[key], key)


def test_missing_weights_are_initialised_like_a_fresh_model():
    """Everything `__init__` creates, `_init_weights` re-creates (as when loading with missing keys)."""
    config = tiny_finsta_config(temporal_head="seqTransf")
    torch.manual_seed(0)
    fresh = FinstaModel(copy.deepcopy(config))
    torch.manual_seed(0)
    reinitialised = FinstaModel.from_pretrained(None, config=copy.deepcopy(config), state_dict={})
    assert not [k for k, v in reinitialised.state_dict().items() if v.device.type == "meta"]
    encoder = reinitialised.graph_encoder
    for scale in (encoder.graph_logit_scale, encoder.osc_logit_scale, encoder.ptc_logit_scale):
        assert math.isclose(scale.item(), INITIAL_LOGIT_SCALE, rel_tol=1e-6)
    for layer in encoder.stgd_layers:
        assert math.isclose(layer.log_sigma.item(), INITIAL_LOG_SIGMA, rel_tol=1e-6)
        assert torch.equal(layer.motion_attention_scale, torch.ones_like(layer.motion_attention_scale))
    for name, value in fresh.graph_encoder.state_dict().items():
        other = encoder.state_dict()[name]
        assert other.shape == value.shape and torch.isfinite(other).all(), name
        if name.endswith("bias") and "temporal_gate" not in name:
            assert torch.equal(other, torch.zeros_like(other)), name
    linear = encoder.text_node_proj.weight
    assert abs(linear.std().item() - config.initializer_range) < 0.2 * config.initializer_range


def test_every_tensor_is_a_parameter_or_a_buffer():
    model = build(temporal_head="seqTransf")
    registered = {id(t) for t in model.parameters()} | {id(t) for t in model.buffers()}
    for module in model.modules():
        for name, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not name.startswith("_"):
                assert id(value) in registered, f"{type(module).__name__}.{name}"


def test_auto_model_and_base_model_prefix():
    model = build()
    assert model.base_model is model.backbone and model.main_input_name == "input_ids"
    assert model.config.backbone_config is model.backbone.config
    assert isinstance(AutoModel.from_config(model.config), FinstaModel)
    assert model.get_input_embeddings() is model.backbone.text_model.embeddings.token_embedding


# ----------------------------------------------------------------------- 5. checkpointing


def test_no_checkpointed_layer_inside_another():
    model = build(temporal_head="seqTransf")
    for name, module in model.named_modules():
        if isinstance(module, GradientCheckpointingLayer):
            inner = [n for n, m in module.named_modules() if m is not module and isinstance(m, GradientCheckpointingLayer)]
            assert not inner, f"{name} holds checkpointed layers {inner}"


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_trains_with_the_same_loss_and_gradients(use_reentrant):
    inputs = {**example_inputs(), "video_scene_graph": annotated_video_scene_graph(frames=4)}
    model = build(temporal_head="seqTransf").train()
    torch.manual_seed(3)
    reference = model(**inputs).loss
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": use_reentrant})
    checkpointed_layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert checkpointed_layers and all(m.gradient_checkpointing for m in checkpointed_layers)
    torch.manual_seed(3)
    loss = model(**inputs).loss
    assert torch.allclose(loss, reference, atol=1e-6)
    loss.backward()
    for name, grad in expected.items():
        assert torch.allclose(dict(model.named_parameters())[name].grad, grad, atol=1e-5), name
    model.activation_checkpointing_disable()
    assert not any(m.gradient_checkpointing for m in checkpointed_layers)


# --------------------------------------------------------------------- what travels as code

MODEL_FILES = {
    "configuration_finsta.py",
    "modeling_finsta.py",
    "backbone_adapters.py",
    "attention.py",
    "graph_encoder.py",
    "graph_layers.py",
    "latent_scene_graph.py",
    "losses.py",
    "finite_checks.py",
    "scene_graphs.py",
    "zero_shot.py",  # the zero-shot pipeline and its prompt ensembles travel with every model
    "pipeline_finsta.py",
}


def test_a_saved_model_carries_exactly_the_model_files_and_the_top_level_holds_only_what_travels(tmp_path):
    from pathlib import Path

    from test_remote_processor_without_spacy import PROCESSOR_FILES

    import modeling_finsta

    build().save_pretrained(tmp_path)
    assert {path.name for path in tmp_path.glob("*.py")} == MODEL_FILES
    top_level = {path.name for path in Path(modeling_finsta.__file__).parent.glob("*.py")}
    from test_generative import GENERATIVE_MODEL_FILES, GENERATIVE_PROCESSOR_FILES

    assert top_level == MODEL_FILES | PROCESSOR_FILES | GENERATIVE_MODEL_FILES | GENERATIVE_PROCESSOR_FILES | {"__init__.py"}
