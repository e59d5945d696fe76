"""Outgoing e-mail: call results, delayed leads, activation links and site snippets (docs/mail.md)."""
