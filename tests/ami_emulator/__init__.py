"""An emulator of Asterisk's Manager Interface for the telephony tests (docs/ami-emulator.md)."""

from .agi import AsyncAgi
from .facts import cause_text, sip_to_cause
from .scenarios import AmdEvent, Behaviour, Dtmf, UserEventSpec
from .server import ActionRecord, AmiEmulator, CallHandle, Channel, EventRecord, User

__all__ = [
    "ActionRecord",
    "AmdEvent",
    "AmiEmulator",
    "AsyncAgi",
    "Behaviour",
    "CallHandle",
    "Channel",
    "Dtmf",
    "EventRecord",
    "User",
    "UserEventSpec",
    "cause_text",
    "sip_to_cause",
]
