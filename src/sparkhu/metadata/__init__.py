"""The metadata room: lineage of a series, OpenLineage events, feature views and metadata sync.

Built on the catalog's records (:mod:`sparkhu.storage.catalog`); below the capabilities, so that
training (:mod:`sparkhu.forecast`) and online serving can both resolve a feature view. See
``docs/metadata.md``.
"""
