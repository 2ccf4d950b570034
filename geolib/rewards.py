"""GRE Suite's reinforcement-learning rewards: format, distance, and the θ schedule (07_gre_reasoning_rl).

GRE trains with GRPO on two rewards (docs/metrics.md):

* **format**: 1 when the completion is ``<think>…</think>`` then ``<answer>…</answer>``, else 0;
* **distance**: ``r = 2 / (1 + exp(d / θ))`` for the great-circle error ``d`` (km) of the
  answered coordinates: 1 at d = 0, 2/(1+e) ≈ 0.538 at d = θ, → 0 far away.

GRE's released reward swaps latitude and longitude, loses the sign of ``…°W``/``…°S`` answers
and leaves θ blank (docs/known-traps.md). Here answers are read by
:func:`geolib.answers.parse_answer` (``(lat, lon)`` order, S/W negative, out-of-range rejected)
and θ follows a documented coarse-to-fine :class:`ThetaSchedule`.

:func:`make_trl_rewards` returns the two rewards in the form TRL's ``GRPOTrainer(reward_funcs=…)``
calls: ``fn(prompts=…, completions=…, completion_ids=…, **dataset_columns, trainer_state=…,
log_extra=…, log_metric=…) -> list[float | None]``.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_FORMAT = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def format_reward(text: Any) -> float:
    """GRE's format reward: 1.0 for ``<think>…</think>`` + ``<answer>…</answer>`` and nothing else.

    The whole completion must be one think block, optional whitespace, one answer block;
    whitespace around it is allowed; both blocks must hold non-whitespace text; tags are
    lower-case as in GRE's prompt; a second, nested or stray tag gives 0.

    Returns:
        1.0 or 0.0 (0.0 for anything that is not a ``str``).
    """
    if not isinstance(text, str):
        return 0.0
    if any(text.count(tag) != 1 for tag in _TAGS):
        return 0.0
    m = _FORMAT.fullmatch(text)
    if m is None or not m.group("think").strip() or not m.group("answer").strip():
        return 0.0
    return 1.0


def distance_reward(d_km: Any, theta_km: float) -> float | np.ndarray:
    """GRE's distance reward ``2 / (1 + exp(d / θ))``, computed as ``2·expit(−d/θ)`` (no overflow).

    Args:
        d_km: great-circle error(s) in km, scalar or array; NaN (no usable answer) scores 0;
            ``inf`` scores 0.
        theta_km: the scale θ in km, > 0 (the current stage of a :class:`ThetaSchedule`).

    Returns:
        Reward(s) in [0, 1]: a float for a scalar input, else an array of the input's shape.

    Raises:
        ValueError: θ not a positive finite number, or a negative distance.
    """
    from scipy.special import expit

    theta = float(theta_km)
    if not (math.isfinite(theta) and theta > 0):
        raise ValueError(f"theta_km must be a positive number of km, got {theta_km!r}")
    d = np.asarray(d_km, dtype=float)
    if (d < 0).any():
        raise ValueError(f"distances must be >= 0 km, got min {np.nanmin(d)}")
    with np.errstate(over="ignore", invalid="ignore"):
        r = 2.0 * expit(-d / theta)
    r = np.where(np.isnan(d), 0.0, r)
    return float(r) if r.ndim == 0 else r


def gre_reward(completion: Any, true_lat: float, true_lon: float, theta_km: float, use_city: bool = False) -> float:
    """Distance reward of one completion against the true location.

    The completion is read with :func:`geolib.answers.parse_answer`; only valid coordinates earn
    a reward (no coordinates → 0). ``use_city=False`` by default: GRE's RL stage trains the
    coordinate answer that Im2GPS3k scores, and rewarding a geocoded city would pay the policy
    for skipping the coordinates; set ``use_city=True`` to score a city answer at its GeoNames
    coordinates (:func:`geolib.gazetteer.geocode_city`).

    Args:
        completion: the model's text.
        true_lat, true_lon: the true location, degrees.
        theta_km: θ of the distance reward, km.
        use_city: geocode a city answer when no coordinates were given.

    Returns:
        The reward in [0, 1].
    """
    from geolib.answers import parse_answer
    from geolib.geo import haversine_km

    _check_truth(true_lat, true_lon)
    parsed = parse_answer(completion)
    lat, lon = parsed.lat, parsed.lon
    if (lat is None or lon is None) and use_city and parsed.city:
        from geolib.gazetteer import geocode_city

        found = geocode_city(parsed.city, parsed.country)
        if found is not None:
            lat, lon = found
    if lat is None or lon is None:
        # still validate θ, so a bad θ never hides behind unanswered completions
        return float(distance_reward(np.nan, theta_km))
    d = float(np.asarray(haversine_km(lat, lon, float(true_lat), float(true_lon)), dtype=float))
    return float(distance_reward(d, theta_km))


def _check_truth(lat: Any, lon: Any) -> None:
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError):
        raise ValueError(f"true coordinates must be numbers, got ({lat!r}, {lon!r})") from None
    if not (math.isfinite(lat_f) and math.isfinite(lon_f) and abs(lat_f) <= 90 and abs(lon_f) <= 180):
        raise ValueError(f"true coordinates out of range or missing: ({lat!r}, {lon!r})")


@dataclass
class ThetaSchedule:
    """θ of the distance reward, annealed from coarse to fine during RL.

    GRE's released code leaves θ blank; this study anneals it. Training starts at
    ``stages[0]`` (continent scale, so a coarse answer already earns a gradient) and moves to
    the next, finer stage when the mean distance reward over the last ``window`` updates
    (each update = one mean over a batch of completions) is ``>= advance_at``: the policy then
    earns ≥ ``advance_at`` at this scale, so the target tightens. The history restarts at each
    stage (rewards under the old θ say nothing about the new one), the schedule never goes back
    to a coarser θ, and the last stage stays until the end.

    With the defaults, θ goes 2500 → 750 → 200 → 25 km (continent, country, region, city: the
    Im2GPS3k thresholds), advancing after 20 updates that average ≥ 0.6. A single completion
    earns 0.6 at d ≈ 0.85·θ (2/(1+exp(x)) = 0.6 at x = ln(7/3)), so a mean of 0.6 says that
    typical errors are already below the current θ.

    Args:
        stages: θ values in km, strictly decreasing, all > 0.
        window: number of updates whose mean decides an advance (>= 1).
        advance_at: the mean reward that advances the stage, in (0, 1].

    Example:
        >>> s = ThetaSchedule(stages=(2500, 750), window=2, advance_at=0.6)
        >>> s.update(0.7), s.update(0.65)
        (2500.0, 750.0)
    """

    stages: tuple[float, ...] = (2500.0, 750.0, 200.0, 25.0)
    window: int = 20
    advance_at: float = 0.6
    stage: int = field(default=0, init=False)
    n_updates: int = field(default=0, init=False)
    _history: deque = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        stages = tuple(float(s) for s in self.stages)
        if not stages or any(not (math.isfinite(s) and s > 0) for s in stages):
            raise ValueError(f"stages must be positive km values, got {self.stages!r}")
        if any(b >= a for a, b in zip(stages, stages[1:])):
            raise ValueError(f"stages must go coarse to fine (strictly decreasing), got {self.stages!r}")
        if not (isinstance(self.window, (int, np.integer)) and self.window >= 1):
            raise ValueError(f"window must be a positive integer, got {self.window!r}")
        if not (0.0 < float(self.advance_at) <= 1.0):
            raise ValueError(f"advance_at must be in (0, 1] (the reward's range), got {self.advance_at!r}")
        self.stages = stages
        self.window = int(self.window)
        self.advance_at = float(self.advance_at)
        self._history = deque(maxlen=self.window)

    @property
    def theta(self) -> float:
        """The current θ, km."""
        return self.stages[self.stage]

    @property
    def final(self) -> bool:
        """True at the last (finest) stage."""
        return self.stage == len(self.stages) - 1

    def update(self, mean_reward: float) -> float:
        """Record one batch's mean distance reward; advance when the window's mean holds.

        Args:
            mean_reward: mean distance reward of one batch, in [0, 1].

        Returns:
            θ for the next batch, km.
        """
        value = float(mean_reward)
        if not (0.0 <= value <= 1.0):
            raise ValueError(f"mean_reward must be in [0, 1], got {mean_reward!r}")
        self.n_updates += 1
        self._history.append(value)
        if not self.final and len(self._history) == self.window and float(np.mean(self._history)) >= self.advance_at:
            self.stage += 1
            self._history.clear()
        return self.theta

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (JSON-serialisable)."""
        return {
            "stages": list(self.stages),
            "window": self.window,
            "advance_at": self.advance_at,
            "stage": self.stage,
            "n_updates": self.n_updates,
            "history": list(self._history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; the configuration must match this schedule's."""
        config = {"stages": list(self.stages), "window": self.window, "advance_at": self.advance_at}
        saved = {k: state.get(k) for k in config}
        saved["stages"] = [float(s) for s in saved["stages"] or []]
        if saved != config:
            raise ValueError(f"state is for a different schedule: saved {saved}, this one {config}")
        stage = int(state["stage"])
        if not 0 <= stage < len(self.stages):
            raise ValueError(f"stage {stage} out of range for {len(self.stages)} stages")
        history = [float(h) for h in state.get("history", [])]
        if len(history) > self.window:
            raise ValueError(f"history holds {len(history)} values, more than window={self.window}")
        self.stage = stage
        self.n_updates = int(state.get("n_updates", 0))
        self._history = deque(history, maxlen=self.window)


# --------------------------------------------------------------------------------------------
# TRL


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a chat-message list (the last assistant turn).

    A message's ``content`` may be a string or a list of parts (``{"type": "text", "text": …}``).
    When a chat template split the thinking into ``reasoning_content``/``thinking`` and the
    content has no ``<think>``, the think block is put back in front.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)) or not completion:
        return ""
    messages = [m for m in completion if isinstance(m, dict)]
    assistant = [m for m in messages if m.get("role", "assistant") == "assistant"]
    if not assistant:
        return ""
    message = assistant[-1]
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    content = content if isinstance(content, str) else ""
    thinking = message.get("reasoning_content") or message.get("thinking")
    if isinstance(thinking, str) and thinking.strip() and "<think>" not in content:
        content = f"<think>{thinking}</think>{content}"
    return content


