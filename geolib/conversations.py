"""Conversations of the vision-language model: prompts, answers, captions, encoding, collation.

Used by notebooks 04_reasoning_tuning (base training's captions, knowledge and guess
conversations; stage 1's reasoning conversations), 05_location_tuning (stage 2's location
conversations), 06_evaluation (the prompts, country names) and 07_gre_reasoning_rl (through
:mod:`geolib.gre`, whose chains have the same shape).

A conversation is a dict ``{"image": key, "messages": [...]}`` where ``key`` indexes the
``images`` passed alongside (a feature array (N, tokens, 1280) or a list of paths), or is itself an
image path when no ``images`` are passed; ``messages`` are chat messages whose user turn holds
``{"type": "image"}`` and the prompt. :func:`encode_texts` turns chat-formatted texts and their
images into model inputs; :class:`ConversationCollator` batches conversations for training with
the loss on assistant tokens only.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geolib import facts, features, vlm

import torch  # noqa: E402  (after the torchvision patch of geolib.vlm)

# ---------------------------------------------------------------------------------------------
# Prompts

#: The prompts of the study. ``reasoning`` and ``location`` are GeoReasoner's two tuning
#: prompts; ``describe`` is the demo's base training prompt; ``evaluation`` is GeoReasoner's
#: released inference prompt (``GeoReasoner/infer.py``), verbatim, for inference only (never
#: trained on).
PROMPTS = {
    "describe": "Describe the image.",
    "reasoning": "Which country is the image located? Explain the reason.",
    "location": "Which country and city is the image located?",
    "evaluation": (
        "According to the content of the image, please think step by step and deduce in which country and city "
        "the image is most likely located and offer possible explanations. Output in JSON format, e.g., "
        "{'country': '', 'city': '' ,'reasons':''}."
    ),
}


# ---------------------------------------------------------------------------------------------
# Conversations


def user_message(prompt: str) -> dict:
    """The user turn: the image, then the prompt."""
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}


def assistant_message(text: str) -> dict:
    """An assistant turn holding ``text``."""
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def format_answer(**fields_: str) -> str:
    """GeoReasoner's answer style: a Python dict literal, e.g. ``{'country': 'France', 'city': 'Paris'}``.

    Keys keep the order given; ``repr`` picks the quotes (``"Côte d'Ivoire"``), so
    ``ast.literal_eval`` and :func:`geolib.answers.parse_answer` read it back.
    """
    return repr({k: str(v) for k, v in fields_.items()})


#: Which columns each tuning stage puts in the answer.
STAGE_FIELDS = {"reasoning": ("country", "reasons"), "location": ("country", "city")}


def country_name(value: str) -> str:
    """An ISO 3166-1 alpha-2 code (``"FR"``) as its English name (CLDR: ``"France"``); names pass through."""
    value = str(value).strip()
    if re.fullmatch(r"[A-Z]{2}", value):
        import babel

        name = babel.Locale("en").territories.get(value)
        if name is None:
            raise ValueError(f"unknown country code {value!r}")
        return name
    return value


def _place_names(country_codes: Sequence[str], cities: Sequence[str]) -> list[str]:
    """Names that give a place away: cities, and each country's code, English name and its names
    in its own official languages (CLDR; what the demo world writes on signs)."""
    import babel
    from babel import languages

    names = [str(c) for c in cities if isinstance(c, str) and c.strip()]
    english = babel.Locale("en").territories
    for code in {str(c).strip() for c in country_codes if isinstance(c, str)}:
        names.append(code)
        if not re.fullmatch(r"[A-Z]{2}", code):
            continue
        if code in english:
            names.append(english[code])
        for lang in languages.get_official_languages(code, de_facto=True):
            try:
                local = babel.Locale.parse(lang).territories.get(code)
            except (ValueError, babel.UnknownLocaleError):
                continue
            if local:
                names.append(local)
    return names


def _row_images(frame, image_column: str | None) -> list:
    if image_column is None:
        return list(range(len(frame)))
    if image_column not in frame.columns:
        raise ValueError(f"image column {image_column!r} not in the frame; columns: {list(frame.columns)}")
    return [v.item() if isinstance(v, np.generic) else v for v in frame[image_column].tolist()]


def _text_value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def make_conversations(
    frame,
    stage: str,
    image_column: str | None = None,
    country_column: str = "country",
    city_column: str = "city",
    reasons_column: str = "reasoning",
) -> list[dict]:
    """GeoReasoner's tuning conversations, one per row of ``frame``.

    * ``"reasoning"`` (stage 1, reasoning tuning, from the clue corpus): user "Which country is
      the image located? Explain the reason." → ``{'country': …, 'reasons': …}``.
    * ``"location"`` (stage 2, location tuning, curated images): user "Which country and city is
      the image located?" → ``{'country': …, 'city': …}``.

    Country codes (the manifest's ISO alpha-2 ``country``) are written as English names
    (:func:`country_name`), as GeoReasoner's answers are.

    Args:
        frame: a DataFrame with the answer columns (and the image column), e.g. the pool manifest.
        stage: ``"reasoning"`` or ``"location"``.
        image_column: the column whose value is the conversation's image key (an int row of the
            feature array passed to training, or a path); None: the row's position in ``frame``
            (features computed for exactly this frame, in this order).
        country_column, city_column, reasons_column: the answer columns (manifest names by default).

    Returns:
        ``[{"image": key, "messages": [user, assistant]}, ...]``; rows with an empty answer
        field are skipped with a warning (count and first examples).
    """
    if stage not in STAGE_FIELDS:
        raise ValueError(f"stage must be one of {sorted(STAGE_FIELDS)}, got {stage!r}")
    columns = {"country": country_column, "city": city_column, "reasons": reasons_column}
    needed = [columns[f] for f in STAGE_FIELDS[stage]]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"stage {stage!r} needs columns {needed}; missing {missing} in {list(frame.columns)}")
    images = _row_images(frame, image_column)
    conversations, skipped = [], []
    for i, (image, row) in enumerate(zip(images, frame[needed].itertuples(index=False, name=None))):
        values = {f: _text_value(v) for f, v in zip(STAGE_FIELDS[stage], row)}
        if not all(values.values()):
            skipped.append(i)
            continue
        values["country"] = country_name(values["country"])
        conversations.append(
            {"image": image, "messages": [user_message(PROMPTS[stage]), assistant_message(format_answer(**values))]}
        )
    if skipped:
        warnings.warn(
            f"make_conversations({stage!r}): skipped {len(skipped)} of {len(frame)} rows with an empty "
            f"{'/'.join(needed)} (first rows: {skipped[:5]})",
            stacklevel=2,
        )
    return conversations


def _names_pattern(names: Sequence[str]) -> re.Pattern | None:
    """Whole-word, case-sensitive matches of ``names`` (case-insensitive would turn the city "Van"
    or the code "IN" into ordinary words)."""
    names = sorted({n.strip() for n in names if isinstance(n, str) and len(n.strip()) >= 2}, key=len, reverse=True)
    if not names:
        return None
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(n) for n in names) + r")(?!\w)")


def _scrub_sentences(text: str, pattern: re.Pattern | None) -> str:
    """Drop every sentence of ``text`` that mentions one of the forbidden names."""
    if pattern is None:
        return text
    parts = re.split(r"(?<=[.!?])\s+", text)
    return " ".join(p for p in parts if not pattern.search(p)).strip()


@functools.lru_cache(maxsize=None)
def _sign_vocabulary(country: str) -> frozenset[str]:
    """Sign words of the demo world that name no place: the weekday and month names of the
    country's sign languages (CLDR, as :func:`geolib.facts.local_words` draws them)."""
    try:
        languages = facts.country_facts(country)["languages"]
    except KeyError:
        return frozenset()
    words: set[str] = set()
    for lang in languages:
        w = facts.local_words(lang, country)
        words.update(w["days"], w["days_short"], w["months"])
    return frozenset(words)


