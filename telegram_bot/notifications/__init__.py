"""Notifications: the outbox, the fan-out from platform events and the rate-limited sender."""
