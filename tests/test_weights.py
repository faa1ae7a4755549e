import json

import pytest
import torch

import nafft
import nafft.weights
from nafft.errors import UserError
from nafft.models import build_model, save_model


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setattr(nafft.weights, "_folder", lambda: folder)
    return folder


def _save(folder, name, card=None):
    torch.manual_seed(0)
    model = build_model({"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)})
    meta = {nafft.weights.CARD_KEY: json.dumps(card)} if card is not None else {}
    save_model(model, folder / f"{name}.safetensors", meta)
    return model


def test_bundled_models_lists_the_default_first_with_its_card(bundled):
    _save(bundled, "another", {"summary": "b"})
    _save(bundled, "nafft-photo", {"summary": "the default"})
    _save(bundled, "no-card")
    models = nafft.weights.bundled_models()
    assert [m.name for m in models] == ["nafft-photo", "another", "no-card"]
    assert models[0].is_default and models[0].card == {"summary": "the default"} and models[2].card == {}


def test_load_default_model_gives_the_bundled_weights_ready_for_inference(bundled):
    source = _save(bundled, "nafft-photo", {"summary": "x"})
    loaded = nafft.load_default_model()
    assert loaded.path == bundled / "nafft-photo.safetensors" and loaded.tlc
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        torch.testing.assert_close(nafft.load_default_model(tlc=False).network(x), source.eval()(x))
    with pytest.raises(AttributeError):
        nafft.no_such_thing  # noqa: B018


def test_a_missing_bundled_model_is_a_one_line_error(bundled):
    with pytest.raises(UserError, match="no bundled model 'nafft-photo' .* pass --checkpoint") as info:
        nafft.weights.bundled_weights()
    assert "\n" not in str(info.value)


def test_unreadable_cards_read_as_empty(bundled, tmp_path):
    bundled.mkdir(parents=True)
    model = build_model({"width": 8, "enc_blocks": (1,), "middle_blocks": 1, "dec_blocks": (1,)})
    save_model(model, bundled / "bad.safetensors", {nafft.weights.CARD_KEY: "{not json"})
    assert nafft.weights.read_card(bundled / "bad.safetensors") == {}
