"""RTSP camera simulator (GStreamer rtsp-server), run standalone with Debian's /usr/bin/python3."""
