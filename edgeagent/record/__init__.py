"""Continuous recording: a remuxing consumer of the camera hub, an SQLite index, retention, export."""
