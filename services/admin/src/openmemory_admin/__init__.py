"""The admin service: REST API and web dashboard for people."""
