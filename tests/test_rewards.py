"""Tests of geolib.rewards: GRE's format and distance rewards, the θ schedule, the TRL wrappers."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geolib import geo
from geolib.rewards import (
    DistanceReward,
    ThetaSchedule,
    completion_text,
    distance_reward,
    format_reward,
    gre_reward,
    make_trl_rewards,
)

GOOD = "<think>Kanji on the signs, left-hand traffic.</think>\n<answer>35.6762, 139.6503</answer>"

# --------------------------------------------------------------------------------------------
# format reward


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        "<think>a</think><answer>b</answer>",
        "  \n<think>a</think>   \n\n <answer>b</answer>\n  ",
        "<think>\nmulti\nline\n</think>\n<answer>\nParis, France\n</answer>",
    ],
)
def test_format_reward_accepts(text):
    assert format_reward(text) == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "<answer>35.6, 139.6</answer>",  # missing think
        "<think>reasoning</think>",  # missing answer
        "<think>reasoning</think> 35.6, 139.6",  # answer without its tag
        "Sure! <think>a</think><answer>b</answer>",  # text before
        "<think>a</think><answer>b</answer> Hope this helps.",  # text after
        "<think>a</think> so <answer>b</answer>",  # text between
        "<answer>b</answer><think>a</think>",  # wrong order
        "<think></think><answer>b</answer>",  # empty think
        "<think>   \n </think><answer>b</answer>",  # blank think
        "<think>a</think><answer> </answer>",  # empty answer
        "<think>a <think>b</think> c</think><answer>d</answer>",  # nested think
        "<think>a</think><answer>b <answer>c</answer></answer>",  # nested answer
        "<think>a</think><answer>b</answer><think>c</think><answer>d</answer>",  # second block
        "<think>a</think><answer>b</answer><answer>c</answer>",  # second answer
        "<think>a</think><answer>b",  # unclosed (truncated)
        "<THINK>a</THINK><ANSWER>b</ANSWER>",  # tags are lower-case
        "",
    ],
)
def test_format_reward_rejects(text):
    assert format_reward(text) == 0.0


@pytest.mark.parametrize("value", [None, 1, b"<think>a</think><answer>b</answer>", ["<think>a</think><answer>b</answer>"]])
def test_format_reward_non_strings(value):
    assert format_reward(value) == 0.0


# --------------------------------------------------------------------------------------------
# distance reward


def test_distance_reward_values():
    assert distance_reward(0.0, 25.0) == 1.0
    assert distance_reward(25.0, 25.0) == pytest.approx(2 / (1 + math.e))
    assert round(distance_reward(750.0, 750.0), 4) == 0.5379
    assert distance_reward(np.nan, 25.0) == 0.0
    assert distance_reward(np.inf, 25.0) == 0.0
    assert isinstance(distance_reward(10.0, 25.0), float)


def test_distance_reward_is_vectorised_and_monotone():
    d = np.linspace(0, 20_000, 2001)
    r = distance_reward(d, 750.0)
    assert r.shape == d.shape and r[0] == 1.0
    assert (np.diff(r) <= 0).all() and (np.diff(r[:200]) < 0).all()
    assert ((r >= 0) & (r <= 1)).all()
    grid = distance_reward([[0.0, np.nan], [750.0, 1e9]], 750.0)
    assert grid.shape == (2, 2) and grid[0, 1] == 0.0 and grid[1, 1] == 0.0


def test_distance_reward_never_overflows():
    with np.errstate(all="raise"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")
        assert distance_reward(1e308, 1e-300) == 0.0
        assert distance_reward(np.array([1e6, 1e300]), 1e-3).tolist() == [0.0, 0.0]


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=0, max_value=1e7, allow_nan=False),
    st.floats(min_value=0, max_value=1e7, allow_nan=False),
    st.floats(min_value=1e-3, max_value=1e5),
)
def test_distance_reward_orders_distances(d1, d2, theta):
    r1, r2 = distance_reward(d1, theta), distance_reward(d2, theta)
    assert 0.0 <= r1 <= 1.0
    if d1 < d2:
        assert r1 >= r2


@pytest.mark.parametrize("theta", [0, -25, float("nan"), float("inf")])
def test_distance_reward_bad_theta(theta):
    with pytest.raises(ValueError, match="theta_km"):
        distance_reward(10.0, theta)


def test_distance_reward_negative_distance():
    with pytest.raises(ValueError, match=">= 0"):
        distance_reward([-1.0, 2.0], 25.0)


# --------------------------------------------------------------------------------------------
# gre_reward: the traps of GRE's released reward (swapped lat/lon, lost signs, blank θ)

SYDNEY = (-33.8688, 151.2093)
NEW_YORK = (40.7128, -74.0060)
RIO = (-22.9068, -43.1729)


@pytest.mark.parametrize(
    "answer, truth",
    [
        ("-33.8688, 151.2093", SYDNEY),
        ("33.8688° S, 151.2093° E", SYDNEY),
        ("151.2093° E, 33.8688° S", SYDNEY),
        ("40.7128° N, 74.0060° W", NEW_YORK),
        ("40°42′46″N 74°0′22″W", NEW_YORK),
        ("Longitude: -74.0060, Latitude: 40.7128", NEW_YORK),
        ("22.9068°S 43.1729°W", RIO),
        ('{"lat": -22.9068, "lon": -43.1729}', RIO),
    ],
)
def test_gre_reward_reads_order_and_sign(answer, truth):
    completion = f"<think>Clues.</think><answer>{answer}</answer>"
    assert gre_reward(completion, *truth, theta_km=25.0) > 0.99


def test_gre_reward_punishes_a_swap_or_a_lost_sign():
    # what GRE's released reward would have scored: the same place read wrongly
    right = gre_reward("<think>x</think><answer>-33.8688, 151.2093</answer>", *SYDNEY, theta_km=750.0)
    assert right == 1.0
    for wrong in ("151.2093, -33.8688", "33.8688, 151.2093", "-33.8688, -151.2093", "33.8688° N, 151.2093° E"):
        assert gre_reward(f"<think>x</think><answer>{wrong}</answer>", *SYDNEY, theta_km=750.0) < 0.01


def test_gre_reward_needs_theta():
    assert "theta_km" in inspect.signature(gre_reward).parameters
    assert inspect.signature(gre_reward).parameters["theta_km"].default is inspect.Parameter.empty
    with pytest.raises(ValueError, match="theta_km"):
        gre_reward(GOOD, 35.6762, 139.6503, theta_km=0)
    with pytest.raises(ValueError, match="theta_km"):
        gre_reward("no answer", 35.6762, 139.6503, theta_km=-1)


def test_gre_reward_at_theta():
    # a point exactly θ = 111.2 km north of the truth along a meridian
    theta = float(geo.haversine_km(0.0, 0.0, 1.0, 0.0))
    assert gre_reward("<think>x</think><answer>1.0, 0.0</answer>", 0.0, 0.0, theta_km=theta) == pytest.approx(0.5379, abs=1e-4)


def test_gre_reward_without_coordinates_is_zero():
    for text in ("<think>x</think><answer>unknown</answer>", "<think>x</think><answer>95, 10</answer>", "", None):
        assert gre_reward(text, *SYDNEY, theta_km=2500.0) == 0.0


def test_gre_reward_city_answers():
    text = "<think>Opera house.</think><answer>Sydney, Australia</answer>"
    assert gre_reward(text, *SYDNEY, theta_km=25.0) == 0.0  # default: coordinates only
    assert gre_reward(text, *SYDNEY, theta_km=25.0, use_city=True) > 0.95  # GeoNames' Sydney


def test_gre_reward_checks_the_truth():
    with pytest.raises(ValueError, match="true coordinates"):
        gre_reward(GOOD, 95.0, 0.0, theta_km=25.0)
    with pytest.raises(ValueError, match="true coordinates"):
        gre_reward(GOOD, None, 0.0, theta_km=25.0)


# --------------------------------------------------------------------------------------------
# θ schedule


def test_schedule_advances_only_when_the_window_mean_holds():
    s = ThetaSchedule(stages=(2500, 750, 200, 25), window=3, advance_at=0.6)
    assert s.theta == 2500.0
    assert s.update(1.0) == 2500.0 and s.update(1.0) == 2500.0  # window not full yet
    assert s.update(0.0) == 750.0  # mean 0.667 >= 0.6
    assert [s.update(r) for r in (0.5, 0.6, 0.65)] == [750.0] * 3  # mean 0.583 < 0.6
    assert s.update(0.7) == 200.0  # mean of the last 3: (0.6 + 0.65 + 0.7) / 3 = 0.65


def test_schedule_steps_and_resets_its_window():
    s = ThetaSchedule(stages=(2500, 750, 200, 25), window=2, advance_at=0.6)
    assert [s.update(r) for r in (0.5, 0.6)] == [2500.0, 2500.0]  # mean 0.55: stays
    assert s.update(0.7) == 750.0  # mean of (0.6, 0.7) = 0.65: advances
    assert s.update(0.9) == 750.0  # the window restarted at the new stage: one value only
    assert s.update(0.9) == 200.0
    s2 = ThetaSchedule(stages=(200, 25), window=2, advance_at=0.6)
    assert s2.update(0.55) == 200.0 and s2.update(0.64) == 200.0  # mean 0.595 < 0.6
    assert s2.update(0.7) == 25.0  # mean 0.67
    assert s2.final


def test_schedule_never_regresses_and_stays_at_the_last_stage():
    s = ThetaSchedule(stages=(750, 25), window=1, advance_at=0.5)
    assert s.update(0.9) == 25.0
    thetas = [s.update(r) for r in (0.0, 0.0, 0.0, 1.0, 0.0)]
    assert thetas == [25.0] * 5 and s.stage == 1 and s.n_updates == 6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1), max_size=60), st.integers(1, 5), st.floats(0.05, 1.0))
def test_schedule_is_monotone_and_follows_its_rule(rewards, window, advance_at):
    s = ThetaSchedule(window=window, advance_at=advance_at)
    history: list[float] = []
    for r in rewards:
        before = s.stage
        history.append(r)
        s.update(r)
        assert s.stage in (before, before + 1)  # never back, at most one stage per update
        last = history[-window:]
        should = before < len(s.stages) - 1 and len(last) == window and float(np.mean(last)) >= advance_at
        assert (s.stage == before + 1) == should
        if s.stage != before:
            history = []


def test_schedule_state_round_trips_through_json():
    s = ThetaSchedule(stages=(2500, 750, 200, 25), window=3, advance_at=0.6)
    for r in (0.7, 0.7, 0.7, 0.2, 0.9):
        s.update(r)
    state = json.loads(json.dumps(s.state_dict()))
    t = ThetaSchedule(stages=(2500, 750, 200, 25), window=3, advance_at=0.6)
    t.load_state_dict(state)
    assert t.state_dict() == s.state_dict() and t.theta == s.theta == 750.0
    # resumed, both behave the same
    assert [t.update(r) for r in (0.8, 0.9, 0.9)] == [s.update(r) for r in (0.8, 0.9, 0.9)]


def test_schedule_refuses_a_foreign_state():
    s = ThetaSchedule(stages=(2500, 750), window=3)
    with pytest.raises(ValueError, match="different schedule"):
        ThetaSchedule(stages=(2500, 25), window=3).load_state_dict(s.state_dict())
    bad = s.state_dict() | {"stage": 5}
    with pytest.raises(ValueError, match="stage 5"):
        s.load_state_dict(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stages": ()},
        {"stages": (25, 750)},  # fine to coarse
        {"stages": (750, 750)},
        {"stages": (750, 0)},
        {"window": 0},
        {"advance_at": 0.0},
        {"advance_at": 1.5},
    ],
)
def test_schedule_validation(kwargs):
    with pytest.raises(ValueError):
        ThetaSchedule(**kwargs)


def test_schedule_update_validation():
    with pytest.raises(ValueError, match="mean_reward"):
        ThetaSchedule().update(float("nan"))
    with pytest.raises(ValueError, match="mean_reward"):
        ThetaSchedule().update(1.5)


# --------------------------------------------------------------------------------------------
# TRL reward functions


def _chat(text):
    return [{"role": "assistant", "content": text}]


def test_trl_rewards_follow_the_grpo_call():
    fmt_fn, dist_fn = make_trl_rewards(ThetaSchedule(window=100))
    completions = [GOOD, "<answer>35.6762, 139.6503</answer>", "I don't know"]
    kwargs = {"lat": [35.6762, 35.6762, 35.6762], "lon": [139.6503, 139.6503, 139.6503]}
    # exactly how GRPOTrainer._calculate_rewards calls a custom function
    common = dict(prompts=["p"] * 3, completions=completions, completion_ids=[[1]] * 3, trainer_state=None, log_extra=None)
    assert fmt_fn(**common, **kwargs) == [1.0, 0.0, 0.0]
    assert dist_fn(**common, **kwargs) == [1.0, 1.0, 0.0]
    chats = [_chat(c) for c in completions]
    assert fmt_fn(completions=chats, **kwargs) == [1.0, 0.0, 0.0]
    assert dist_fn(completions=chats, **kwargs) == [1.0, 1.0, 0.0]


def test_trl_reward_names_for_logging():
    # TRL's trainer.utils.get_callable_name (importing trl costs ~20 s here, so its rule is
    # restated): a callable instance is named by its __name__ attribute, else by its class
    names = [getattr(f, "__name__", type(f).__name__) for f in make_trl_rewards(ThetaSchedule())]
    assert names == ["format_reward", "distance_reward"]


def test_trl_distance_reward_updates_and_logs_the_schedule():
    schedule = ThetaSchedule(stages=(2500, 750), window=1, advance_at=0.6)
    _, dist_fn = make_trl_rewards(schedule)
    logged = []
    near = "<think>x</think><answer>35.0, 139.0</answer>"  # ~ 90 km off
    out = dist_fn(completions=[near, near], lat=[35.6762] * 2, lon=[139.6503] * 2, log_metric=lambda k, v: logged.append((k, v)))
    assert out[0] == pytest.approx(distance_reward(geo.haversine_km(35.0, 139.0, 35.6762, 139.6503), 2500.0))
    assert logged == [("theta_km", 2500.0)] and schedule.theta == 750.0  # mean ≈ 0.98 advanced it
    frozen = ThetaSchedule(stages=(2500, 750), window=1)
    make_trl_rewards(frozen, update_schedule=False)[1](completions=[near], lat=[35.6762], lon=[139.6503])
    assert frozen.theta == 2500.0 and frozen.n_updates == 0


def test_trl_distance_reward_does_not_update_during_evaluation():
    class Model:
        training = False

    class Trainer:
        model = Model()

        def _log_metric(self, name, value):
            pass

    schedule = ThetaSchedule(stages=(2500, 750), window=1)
    _, dist_fn = make_trl_rewards(schedule)
    trainer = Trainer()
    dist_fn(completions=[GOOD], lat=[35.6762], lon=[139.6503], log_metric=trainer._log_metric)
    assert schedule.n_updates == 0
    Model.training = True
    dist_fn(completions=[GOOD], lat=[35.6762], lon=[139.6503], log_metric=trainer._log_metric)
    assert schedule.n_updates == 1 and schedule.theta == 750.0


def test_trl_distance_reward_missing_truth():
    schedule = ThetaSchedule(window=1)
    _, dist_fn = make_trl_rewards(schedule)
    assert dist_fn(completions=[GOOD, GOOD], lat=[None, 35.6762], lon=[0.0, 139.6503]) == [None, 1.0]
    assert dist_fn(completions=[GOOD], lat=[float("nan")], lon=[0.0]) == [None]
    assert schedule.n_updates == 1  # the all-None batch did not update
    with pytest.raises(ValueError, match="'lat' and 'lon'"):
        dist_fn(completions=[GOOD], latitude=[1.0], longitude=[2.0])
    with pytest.raises(ValueError, match="2 completions"):
        dist_fn(completions=[GOOD, GOOD], lat=[1.0], lon=[2.0])
    with pytest.raises(TypeError, match="ThetaSchedule"):
        DistanceReward(2500.0)


def test_completion_text_shapes():
    assert completion_text("plain") == "plain"
    assert completion_text(_chat("hi")) == "hi"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]) == "ab"
    multi = [{"role": "assistant", "content": "first"}, {"role": "tool", "content": "x"}, {"role": "assistant", "content": "last"}]
    assert completion_text(multi) == "last"
    split = [{"role": "assistant", "reasoning_content": "why", "content": "<answer>1, 2</answer>"}]
    assert completion_text(split) == "<think>why</think><answer>1, 2</answer>"
    assert format_reward(completion_text(split)) == 1.0
    assert completion_text(None) == "" and completion_text([]) == "" and completion_text([{"role": "user", "content": "q"}]) == ""
