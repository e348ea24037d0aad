"""Dozor's RTSP/RTP client: one TCP session per video stream, H.264 and H.265.

`RtspSession` (client.py) does the RTSP exchange and reads the interleaved stream;
`Depacketizer` (depacketize.py) turns RTP packets into access units; `parse_sdp` (sdp.py)
finds the video track. Errors are in errors.py. See docs/ingest.md for why it exists.
"""
