"""Announcements spoken in Russian by a locally installed eSpeak NG (docs/speech.md)."""
