"""The benchmark's peers: the same scoring job written with other stream processors.

``naive_faust`` (faust-streaming, one Redis round trip per command per event),
``quix_app`` (Quix Streams with its state store), ``bytewax_app`` (Bytewax, a
per-account ``stateful_batch`` step, with or without its recovery) and
``pathway_app`` (Pathway, a per-account stateful reducer) run as subprocesses
started by ``run.run_peer`` over the topics ``bench.data`` preloads; ``scoring`` is
the work per event they share with healthscore's own model and scoring code, and
``account`` the per-account document the peers with a state store keep.
"""
