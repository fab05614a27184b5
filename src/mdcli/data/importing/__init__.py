"""Import real ERA5 fields, satellite IR frames and a best track into the ``mdcli-tc`` layout.

``mdcli data import`` (and :func:`import_tc` from a notebook) reads a best track
(:mod:`.tracks`), per-storm IR brightness temperature (:mod:`.ir`) and ERA5 fields
(:mod:`.era5`). For every track point it crops a ``window_deg`` x ``window_deg`` degree window
centred on the storm from the nearest IR frame and from the ERA5 fields, linearly interpolated
in time to that frame's time (:mod:`.plan`), regrids both bilinearly to ``size`` x ``size``
pixels (:mod:`.grid`) and normalises them with the layout's conventions or with statistics of
the data (:mod:`.write`). Policies and formats: ``docs/data.md``, section ``mdcli data import``.
"""

from mdcli.data.importing.common import parse_levels
from mdcli.data.importing.grid import Axis
from mdcli.data.importing.netcdf import require_netcdf
from mdcli.data.importing.pipeline import import_tc
from mdcli.data.importing.plan import segments

__all__ = ["Axis", "import_tc", "parse_levels", "require_netcdf", "segments"]
