"""The calendar of one municipality from the campaign's template equals the one built whole."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from efa_rollout.mail.calendar import build_calendar, calendar_for, entry_uid, key_date_entries
from efa_rollout.settings import get_settings

LABELS = [
    "Gemeinde Aalen",
    "Stadt Freiburg im Breisgau, Kreisfreie Stadt; Test\\Backslash",
    "Gemeinde Öhringen-Über-Äpfelbach " * 4,
    "Markt Ä",
    "",
]


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("is_pilot", [False, True])
def test_template_equals_whole_build(label: str, is_pilot: bool) -> None:
    settings = get_settings()
    dates = {
        "collection_deadline": date(2024, 7, 9),
        "silent_go_live": date(2024, 9, 2),
        "mandatory_from": date(2025, 3, 1),
        "trainings": [date(2024, 9, 10), date(2024, 9, 17)],
    }
    entries = key_date_entries("eWA, BW; Dienst", date(2024, 10, 1), dates, is_pilot=is_pilot)
    now = datetime(2024, 4, 15, 7, 0, tzinfo=UTC)
    title = "eWA im Land, Baden-Württemberg; Einführung mit sehr langem Titel über viele Zeichen"
    domain = settings.effective_message_id_domain
    for ags, moved in (("08136088", {}), ("08111000", {"training-1": 3, "go_live": 1})):
        sequences = {entry_uid("ewa-scale-08", ags, k, domain): n for k, n in moved.items()}
        whole = build_calendar(
            entries,
            campaign_id="ewa-scale-08",
            ags=ags,
            location=label,
            description=f"{title} – Einführung in der {label}",
            domain=domain,
            sequences=sequences,
            now=now,
            settings=settings,
        )
        templated = calendar_for(
            entries,
            campaign_id="ewa-scale-08",
            title=title,
            ags=ags,
            label=label,
            domain=domain,
            sequences=sequences,
            now=now,
            settings=settings,
        )
        assert templated == whole
        assert b"QQefa" not in templated


def test_fold_equals_icalendar() -> None:
    import random

    from icalendar.parser import Contentline

    from efa_rollout.mail.calendar import fold

    rng = random.Random(14)
    alphabet = "abcXYZ 0123456789,;:\\^–äöüßÄ€𝄞\"'"
    for _ in range(3000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 260)))
        assert fold(line) == Contentline(line).to_ical(), line
