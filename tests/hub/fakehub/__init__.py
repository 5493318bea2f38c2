"""fakehub: a local Hugging Face Hub + Xet CAS server for nfsgw's tests.

Modules, one job each:
  xet_format   hashes, xorb and shard binary formats (pure functions)
  cas_store    Xet CAS storage: xorbs, shards, file reconstructions
  repo_store   Hub state: repos with commits and revisions, buckets
  auth         Hub token, expiring Xet tokens, signed CDN URLs
  http_util    request/response plumbing
  hub_routes   Hub API routes
  cas_routes   CAS API routes and CDN routes
  server       the two listeners and request dispatch
  __main__     command line entry point
"""