def _readable_sign_words(sign_text: str, country: str) -> list[str]:
    """The parts of the legible sign text (signs joined by " | ", lines by " / ") that are safe to
    read out: distances (they hold a digit) and weekday / month names. Place names are left out."""
    vocabulary = _sign_vocabulary(country) if isinstance(country, str) else frozenset()
    out: list[str] = []
    for sign in sign_text.split(" | "):
        for part in sign.split(" / "):
            part = part.strip()
            if not part:
                continue
            pieces = [x for x in re.split(r"\s+[–-]\s+", part) if x]
            if any(ch.isdigit() for ch in part) or (pieces and all(x in vocabulary for x in pieces)):
                if part not in out:
                    out.append(part)
    return out


def scene_caption(row: Mapping[str, Any]) -> str:
    """A caption of one demo-world scene from its manifest row, naming no place.

    What is in view (the first sentence of ``reasoning``, which describes the picture, else the
    ``scene`` type; ``building_fraction``), the visible clues in words (``clues``, clue
    ids through :func:`geolib.facts.clue_phrase`: "signs in Cyrillic script", "cars driving on the
    left", "yellow centre lines"), and the legible sign text read out (``sign_text``) except the
    place names on it: only weekday / month names and distances are quoted. Missing fields are
    left out.

    Example:
        ``A suburban road with houses set back from it, with a sidewalk and trees. Buildings cover
        about 30% of the view. Visible: signs in Latin script, cars driving on the right, white
        centre lines. A sign reads "Montag".``
    """

    def get(key):
        v = row.get(key) if hasattr(row, "get") else None
        if isinstance(v, (list, tuple, np.ndarray)):
            return [str(x) for x in v if str(x).strip()]
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    scene, reasoning = get("scene"), get("reasoning")
    first = re.split(r"(?<=[.!?])\s+", reasoning.strip())[0] if isinstance(reasoning, str) and reasoning.strip() else ""
    if first:  # the demo world's reasoning opens with what the picture shows (no place in it)
        sentences = [first]
    elif scene:
        sentences = [f"{'An' if str(scene)[:1] in 'aeiou' else 'A'} {scene} scene."]
    else:
        sentences = ["A street scene."]
    fraction = get("building_fraction")
    if isinstance(fraction, (int, float, np.floating)):
        share = int(round(float(fraction) * 10)) * 10
        sentences.append(f"Buildings cover about {share}% of the view." if share else "No building fills the view.")
    clues = get("clues")
    if isinstance(clues, list):
        sentences.append(f"Visible: {', '.join(facts.clue_words(c) for c in clues)}." if clues else
                         "Nothing distinctive is visible.")
    text = get("sign_text")
    if isinstance(text, str) and text.strip():
        words = _readable_sign_words(text, get("country"))
        if len(words) == 1:
            sentences.append(f'A sign reads "{words[0]}".')
        elif words:
            sentences.append("Signs read " + ", ".join(f'"{w}"' for w in words[:-1]) + f' and "{words[-1]}".')
        else:
            sentences.append("A sign shows a place name.")
    return " ".join(sentences)


