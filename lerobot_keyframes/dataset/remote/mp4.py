"""The sample table of an mp4/mov video track, read from its header (`moov`) alone.

What a range reader needs before it reads a single frame: for every sample (packet) of the first video track,
in decode order, its byte offset and size, its decode and presentation times and whether it is a sync sample
(keyframe). PyAV's `index_entries` give offsets and decode times but not presentation times, and presentation
times are what frames are chosen by (H.264 with B-frames: decode order is not presentation order), so the
boxes are read here: `stts`, `ctts`, `stss`, `stsz`/`stz2`, `stsc`, `stco`/`co64`, `elst`, `mdhd`, `stsd`.

The table is trusted only in the layouts FFmpeg reads the same way (checked against FFmpeg's own demux in the
tests): one plain edit (or none, without composition offsets), no fragments, every sample inside the file.
Anything else raises `UntrustedHeader` with the reason, and the caller downloads the file whole.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# the box types whose payload is a list of boxes (the path to the sample table)
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"})
_CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc", b"av01": "av1", b"vp09": "vp9",
           b"vp08": "vp8", b"mp4v": "mpeg4", b"mjpa": "mjpeg", b"jpeg": "mjpeg"}


class UntrustedHeader(ValueError):
    """The header does not describe the file's frames in a way this reader can trust; the message says why."""


@dataclass(frozen=True, eq=False)
class SampleTable:
    """The samples of one video track in decode order (arrays aligned), plus what a frame index needs."""

    offset: np.ndarray  # int64 byte offset of each sample in the file
    size: np.ndarray  # int64 byte size
    dts: np.ndarray  # int64 decode time (track time base), after the edit list's shift
    pts: np.ndarray  # int64 presentation time (track time base), after the edit list's shift
    keyframe: np.ndarray  # bool, sync samples
    timescale: int  # track time base is 1 / timescale
    stream_index: int  # FFmpeg's stream index of the track (its position among the tracks)
    width: int
    height: int
    codec: str
    delay: int  # frames a decoder holds back before output (composition shift, in frames; 0 without reordering)
    file_size: int

    def __len__(self) -> int:
        return len(self.offset)

    @property
    def end(self) -> np.ndarray:
        return self.offset + self.size

    def presentation_order(self) -> np.ndarray:
        """Decode positions of the samples sorted by presentation time (frame index i -> sample)."""
        cached = self.__dict__.get("_order")
        if cached is None:
            cached = np.argsort(self.pts, kind="stable")
            object.__setattr__(self, "_order", cached)
        return cached


