"""A recorder stand-in for the SIGKILL test: feeds a clip to a writer, says how far it got,
then waits to be killed. Run as `python -m tests.recorder.storage.writer_child CLIP ROOT
INDEX CODEC PACKETS`."""

from __future__ import annotations

import sys
import time

import av

from recorder.index import Index
from recorder.storage.flusher import Flusher
from recorder.storage.segment_writer import SegmentWriter
from recorder.stream_types import StreamInfo


def main() -> None:
    clip, root, index_path, codec, n_packets = sys.argv[1:6]
    index = Index(index_path)
    flusher = Flusher(root, index, flush_interval_s=0.2, site="kill")
    flusher.start()
    writer = SegmentWriter(root, flusher, target_duration_s=60.0, first_segment_duration_s=2.0)
    with av.open(clip) as c:
        s = c.streams.video[0]
        run_id = index.start_run("cam1", "main", 1_700_000_000.0)
        writer.on_run_start(
            StreamInfo(
                site="kill", camera="cam1", stream="main", run_id=run_id, codec=codec,
                width=s.codec_context.width, height=s.codec_context.height,
                time_base_num=s.time_base.numerator, time_base_den=s.time_base.denominator,
                run_start_wall=1_700_000_000.0, av_stream=s,
            )
        )
        fed = 0
        for p in c.demux(s):
            if not p.size:
                continue
            writer.on_packet(p)
            fed += 1
            if fed == int(n_packets):
                break
        flusher.wait_idle(10)
        print(f"FED {fed}", flush=True)
        time.sleep(600)


if __name__ == "__main__":
    main()
