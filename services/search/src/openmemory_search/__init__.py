"""The search service: the read side. Answers search, list and get over NATS request/reply."""
