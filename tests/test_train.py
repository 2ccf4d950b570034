"""The multi-GPU entry point reads a stage's settings exactly as its notebook does."""

import pytest

from geolib import params, stages, train, vlm


def test_stage_parameters_are_notebook_defaults_then_the_params_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("tuning_preset: paper\nlocation_tuning: {max_steps: 7}\nreasoning_tuning: {max_steps: 3}\n")
    s1 = train.stage_parameters("demo", "reasoning", str(f))
    s2 = train.stage_parameters("demo", "location_uncurated", str(f))
    assert s1["tuning_preset"] == s2["tuning_preset"] == "paper"
    assert s1["reasoning_tuning"] == {"max_steps": 3} and "location_tuning" not in s1
    assert s2["location_tuning"] == {"max_steps": 7} and s2["model"] == {"model_id": "demo"}
    assert s1["clue_corpus"] == ""


def test_every_lora_stage_has_a_notebook_and_settings():
    assert set(train.STAGE_NOTEBOOK) == set(stages.LORA_STAGES)
    for stage, (adapter, start, _) in stages.LORA_STAGES.items():
        assert stages.stage_settings("paper", adapter)["lora_r"] == 64
        assert all(s in stages.LORA_STAGES for s in start), stage


def test_bad_params_file_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text("reasoning_tunning: {max_steps: 3}\n")
    with pytest.raises(params.ParamsError, match="did you mean 'reasoning_tuning'"):
        train.stage_parameters("demo", "reasoning", str(f))
    assert train.main(["--profile", "demo", "--params", str(f), "--stage", "reasoning"]) == 2
    assert "reasoning_tuning" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--stage", "nonsense"])


def test_stage_inputs_and_settings_errors():
    with pytest.raises(ValueError, match="unknown stage"):
        stages.stage_inputs("demo", "stage3", vlm.DEMO_MODEL)
    with pytest.raises(ValueError, match="no 'base' stage"):
        stages.stage_settings("paper", "base")
    with pytest.raises(ValueError, match="did you mean 'learning_rate'"):
        stages.stage_settings("demo", "reasoning", {"learning_rat": 1.0})
