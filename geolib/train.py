"""Train one of the study's LoRA stages outside a notebook, e.g. on several GPUs.

Notebooks 04 and 05 train their stages in the kernel, on one device. On a multi-GPU machine,
train a stage first with ``accelerate launch``; the notebook, run afterwards with the same params
file, finds the finished stage (same data, settings and starting weights: the same fingerprint)
and loads it instead of training again::

    accelerate launch --config_file configs/accelerate.yaml -m geolib.train --profile paper --stage reasoning
    accelerate launch --config_file configs/accelerate.yaml -m geolib.train --profile paper --stage location
    python -m geolib.study run --profile paper --from 04

Stages (:data:`geolib.stages.LORA_STAGES`): ``reasoning`` (stage 1), ``location`` (stage 2 on top
of stage 1), and the ablation arms ``location_only``, ``location_uncurated`` and the data-quality
sets ``location_quality_000`` … ``location_quality_100``. The settings
come from the params file over the notebook's defaults, exactly as the notebooks read them
(``model``, ``lora``, ``reasoning_tuning`` / ``location_tuning``, ``clue_corpus``), and the
effective batch stays the params file's on any number of GPUs (gradient accumulation adapts). The demo's base training
and tokenizer are notebook 04's (a CPU job; not offered here).
"""

from __future__ import annotations

import argparse
import sys

from geolib import io as gio
from geolib import params as gparams
from geolib import runtime

#: The notebook whose parameters (and defaults) a stage reads.
STAGE_NOTEBOOK = {"reasoning": "04_reasoning_tuning", "location": "05_location_tuning",
                  "location_only": "05_location_tuning", "location_uncurated": "05_location_tuning",
                  **{f"location_quality_{pct:03d}": "05_location_tuning" for pct in (0, 25, 50, 75, 100)}}


def stage_parameters(profile: str, stage: str, params_path: str | None = None) -> dict:
    """The notebook's parameters for ``stage``: its defaults, then the validated params file on top
    (a dict parameter key by key, as the study runner injects them)."""
    return gparams.notebook_values(STAGE_NOTEBOOK[stage], profile, params_path)


def main(argv: list[str] | None = None) -> int:
    from geolib import stages

    parser = argparse.ArgumentParser(prog="python -m geolib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="paper", help="parameter profile (default: paper)")
    parser.add_argument("--params", default=None, help="a params file instead of params/<profile>.yaml")
    parser.add_argument("--stage", required=True, choices=sorted(stages.LORA_STAGES))
    args = parser.parse_args(argv)
    try:
        values = stage_parameters(args.profile, args.stage, args.params)
    except gparams.ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = values["reasoning_tuning"] if args.stage == "reasoning" else values["location_tuning"]
    try:
        from geolib import tuning

        lora = tuning.lora_config(**values["lora"])  # the notebooks write the same LoraConfig out
        result = stages.run_lora_stage(args.profile, args.stage, values["model"], settings, lora,
                                       values.get("clue_corpus", ""))
    except (gio.WriteError, gio.ReadError, runtime.UnpinnedRevision, runtime.HubUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = "trained" if result.trained else "already finished, loaded"
    print(f"stage {args.stage}: {state}; adapter in {result.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