def _trainer_is_training(kwargs: dict[str, Any]) -> bool:
    """False when TRL calls the reward during evaluation (best effort; True when unknown).

    TRL 1.x passes ``log_metric``, a bound method of the trainer, whose model's ``training``
    flag tells a training step from an evaluation.
    """
    trainer = getattr(kwargs.get("log_metric"), "__self__", None)
    model = getattr(trainer, "model", None)
    return bool(getattr(model, "training", True))


class FormatReward:
    """TRL reward function: :func:`format_reward` of each completion."""

    __name__ = "format_reward"

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float]:
        return [format_reward(completion_text(c)) for c in completions]


class DistanceReward:
    """TRL reward function: GRE's distance reward at the schedule's current θ.

    Reads the dataset columns ``lat`` and ``lon`` (degrees) from the keyword arguments. A row
    whose true coordinates are missing gets ``None`` (TRL leaves it out of the sum). After
    scoring a training batch, the batch's mean reward updates the schedule (``update_schedule``);
    batches scored during evaluation do not. The current θ is logged as ``theta_km`` through
    TRL's ``log_metric`` when given. In multi-process training each process updates its own
    schedule from its own slice of the batch.
    """

    __name__ = "distance_reward"

    def __init__(self, schedule: ThetaSchedule, use_city: bool = False, update_schedule: bool = True) -> None:
        if not isinstance(schedule, ThetaSchedule):
            raise TypeError(f"schedule must be a ThetaSchedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.use_city = use_city
        self.update_schedule = update_schedule

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        if "lat" not in kwargs or "lon" not in kwargs:
            raise ValueError(
                "distance_reward needs the dataset columns 'lat' and 'lon'; got columns "
                f"{sorted(k for k in kwargs if k not in ('trainer_state', 'log_extra', 'log_metric'))}"
            )
        lats, lons = list(kwargs["lat"]), list(kwargs["lon"])
        if not (len(lats) == len(lons) == len(completions)):
            raise ValueError(f"got {len(completions)} completions but {len(lats)} lat and {len(lons)} lon values")
        theta = self.schedule.theta
        rewards: list[float | None] = []
        for completion, lat, lon in zip(completions, lats, lons):
            try:
                _check_truth(lat, lon)
            except ValueError:
                rewards.append(None)
                continue
            rewards.append(gre_reward(completion_text(completion), lat, lon, theta, use_city=self.use_city))
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric("theta_km", theta)
        scored = [r for r in rewards if r is not None]
        if self.update_schedule and scored and _trainer_is_training(kwargs):
            self.schedule.update(float(np.mean(scored)))
        return rewards


def make_trl_rewards(
    theta_schedule: ThetaSchedule, use_city: bool = False, update_schedule: bool = True
) -> list[Any]:
    """``[format_fn, distance_fn]`` for ``GRPOTrainer(reward_funcs=…)``.

    Both follow TRL's reward-function signature ``fn(completions, **kwargs) -> list[float]``;
    completions may be strings or chat-message lists. The dataset needs ``lat`` and ``lon``
    columns. TRL logs them as ``rewards/format_reward`` and ``rewards/distance_reward``.

    Args:
        theta_schedule: the θ schedule, updated in place by the distance function (save its
            ``state_dict()`` with the checkpoint to resume).
        use_city: let a geocoded city earn the distance reward (see :func:`gre_reward`).
        update_schedule: False to keep θ fixed at the schedule's current stage.
    """
    return [FormatReward(), DistanceReward(theta_schedule, use_city=use_city, update_schedule=update_schedule)]
