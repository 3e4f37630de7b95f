"""What a run's user sees: the text summary (``text``), the k6-style JSON summary export
(``export``) and the live progress line (``live``). Each reads a
:class:`cannonade.model.summary.Summary` or the aggregator, never the engine.

Import the submodules directly; nothing is re-exported here so that importing one
renderer does not pull in rich.
"""
