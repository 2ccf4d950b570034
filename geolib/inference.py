"""Inference of the vision-language model: batched generation, closed-set scores, parsed predictions.

Used by notebooks 04_reasoning_tuning and 05_location_tuning (answers of the tuned stages),
06_evaluation (the test split's answers and closed-set scores, through
:func:`geolib.stages.answer_study_model`), 07_gre_reasoning_rl (through :mod:`geolib.gre`) and
08_read_the_signs (the sign reader's answers as predictions).

GeoReasoner's inference asks for a country, a city and the reasons in JSON; the model's raw text
is kept next to what :func:`geolib.answers.parse_answer` reads from it, and the predicted
coordinates come from the answer's coordinates when it gives them, else from the predicted city
geocoded with GeoNames (``coord_source`` says which). The result has the prediction columns of
:mod:`geolib.baselines`, so :func:`geolib.evaluation.baseline_table` scores a model and its
baselines alike.

For notebook 06, several models answer the same images side by side: :func:`answer_jobs` (one job
per model for :func:`geolib.stages.answer_study_model`), :func:`sort_answers` (answers, reasons,
closed-set accuracy, seconds), and the views of what they answered: :func:`closed_set_diagnosis`,
:func:`shown_answers`, :func:`answer_examples` (right and wrong, with reasons) and
:func:`answers_frame` (every model's answers in one frame).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from geolib import answers, evaluation, metrics, vlm
from geolib.conversations import PROMPTS, country_name, encode_texts, format_answer, user_message

import torch  # noqa: E402  (after the torchvision patch of geolib.vlm)

# ---------------------------------------------------------------------------------------------
# Generation and closed-set scoring


def _as_image_list(images_or_features) -> list:
    if isinstance(images_or_features, np.ndarray) or isinstance(images_or_features, torch.Tensor):
        if images_or_features.ndim != 3:
            raise ValueError(f"features must be (N, tokens, dim), got shape {tuple(images_or_features.shape)}")
        return [images_or_features[i] for i in range(len(images_or_features))]
    if isinstance(images_or_features, (str, os.PathLike)):
        raise TypeError("pass a list of images (wrap a single path in a list)")
    return list(images_or_features)


@torch.inference_mode()
def generate(
    model,
    processor,
    images_or_features,
    prompt: str | Sequence[str] = PROMPTS["location"],
    max_new_tokens: int = 128,
    batch_size: int = 16,
    progress: bool = False,
) -> list[str]:
    """Greedy answers for many images, in batches (left padding); raw text, special tokens removed.

    Batched and one-at-a-time generation give the same text (greedy; padding is masked).

    Args:
        model: a model from :func:`geolib.vlm.build_model` / :func:`geolib.tuning.load_staged_model` / a stage result.
        processor: its processor or tokenizer.
        images_or_features: cached features (N, tokens, dim) (demo model) or a list of image
            paths / PIL images.
        prompt: one prompt for all images, or one per image.
        max_new_tokens: generation limit per answer.
        batch_size: images per forward pass.
        progress: show a tqdm bar.

    Returns:
        N answer strings.
    """
    items = _as_image_list(images_or_features)
    prompts = [prompt] * len(items) if isinstance(prompt, str) else list(prompt)
    if len(prompts) != len(items):
        raise ValueError(f"{len(prompts)} prompts for {len(items)} images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tok = vlm.tokenizer_of(processor)
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    starts = range(0, len(items), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="generate", unit="batch")
    try:
        for s in starts:
            texts = [processor.apply_chat_template([user_message(p)], tokenize=False, add_generation_prompt=True)
                     for p in prompts[s: s + batch_size]]
            batch = encode_texts(processor, texts, items[s: s + batch_size], padding_side="left")
            device = next(model.parameters()).device
            batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            if "pixel_values" in batch and torch.is_floating_point(batch["pixel_values"]):
                batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.convert_tokens_to_ids(vlm.PAD_TOKEN))
            new = out[:, batch["input_ids"].shape[1]:]
            outputs.extend(tok.batch_decode(new, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return [o.strip() for o in outputs]


def answer_slot_text(country: str) -> str:
    """The opening of an answer up to its country slot: ``{'country': 'France'`` (GeoReasoner's style)."""
    text = format_answer(country=country)
    return text[:-1]  # without the closing brace: the answer may go on with a city or reasons


def closed_set_scores(
    model,
    processor,
    images_or_features,
    candidates: Sequence[str],
    prompt: str = PROMPTS["location"],
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Closed-set scoring: the log-likelihood the model gives each candidate country in the answer slot.

    For every image and candidate name it scores the assistant text :func:`answer_slot_text`
    (``{'country': '<name>'``) after the prompt, summing the log-probabilities of its tokens. The
    highest-scoring name is what the model "believes" whether or not its free generation gets the
    answer syntax right, so comparing closed-set accuracy with the generated answers' accuracy
    separates *cannot read the image* (both low) from *cannot write the answer* (closed set high,
    generation low).

    Args:
        model, processor: as for :func:`generate`.
        images_or_features: cached features (N, tokens, dim) or image paths / PIL images.
        candidates: the candidate country names (e.g. every country of the training split).
        prompt: the question asked (the stage's own, as for generation).
        batch_size: sequences per forward pass (each image costs ``len(candidates)`` sequences).
        progress: show a tqdm bar.

    Returns:
        (N, len(candidates)) summed log-probabilities, float64.
    """
    items = _as_image_list(images_or_features)
    names = [str(c) for c in candidates]
    if not names:
        raise ValueError("closed_set_scores needs at least one candidate")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    head = processor.apply_chat_template([user_message(prompt)], tokenize=False, add_generation_prompt=True)
    slots = [answer_slot_text(n) for n in names]
    scores = np.zeros((len(items), len(names)), dtype=np.float64)
    was_training = model.training
    model.eval()
    cached = not vlm.is_hf_processor(processor)  # the demo model: one prompt length, a plain causal LM under it
    per_batch = max(1, batch_size // (1 if cached else len(names)))
    starts = range(0, len(items), per_batch)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="closed-set scores", unit="batch")
    try:
        with torch.no_grad():
            for s in starts:
                chunk = items[s: s + per_batch]
                score = _slot_scores_cached if cached else _slot_scores_full
                scores[s: s + len(chunk)] = score(model, processor, head, slots, chunk)
    finally:
        model.train(was_training)
    return scores


def _on_device(model, batch: dict) -> dict:
    device = next(model.parameters()).device
    batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    if "pixel_values" in batch and torch.is_floating_point(batch["pixel_values"]):
        batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
    return batch


def _slot_ids(processor, head: str, slots: Sequence[str], item) -> tuple[torch.Tensor, list[list[int]]]:
    """The prompt's ids and each slot's ids after it (checked: the prompt's ids are a prefix of every text)."""
    prompt = encode_texts(processor, [head], [item])["input_ids"][0]
    full = encode_texts(processor, [head + slot for slot in slots], [item] * len(slots), padding_side="right")
    out = []
    for ids, mask, slot in zip(full["input_ids"], full["attention_mask"], slots):
        ids = ids[: int(mask.sum())]
        if not torch.equal(ids[: len(prompt)], prompt):
            raise ValueError(f"the tokenizer merges the end of the prompt with the answer {slot!r}; "
                             "closed-set scoring needs the prompt's tokens as a prefix")
        out.append(ids[len(prompt):].tolist())
    return prompt, out


def _slot_scores_full(model, processor, head: str, slots: Sequence[str], chunk: list) -> np.ndarray:
    """Every (image, candidate) sequence run in full: any model, ``len(slots)`` sequences per image."""
    prompt_len = encode_texts(processor, [head] * len(chunk), chunk)["attention_mask"].sum(1)
    batch = _on_device(model, encode_texts(processor, [head + slot for _ in chunk for slot in slots],
                                           [item for item in chunk for _ in slots], padding_side="right"))
    logp = torch.log_softmax(model(**batch).logits[:, :-1].float(), dim=-1)
    targets = batch["input_ids"][:, 1:]
    token_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    first = prompt_len.to(targets.device).repeat_interleave(len(slots)) - 1  # position predicting the slot's first token
    positions = torch.arange(targets.shape[1], device=targets.device).unsqueeze(0)
    mask = (positions >= first.unsqueeze(1)) & batch["attention_mask"][:, 1:].bool()
    return (token_lp * mask).sum(1).view(len(chunk), len(slots)).double().cpu().numpy()


def _slot_scores_cached(model, processor, head: str, slots: Sequence[str], chunk: list) -> np.ndarray:
    """The prompt and image run once per image; the candidates continue from its key-value cache."""
    prompt, slot_ids = _slot_ids(processor, head, slots, chunk[0])
    batch = _on_device(model, encode_texts(processor, [head] * len(chunk), chunk))
    if batch["input_ids"].shape[1] != len(prompt):
        raise ValueError("images of one batch give prompts of different lengths; use the full scoring path")
    out = model(**batch, use_cache=True)
    n, c = len(chunk), len(slots)
    first_lp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (n, V): each slot's first token
    width = max(len(x) for x in slot_ids)
    device = batch["input_ids"].device
    pad = vlm.tokenizer_of(processor).convert_tokens_to_ids(vlm.PAD_TOKEN)
    cont = torch.full((c, width), pad, dtype=torch.long, device=device)
    cont_mask = torch.zeros((c, width), dtype=torch.long, device=device)
    for j, ids in enumerate(slot_ids):
        cont[j, : len(ids)] = torch.tensor(ids, device=device)
        cont_mask[j, : len(ids)] = 1
    total = first_lp[:, cont[:, 0]]  # (n, c)
    if width > 1:
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        cache.batch_repeat_interleave(c)
        ids = cont.repeat(n, 1)  # (n·c, width), image-major
        mask = torch.cat([batch["attention_mask"].repeat_interleave(c, dim=0), cont_mask.repeat(n, 1)], dim=1)
        logits = model(input_ids=ids, attention_mask=mask, cache=cache, use_cache=True).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        token_lp = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * cont_mask.repeat(n, 1)[:, 1:]
        total = total + token_lp.sum(1).view(n, c)
    return total.double().cpu().numpy()


def closed_set_accuracy(scores: np.ndarray, candidates: Sequence[str], truth: Sequence[str], k: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy of :func:`closed_set_scores`: the share of images whose true name is among the k best.

    Args:
        scores: (N, C) scores; candidates: the C names in column order; truth: the N true names.
        k: the k values (each clipped to C).

    Returns:
        ``{"top1": …, "top5": …}`` (keys ``top<k>``).
    """
    scores = np.asarray(scores, dtype=float)
    names = [str(c) for c in candidates]
    truth = [str(t) for t in truth]
    if scores.ndim != 2 or scores.shape != (len(truth), len(names)):
        raise ValueError(f"scores must be (N={len(truth)}, C={len(names)}), got {scores.shape}")
    column = {n: j for j, n in enumerate(names)}
    true_col = np.array([column.get(t, -1) for t in truth])
    order = np.argsort(-scores, axis=1, kind="stable")
    out = {}
    for kk in k:
        kk = min(int(kk), len(names))
        hit = (order[:, :kk] == true_col[:, None]).any(axis=1) & (true_col >= 0)
        out[f"top{kk}"] = float(hit.mean()) if len(truth) else float("nan")
    return out


# ---------------------------------------------------------------------------------------------
# Parsed predictions


def predictions_from_texts(image_ids: Sequence[str], texts: Sequence[str], geocode: bool = True) -> pd.DataFrame:
    """Parse raw model answers into the prediction table (never raises on a bad answer).

    Args:
        image_ids: One id per answer.
        texts: The model's raw answers.
        geocode: Geocode a predicted city when the answer has no coordinates.

    Returns:
        DataFrame: ``image_id, pred_country, pred_city, pred_lat, pred_lon, score, answered,
        coord_source, reasons, parse_error, raw`` (``score`` is NaN: generation gives no confidence).
        ``pred_country`` is what GeoReasoner scores (``ParsedAnswer.country_label``): alpha-2, or
        the text of an unrecognised country (an answer, and a wrong one), or None (not answered).
    """
    if len(image_ids) != len(texts):
        raise ValueError(f"{len(image_ids)} image ids for {len(texts)} answers")
    parsed = [answers.parse_answer(t) for t in texts]
    lat, lon, source = metrics.predicted_coordinates(parsed, geocode=geocode)
    return pd.DataFrame({
        "image_id": list(image_ids),
        "pred_country": pd.Series([p.country_label for p in parsed], dtype=object),
        "pred_city": pd.Series([p.city for p in parsed], dtype=object),
        "pred_lat": np.asarray(lat, dtype=float),
        "pred_lon": np.asarray(lon, dtype=float),
        "score": np.nan,
        "answered": [p.answered for p in parsed],
        "coord_source": list(source),
        "reasons": pd.Series([p.reasons for p in parsed], dtype=object),
        "parse_error": pd.Series([p.error for p in parsed], dtype=object),
        "raw": list(texts),
    })


def answer_images(model, processor, images_or_features, image_ids: Sequence[str], prompt: str | None = None,
                  max_new_tokens: int = 128, batch_size: int = 16, progress: bool = True) -> pd.DataFrame:
    """Greedy answers of a vision-language model for many images, parsed into predictions.

    Args:
        model, processor: From :mod:`geolib.vlm` / :mod:`geolib.tuning` (any profile).
        images_or_features: Cached tower features (N, tokens, dim) for the demo model, or image
            paths / PIL images.
        image_ids: One id per image.
        prompt: The question (default: the paper's evaluation prompt, ``conversations.PROMPTS["evaluation"]``).
        max_new_tokens: Fixed generation limit.
        batch_size: Images per batch (left-padded batched greedy decoding).

    Returns:
        :func:`predictions_from_texts`'s table.
    """
    texts = generate(model, processor, images_or_features, prompt or PROMPTS["evaluation"],
                     max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    return predictions_from_texts(image_ids, texts)


# ---------------------------------------------------------------------------------------------
# Several models answering the same images (notebook 06)


def answer_jobs(arms: Mapping[str, Sequence[str]], prompt: str, *, candidates: Sequence[str] | None = None,
                closed_set_arms: Collection[str] = (), reasons_prompt: str | None = None,
                reasons_arms: Collection[str] = (), **common: Any) -> dict[str, dict]:
    """The keyword arguments of one answering job per model, for :func:`geolib.stages.answer_study_model`
    (run side by side by :func:`geolib.runtime.in_processes`).

    Args:
        arms: model name -> the stages stacked on the base, in training order (``()``: the untuned base).
        prompt: the question every model is asked.
        candidates: the closed set scored in the answer slot of the models in ``closed_set_arms``
            (None: no closed-set scores).
        reasons_prompt: a second question whose answers give the reasons, asked of the models in
            ``reasons_arms`` (None: not asked).
        **common: the arguments every job shares (``profile``, ``spec``, ``images_or_features``,
            ``image_ids``, ``max_new_tokens``, ``batch_size``, ``reasons_max_new_tokens``).

    Returns:
        ``{name: kwargs}`` in the order of ``arms``.
    """
    return {name: {**common, "stages": tuple(stack), "prompt": prompt,
                   "candidates": candidates if name in closed_set_arms else None,
                   "reasons_prompt": reasons_prompt if name in reasons_arms else None}
            for name, stack in arms.items()}


def sort_answers(done: Mapping[str, Mapping[str, Any]], reasons_arms: Collection[str], candidates: Sequence[str] = (),
                 truth: Sequence[str] = ()) -> tuple[dict, dict, dict, dict]:
    """What the jobs of :func:`answer_jobs` returned, sorted for the tables.

    Args:
        done: model name -> :func:`geolib.stages.answer_study_model`'s result.
        reasons_arms: the models whose reasons are read.
        candidates, truth: the closed set (column order of the slot scores) and each image's true name.

    Returns:
        ``(answers, reasons, closed, seconds)``: each model's answers; the answers with reasons of
        the models in ``reasons_arms`` (those to the reasons question, else the first ones); the
        closed-set accuracy (:func:`closed_set_accuracy`) of every model with slot scores; the
        seconds each model took.
    """
    answers_ = {name: r["answers"] for name, r in done.items()}
    reasons = {name: r["reasons"] if r["reasons"] is not None else r["answers"] for name, r in done.items()
               if name in reasons_arms}
    closed = {name: closed_set_accuracy(r["slot_scores"], candidates, truth) for name, r in done.items()
              if r["slot_scores"] is not None}
    return answers_, reasons, closed, {name: r["seconds"] for name, r in done.items()}


def _truth(test_df: pd.DataFrame) -> list[str]:
    return [f"{country_name(c)}, {city}" for c, city in zip(test_df["country"], test_df["city"])]


def shown_answers(answers_: Mapping[str, pd.DataFrame], test_df: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """What each named model wrote (``<name>: raw``) and what was read from it (``<name>: read``, the
    answered country and city as written, or "(unparsable)"), beside the truth, in test order.
    A name without answers is left out."""
    shown = pd.DataFrame({"truth": _truth(test_df)})
    for name in names:
        if name in answers_:
            a = answers_[name]
            shown[f"{name}: raw"] = a["raw"]
            shown[f"{name}: read"] = [f"{c}, {city}" if ok else "(unparsable)" for c, city, ok in
                                      zip(a["pred_country"], a["pred_city"], a["answered"])]
    return shown


def closed_set_diagnosis(answers_: Mapping[str, pd.DataFrame], closed: Mapping[str, Mapping[str, float]],
                         test_df: pd.DataFrame, n_candidates: int) -> pd.DataFrame:
    """Cannot read the image, or cannot write the answer? Per model with closed-set scores: the share of
    all test images its generated answer got right, its answered share, the closed-set top-1 and
    top-5 accuracy (:func:`sort_answers`), and the top-1 chance level ``1 / n_candidates``."""
    rows = {}
    for name, acc in closed.items():
        right, answered = evaluation.correct_and_answered(evaluation.aligned(answers_[name], test_df)["pred_country"],
                                                          test_df["country"].tolist(), "country")
        rows[name] = {"generated: right (share of all images)": float(right.mean()), "generated: answered": float(answered.mean()),
                      "closed set: top-1": acc["top1"], "closed set: top-5": acc["top5"]}
    diagnosis = pd.DataFrame(rows).T
    diagnosis["chance (top-1)"] = 1 / n_candidates
    return diagnosis


def answer_examples(pred: pd.DataFrame, reasons: pd.DataFrame | None, test_df: pd.DataFrame, correct: Sequence[bool],
                    per_kind: int) -> pd.DataFrame:
    """Test images a model got right and wrong, with its answer and its reasons (the gallery of notebook 06).

    Args:
        pred: the model's answers to the evaluation question.
        reasons: its answers to the reasons question (None: ``pred``'s own reasons).
        test_df: the test split; correct: per test image (in its order), whether the country is right.
        per_kind: how many right and how many wrong images (the first ones of each, in test order).

    Returns:
        The aligned rows (:func:`geolib.evaluation.aligned`) of the picked images with ``correct``,
        ``truth`` and ``answer`` ("country, city", or the raw text where no country was read) and
        ``reasons`` (the reasons field, else "(no reasons could be read) " and the raw answer).
    """
    a = evaluation.aligned(pred, test_df)
    said = (pred if reasons is None else reasons).set_index("image_id")
    reasons_of = said["reasons"].where(said["reasons"].notna(), "(no reasons could be read) " + said["raw"])
    rows = a.assign(correct=np.asarray(correct, dtype=bool), truth=_truth(a),
                    answer=[f"{country_name(c)}, {city}" if ok and isinstance(c, str) else raw for c, city, ok, raw in
                            zip(a["pred_country"], a["pred_city"], a["answered"], pred["raw"])],
                    reasons=a["image_id"].map(reasons_of))
    return pd.concat([rows[rows["correct"]].head(per_kind), rows[~rows["correct"]].head(per_kind)])


def answers_frame(answers_: Mapping[str, pd.DataFrame], prompt: str, reasons: Mapping[str, pd.DataFrame] | None = None,
                  reasons_prompt: str = "", baselines: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Every model's answers in one long frame (``model`` and ``prompt`` columns added): the answers to
    ``prompt``, those to ``reasons_prompt`` (when given), then the baselines' predictions (prompt "",
    ``answered`` from :func:`geolib.evaluation.answered_rows`); ``score`` as float."""
    frames = ([a.assign(model=n, prompt=prompt) for n, a in answers_.items()]
              + [a.assign(model=n, prompt=reasons_prompt) for n, a in (reasons or {}).items()]
              + [p.assign(model=n, prompt="", answered=evaluation.answered_rows(p)) for n, p in (baselines or {}).items()])
    return pd.concat(frames, ignore_index=True).astype({"score": float})


__all__ = [
    "generate", "closed_set_scores", "closed_set_accuracy", "answer_slot_text", "predictions_from_texts",
    "answer_images", "answer_jobs", "sort_answers", "shown_answers", "closed_set_diagnosis", "answer_examples",
    "answers_frame",
]
