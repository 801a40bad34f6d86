"""Histogram forests laid out for prediction and stored compactly.

A fitted :class:`~uflux_xr.models.histforest.HistForest` keeps four arrays of
its nodes (int16 feature, uint8 threshold, int32 left child, float32 value:
11 bytes a node) in the order the builder made them.  Prediction then reads
three arrays per node visited, and a model file holds all four.

Here each tree is one array of 8-byte records in depth-first pre-order:

* an internal node: bits 0–15 the feature, 16–23 the threshold bin, 32–62 the
  tree-local index of its right child; its left child is the next record, so
  the path that goes left stays in the same cache lines;
* a leaf: bit 63 set and the float32 leaf value in bits 0–31.

One load per level and no separate value lookup: prediction walks
``i = i + 1 if bin <= threshold else right(i)`` until a leaf, for groups of 16
rows at once (their loads overlap) and 32,768 rows per tree before the next
(the tree stays in cache).  The decisions and
the leaf values are exactly those of the HistForest, and trees are summed in
the same order, so predictions are identical to the last bit.

A file stores the same trees succinctly (rebuilt into records on load): the
pre-order shape as one bit a node (internal or leaf), the feature (uint8 when
the forest has at most 256 features) and threshold bin of each internal node,
and each leaf as a uint16 index into the forest's distinct leaf values (uint32
when there are more than 65,536).  Fully grown trees share few leaf values
(each is the mean of a handful of training targets), so this is about 2 bytes
a node before compression, against 11.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

LEAF = np.uint64(1) << np.uint64(63)

if sys.byteorder != "little":  # pragma: no cover - the leaf values are read as the records' low halves
    raise ImportError("uflux_xr.models.compactforest needs a little-endian machine")


@numba.njit(nogil=True, cache=True)
def _records_from_hist(feature, threshold, left, value_bits, offsets):
    """Pre-order uint64 records of every tree of a HistForest (``value_bits``: its float32 values as uint32)."""
    n_trees = offsets.size - 1
    records = np.empty(offsets[-1], np.uint64)
    largest = np.max(offsets[1:] - offsets[:-1]) if n_trees else 0
    stack = np.empty(largest, np.int64)
    pending = np.empty(largest, np.int64)  # record index waiting for its right child
    for t in range(n_trees):
        base = offsets[t]
        top = 0
        n_pending = 0
        stack[top] = 0
        top += 1
        pos = 0
        previous_leaf = False
        while top > 0:
            top -= 1
            node = stack[top]
            if previous_leaf:  # this node is the right child of the last internal node still open
                n_pending -= 1
                p = pending[n_pending]
                records[base + p] |= np.uint64(pos) << np.uint64(32)
            if left[base + node] < 0:
                records[base + pos] = LEAF | np.uint64(value_bits[base + node])
                previous_leaf = True
            else:
                records[base + pos] = np.uint64(feature[base + node]) | (
                    np.uint64(threshold[base + node]) << np.uint64(16)
                )
                pending[n_pending] = pos
                n_pending += 1
                stack[top] = left[base + node] + 1  # right, visited after the whole left subtree
                top += 1
                stack[top] = left[base + node]
                top += 1
                previous_leaf = False
            pos += 1
    return records


@numba.njit(nogil=True, cache=True)
def _records_from_succinct(shape_bits, feature, threshold, leaf_code, leaf_value_bits, offsets):
    """Rebuild pre-order records from the stored shape bits, splits and leaf codes (values as uint32 bits)."""
    n = offsets[-1]
    records = np.empty(n, np.uint64)
    pending = np.empty(64, np.int64)
    k_internal = 0
    k_leaf = 0
    for t in range(offsets.size - 1):
        base = offsets[t]
        n_pending = 0
        previous_leaf = False
        for pos in range(offsets[t + 1] - base):
            i = base + pos
            if previous_leaf:
                n_pending -= 1
                p = pending[n_pending]
                records[base + p] |= np.uint64(pos) << np.uint64(32)
            internal = (shape_bits[i >> 3] >> (7 - (i & 7))) & 1  # numpy.packbits order: first bit is the high bit
            if internal:
                records[i] = np.uint64(feature[k_internal]) | (np.uint64(threshold[k_internal]) << np.uint64(16))
                k_internal += 1
                if n_pending == pending.size:
                    grown = np.empty(2 * pending.size, np.int64)
                    grown[:n_pending] = pending
                    pending = grown
                pending[n_pending] = pos
                n_pending += 1
                previous_leaf = False
            else:
                records[i] = LEAF | np.uint64(leaf_value_bits[leaf_code[k_leaf]])
                k_leaf += 1
                previous_leaf = True
    return records


#: Rows that walk one tree before the next tree is taken (its nodes stay in cache meanwhile).
ROW_BLOCK = 32768
#: Rows walked down a tree together, so that their independent node loads overlap in the CPU.
ROW_GROUP = 16


@numba.njit(nogil=True, cache=True)
def _predict_records(xb, records, halves, offsets, out):
    """Add the mean over trees to ``out`` for the rows of binned ``xb``.

    Per block of :data:`ROW_BLOCK` rows, tree after tree; within a tree, groups of
    :data:`ROW_GROUP` rows advance one level each in turn, and a row leaves its group at its
    leaf.  Each row adds its trees' leaf values in tree order, as the HistForest does.
    ``halves`` is ``records`` viewed as float32 pairs: a leaf's value is the low half (x86-64 is
    little-endian), read without a scalar bit cast.
    """
    n_trees = offsets.size - 1
    n = xb.shape[0]
    acc = np.zeros(min(ROW_BLOCK, n), np.float64)
    node = np.empty(ROW_GROUP, np.int64)
    row = np.empty(ROW_GROUP, np.int64)
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        acc[: stop - start] = 0.0
        for t in range(n_trees):
            base = offsets[t]
            for g in range(start, stop, ROW_GROUP):
                m = min(ROW_GROUP, stop - g)
                for k in range(m):
                    node[k] = base
                    row[k] = g + k
                while m > 0:
                    k = 0
                    while k < m:
                        i = node[k]
                        rec = records[i]
                        if rec < LEAF:
                            f = np.int64(rec & np.uint64(0xFFFF))
                            th = np.int64((rec >> np.uint64(16)) & np.uint64(0xFF))
                            right = base + np.int64(rec >> np.uint64(32))
                            node[k] = right if np.int64(xb[row[k], f]) > th else i + 1
                            k += 1
                        else:  # at its leaf: add it, and the group's last row takes its place
                            acc[row[k] - start] += halves[2 * i]
                            m -= 1
                            node[k] = node[m]
                            row[k] = row[m]
        for r in range(start, stop):
            out[r] += acc[r - start] / n_trees


@dataclass
class CompactForest:
    """A forest as pre-order 8-byte node records (see the module docstring).

    Attributes
    ----------
    records : numpy.ndarray
        uint64 node records of all trees, tree after tree.
    offsets : numpy.ndarray
        int64 start of each tree in ``records`` (n_trees + 1).
    """

    records: np.ndarray
    offsets: np.ndarray

    @property
    def n_trees(self) -> int:
        return self.offsets.size - 1

    @property
    def n_nodes(self) -> int:
        return self.records.size

    @property
    def nbytes(self) -> int:
        """Bytes held in memory."""
        return int(self.records.nbytes + self.offsets.nbytes)

    @classmethod
    def from_hist(cls, forest) -> CompactForest:
        """The same trees as a :class:`~uflux_xr.models.histforest.HistForest`, laid out for prediction."""
        offsets = np.ascontiguousarray(forest.offsets, dtype=np.int64)
        records = _records_from_hist(
            np.ascontiguousarray(forest.feature, dtype=np.int64),
            np.ascontiguousarray(forest.threshold, dtype=np.int64),
            np.ascontiguousarray(forest.left, dtype=np.int64),
            np.ascontiguousarray(forest.value, dtype=np.float32).view(np.uint32),
            offsets,
        )
        return cls(records, offsets)

    def predict_binned(self, xb: np.ndarray, n_threads: int = 1) -> np.ndarray:
        """Mean tree prediction for binned rows ``xb`` (n, features), uint8."""
        xb = np.ascontiguousarray(xb, dtype=np.uint8)
        out = np.zeros(xb.shape[0], dtype=np.float64)
        if n_threads <= 1 or xb.shape[0] < 2048:
            _predict_records(xb, self.records, self.records.view(np.float32), self.offsets, out)
            return out
        bounds = np.linspace(0, xb.shape[0], n_threads + 1).astype(np.int64)

        def work(k: int) -> None:
            lo, hi = bounds[k], bounds[k + 1]
            _predict_records(xb[lo:hi], self.records, self.records.view(np.float32), self.offsets, out[lo:hi])

        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(work, range(n_threads)))
        return out

    # -- storage -------------------------------------------------------------

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The succinct stored form (see the module docstring)."""
        internal = self.records < LEAF
        splits = self.records[internal]
        feature = (splits & np.uint64(0xFFFF)).astype(np.uint16)
        leaf_bits = (self.records[~internal] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        values, codes = np.unique(leaf_bits.view(np.float32), return_inverse=True)
        return {
            f"{prefix}shape": np.packbits(internal),
            f"{prefix}feature": feature.astype(np.uint8) if feature.size == 0 or feature.max() < 256 else feature,
            f"{prefix}threshold": ((splits >> np.uint64(16)) & np.uint64(0xFF)).astype(np.uint8),
            f"{prefix}leaf_code": codes.astype(np.uint16 if values.size <= 65536 else np.uint32),
            f"{prefix}leaf_values": values.astype(np.float32),
            f"{prefix}tree_nodes": np.diff(self.offsets),
        }

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str) -> CompactForest:
        """Rebuild from :meth:`to_arrays` (reads numeric arrays only)."""
        offsets = np.concatenate([[0], np.cumsum(arrays[f"{prefix}tree_nodes"])]).astype(np.int64)
        records = _records_from_succinct(
            arrays[f"{prefix}shape"],
            arrays[f"{prefix}feature"].astype(np.int64),
            arrays[f"{prefix}threshold"].astype(np.int64),
            arrays[f"{prefix}leaf_code"].astype(np.int64),
            np.ascontiguousarray(arrays[f"{prefix}leaf_values"], dtype=np.float32).view(np.uint32),
            offsets,
        )
        return cls(records, offsets)
