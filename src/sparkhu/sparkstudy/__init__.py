"""Spark resource studies: the tuning study's sample jobs, a grid of settings measured and costed
on a standalone cluster, and an advisor that reads one run's event log.

Modules: :mod:`~.words` (the strong-password rule and its dictionary), :mod:`~.textgen`
(password-like text with known answers), :mod:`~.jobs` (the two jobs in three forms),
:mod:`~.settings` (grid, prices, placement), :mod:`~.cluster` (a local standalone cluster),
:mod:`~.driver` (one run), :mod:`~.eventlog`, :mod:`~.study`, :mod:`~.report` (table, CSV,
plots, lake) and :mod:`~.advisor`.
"""
