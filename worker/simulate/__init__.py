"""``healthscore simulate``: a synthetic customer population streaming events to Kafka.

The pure population and event generator live in :mod:`worker.simulate.personas`;
the Kafka producer that paces them lives in :mod:`worker.simulate.producer`,
imported from there so that the pure half loads without the I/O stack.
"""
