"""Readers of input data and writers of products."""

from uflux_xr.io.product import add_cf_metadata, open_any, write_dataset, write_product

__all__ = ["add_cf_metadata", "open_any", "write_dataset", "write_product"]
