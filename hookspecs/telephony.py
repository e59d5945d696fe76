"""Telephony backends: placing callback attempts (docs/calls.md#the-callback-scenario).

Exactly one backend is active per deployment (``[perezvon] telephony`` in
``plugins.toml`` picks it when several are registered). A backend places one
attempt at a time per call: dial the legs in the planned direction, play the
announcement, collect DTMF, bridge, record, and report each leg's final
status as a SIP-style code or one of the internal codes 201-204 (docs/calls.md#leg-statuses).
Scheduling, redials, tags and notifications stay in the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perezvon.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from perezvon.core.registry import Registry
    from perezvon.core.settings import Settings


@hookspec
def perezvon_register_telephony(registry: Registry, settings: dict[str, Any], core_settings: Settings) -> None:
    """Declare the telephony backends this plugin provides.

    When: once at start-up, for each enabled plugin.
    Arguments: ``registry`` -- call ``registry.add_telephony(backend)`` with an
    instance of a :class:`perezvon.api.TelephonyBackend` subclass. The core
    calls ``await backend.start()`` in the worker before the first attempt,
    ``await backend.place_attempt(plan, progress)`` for each attempt (returns
    an :class:`perezvon.api.AttemptOutcome`), ``await backend.health()`` for
    ``/healthz`` and ``await backend.stop()`` on shutdown.
    ``core_settings`` -- the deployment's :class:`perezvon.api.Settings`
    (data dir, public URL, secret key). ``settings`` -- this plugin's settings (e.g. AMI host and credentials,
    the dial-string template).
    Returns: nothing.
    """


@hookspec
def perezvon_register_speech(registry: Registry, settings: dict[str, Any], core_settings: Settings) -> None:
    """Declare text-to-speech engines for announcements (docs/speech.md).

    When: once at start-up, for each enabled plugin.
    Arguments: ``registry`` -- call ``registry.add_speech(engine)`` with a
    :class:`perezvon.api.SpeechEngine` (``key``, ``title``, ``priority`` and
    ``async synthesize(text, voice) -> Path`` returning an audio file;
    ``voice`` is ``"male"`` or ``"female"``). The engine with the highest
    priority is used, so a better voice can replace the built-in one.
    ``core_settings`` -- the deployment's :class:`perezvon.api.Settings`
    (data dir, public URL, secret key). ``settings`` -- this plugin's settings.
    Returns: nothing.
    """
