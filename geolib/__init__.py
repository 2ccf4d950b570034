"""geolib: the thin library behind the notebooks of the GeoReasoner / GRE Suite study.

Each module is small and flat; its docstring names the notebooks that use it. Importing
``geolib`` is cheap: heavy packages (torch, transformers, geopandas) load in the modules that
need them, and :mod:`geolib.runtime` applies the offline and CPU-torch settings first.
"""

from geolib import runtime as _runtime

_runtime.configure()

__version__ = "0.1.0"
