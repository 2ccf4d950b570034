"""Reasoning texts of the demo world: geo-game style explanations written only from visible clues.

:func:`reasoning_text` says what the picture shows (:func:`_scene_sentence`), then one sentence per
clue and the country they point to, in wordings drawn from a generator seeded by the scene.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from geolib.facts import _SCRIPT_PHRASES, MARKER_PHRASES, SCRIPT_NAMES, clue_language, language_name
from geolib.world.scene import SceneSpec, _pick


def _script_words(script: str) -> str:
    return _SCRIPT_PHRASES.get(script, f"{SCRIPT_NAMES.get(script, script)} script")


def _scene_sentence(spec: SceneSpec, rng: np.random.Generator) -> str:
    """What the picture shows, with the everyday names of the scene's classes."""
    has = {
        "building": any(b.kind == "building" and b.side != 0 for b in spec.buildings),
        "house": any(b.kind == "house" for b in spec.buildings),
        "sidewalk": spec.road is not None and spec.road.sidewalk > 0,
        "pole": any(p.kind == "utility" for p in spec.poles),
        "lamp": any(p.kind == "lamp" for p in spec.poles),
        "car": bool(spec.cars),
        "tree": bool(spec.trees) or spec.treeline > 0,
        "mountain": bool(spec.mountains),
        "sign": bool(spec.signs),
    }
    extras = []
    if has["sidewalk"]:
        extras.append("a sidewalk")
    if has["car"]:
        extras.append(_pick(rng, ["a few cars", "cars on the road", "some cars"]))
    if has["pole"]:
        extras.append(_pick(rng, ["utility poles", "wooden poles along the road"]))
    if has["lamp"]:
        extras.append("street lamps")
    if has["tree"]:
        extras.append(_pick(rng, ["trees", "some trees"]))
    if has["sign"]:
        extras.append(_pick(rng, ["a signboard", "a sign", "signs"]))
    if has["mountain"]:
        extras.append(_pick(rng, ["mountains on the horizon", "mountains in the distance"]))
    tail = ""
    if extras:
        tail = ", with " + (", ".join(extras[:-1]) + " and " + extras[-1] if len(extras) > 1 else extras[0])
    if spec.layout == "street":
        what = {
            "urban": _pick(
                rng,
                [
                    "A city street lined with buildings on both sides",
                    "An urban road between tall buildings",
                    "A busy street between apartment buildings",
                ],
            ),
            "suburban": _pick(
                rng,
                [
                    "A suburban road with houses set back from it",
                    "A residential street with low houses",
                    "A quiet road through a residential area",
                ],
            ),
            "rural": _pick(
                rng, ["An open country road", "A rural road through open land", "A road crossing the countryside"]
            ),
        }[spec.scene]
    elif spec.layout == "open":
        what = _pick(
            rng,
            [
                "An open landscape with no road in sight",
                "A natural landscape under a wide sky",
                "Open countryside without buildings",
            ],
        )
    elif spec.layout == "landmark":
        what = _pick(rng, ["A large monumental building facing a paved square", "A landmark building across a plaza"])
    elif spec.layout == "facade":
        what = _pick(
            rng,
            ["A close view of a building facade across the street", "The front of a building seen from the sidewalk"],
        )
        tail = ", with " + ("a signboard above the ground floor" if spec.signs else "windows but little else")
    else:
        what = _pick(rng, ["A close-up of a wall", "A plain wall that fills most of the view"])
        tail = ""
    sentence = what + tail + "."
    if spec.fog is not None:
        sentence += " " + _pick(
            rng, ["Fog hides everything beyond a few dozen metres.", "Thick fog washes out the distance."]
        )
    return sentence


