"""Announcements spoken in Russian by a locally installed eSpeak NG (SPEC S4.3)."""
