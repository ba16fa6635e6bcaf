"""Every way a model choice can fail becomes a clear ModelLoadError (no network in tests)."""

from __future__ import annotations

import pytest

from lib.config import Limits
from lib.model.loading import ModelLoadError, load_model, resolve_source


def test_hub_id_offline_is_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="no network connection"):
        load_model("gpt2")


def test_hub_switched_off_refuses_hub_ids_before_any_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # were the check late, this would try the hub
    with pytest.raises(ModelLoadError, match="TAV_ALLOW_HUB=0"):
        load_model("gpt2", limits=Limits(allow_hub=False))


@pytest.mark.parametrize(
    ("value", "allowed"), [("0", False), ("false", False), (" Off ", False), ("1", True)]
)
def test_allow_hub_switch_from_the_environment(monkeypatch, value, allowed):
    monkeypatch.setenv("TAV_ALLOW_HUB", value)
    assert Limits.from_env().allow_hub is allowed
    monkeypatch.delenv("TAV_ALLOW_HUB")
    assert Limits.from_env().allow_hub is True  # the default: a laptop may use the hub


@pytest.mark.parametrize("spec", ["bad id!!", "a b", "x/y/z/w"])
def test_malformed_ids_are_refused_before_any_download(spec):
    with pytest.raises(ModelLoadError):
        resolve_source(spec)


def test_missing_folder():
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("/no/such/model/folder")


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="not a model folder"):
        load_model(str(tmp_path))


def test_model_that_is_not_a_causal_lm(tmp_path):
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a causal"):
        load_model(str(tmp_path))


def test_model_over_the_size_limit(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(
        vocab_size=1000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="over this app's limit"):
        load_model(str(tmp_path), limits=Limits(max_model_params=1000))


def test_remote_code_is_never_run(tmp_path):
    import json

    config = {"model_type": "my-custom-arch", "auto_map": {"AutoConfig": "x.MyConfig"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError):
        load_model(str(tmp_path))
