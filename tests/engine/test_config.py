import pytest

from nfields.engine.config import TrainConfig
from nfields.errors import FieldsError


def test_config_round_trip(tmp_path):
    config = TrainConfig(scene="x", field="mlp", steps=7, time_budget=1.5, snapshot_minutes=[1.0], lr=3e-3)
    config.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == config


def test_config_rejects_unknown_fields_and_bad_values(tmp_path):
    (tmp_path / "config.json").write_text('{"scene": "lego", "colour": 3}')
    with pytest.raises(FieldsError, match="colour"):
        TrainConfig.load(tmp_path / "config.json")
    with pytest.raises(FieldsError, match="loss"):
        TrainConfig(loss="l7").validate()
    with pytest.raises(FieldsError, match="'final_eval_views' must be at least 1"):  # 0 divided by zero views
        TrainConfig(final_eval_views=0).validate()
