"""edgeagent's benchmarks: the hot path measured side by side with FFmpeg and stock aiortc.

``python -m benchmarks`` runs them all and writes ``benchmarks/RESULTS.md`` and ``benchmarks/results.png``;
``--quick`` runs each once on tiny sizes (the test suite does that so none rots); ``--soak`` runs the
hour-long memory soak. See ``python -m benchmarks --help``.
"""
