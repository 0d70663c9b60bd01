"""Live view over WebRTC: a camera's picture in an operator's browser, fed from the camera's hub.

service.py    LiveService: offers in, viewers out, limits, timeouts, figures (the one public face)
whep.py       WHEP routes for the HTTP server (POST an offer, DELETE a session)
signaling.py  offers over MQTT, answered on the session's own topic
session.py    one viewer: peer connection, track, counters
track.py      the viewer's video track: the cached GOP first, then live packets, bounded and resyncing
feed.py       per camera: pass the camera's H.264 through, or switch its viewers to the shared transcode
transcode.py  per camera: decode once, mask, encode once (libx264) and fan out to every viewer
timeline.py   one continuous RTP clock per viewer across reconnects and feed switches
offer.py      what an offer must hold, and the codecs the agent answers with (H.264)
candidates.py which of an offer's ICE candidates are checked (plausible ones, 16 addresses at most)
h264.py       B-frame detection from slice headers (browsers cannot take them passed through)
ice.py        ICE servers from the configuration only, and the host addresses to offer
errors.py     LiveError: an HTTP-like status and a one-line reason
"""
