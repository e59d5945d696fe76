"""What the slider adds to ``perezvon demo``: cards that fit the demo site (a car dealer's page).
``perezvon demo`` switches every app on with its defaults; this step gives the slider the demo's cards
once (a slider someone edited since is left as it is)."""

from __future__ import annotations

from typing import Any

from perezvon.api import PluginKind, plugin_settings, store_plugin_settings
from perezvon.plugins.slider.schemas import DEFAULT_CARDS, SliderSettings

DEMO_CARDS = [
    {
        "id": "callback",
        "kind": "callback",
        "title": "Перезвоним за [TIMER_TIME] секунд",
        "text": "Оставьте номер — менеджер позвонит бесплатно и ответит на вопросы.",
    },
    {
        "id": "trade-in",
        "kind": "promotion",
        "badge": "+100 000 ₽",
        "title": "Trade-in с выгодой",
        "text": "Сдайте свой автомобиль в зачёт нового.",
        "details": "Оценим ваш автомобиль за 30 минут и добавим 100 000 ₽ к его цене при покупке нового.",
        "details_button": "Оценить мой автомобиль",
    },
    {
        "id": "test-drive",
        "kind": "service",
        "title": "Тест-драйв",
        "text": "Менеджер перезвонит и подберёт удобное время.",
    },
    {
        "id": "route",
        "kind": "link",
        "title": "Как доехать",
        "text": "Москва, Ленинградский проспект, 1",
        "url": "https://yandex.ru/maps/?text=Москва%2C%20Ленинградский%20проспект%2C%201",
        "new_tab": True,
    },
]


async def demo_step(connection) -> dict[str, Any]:
    settings = await plugin_settings(connection, PluginKind.APPLICATION, "slider")
    if settings is not None and [c.get("id") for c in settings.get("cards", [])] == [c["id"] for c in DEFAULT_CARDS]:
        await store_plugin_settings(
            connection, PluginKind.APPLICATION, "slider", SliderSettings().load({**settings, "cards": DEMO_CARDS})
        )
    return {}
