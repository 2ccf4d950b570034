"""The demo image pool: :func:`build_world` renders it (resumable, in parallel) and returns its manifest.

Images and masks are written atomically as PNG; ``world.json`` beside them stamps the settings and
the renderer they were made with, so a resumed pool never mixes two versions of the world. The
worker functions live at module level so that :class:`~concurrent.futures.ProcessPoolExecutor` can
pickle them.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from geolib import io as gio
from geolib.facts import FACTS_FILE
from geolib.world.clues import describe_scene
from geolib.world.compose import world_spec
from geolib.world.places import sample_places
from geolib.world.render import _cls, render_scene
from geolib.world.scene import image_id


#: Value of ``source`` in the manifest.
SOURCE = "demo_world"


MANIFEST_COLUMNS = (
    "image_id",
    "image_path",
    "lat",
    "lon",
    "country",
    "city",
    "continent",
    "source",
    "mask_path",
    "scene",
    "clues",
    "reasoning",
    "building_fraction",
    "sign_text",
)


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """PNG encoding used for the pool (deterministic: same pixels, same bytes)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _write_atomic(path: Path, data: bytes) -> None:
    """Atomic write without fsync (it would halve the speed of the pool); a file damaged by a power
    cut is caught on resume by :func:`_png_complete` and rendered again."""
    gio.atomic_write_bytes(path, data, fsync=False)


def _png_complete(path: Path) -> bool:
    """Whether ``path`` is a PNG file that ends with its IEND chunk (not truncated)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            fh.seek(-len(_PNG_END), os.SEEK_END)
            return fh.read() == _PNG_END
    except OSError:
        return False


_WORKER: dict[str, Any] = {}


def _init_worker(places, out_dir: str, seed: int, image_size: int) -> None:
    _WORKER.update(places=places, out_dir=Path(out_dir), seed=seed, image_size=image_size)


def _make_one(index: int) -> dict:
    w = _WORKER
    out_dir: Path = w["out_dir"]
    iid = image_id(index)
    img_rel, mask_rel = f"images/{iid}.png", f"masks/{iid}.png"
    img_path, mask_path = out_dir / img_rel, out_dir / mask_rel
    spec = world_spec(w["places"], w["seed"], index)
    if _png_complete(img_path) and _png_complete(mask_path):
        meta = describe_scene(spec)
        with Image.open(mask_path) as m:
            mask = np.asarray(m, dtype=np.uint8)
        meta["building_fraction"] = float((mask == _cls()["building"]).mean())
        rendered = False
    else:
        img, mask, meta = render_scene(spec, w["image_size"])
        _write_atomic(mask_path, png_bytes(mask))
        _write_atomic(img_path, png_bytes(img))
        rendered = True
    return {
        "image_id": iid,
        "image_path": img_rel,
        "lat": spec.lat,
        "lon": spec.lon,
        "country": spec.country,
        "city": spec.city,
        "continent": spec.continent,
        "source": SOURCE,
        "mask_path": mask_rel,
        "scene": spec.scene,
        "clues": list(meta["clues"]),
        "reasoning": meta["reasoning"],
        "building_fraction": meta["building_fraction"],
        "sign_text": meta["sign_text"],
        "_rendered": rendered,
    }


def _make_chunk(indices: Sequence[int]) -> list[dict]:
    return [_make_one(i) for i in indices]


def _world_stamp(**settings) -> dict:
    """What the images on disk were rendered with: settings and a hash of the renderer (every module
    of this package) and facts."""
    import hashlib

    h = hashlib.sha256()
    for f in (*sorted(Path(__file__).parent.glob("*.py")), FACTS_FILE):
        h.update(Path(f).read_bytes())
    return {"renderer_sha256": h.hexdigest()[:16], **settings}


def _check_world_stamp(out: Path, **settings) -> None:
    """Resume only images made by the same renderer and settings; otherwise start the pool afresh.

    ``world.json`` beside the images records how they were made. When it differs (other seed,
    countries, size, or a changed renderer or facts file), the old images and masks are removed,
    so a resumed pool never mixes two versions of the world.
    """
    import json
    import shutil

    stamp = _world_stamp(**settings)
    stamp_file = out / "world.json"
    if stamp_file.exists():
        try:
            old = json.loads(stamp_file.read_text())
        except ValueError:
            old = None
        if old != stamp:
            for sub in ("images", "masks"):
                shutil.rmtree(out / sub, ignore_errors=True)
    elif (out / "images").is_dir() and any((out / "images").glob("*.png")):
        for sub in ("images", "masks"):  # images of unknown provenance
            shutil.rmtree(out / sub, ignore_errors=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    gio.atomic_write_bytes(stamp_file, (json.dumps(stamp, indent=2) + "\n").encode())


def build_world(
    out_dir: str | os.PathLike,
    n_images: int = 3000,
    n_countries: int = 40,
    cities_per_country: int = 6,
    seed: int = 0,
    image_size: int = 224,
    workers: int | None = None,
    progress: bool = True,
):
    """Render the demo image pool (resumable, parallel) and return its manifest.

    Writes ``images/<image_id>.png`` (RGB) and ``masks/<image_id>.png`` (uint8 ADE20K indices)
    under ``out_dir``, each atomically. Images whose image and mask already exist are not written
    again; their metadata is recomputed from the scene spec (a pure function of seed and index),
    whose clues :func:`describe_scene` measures on a rendering at the reference size.

    Args:
        out_dir: Folder of the pool.
        n_images: Number of images.
        n_countries: Countries (see :func:`sample_places`).
        cities_per_country: Cities per country.
        seed: World seed: same seed and arguments → same bytes.
        image_size: Image side (px).
        workers: Processes (default: all cores); 1 renders in this process.
        progress: Show a tqdm progress bar.

    Returns:
        DataFrame with :data:`MANIFEST_COLUMNS` (paths relative to ``out_dir``), one row per image in
        index order; ``attrs["rendered"]`` counts the images rendered by this call.
    """
    import pandas as pd

    if not isinstance(n_images, (int, np.integer)) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ValueError(f"image_size must be an integer >= 16, got {image_size!r}")
    workers = int(workers or os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    places = sample_places(n_countries, cities_per_country, seed)  # validates before anything is removed
    _check_world_stamp(out, seed=seed, n_countries=n_countries, cities_per_country=cities_per_country,
                       image_size=image_size)
    indices = list(range(int(n_images)))
    chunk = max(1, min(32, len(indices) // (workers * 4) or 1))
    chunks = [indices[i : i + chunk] for i in range(0, len(indices), chunk)]
    rows: list[dict] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(indices), desc="demo world", unit="img")
    try:
        if workers == 1:
            _init_worker(places, str(out), seed, image_size)
            for c in chunks:
                rows += _make_chunk(c)
                if bar is not None:
                    bar.update(len(c))
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(
                max_workers=workers, initializer=_init_worker, initargs=(places, str(out), seed, image_size)
            ) as ex:
                futures = [ex.submit(_make_chunk, c) for c in chunks]
                for fut in as_completed(futures):
                    res = fut.result()
                    rows += res
                    if bar is not None:
                        bar.update(len(res))
    finally:
        if bar is not None:
            bar.close()
    df = pd.DataFrame(rows).sort_values("image_id", kind="stable").reset_index(drop=True)
    rendered = int(df.pop("_rendered").sum())
    df = df[list(MANIFEST_COLUMNS)]
    df.attrs["rendered"] = rendered
    return df