def base_training_conversations(
    pool,
    image_column: str | None = None,
    caption_column: str | None = None,
    country_column: str = "country",
    city_column: str = "city",
) -> list[dict]:
    """Caption conversations for the demo's base training: look and describe, never name the place.

    User "Describe the image." → what is in the scene, the visible clues, the sign text read out
    (:func:`scene_caption`, or ``caption_column`` when the pool already has captions). As a
    second guard, every sentence that names a place of the pool is dropped: any city of
    ``city_column``, any country of ``country_column`` by English name or by its name in its own
    official languages (CLDR; signs of the demo world can read "Deutschland"). So the base model
    learns to see, not where it is.

    Args:
        pool: the image pool DataFrame (one row per image; the demo world's manifest).
        image_column: image key column, None for the row position (see :func:`make_conversations`).
        caption_column: use this column's text as the caption instead of :func:`scene_caption`.
        country_column, city_column: the place columns whose values must never appear.

    Returns:
        ``[{"image": key, "messages": [user, assistant]}, ...]``.
    """
    images = _row_images(pool, image_column)
    codes = pool[country_column].dropna().unique().tolist() if country_column in pool.columns else []
    cities = pool[city_column].dropna().unique().tolist() if city_column in pool.columns else []
    pattern = _names_pattern([n for n in _place_names(codes, cities) if not re.fullmatch(r"[A-Z]{2}", n)])
    conversations = []
    for image, row in zip(images, pool.to_dict("records")):
        caption = _text_value(row.get(caption_column)) if caption_column else scene_caption(row)
        caption = _scrub_sentences(caption, pattern) or "A street scene."
        conversations.append({"image": image, "messages": [user_message(PROMPTS["describe"]), assistant_message(caption)]})
    return conversations


