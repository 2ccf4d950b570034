"""Record (or check) the SHA-256 of a few rendered demo-world images: the pool-hash test's reference.

Same seed, same lock, same fonts → the same pool bytes (``tests/test_reproducible.py``). When the
renderer or the world's facts change on purpose, rerun ``python scripts/world_hashes.py`` and commit
``tests/data/world_pool_hashes.json``; the file also records what the bytes depend on outside the
lock (the Debian Noto font packages).

Usage: ``python scripts/world_hashes.py [--check]``
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HASHES = ROOT / "tests" / "data" / "world_pool_hashes.json"
#: a small pool on the demo world's own seed and settings (the first images of the demo pool's order)
POOL = dict(n_images=6, n_countries=6, cities_per_country=2, seed=0, image_size=224, workers=1, progress=False)
FONT_PACKAGES = ("fonts-noto-core", "fonts-noto-cjk")


def font_versions() -> dict[str, str | None]:
    """Debian versions of the font packages the world draws text with (None where not installed)."""
    out = {}
    for name in FONT_PACKAGES:
        try:
            res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True, text=True, timeout=30)
            out[name] = res.stdout.strip() or None if res.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            out[name] = None
    return out


def pool_hashes() -> dict[str, str]:
    """``{relative path: sha256}`` of the images and masks of :data:`POOL`, rendered afresh."""
    from geolib import world

    tmp = Path(tempfile.mkdtemp(prefix="world-hashes-"))
    try:
        world.build_world(tmp, **POOL)
        files = sorted(p for p in tmp.rglob("*.png"))
        return {str(p.relative_to(tmp)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def current_record() -> dict:
    return {
        "pool": POOL,
        "babel": metadata.version("babel"),
        "pillow": metadata.version("pillow"),
        "fonts": font_versions(),
        "files": pool_hashes(),
    }


def main(argv: list[str]) -> int:
    record = current_record()
    if "--check" in argv:
        stored = json.loads(HASHES.read_text())
        same = stored["files"] == record["files"]
        print("pool bytes", "match" if same else "DIFFER", "the committed hashes")
        return 0 if same else 1
    HASHES.parent.mkdir(parents=True, exist_ok=True)
    HASHES.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"wrote {HASHES.relative_to(ROOT)}: {len(record['files'])} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
