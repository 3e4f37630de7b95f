"""Integer arrays as SQLite blobs: little-endian int32 bucket indices, int64 counts.

The same byte layout as the wire codec (``protocol.deltas``), so a database written on
one machine reads the same on any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from cannonade.model.histogram import N_BUCKETS, SparseBins

I32 = np.dtype("<i4")
I64 = np.dtype("<i8")


def pack_bins(bins: SparseBins) -> tuple[bytes, bytes]:
    return bins.index.astype(I32, copy=False).tobytes(), bins.count.astype(
        I64, copy=False
    ).tobytes()


def unpack_index(raw: bytes) -> npt.NDArray[np.int32]:
    return np.frombuffer(raw, dtype=I32).astype(np.int32, copy=False)


def unpack_count(raw: bytes) -> npt.NDArray[np.int64]:
    return np.frombuffer(raw, dtype=I64).astype(np.int64, copy=False)


def merge_bins(
    index_parts: Sequence[npt.NDArray[np.int32]], count_parts: Sequence[npt.NDArray[np.int64]]
) -> SparseBins:
    """One sparse histogram holding the sum of the parts, indices ascending."""
    if len(index_parts) == 1:
        return SparseBins(index_parts[0], count_parts[0])
    if not index_parts:
        return SparseBins(np.zeros(0, np.int32), np.zeros(0, np.int64))
    index = np.concatenate(index_parts)
    count = np.concatenate(count_parts).astype(np.int64, copy=False)
    if index.size > N_BUCKETS // 4:
        # Many parts (a run's total): a dense pass beats sorting.
        dense = np.zeros(N_BUCKETS, np.int64)
        np.add.at(dense, index, count)
        nz = np.flatnonzero(dense)
        return SparseBins(nz.astype(np.int32), dense[nz])
    # A few parts (one second's cannons): sort and sum runs of equal indices, without
    # touching 23,552 dense buckets.
    order = np.argsort(index, kind="stable")
    index, count = index[order], count[order]
    starts = np.flatnonzero(np.concatenate(([True], index[1:] != index[:-1])))
    return SparseBins(index[starts].astype(np.int32), np.add.reduceat(count, starts))


def pack_ints(values: Iterable[int]) -> bytes:
    return np.fromiter(values, dtype=np.int64).astype(I64, copy=False).tobytes()


def unpack_ints(raw: bytes) -> list[int]:
    return [int(x) for x in np.frombuffer(raw, dtype=I64)]
