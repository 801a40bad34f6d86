"""What a run's inputs are and what a source of them provides (:class:`InputSource`).

The run (:mod:`uflux_xr.workflow.pipeline`) and its dry run (:mod:`uflux_xr.workflow.plan`) ask a source
for the cube, the towers and, where it is known, the truth, and for the outline of the grid a plan needs,
instead of branching on where the inputs come from.  A new kind of input (an object store, a catalogue) is a
new :class:`InputSource` registered in :mod:`uflux_xr.sources`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from uflux_xr.workflow.config import RunConfig


@dataclass
class Inputs:
    """What a run works from: the lazy predictor cube, the towers and, for demo worlds, the truth."""

    cube: xr.Dataset
    sites: xr.Dataset
    truth: xr.Dataset | None
    source: InputSource
    # The cube the towers' predictors come from, when it is not ``cube``: the whole domain of a
    # windowed run, as towers outside the window train too.
    training_cube: xr.Dataset | None = None


@dataclass
class GridOutline:
    """The grid of a run as its dry run sees it, before any value is read or made."""

    sizes: dict[str, int]  # time, y and x steps (of the window, when one is given)
    chunks: dict[str, tuple[int, ...]]  # the chunks along each of them
    description: str  # one line for the plan: cells, steps and where they come from
    training_rows: int  # site-steps with a flux to train on
    overlap: list[str] = field(default_factory=list)  # what joining the towers to the grid will find
    cube: xr.Dataset | None = None  # the opened (lazy) cube where the source has one on disk
    sites: xr.Dataset | None = None  # the towers where the source has them on disk


class InputSource(ABC):
    """Where a run's predictor cube and towers come from.

    Subclasses set the class attributes and implement :meth:`read` and :meth:`outline`; the other
    methods have defaults that suit a source read from files.

    Parameters
    ----------
    config : RunConfig
        The run's configuration (its ``data`` section says what to open).
    """

    #: The value of ``data.source`` that selects this source.
    name: ClassVar[str]
    #: How the plan knows the land share of the grid, in words.
    land_note: ClassVar[str] = ""
    #: Chunks are computed from coordinates as they are read (the plan counts the temporaries).
    makes_chunks: ClassVar[bool] = False

    def __init__(self, config: RunConfig):
        self.config = config
        #: A demo world outlining a plan in place of a files configuration's missing inputs.
        self.stands_in = False

    def open(self, out_dir: Path, window: Mapping[str, slice] | None = None) -> Inputs:
        """The cube (lazy, cut to ``window``), the towers and the truth (None where unknown); ``out_dir/inputs``
        may hold copies."""
        return self.cut_window(self.read(out_dir, window), window)

    @abstractmethod
    def read(self, out_dir: Path, window: Mapping[str, slice] | None = None) -> Inputs:
        """The inputs as the source holds them (:meth:`cut_window` then cuts them to ``window``)."""

    def cut_window(self, found: Inputs, window: Mapping[str, slice] | None) -> Inputs:
        """Annual maxima (``NIRv_MAX``) derived from the whole cube, then the cube and truth cut to ``window``;
        the whole cube stays the training cube, as towers outside the window train too."""
        from uflux_xr.grid.features import with_annual_maxima

        found.cube = with_annual_maxima(found.cube, self.config.ensemble.predictors)
        if window:
            found.training_cube = found.cube
            found.cube = found.cube.isel({d: w for d, w in window.items() if d in found.cube.dims})
            if found.truth is not None:
                found.truth = found.truth.isel({d: w for d, w in window.items() if d in found.truth.dims})
        return found

    @abstractmethod
    def outline(self, window: Mapping[str, slice] | None = None) -> GridOutline:
        """The grid, chunks and training rows of a run, for its plan."""

    def training_table(self, inputs: Inputs, features, targets) -> pd.DataFrame | None:
        """The training table where this source gives it directly (e.g. from a world's own formulas); None
        makes the run extract the predictors from the cube at the towers."""
        return None

    def land_fraction(self, cube: xr.Dataset | None, window: Mapping[str, slice] | None = None) -> float:
        """Share of the grid's cells that are land [0-1]."""
        if cube is not None and "land_mask" in cube:
            return float((cube["land_mask"] == 1).mean().compute())
        return 1.0

    def sample_cube(
        self, outline: GridOutline, needed, window: Mapping[str, slice] | None = None
    ) -> tuple[xr.Dataset | None, pd.DataFrame | None]:
        """The cube whose chunks the dry run reads to time the run, and a training table to fit its
        calibration models on (None: the plan calibrates on a demo world's towers instead)."""
        return outline.cube, None

    @property
    def regrid(self) -> str | None:
        """How coarse climate reaches the grid, for the plan (None: nothing is regridded)."""
        inputs = self.config.data.inputs
        return inputs.regrid if inputs is not None else None

    @property
    def planned_towers(self) -> int | None:
        """Towers the plan knows before reading any file (the demo worlds' ``n_sites``), else None."""
        return None