def iter_boxes(data: bytes | memoryview, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box offset, payload offset, box end) of the boxes in data[start:end]."""
    off = start
    while off + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, off)
        header = 8
        if size == 1:
            if off + 16 > end:
                raise UntrustedHeader(f"box {kind!r} at byte {off} is truncated")
            size = struct.unpack_from(">Q", data, off + 8)[0]
            header = 16
        elif size == 0:
            size = end - off
        if size < header or off + size > end:
            raise UntrustedHeader(f"box {kind!r} at byte {off} has an impossible size {size}")
        yield kind, off, off + header, off + size
        off += size


def top_level_box(read: Callable[[int, int], bytes], offset: int, file_size: int) -> tuple[bytes, int, int]:
    """(type, header size, box size) of the top-level box at `offset`, reading its header with `read(start, end)`."""
    head = read(offset, min(offset + 16, file_size))
    if len(head) < 8:
        raise UntrustedHeader(f"truncated box header at byte {offset}")
    size, kind = struct.unpack_from(">I4s", head, 0)
    header = 8
    if size == 1:
        if len(head) < 16:
            raise UntrustedHeader(f"truncated box header at byte {offset}")
        size, header = struct.unpack_from(">Q", head, 8)[0], 16
    elif size == 0:
        size = file_size - offset
    if size < header or offset + size > file_size:
        raise UntrustedHeader(f"top-level box {kind!r} at byte {offset} has an impossible size {size}")
    return kind, header, size


def parse_moov(moov: bytes, file_size: int) -> SampleTable:
    """The sample table of the first video track of a `moov` box (the whole box, header included)."""
    view = memoryview(moov)
    boxes = list(iter_boxes(view, 0, len(moov)))
    if len(boxes) != 1 or boxes[0][0] != b"moov":
        raise UntrustedHeader("the header box is not one moov box")
    _, _, payload, end = boxes[0]
    movie_timescale = None
    traks = []
    for kind, _, p, e in iter_boxes(view, payload, end):
        if kind == b"mvex":
            raise UntrustedHeader("fragmented mp4 (moov/mvex): the samples are described outside the header")
        if kind == b"mvhd":
            version = view[p]
            movie_timescale = struct.unpack_from(">I", view, p + (20 if version == 1 else 12))[0]
        if kind == b"trak":
            traks.append((p, e))
    for stream_index, (p, e) in enumerate(traks):
        track = _Track(view, p, e)
        if track.handler == b"vide":
            return track.table(stream_index, movie_timescale, file_size)
    raise UntrustedHeader("no video track in the header")


class _Track:
    """The boxes of one `trak` this reader uses, by type (payload bounds)."""

    def __init__(self, view: memoryview, start: int, end: int) -> None:
        self.view = view
        self.boxes: dict[bytes, tuple[int, int]] = {}
        self._collect(start, end)
        hdlr = self.boxes.get(b"hdlr")
        self.handler = bytes(view[hdlr[0] + 8 : hdlr[0] + 12]) if hdlr else b""

    def _collect(self, start: int, end: int) -> None:
        for kind, _, p, e in iter_boxes(self.view, start, end):
            if kind in _CONTAINERS:
                self._collect(p, e)
            else:
                self.boxes.setdefault(kind, (p, e))

    def _full(self, kind: bytes) -> tuple[int, int, int] | None:
        """(version, payload start after version/flags, end) of a full box, None when absent."""
        found = self.boxes.get(kind)
        if found is None:
            return None
        p, e = found
        return self.view[p], p + 4, e

    def _array(self, p: int, count: int, fmt: str, e: int) -> np.ndarray:
        dtype = np.dtype(fmt)
        if p + count * dtype.itemsize > e:
            raise UntrustedHeader("a sample table box is shorter than its entry count")
        return np.frombuffer(self.view, dtype=dtype, count=count, offset=p)

    def table(self, stream_index: int, movie_timescale: int | None, file_size: int) -> SampleTable:
        view = self.view
        mdhd = self._full(b"mdhd")
        if mdhd is None:
            raise UntrustedHeader("the video track has no mdhd box")
        version, p, _ = mdhd
        timescale = struct.unpack_from(">I", view, p + (16 if version == 1 else 8))[0]
        if not timescale:
            raise UntrustedHeader("the video track's timescale is 0")

        # sizes
        stsz = self._full(b"stsz")
        if stsz is not None:
            _, p, e = stsz
            uniform, count = struct.unpack_from(">II", view, p)
            size = (np.full(count, uniform, np.int64) if uniform else
                    self._array(p + 8, count, ">u4", e).astype(np.int64))
        elif self._full(b"stz2") is not None:
            _, p, e = self._full(b"stz2")  # type: ignore[misc]
            field_size, count = view[p + 3], struct.unpack_from(">I", view, p + 4)[0]
            if field_size == 16:
                size = self._array(p + 8, count, ">u2", e).astype(np.int64)
            elif field_size == 8:
                size = self._array(p + 8, count, "u1", e).astype(np.int64)
            else:
                raise UntrustedHeader(f"stz2 with {field_size}-bit entries")
        else:
            raise UntrustedHeader("the video track has no sample size box")
        n = len(size)
        if n == 0:
            raise UntrustedHeader("the video track's header lists no samples (fragmented or empty file)")

        # decode times
        stts = self._full(b"stts")
        if stts is None:
            raise UntrustedHeader("the video track has no stts box")
        _, p, e = stts
        entries = self._array(p + 4, struct.unpack_from(">I", view, p)[0] * 2, ">u4", e).reshape(-1, 2)
        deltas = np.repeat(entries[:, 1].astype(np.int64), entries[:, 0].astype(np.int64))
        if len(deltas) != n:
            raise UntrustedHeader(f"stts describes {len(deltas)} samples, stsz {n}")
        dts = np.concatenate([[0], np.cumsum(deltas)[:-1]]).astype(np.int64)

        # composition offsets
        ctts = self._full(b"ctts")
        if ctts is not None:
            version, p, e = ctts
            entries = self._array(p + 4, struct.unpack_from(">I", view, p)[0] * 2, ">u4", e).reshape(-1, 2)
            values = entries[:, 1].astype(np.int64)
            if version == 1:
                values = values.astype(np.uint32).view(np.int32).astype(np.int64)
            offsets = np.repeat(values, entries[:, 0].astype(np.int64))
            if len(offsets) != n:
                raise UntrustedHeader(f"ctts describes {len(offsets)} samples, stsz {n}")
            if np.any(offsets < 0):
                raise UntrustedHeader("negative composition offsets")
        else:
            offsets = np.zeros(n, np.int64)
        pts = dts + offsets

        # keyframes
        stss = self._full(b"stss")
        keyframe = np.zeros(n, bool) if stss is not None else np.ones(n, bool)
        if stss is not None:
            _, p, e = stss
            numbers = self._array(p + 4, struct.unpack_from(">I", view, p)[0], ">u4", e).astype(np.int64)
            if np.any(numbers < 1) or np.any(numbers > n):
                raise UntrustedHeader("stss names samples that do not exist")
            keyframe[numbers - 1] = True
        if not keyframe[0]:
            raise UntrustedHeader("the first sample is not a sync sample")

        offset = self._offsets(n, size)
        if np.any(offset < 0) or np.any(offset + size > file_size):
            raise UntrustedHeader("the sample table points outside the file")

        # the edit list: FFmpeg shifts times by the one edit's media time
        shift = self._edit_shift(movie_timescale, timescale, pts, bool(np.any(offsets)))
        dts, pts = dts - shift, pts - shift
        if len(np.unique(pts)) != n:
            raise UntrustedHeader("two samples share a presentation time")
        min_delta = int(deltas.min()) if n > 1 else 1
        delay = int(np.ceil(offsets.max() / min_delta)) if min_delta > 0 and offsets.any() else 0
        width, height, codec = self._visual()
        return SampleTable(offset=offset, size=size, dts=dts, pts=pts, keyframe=keyframe, timescale=int(timescale),
                           stream_index=stream_index, width=width, height=height, codec=codec, delay=delay,
                           file_size=int(file_size))

    def _offsets(self, n: int, size: np.ndarray) -> np.ndarray:
        view = self.view
        stco, co64 = self._full(b"stco"), self._full(b"co64")
        if stco is not None:
            _, p, e = stco
            chunks = self._array(p + 4, struct.unpack_from(">I", view, p)[0], ">u4", e).astype(np.int64)
        elif co64 is not None:
            _, p, e = co64
            chunks = self._array(p + 4, struct.unpack_from(">I", view, p)[0], ">u8", e).astype(np.int64)
        else:
            raise UntrustedHeader("the video track has no chunk offset box")
        stsc = self._full(b"stsc")
        if stsc is None:
            raise UntrustedHeader("the video track has no stsc box")
        _, p, e = stsc
        runs = self._array(p + 4, struct.unpack_from(">I", view, p)[0] * 3, ">u4", e).reshape(-1, 3).astype(np.int64)
        if not len(runs) or runs[0, 0] != 1:
            raise UntrustedHeader("stsc does not start at chunk 1")
        per_chunk = np.zeros(len(chunks), np.int64)
        for i, (first, samples, _) in enumerate(runs):
            last = runs[i + 1, 0] - 1 if i + 1 < len(runs) else len(chunks)
            per_chunk[first - 1 : last] = samples
        if per_chunk.sum() != n:
            raise UntrustedHeader(f"stsc/stco describe {int(per_chunk.sum())} samples, stsz {n}")
        chunk_of = np.repeat(np.arange(len(chunks)), per_chunk)
        first_in_chunk = np.concatenate([[0], np.cumsum(per_chunk)[:-1]])
        # offset of a sample = its chunk's offset + the sizes of the samples before it in that chunk
        before = np.concatenate([[0], np.cumsum(size)[:-1]])
        return chunks[chunk_of] + before - before[first_in_chunk[chunk_of]]

    def _edit_shift(self, movie_timescale: int | None, timescale: int, pts: np.ndarray, reordered: bool) -> int:
        elst = self._full(b"elst")
        if elst is None:
            if reordered:
                raise UntrustedHeader("composition offsets without an edit list")
            return 0
        version, p, e = elst
        count = struct.unpack_from(">I", self.view, p)[0]
        if count != 1:
            raise UntrustedHeader(f"an edit list of {count} entries")
        if version == 1:
            duration, media_time = struct.unpack_from(">Qq", self.view, p + 4)
            rate_at = p + 20
        else:
            duration, media_time = struct.unpack_from(">Ii", self.view, p + 4)
            rate_at = p + 12
        if rate_at + 4 > e:
            raise UntrustedHeader("the edit list is truncated")
        rate_int, rate_frac = struct.unpack_from(">hh", self.view, rate_at)
        if media_time < 0 or rate_int != 1 or rate_frac != 0:
            raise UntrustedHeader("an empty or non-unit-rate edit")
        if np.any(pts < media_time):
            raise UntrustedHeader("the edit list hides leading frames")
        if duration and movie_timescale and int(pts.max()) - media_time >= duration * timescale / movie_timescale:
            raise UntrustedHeader("the edit list hides trailing frames")
        return int(media_time)

    def _visual(self) -> tuple[int, int, str]:
        stsd = self._full(b"stsd")
        if stsd is None:
            raise UntrustedHeader("the video track has no stsd box")
        _, p, e = stsd
        if p + 4 + 8 + 28 > e:
            raise UntrustedHeader("the stsd box is truncated")
        entry = p + 4  # after the entry count
        fourcc = bytes(self.view[entry + 4 : entry + 8])
        body = entry + 8
        width, height = struct.unpack_from(">HH", self.view, body + 24)
        return int(width), int(height), _CODECS.get(fourcc, fourcc.decode("latin-1").strip())
