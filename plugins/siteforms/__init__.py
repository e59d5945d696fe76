"""Site forms: leads from the e-mails a site's own forms send (docs/siteforms.md).

Each connection has a technical e-mail address, ``<random>@<intake domain>``.
The site adds it to the recipients of its form notifications; this plugin's
SMTP server (aiosmtpd) receives them, keeps every accepted message, finds the
phone number, name, office, department, page and UTM in it, and hands the
lead to the core's intake like any other lead source.

Modules: ``parser`` (bytes -> the fields of a form, pure; ``decoding`` holds
its charset, header and HTML helpers), ``matching`` (a
parsed form + what we know about the site -> the lead), ``server`` (the SMTP
session rules and the SMTP server), ``command`` (``perezvon smtp``), ``store`` (the grouped
writes of received messages), ``directory`` (technical addresses and site
profiles, cached), ``models``, ``schemas``, ``app`` and ``plugin`` (hooks).
"""
