"""Figures of the study: one ``plot_<slug>()`` per figure, each taking data and returning a Figure.

Used by every notebook (00-08). A notebook cell calls ``plots.plot_<slug>(...)`` and saves the
result with :func:`save_figure` as ``NN_slug.png`` (NN = the notebook that makes it): the demo
profile's figures go to ``figures/`` (committed), other profiles' to ``runs/<profile>/figures/``.
Seaborn for statistics, geopandas for maps, one palette, labelled axes with units.

This package's namespace is its API; the figures live by stage:

* :mod:`geolib.plots.common`: style, palette, :func:`save_figure`, map/mask/font helpers;
* :mod:`geolib.plots.data_figures`: notebooks 00-03 (data, locatability, curation) and the
  training curves;
* :mod:`geolib.plots.model_figures`: notebooks 06-08 (GRE rewards and curves, evaluation, signs).
"""

from geolib.plots.common import (
    PALETTE, COLORS, style, save_figure, CONTINENT_NAMES, class_palette, overlay_mask, world_axes,
)
from geolib.plots.data_figures import (
    plot_world_map, plot_examples, plot_pool_counts, plot_building_proportion, plot_class_weights,
    plot_locatability_examples, plot_building_vs_locatability, plot_clue_roc, plot_training_curve,
    plot_stage_losses, plot_predicted_vs_target, plot_threshold_sweep, plot_curation_map,
)
from geolib.plots.model_figures import (
    plot_distance_reward, plot_grpo_curves, plot_gre_accuracy, plot_country_f1,
    plot_accuracy_within_km, plot_error_map, plot_locatability_bins, plot_answer_examples,
    SCRIPT_FONTS, script_fonts, plot_read_signs, plot_data_quality,
)

__all__ = [
    "PALETTE", "COLORS", "style", "save_figure", "CONTINENT_NAMES", "class_palette", "overlay_mask",
    "world_axes", "plot_world_map", "plot_examples", "plot_pool_counts", "plot_building_proportion",
    "plot_class_weights", "plot_locatability_examples", "plot_building_vs_locatability",
    "plot_clue_roc", "plot_training_curve", "plot_stage_losses", "plot_predicted_vs_target",
    "plot_threshold_sweep", "plot_curation_map", "plot_distance_reward", "plot_grpo_curves",
    "plot_gre_accuracy", "plot_country_f1", "plot_accuracy_within_km", "plot_error_map",
    "plot_locatability_bins", "plot_answer_examples", "SCRIPT_FONTS", "script_fonts",
    "plot_read_signs", "plot_data_quality",
]
