"""`fields` options generated from the config dataclasses: every field a flag, defaults in help, --config."""

import argparse
import dataclasses
import json
from types import SimpleNamespace

import pytest

from nfields.cli import build_parser, main
from nfields.engine.config import RECORDED_FIELDS, TrainConfig


def _subparsers(parser: argparse.ArgumentParser):
    """(name, parser) of every subcommand, nested ones (triplanes fit, ...) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from _subparsers(sub)


@pytest.fixture
def trained(monkeypatch):
    """Runs of `fields train`, with training replaced by recording its config."""
    seen = []
    monkeypatch.setattr("nfields.engine.trainer.train",
                        lambda config, **_: seen.append(config) or SimpleNamespace(metrics=None))
    return seen


def test_every_train_config_field_has_a_flag():
    train = dict(_subparsers(build_parser()))["train"]
    dests = {action.dest for action in train._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} - set(RECORDED_FIELDS) <= dests
    assert not set(RECORDED_FIELDS) & dests  # written by the run


def test_help_of_every_subcommand_shows_the_defaults():
    for name, parser in _subparsers(build_parser()):
        for action in parser._actions:
            if action.option_strings and not action.required and action.dest != "help":
                text = action.help or ""
                assert "(default: " in text or "(required" in text, f"{name} {action.option_strings[0]}"
    train = dict(_subparsers(build_parser()))["train"].format_help()
    assert "(default: 20000)" in train and "(default: 0.01)" in train and "(default: huber)" in train


def test_flags_land_in_the_config(trained):
    assert main(["train", "--lr", "5e-3", "--cascades", "3", "--decay-at", "0.5", "--no-random-background",
                 "--final-eval-views", "none", "--time-budget", "2"]) == 130
    config = trained[0]
    assert (config.lr, config.cascades, config.decay_at, config.random_background) == (5e-3, 3, [0.5], False)
    assert config.final_eval_views is None and config.steps == 0  # a time budget without --steps: time only
    assert config.weight_decay == TrainConfig.weight_decay


def test_bad_numbers_name_the_flag(capsys):
    for argv, flag in ((["train", "--threads", "0"], "--threads"), (["view", "run", "--threads", "-2"], "--threads"),
                       (["train", "--lr", "fast"], "--lr"), (["eval", "run", "--views", "0"], "--views")):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 2 and f"argument {flag}" in err and "\n" not in err, argv


def test_config_file_round_trip_with_a_flag_overriding_it(tmp_path, trained):
    run = tmp_path / "run"
    assert main(["train", "--scene", "chair", "--steps", "2", "--lr", "3e-3", "--grid-resolution", "32",
                 "--samples-per-step", "4096", "--eval-pixels", "64", "--final-eval-views", "1", "--seed", "7",
                 "--output", str(run)]) == 130
    trained[0].save(run.parent / "config.json")  # what the run folder's config.json holds
    assert main(["train", "--config", str(run.parent / "config.json"), "--steps", "10"]) == 130
    saved = json.loads((run.parent / "config.json").read_text())
    again = dataclasses.asdict(trained[1])
    assert again["steps"] == 10 and again["output"] is None  # a new run folder, not the old one
    assert {k: v for k, v in again.items() if k not in ("steps", "output")} == \
        {k: v for k, v in saved.items() if k not in ("steps", "output")}
    assert again["lr"] == 3e-3 and again["seed"] == 7 and again["grid_resolution"] == 32


def test_config_file_errors_name_the_file(tmp_path, capsys, trained):
    (tmp_path / "c.json").write_text(json.dumps({"lr": 1e-3, "speed": 2}))
    assert main(["train", "--config", str(tmp_path / "c.json")]) == 2
    assert "c.json: unknown config field(s) speed" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "none.json")]) == 2
    assert "none.json: config file does not exist" in capsys.readouterr().err


def test_distill_keeps_its_flag_syntax(monkeypatch):
    seen = []
    monkeypatch.setattr("nfields.apps.distillation.distill",
                        lambda settings, **kw: seen.append((settings, kw)) or SimpleNamespace(metrics=None))
    assert main(["distill", "--teacher", "t", "--student", "mlp", "--active", "pose,point", "--stages", "0.1", "0.2",
                 "--density-weight", "0.5", "--steps", "5", "--threads", "1"]) == 130
    assert main(["distill", "--teacher", "t", "--student", "mlp", "--active", "none", "--time-budget", "1"]) == 130
    (first, kw), (second, _) = seen
    assert first.active == ("pose", "point") and first.stages == (0.1, 0.2) and first.density_weight == 0.5
    assert kw["steps"] == 5 and kw["threads"] == 1 and second.active == ()


def test_version_and_completion(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("fields 0.")
    with pytest.raises(SystemExit):
        main(["--print-completion", "bash"])
    script = capsys.readouterr().out
    assert "complete" in script and "train" in script and "--cascades" in script
