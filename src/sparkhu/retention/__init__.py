"""Retention: policies that keep storage from turning into a dump, and never lose what matters.

* :mod:`~sparkhu.retention.policies` — the policies (``[retention]`` of ``sparkhu.toml`` and those set
  at run time, kept in the catalog), legal holds, and the cut-off of a policy at a moment;
* :mod:`~sparkhu.retention.guards` — what no policy may touch: the floor, rows the pipeline has not
  processed, rows no committed downsample level covers, a live model's training window, held data;
* :mod:`~sparkhu.retention.plan` — the dry-run plan (what, rows, bytes, partitions);
* :mod:`~sparkhu.retention.apply` — executes exactly a plan, resumably, into the trash (undo);
* :mod:`~sparkhu.retention.archive` — compressed Parquet plus a manifest at another URI; restore;
* :mod:`~sparkhu.retention.downsample` — the ladder raw → 5 min → 1 h (min/max/mean/last/count);
* :mod:`~sparkhu.retention.audit` — the append-only audit log of every action.
"""
