"""Reading text where ingest and search must agree: keywords (ingest indexes them, search queries
them) and dates (ingest resolves a message's, search reads a question's period)."""
