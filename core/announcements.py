"""What the robot says to the operator and to the client (docs/calls.md#announcements).

Each switch of the connection's announcement settings adds one part; extra
text is spoken last. The texts are Russian -- they are spoken to Russian
call centres and their clients; a speech engine reads them (phone numbers and
names are made speakable by the engine's plugin).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

_UNSAFE = re.compile(r"[^\w\s.,!?:;«»\"'()+\-–—]", re.UNICODE)


def speakable(text: str, limit: int = 120) -> str:
    """Visitor-supplied text as something safe to say: no control characters or markup, bounded."""
    cleaned = _UNSAFE.sub(" ", text or "")
    return " ".join(cleaned.split())[:limit]


@dataclasses.dataclass(frozen=True)
class LeadFacts:
    site: str
    office: str = ""
    department: str = ""
    client_name: str = ""
    rule: str = ""
    #: what the lead's app says of it (Application.spoken_details), e.g. the car of a trade-in request
    details: str = ""


def for_operator(facts: LeadFacts, settings: dict[str, Any], *, key_prompt: str = "") -> str:
    parts = ["Обратный звонок"]
    if settings["site_to_operator"] and facts.site:
        parts.append(f"с сайта {speakable(facts.site)}")
    sentences = [" ".join(parts) + "."]
    if settings["office_to_operator"] and facts.office:
        sentences.append(f"Офис: {speakable(facts.office)}.")
    if settings["department_to_operator"] and facts.department:
        sentences.append(f"Отдел: {speakable(facts.department)}.")
    if settings["name_to_operator"] and facts.client_name:
        sentences.append(f"Клиент: {speakable(facts.client_name)}.")
    if facts.details:
        sentences.append(speakable(facts.details, 300).rstrip(".") + ".")
    if settings["rule_to_operator"] and facts.rule:
        sentences.append(f"Правило: {speakable(facts.rule)}.")
    if settings["extra_to_operator"]:
        sentences.append(speakable(settings["extra_to_operator"], 500))
    if key_prompt:
        sentences.append(key_prompt)
    return " ".join(sentences)


#: said before the bridge to whom the connection's *recorded call notice* names, when the call is
#: recorded (docs/calls.md#announcements-and-waiting); the same words every call, so a PBX that
#: keeps synthesised sounds by their text makes the file once
RECORDED_NOTICE = "Внимание! Разговор записывается."


def for_client(facts: LeadFacts, settings: dict[str, Any]) -> str:
    greeting = "Здравствуйте"
    if settings["name_to_client"] and facts.client_name:
        greeting += f", {speakable(facts.client_name)}"
    sentences = [greeting + "!"]
    if settings["site_to_client"] and facts.site:
        sentences.append(f"Вы заказали обратный звонок на сайте {speakable(facts.site)}.")
    sentences.append("Пожалуйста, оставайтесь на линии, соединяем с оператором.")
    if settings["extra_to_client"]:
        sentences.append(speakable(settings["extra_to_client"], 500))
    return " ".join(sentences)


def has_client_parts(facts: LeadFacts, settings: dict[str, Any]) -> bool:
    """Whether a "to the client" switch has something to say. Client-first always speaks to the
    client (it asks them to stay on the line); operator-first greets them only then."""
    return bool(
        (settings["site_to_client"] and facts.site)
        or (settings["name_to_client"] and facts.client_name)
        or settings["extra_to_client"]
    )


def key_prompt(key: str, action: str) -> str:
    """ "Нажмите 1, чтобы позвонить клиенту." -- spoken after the lead's details."""
    return f"Нажмите {key}, чтобы {action}."