#: Prompts of the demo's text-only knowledge conversations (shown a blank image).
KNOWLEDGE_PROMPTS = ("What gives {country} away in a street view?", "Name cities of {country}.")

#: Knowledge prompts whose answer has to *name* the country (not copy it from the question).
KNOWLEDGE_QUESTIONS = ("Which country is {city} in?", "Which country fits these clues: {clues}?")


def knowledge_conversations(pool, country_column: str = "country", city_column: str = "city",
                            repeats: int = 4) -> list[dict]:
    """Text-only world knowledge for the demo's base training, each shown with a blank image.

    A real base model knows country and city names, what each country's roads and signs look
    like, and how to write a Python dict; the demo's language model starts from nothing, so its
    base training adds this knowledge as text: per country of ``pool``, its facts from the demo
    world's sourced fact sheet (driving side, languages and scripts of signs, climate) and its
    cities, answered in dict form. No image is paired with a place (the image is blank: key
    ``None``), so the model learns words and facts, not to locate a picture; stage 1 and 2 still
    have to teach that. Without it the names and the answer syntax would be tokens the base
    model never produced, whose output embeddings its training drove to near zero: a LoRA
    adapter, which cannot change embeddings, could then not learn to say them.

    Two kinds of turn: the country named in the question (:data:`KNOWLEDGE_PROMPTS`: its facts,
    its cities), and questions whose answer has to name the country (:data:`KNOWLEDGE_QUESTIONS`:
    the country of each of its cities, answered ``{'country': …, 'city': …}``; the country that
    fits its facts). Only the second kind teaches the model to *produce* a country name where the
    question does not give it away, which is what both stages ask of it.

    Returns:
        ``repeats`` × (3 + the number of its cities) conversations per country
        (``{"image": None, "messages": [...]}``).
    """
    conversations = []
    cities = pool.groupby(country_column)[city_column].agg(lambda c: sorted(set(map(str, c))))
    for code, names in cities.items():
        name = country_name(code)
        try:
            sheet = facts.country_facts(code)
        except (KeyError, ValueError):
            sheet = {}
        clues = []
        if sheet.get("driving_side"):
            clues.append(f"cars drive on the {sheet['driving_side']}")
        for lang, info in sheet.get("languages", {}).items():
            script = facts.SCRIPT_NAMES.get(info.get("script"), info.get("script"))
            clues.append(f"signs in {facts.language_name(lang)} ({script} script)")
        if sheet.get("koppen"):
            clues.append(f"{facts.koppen_vegetation(sheet['koppen'][0])} vegetation")
        answers = (format_answer(country=name, clues="; ".join(clues) or "few"),
                   format_answer(country=name, cities=", ".join(names)))
        turns = [(prompt.format(country=name), answer) for prompt, answer in zip(KNOWLEDGE_PROMPTS, answers)]
        turns += [(KNOWLEDGE_QUESTIONS[0].format(city=city), format_answer(country=name, city=city)) for city in names]
        turns.append((KNOWLEDGE_QUESTIONS[1].format(clues="; ".join(clues) or "few"), format_answer(country=name)))
        for question, answer in turns:
            conv = {"image": None, "messages": [user_message(question), assistant_message(answer)]}
            conversations.extend(copy.deepcopy(conv) for _ in range(repeats))
    return conversations


