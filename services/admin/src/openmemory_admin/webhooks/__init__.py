"""Webhooks: HTTPS endpoints that receive a user's memory events, signed, at least once, in order.

`records` holds the registrations (KV `om_webhooks`) and who may see them, `signing` the signature
receivers check, `delivery` the sender and the dispatcher (one durable consumer per registration on
OM_EVENTS) with its dead letters (`OM_WEBHOOK_FAILURES`). The REST routes are `routes/webhooks.py`.
"""
