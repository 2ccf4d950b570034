"""Write the README's numbers from the committed demo summary (``results/demo/summary.json``).

The README's results and timing tables sit between ``<!-- summary:NAME -->`` and
``<!-- /summary:NAME -->`` markers and are generated here, so no number in them is typed by hand;
``tests/test_project.py`` fails when they differ from the committed summary.

Usage: ``python scripts/readme_numbers.py`` (rewrite) or ``--check`` (exit 1 when out of date).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SUMMARY = ROOT / "results" / "demo" / "summary.json"

#: (what, summary key, format); "pct": a share shown in %, "f3": 3 decimals, "int", "km", "bin"
RESULTS = [
    ("**00 · world**: countries in the demo pool", "world.n_countries", "int"),
    ("images in the demo pool", "world.n_images", "int"),
    ("Bayes oracle on the visible clue sets, country accuracy (held-out cities)", "world.oracle_country_acc", "pct"),
    ("the same, images with ≥ 4 visible clues", "world.oracle_country_acc_4plus", "pct"),
    ("linear probe on frozen EfficientNet-Lite0 features, country accuracy", "world.probe_country_acc", "pct"),
    ("**01 · locatability**: Spearman of the derived class weights with the paper's", "01.weights.spearman_with_paper", "f3"),
    ("ROC AUC, legible clue vs none: derived weights", "01.clue_auc", "f3"),
    ("ROC AUC, legible clue vs none: the paper's weights", "01.clue_auc_paper_weights", "f3"),
    ("Fig. 5 peak, building proportion (paper: near 0.2)", "01.fig5.peak_bin_lo", "bin"),
    ("**02 · pairing network**: Spearman with locatability, test cities", "02.locnet.test_spearman", "f3"),
    ("**03 · curation**: share of the pool kept", "03.kept_share", "pct"),
    ("**06 · GeoReasoner**: country F1, untuned base", "06.base.country_f1", "ci"),
    ("country F1, both stages (GeoReasoner)", "06.full.country_f1", "ci"),
    ("answered share, both stages", "06.full.answered", "pct"),
    ("closed-set top-1, both stages (best-scoring training country in the answer slot)", "06.full.closed_set_top1", "pct"),
    ("closed-set top-1, untuned base", "06.base.closed_set_top1", "pct"),
    ("closed-set top-1, both stages, on 100 of its own training images (notebook 05's fit check)",
     "05.full.train_closed_set_top1", "pct"),
    ("country F1, without reasoning tuning", "06.no_reasoning.country_f1", "ci"),
    ("country F1, without location tuning", "06.no_location.country_f1", "ci"),
    ("both stages minus the untuned base, country F1 (paired interval over the same images)", "06.full_minus_base.country_f1", "ci"),
    ("both stages minus without reasoning tuning, country F1 (paired)", "06.full_minus_no_reasoning.country_f1", "ci"),
    ("without reasoning tuning minus the untuned base, country F1 (paired)", "06.no_reasoning_minus_base.country_f1", "ci"),
    ("country F1, linear probe on the same features", "06.probe.country_f1", "ci"),
    ("country F1, majority class", "06.majority.country_f1", "ci"),
    ("country F1, the offline sign reader (text only, notebook 08)", "06.reader.country_f1", "ci"),
    ("answered share, the sign reader", "06.reader.answered", "pct"),
    ("data quality (one training size): country accuracy, 0% highly locatable (paper: .63)",
     "06.quality.share_0.country_acc", "ci"),
    ("the same, 50% highly locatable", "06.quality.share_50.country_acc", "ci"),
    ("the same, 100% highly locatable (paper: .72)", "06.quality.share_100.country_acc", "ci"),
    ("**07 · GRE**: within 750 km, SFT only", "07.sft.within_750", "pct"),
    ("within 750 km, SFT + GRPO", "07.grpo.within_750", "pct"),
    ("within 2,500 km, SFT only", "07.sft.within_2500", "pct"),
    ("within 2,500 km, SFT + GRPO", "07.grpo.within_2500", "pct"),
    ("SFT + GRPO minus SFT only, share within 2,500 km (paired interval over images, all seeds)",
     "07.grpo_minus_sft.within_2500", "ci"),
    ("the same, within 750 km", "07.grpo_minus_sft.within_750", "ci"),
    ("training seeds (each: its own cold start and GRPO run)", "07.n_seeds", "int"),
    ("θ of the distance reward at the end of GRPO (the coarsest over the seeds)", "07.theta_final_km", "km"),
    ("**08 · sign reader**: country accuracy, demo test split", "08.reader.country_acc", "pct"),
    ("answered share", "08.reader.answered", "pct"),
]


def fmt(summary: dict, key: str, kind: str) -> str:
    value = summary.get(key)
    if value is None:
        return "not measured"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "km":
        return f"{value:,.0f} km"
    if kind == "bin":
        return f"{value:.1f}–{summary.get(key.replace('_lo', '_hi'), value):.1f}"
    if kind == "ci":
        lo, hi = summary.get(key + ".ci_low"), summary.get(key + ".ci_high")
        return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{value:.3f}"
    return f"{value:.3f}"


def results_table(summary: dict) -> str:
    rows = ["| result (demo profile) | value |", "|---|---|"]
    rows += [f"| {label} | {fmt(summary, key, kind)} |" for label, key, kind in RESULTS]
    return "\n".join(rows)


def timing_table(summary: dict) -> str:
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    rows = ["| notebook | minutes (demo, 2 CPU cores) |", "|---|---|"]
    for stem in notebooks:
        seconds = summary.get(f"study.{stem[:2]}.seconds")
        rows.append(f"| `{stem}` | {'not measured' if seconds is None else f'{seconds / 60:.1f}'} |")
    total = summary.get("study.demo_wall_s")
    rows.append(f"| **all** | {'not measured' if total is None else f'{total / 60:.1f}'} |")
    return "\n".join(rows)


def provenance(summary: dict) -> str:
    commit = summary.get("study.git_commit")
    if not commit:
        return "These numbers have not been produced by a full run of the committed code yet."
    dirty = " with uncommitted changes" if summary.get("study.git_dirty") else ""
    return f"Produced by one full run of commit `{commit[:12]}`{dirty}."


BLOCKS = {"results": results_table, "timing": timing_table, "provenance": provenance}


def render(readme: str, summary: dict) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- summary:{name} -->\n)(?:.*?\n)?(<!-- /summary:{name} -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no <!-- summary:{name} --> … <!-- /summary:{name} --> block")
        readme = pattern.sub(lambda m: m.group(1) + make(summary) + "\n" + m.group(2), readme)
    return readme


def main(argv: list[str]) -> int:
    summary = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {}
    current = README.read_text()
    wanted = render(current, summary)
    if "--check" in argv:
        if wanted != current:
            print("README.md's numbers differ from results/demo/summary.json: run python scripts/readme_numbers.py")
            return 1
        return 0
    README.write_text(wanted)
    print(f"README.md: numbers from {SUMMARY.relative_to(ROOT)} ({len(summary)} keys)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
