"""Protobuf messages shared with HashiCorp Boundary (wire-compatible subsets).

``scope_pb2``, ``target_pb2`` and ``proxy_pb2`` are generated from the ``.proto`` files in
this directory; see ``README.md`` for how to regenerate them.
"""
