"""The MCP gateway: the only door for MCP clients. Authenticates, then speaks NATS."""
