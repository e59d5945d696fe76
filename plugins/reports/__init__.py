"""Problem alerts and scheduled digests (docs/notifications.md)."""