def guess_conversations(pool, n: int, country_column: str = "country", city_column: str = "city",
                        seed: int = 0) -> list[dict]:
    """Text-only conversations that teach the demo's base model to *answer* the location question.

    A pretrained instruct model asked "Which country and city is the image located?" answers in
    the asked format with a guess from its prior, whether or not it can read the image (the
    paper's untuned Qwen-VL answers 95% of the time). The demo's language model starts from
    nothing, so its base training shows it the question with a **blank image** (key ``None``)
    answered by a place drawn uniformly from the ``(country, city)`` pairs of ``pool``:
    the answer format and a prior over places, and no link from any image to its place (that is
    still the stages' job).

    Args:
        pool: the image pool (its distinct country and city pairs are the guesses).
        n: number of conversations.
        seed: seed of the draws.

    Returns:
        ``[{"image": None, "messages": [user, assistant]}, ...]`` with ``n`` items.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    places = sorted(set(zip(pool[country_column].astype(str), pool[city_column].astype(str))))
    if n and not places:
        raise ValueError("the pool has no (country, city) pairs to guess from")
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(places), size=n) if n else []
    return [{"image": None, "messages": [user_message(PROMPTS["location"]), assistant_message(
        format_answer(country=country_name(places[i][0]), city=places[i][1]))]} for i in picks]


def conversation_texts(conversations: Sequence[dict]) -> list[str]:
    """All message texts of ``conversations`` (a tokenizer corpus for :func:`geolib.vlm.train_tokenizer`)."""
    out = []
    for conv in conversations:
        for m in conv["messages"]:
            content = m["content"]
            if isinstance(content, str):
                out.append(content)
            else:
                out.extend(p["text"] for p in content if p.get("type") == "text")
    return out


# ---------------------------------------------------------------------------------------------
# Encoding: text + images → model inputs, with the loss on assistant tokens only


def _resolve_images(keys: Sequence, images) -> list:
    """Look each key up in ``images`` (a feature array or a list of paths); None: keys are images."""
    if images is None:
        return list(keys)
    out = []
    for k in keys:
        if isinstance(k, (int, np.integer)):
            out.append(images[int(k)])
        elif k is None and getattr(images, "ndim", 0) == 3:  # a blank image (text-only conversation)
            out.append(np.zeros(images.shape[1:], dtype=np.float32))
        else:
            raise TypeError(f"image key {k!r} must be an int row of the images passed, got {type(k).__name__}")
    return out


def _stack_image_inputs(items: Sequence) -> torch.Tensor | list:
    """Features (T, C) rows → a float32 tensor (B, T, C); anything else is returned as a list."""
    if all(isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 2 for x in items):
        arr = np.stack([np.asarray(x, dtype=np.float32) for x in items])
        if not np.isfinite(arr).all():
            raise ValueError("image features contain NaN/inf (an unreadable image in the feature cache?)")
        return torch.from_numpy(arr)
    if any(isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 2 for x in items):
        raise TypeError("a batch mixes cached features with images; pass one kind")
    return list(items)


def encode_texts(processor, texts: Sequence[str], images: Sequence, padding_side: str = "right",
                 max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Tokenize chat-formatted ``texts`` (one image each) and prepare the images.

    Hub processors (Qwen) do both, expanding each ``<|image_pad|>`` to the image's token count.
    The demo tokenizer: ``images`` are cached features (T, C) or pixels' sources (paths / PIL,
    preprocessed by :func:`geolib.features.preprocess`), and ``<|image_pad|>`` is expanded to T
    (49 at 224 px) here.

    Returns:
        ``input_ids`` and ``attention_mask`` (B, L), ``pixel_values`` and, for Qwen,
        ``image_grid_thw`` and ``mm_token_type_ids``.
    """
    if len(texts) != len(images):
        raise ValueError(f"{len(texts)} texts but {len(images)} images")
    if vlm.is_hf_processor(processor):
        stacked = _stack_image_inputs(images)
        if isinstance(stacked, torch.Tensor):
            raise TypeError("cached features work with the demo model only; pass image paths to a hub processor")
        tok = processor.tokenizer
        previous = tok.padding_side
        tok.padding_side = padding_side
        try:
            # upright (EXIF), RGB: what the baselines and the image tower see
            batch = processor(text=list(texts), images=[features.load_rgb(x) for x in stacked], padding=True,
                              return_tensors="pt")
        finally:
            tok.padding_side = previous
        batch = dict(batch)
        if max_length is not None and batch["input_ids"].shape[1] > max_length:
            batch = _truncate(batch, max_length, tok.convert_tokens_to_ids(vlm.IMAGE_TOKEN), padding_side)
        return batch
    tok = processor
    stacked = _stack_image_inputs(images)
    if isinstance(stacked, list):
        stacked = features.preprocess(stacked)  # (B, 3, 224, 224)
        n_tokens = (stacked.shape[-2] // 32) * (stacked.shape[-1] // 32)
    else:
        n_tokens = stacked.shape[1]
    expanded = []
    for t in texts:
        if t.count(vlm.IMAGE_TOKEN) != 1:
            raise ValueError(f"each text needs exactly one {vlm.IMAGE_TOKEN}, got {t.count(vlm.IMAGE_TOKEN)}: {t[:80]!r}")
        expanded.append(t.replace(vlm.IMAGE_TOKEN, vlm.IMAGE_TOKEN * n_tokens))
    ids = tok(expanded, add_special_tokens=False)["input_ids"]
    if max_length is not None:
        ids = [x[:max_length] for x in ids]
    image_id = tok.convert_tokens_to_ids(vlm.IMAGE_TOKEN)
    for x in ids:
        if sum(1 for t in x if t == image_id) != n_tokens:
            raise ValueError(f"max_length={max_length} cuts into the image tokens; raise it")
    pad = tok.convert_tokens_to_ids(vlm.PAD_TOKEN)
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        if padding_side == "left":
            input_ids[i, width - len(x):] = torch.tensor(x)
            attention[i, width - len(x):] = 1
        else:
            input_ids[i, : len(x)] = torch.tensor(x)
            attention[i, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "pixel_values": stacked}


def _truncate(batch: dict, max_length: int, image_id: int, padding_side: str) -> dict:
    """Cut (B, L) tensors to ``max_length`` (keeping the start), refusing to cut image tokens."""
    before = (batch["input_ids"] == image_id).sum()
    sl = slice(None, max_length) if padding_side == "right" else slice(-max_length, None)
    L = batch["input_ids"].shape[1]
    out = {k: (v[:, sl] if isinstance(v, torch.Tensor) and v.ndim == 2 and v.shape[1] == L and k != "pixel_values" else v)
           for k, v in batch.items()}
    if (out["input_ids"] == image_id).sum() != before:
        raise ValueError(f"max_length={max_length} cuts into the image tokens; raise it")
    return out


def assistant_token_mask(input_ids: torch.Tensor, processor) -> torch.Tensor:
    """True on the tokens of each assistant reply and its closing ``<|im_end|>``.

    An assistant turn starts after ``<|im_start|>assistant\\n`` and ends with ``<|im_end|>``
    (ChatML); the header itself, the system and user turns, image tokens and padding are False.

    Args:
        input_ids: (B, L) token ids.

    Returns:
        (B, L) bool mask.
    """
    tok = vlm.tokenizer_of(processor)
    header = tok.encode(f"{vlm.IM_START}assistant\n", add_special_tokens=False)
    end = tok.convert_tokens_to_ids(vlm.IM_END)
    ids = input_ids.tolist()
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    h = len(header)
    for b, row in enumerate(ids):
        i = 0
        while i <= len(row) - h:
            if row[i: i + h] == header:
                j = i + h
                while j < len(row) and row[j] != end:
                    j += 1
                stop = min(j + 1, len(row))  # include <|im_end|> (the model must learn to stop)
                mask[b, i + h: stop] = True
                i = stop
            else:
                i += 1
    return mask


class ConversationCollator:
    """Batches conversations for training: chat template → tokens + images, labels on replies.

    Labels are the input ids on assistant tokens (:func:`assistant_token_mask`) and -100
    everywhere else (prompt, image tokens, padding), so the loss is on the answers only.

    Args:
        processor: a Qwen processor or the demo tokenizer.
        images: what conversation ``"image"`` keys index (a feature array (N, T, C) or a list
            of paths); None when the keys are image paths themselves.
        max_length: longest sequence in tokens (image tokens included); longer ones are cut at the end.
    """

    def __init__(self, processor, images=None, max_length: int | None = None):
        self.processor = processor
        self.images = images
        self.max_length = max_length

    def __call__(self, conversations: Sequence[dict]) -> dict[str, torch.Tensor]:
        texts = [self.processor.apply_chat_template(c["messages"], tokenize=False) for c in conversations]
        images = _resolve_images([c["image"] for c in conversations], self.images)
        batch = encode_texts(self.processor, texts, images, padding_side="right", max_length=self.max_length)
        labels = batch["input_ids"].clone()
        labels[~assistant_token_mask(batch["input_ids"], self.processor)] = -100
        labels[batch["attention_mask"] == 0] = -100
        batch["labels"] = labels
        return batch


__all__ = [
    "PROMPTS", "make_conversations", "base_training_conversations", "scene_caption", "format_answer",
    "conversation_texts", "encode_texts", "assistant_token_mask", "ConversationCollator", "knowledge_conversations",
    "KNOWLEDGE_PROMPTS", "KNOWLEDGE_QUESTIONS", "guess_conversations",
]