def reasoning_text(spec: SceneSpec, clues: Sequence[str]) -> str:
    """A geo-game style explanation built only from ``clues`` (several wordings, seeded by the spec)."""
    rng = np.random.default_rng(spec.text_seed)
    parts = [_scene_sentence(spec, rng)]
    by = {}
    for c in clues:
        k, _, v = c.partition(":")
        by.setdefault(k, []).append(v)
    for script in by.get("script", []):
        langs = [l for l in by.get("language", []) if _lang_script_ok(spec, l, script)]
        sw = _script_words(script)
        if langs:
            names = " and ".join(language_name(l) for l in langs)
            parts.append(
                _pick(
                    rng,
                    [
                        f"The signs are written in {sw}, and the words read as {names}.",
                        f"The signboard uses {sw}; the words are {names}.",
                        f"I can read the sign: it is in {sw} and the language is {names}.",
                    ],
                )
            )
        else:
            parts.append(
                _pick(
                    rng,
                    [
                        f"The signs use {sw}, although the words are too small to read.",
                        f"There is writing in {sw} on a sign.",
                        f"The text on the signboard is in {sw}.",
                    ],
                )
            )
    used_langs = {l for s in by.get("script", []) for l in by.get("language", []) if _lang_script_ok(spec, l, s)}
    for l in by.get("language", []):
        if l not in used_langs:
            parts.append(f"The sign words read as {language_name(l)}.")
    for side in by.get("driving_side", []):
        parts.append(
            _pick(
                rng,
                [
                    f"The cars drive on the {side}.",
                    f"Traffic keeps to the {side}, as the cars on the road show.",
                    f"Judging by the cars, people drive on the {side} here.",
                ],
            )
        )
    for colour in by.get("centre_line", []):
        parts.append(
            _pick(
                rng,
                [
                    f"The road has a {colour} centre line.",
                    f"A {colour} centre line divides the two directions of the road.",
                    f"Note the {colour} center line on the road.",
                ],
            )
        )
    for colour in by.get("edge_line", []):
        parts.append(
            _pick(rng, [f"There are {colour} edge lines along the road.", f"The road has {colour} edge lines."])
        )
    for p in by.get("plate", []):
        parts.append(
            {
                "blue_band": "The car's licence plate has a blue band on the left, as in the EU.",
                "mercosur": "The licence plate is the white Mercosur type with a blue strip along the top.",
            }.get(p, _pick(rng, [f"The car has {p} licence plates.", f"The cars carry {p} number plates."]))
        )
    for colour in by.get("direction_sign", []):
        parts.append(
            _pick(
                rng,
                [
                    f"The {colour} direction sign is typical of the local road signs.",
                    f"Direction signs here are {colour}: there is a {colour} direction sign in view.",
                ],
            )
        )
    for kind in ("warning_sign", "speed_sign", "bollard"):
        for value in by.get(kind, []):
            phrase = MARKER_PHRASES[f"{kind}:{value}"]
            parts.append(
                _pick(rng, [f"There are {phrase} by the road.", f"Note the {phrase}.", f"I can see {phrase}."])
            )
    for veg in by.get("vegetation", []):
        parts.append(
            {
                "tropical": _pick(rng, ["Palm trees point to a tropical climate.", "The palms suggest the tropics."]),
                "arid": _pick(
                    rng,
                    [
                        "The bare, dry ground suggests an arid climate.",
                        "It looks like dry land with sparse scrub: an arid climate.",
                    ],
                ),
                "temperate": _pick(
                    rng,
                    [
                        "The deciduous trees suggest a temperate climate.",
                        "Broadleaved deciduous trees hint at a temperate climate.",
                    ],
                ),
                "boreal": _pick(
                    rng, ["Conifers suggest a cold, boreal climate.", "The conifer trees hint at a cold climate."]
                ),
            }[veg]
        )
    if clues:
        where = _country_phrase(spec.country_name)
        parts.append(
            _pick(
                rng,
                [
                    f"Together these clues point to {where}.",
                    f"These clues fit {where}.",
                    f"Putting it together, this is most likely {where}.",
                ],
            )
        )
    else:
        parts.append(
            _pick(
                rng,
                [
                    "There is no legible sign and nothing else distinctive, so the location cannot be pinned down from this view.",
                    "No clear clue is visible here; any guess would be weak.",
                ],
            )
        )
    return " ".join(parts)


def _country_phrase(name: str) -> str:
    """``United Kingdom`` → ``the United Kingdom`` (names that take an article in English)."""
    return (
        f"the {name}"
        if name.startswith("United") or name in ("Netherlands", "Philippines", "Bahamas", "Gambia")
        else name
    )


def _lang_script_ok(spec: SceneSpec, lang: str, script: str) -> bool:
    return any(clue_language(l.lang) == lang and l.script == script for s in spec.signs for l in s.lines)
