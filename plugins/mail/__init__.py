"""Outgoing e-mail: call results, delayed leads, activation links and site snippets (SPEC S2.3, S3.2, S7)."""
