"""The benchmark's peers: the same scoring job written with other stream processors.

``naive_faust`` (faust-streaming, one Redis round trip per command per event) and
``quix_app`` (Quix Streams with its state store) run as subprocesses started by
``run.run_peer`` over the topics ``bench.data`` preloads; ``scoring`` is the work
per event they share with healthscore's own model and scoring code.
"""
