"""Partitioning of NEE into GPP and RECO: ``ux.partition(site_ds, method=...)``.

``nighttime``: Reichstein et al. (2005), REddyProc's ``sMRFluxPartition``
(:mod:`uflux_xr.site.partition.nighttime`); ``daytime``: Lasslop et al. (2010),
REddyProc's ``partitionNEEGL`` (:mod:`uflux_xr.site.partition.daytime`, its fits
in :mod:`uflux_xr.site.partition.lrc_fit`).  The potential radiation that splits
night from day is :func:`uflux_xr.core.solar.potential_radiation`.
"""

from uflux_xr.site.partition.api import partition
from uflux_xr.site.partition.nighttime import NightTimeOptions, PartitioningError, lloyd_taylor

__all__ = ["NightTimeOptions", "PartitioningError", "lloyd_taylor", "partition"]
