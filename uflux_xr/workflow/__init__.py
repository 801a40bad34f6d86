"""The run layer: configuration, the dry-run plan, the pipeline, input preparation and the command line.

It sits on top of both wings and asks :mod:`uflux_xr.sources` for its inputs.  (Named ``workflow``, not
``run``: ``uflux_xr.run`` is the function that runs a configuration.)
"""
