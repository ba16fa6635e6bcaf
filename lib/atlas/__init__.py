"""The attention atlas: fingerprints of many texts, their families, and a service.

store      the SQLite fingerprint store (runs, tokens, fingerprints, zones)
ingest     a whole text in one forward pass -> every token's fingerprint, into the store
corpus     the built-in corpus: prose, dialogue, code, JSON, tables, lists, numbers
discovery  the discovery job: standardise, UMAP to 2D, HDBSCAN, Parquet + manifest
build      the map in one step: the built-in corpus ingested, then discovery
shipped    the map shipped with the app (map/): shown where none was built, and remade
calibrate  the zone thresholds, set on the ingested corpus
classify   a discovery run loaded for lookups: a fingerprint's place, cluster, confidence
service    the FastAPI sidecar with its endpoints
distributed  ingestion on Ray Data (the optional extra)
`python -m lib.atlas ingest | discover | build | ship | calibrate | serve` runs them from the
command line.
"""
