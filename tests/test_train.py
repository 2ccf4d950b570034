"""The multi-GPU entry point reads a stage's settings exactly as its notebook does."""

import pytest

from geolib import params, stages, train, vlm


def test_stage_parameters_are_notebook_defaults_then_the_params_file_key_by_key(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("lora: {r: 8}\nlocation_tuning: {max_steps: 7}\nreasoning_tuning: {max_steps: 3}\n")
    s1 = train.stage_parameters("demo", "reasoning", str(f))
    s2 = train.stage_parameters("demo", "location_uncurated", str(f))
    assert s1["lora"] == s2["lora"] == {"r": 8, "lora_alpha": 128, "lora_dropout": 0.05, "projector": True}
    assert s1["reasoning_tuning"]["max_steps"] == 3 and s1["reasoning_tuning"]["learning_rate"] == 1e-3
    assert "location_tuning" not in s1
    assert s2["location_tuning"]["max_steps"] == 7 and s2["location_tuning"]["effective_batch_size"] == 16
    assert s2["model"] == {"model_id": "demo"} and s1["clue_corpus"] == ""


#: The notebooks' method settings: the paper profile states every key of each (a key it left out
#: would silently keep the demo's value).
METHOD_SETTINGS = ("lora", "reasoning_tuning", "location_tuning", "gre_sft", "gre_grpo", "grpo_lora")


def test_the_paper_profile_states_every_method_setting():
    paper = params.read_params_file(params.params_file("paper"))
    for notebook in params.study_notebooks():
        for p in params.notebook_parameters(notebook):
            if p.name in METHOD_SETTINGS:
                assert set(p.default) <= set(paper[p.name]), (notebook.name, p.name, set(p.default) - set(paper[p.name]))
    assert paper["lora"]["r"] == 64 and paper["lora"]["lora_alpha"] == 16 and paper["lora"]["projector"] is False
    assert paper["reasoning_tuning"] == paper["location_tuning"]  # GeoReasoner: one setting for both stages


def test_every_lora_stage_has_a_notebook():
    assert set(train.STAGE_NOTEBOOK) == set(stages.LORA_STAGES)
    for stage, (adapter, start, _) in stages.LORA_STAGES.items():
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


def test_stage_inputs_and_settings_errors(tmp_path):
    from geolib import grpo, tuning

    with pytest.raises(ValueError, match="unknown stage"):
        stages.stage_inputs("demo", "stage3", vlm.DEMO_MODEL)
    with pytest.raises(ValueError, match="'learning_rat' \\(did you mean 'learning_rate'\\?\\)"):
        tuning.training_arguments(tmp_path, {"learning_rat": 1.0})
    with pytest.raises(ValueError, match="'lora_r'"):  # LoRA settings are the LoraConfig's, not a stage's
        tuning.training_arguments(tmp_path, {"lora_r": 8})
    with pytest.raises(ValueError, match="'num_generation' \\(did you mean 'num_generations'\\?\\)"):
        grpo.grpo_config(tmp_path, {"num_generation": 4})
