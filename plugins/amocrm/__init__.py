"""The amoCRM integration (docs/amocrm.md)."""
