"""The ingest worker: the single writer. Applies commands to the vector and graph stores."""
