"""The per-file pts table: from the container's sample index when trustworthy, else from every packet."""

from __future__ import annotations

import numpy as np
import pytest
from frames_helpers import FRONT, LENGTHS, cached_dataset, parquet_times, video_file

from lerobot_keyframes.frames import make_frame_provider
from lerobot_keyframes.frames.decoders import build_file_index


@pytest.mark.parametrize("codec,gop,source", [("av1", 2, "header"), ("av1", 250, "header"), ("h264", 30, "packets")])
def test_header_index_equals_packet_index(codec: str, gop: int, source: str) -> None:
    root = cached_dataset(codec, gop)
    for file_index, frames in ((0, LENGTHS[0] + LENGTHS[1]), (1, LENGTHS[2])):
        path = str(video_file(root, FRONT, file_index))
        fast = build_file_index(path)
        full = build_file_index(path, from_header=False)
        assert fast.source == source and full.source == "packets"
        assert len(fast) == frames
        assert np.array_equal(fast.pts, full.pts) and np.array_equal(fast.keyframe, full.keyframe)
        assert fast.time_base == full.time_base and (fast.width, fast.height) == (128, 96)
        assert np.allclose(np.diff(fast.seconds), 1 / 30)
        if gop == 2:
            assert fast.keyframe[::2].all()


def test_nearest_and_keyframes() -> None:
    index = build_file_index(str(video_file(cached_dataset("av1", 30), FRONT, 0)))
    period = 1 / 30
    times = np.array([0.0, 0.49 * period, 0.51 * period, 2 * period - 1e-9, 89 * period + 0.3 * period, 99.0, -5.0])
    assert index.nearest(times).tolist() == [0, 0, 1, 2, 89, 89, 0]
    assert np.flatnonzero(index.keyframe).tolist() == [0, 30, 60]  # GOP 30 over 90 frames
    assert [index.keyframe_at_or_before(i) for i in (0, 1, 29, 30, 45, 59, 60, 89)] == [0, 0, 0, 30, 30, 30, 60, 60]
    flagged = np.flatnonzero(index.keyframe)  # and for every frame: the last flagged keyframe at or before it
    assert [index.keyframe_at_or_before(i) for i in range(len(index))] == \
        [int(flagged[flagged <= i].max()) for i in range(len(index))]


def test_iter_frames_at_chunks() -> None:
    provider = make_frame_provider(cached_dataset("av1", 2))
    times = parquet_times(1)
    chunks = list(provider.iter_frames_at(1, times, batch_size=16))
    assert [len(c) for c in chunks] == [16, 16, 16, 2]
    assert sum((c.indices for c in chunks), ()) == tuple(range(LENGTHS[1]))


@pytest.mark.parametrize("backend", ["pyav", "torchcodec"])
def test_misnamed_container_still_opens(tmp_path, backend: str) -> None:
    """mp4-named files skip FFmpeg's format probe; a Matroska file with an .mp4 name must still open."""
    import av

    from lerobot_keyframes.frames.decoders import open_decoder
    from lerobot_keyframes.frames.decoders.index import open_container

    src = video_file(cached_dataset("h264", 30), FRONT, 1)
    path = tmp_path / "really_matroska.mp4"
    with av.open(str(src)) as inp, av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    with open_container(str(path)) as container:
        assert container.format.name == "matroska,webm"
    index = build_file_index(str(path))
    assert len(index) == LENGTHS[2]
    got = open_decoder(backend, str(path), index).decode([0, 7, LENGTHS[2] - 1])
    want = open_decoder(backend, str(src), build_file_index(str(src))).decode([0, 7, LENGTHS[2] - 1])
    assert got.shape == want.shape and bool((got == want).all())
