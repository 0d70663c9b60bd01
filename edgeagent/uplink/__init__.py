"""Uplink: one copy of a watched camera to the traffic centre's media server, which fans it out.

A cabinet on a mobile link cannot send a copy per operator; the agent publishes each watched camera once
(H.264 passed through, the live view's own track) and the centre's media server serves every operator.

settings.py   the ``uplink`` section of the configuration
signaling.py  the small interface every media server is driven through (publish an offer, get the answer)
janus.py      Janus VideoRoom over its HTTP API (session, handle, room, publisher, long poll, keepalive)
whip.py       WHIP (RFC 9725): POST the offer, DELETE the resource
publisher.py  one camera's publisher: peer connection, republish with backoff, why it failed
sent.py       what a publication sent, from aiortc's statistics of its peer connection
service.py    every camera's publisher: start/stop on demand (a lease), the ``always`` cameras, its health
routes.py     ``POST /cameras/{camera}/uplink`` for the HTTP server
command.py    the ``{"action": "start"|"stop"}`` payload, shared by MQTT and HTTP
"""
