"""The driver against a whole dozor-camsim process: what probe() says can be recorded."""

from __future__ import annotations

import av
import cv2
import numpy as np

from camera_drivers import OnvifCamera, parse_device_url


async def test_probe_of_a_camsim_camera_gives_recordable_streams_and_a_real_snapshot(camsim_one):
    assert camsim_one.onvif is not None
    host, port = parse_device_url(camsim_one.onvif)
    async with OnvifCamera(host, port, camsim_one.user, camsim_one.password) as cam:
        probe = await cam.probe()
        jpeg = await cam.snapshot()
    assert probe.main.stream_uri == camsim_one.rtsp_main
    assert probe.sub.stream_uri == camsim_one.rtsp_sub
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None and frame.shape[0] > 0
    # What the recorder will do with the probe: open the sub stream (credentials kept apart).
    url = camsim_one.with_credentials(probe.sub.stream_uri)
    with av.open(url, options={"rtsp_transport": "tcp", "timeout": "5000000"},
                 timeout=(5.0, 5.0)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (
            probe.sub.width, probe.sub.height
        )
        packet = next(p for p in container.demux(stream) if p.size > 0)
        assert packet.size > 0
