"""Rendering once per batch with stand-ins: the same mails as rendering each, and its guards."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from efa_rollout.definitions import get_definition
from efa_rollout.mail import render_once
from efa_rollout.mail.context import (
    CONTEXT_ENROLMENT_FIELDS,
    build_context,
    campaign_definition,
    context_key,
)
from efa_rollout.mail.render import MAIL_KINDS
from efa_rollout.mail.render_once import (
    NotCacheable,
    RenderOnce,
    frozen,
    plain_value,
    stand_in_safe,
    template_problem,
)
from efa_rollout.services.compose import MailRequest, compose_campaign_mail
from efa_rollout.services.mail_preview import sample_extra, sample_objects
from efa_rollout.settings import get_settings
from models import Contact, Enrolment, Municipality
from tests.mail_support import NOW

CAMPAIGN_KINDS = [k for k in MAIL_KINDS if k != "weekly_report"]
NAMES = [
    "Essingen",
    "Böbingen an der Rems",
    "Aach & Co <b>",
    'Bad "Quelle"',
    "Sankt Johann ' Ort",
    "Schwäbisch Gmünd-Lindach und ein sehr langer Name, der den Betreff umbricht",
    "Dop  pelt",  # two spaces: rendering would change the value, so rendered per mail
    "",  # empty: rendered per mail
]
CONTACT_SETS: list[list[Contact]] = [
    [],
    [Contact(ags="x", role="Hauptamt", email="a@x.example", name="Anna Müller", salutation="Frau")],
    [
        Contact(
            ags="x", role="Hauptamt", email="a@x.example", name="Anna Müller", salutation="Frau"
        ),
        Contact(ags="x", role="BM", email="b@x.example", name="Dr. Karl Ba&er", salutation="Herr"),
    ],
]


def _campaign() -> Any:
    campaign, _, _ = sample_objects(NOW)
    campaign.definition = get_definition("viba-bw").model_dump(mode="json")
    return campaign


def _compose(
    campaign: Any, kind: str, name: str, contacts: list[Contact], renders: RenderOnce | None
) -> Any:
    municipality = Municipality(
        ags="08136019", name=name, type_code="61", district_code="08136", state_code="08"
    )
    enrolment = Enrolment(
        campaign_id=campaign.id, ags="08136019", stage="checklist_follow_up", stage_entered_at=NOW
    )
    return compose_campaign_mail(
        None,
        campaign=campaign,
        request=MailRequest(enrolment, municipality, kind, 1, sample_extra(kind, NOW)),
        contacts=contacts,
        now=NOW,
        settings=get_settings(),
        portal_link="https://portal.example/p/PLATZHALTER",
        definition=campaign_definition(campaign),
        done_items=set(),
        sent={},
        renders=renders,
    )


@pytest.mark.parametrize("kind", CAMPAIGN_KINDS)
def test_every_kind_with_stand_ins_is_what_rendering_each_mail_gives(kind: str) -> None:
    campaign = _campaign()
    renders = RenderOnce()
    mails = 0
    for name in NAMES:
        for contacts in CONTACT_SETS:
            once = _compose(campaign, kind, name, contacts, renders)
            each = _compose(campaign, kind, name, contacts, None)
            assert once.rendered == each.rendered
            assert once.context == each.context
            assert once.attachments == each.attachments and once.calendar == each.calendar
            mails += 1
    # Per content once with stand-ins and once as a check, plus the first mail itself; the
    # two names rendering would change are rendered per mail.
    assert renders.rendered == 3 + 2 * len(CONTACT_SETS)
    assert mails == 24


def test_every_shipped_template_only_prints_the_municipality_fields() -> None:
    # A template that tests, filters or passes on the municipality's name, label, AGS or the
    # salutation is rendered per mail (slower, still right); this test keeps the shipped ones
    # on the fast path. Fix the template or, on purpose, accept the slower start here.
    assert {kind: template_problem(kind) for kind in MAIL_KINDS} == dict.fromkeys(MAIL_KINDS)


UNSAFE = [
    '{% if municipality.name == "Aalen" %}A{% endif %}',
    "{{ municipality.label|upper }}",
    "{{ municipality.label ~ '!' }}",
    "{% filter upper %}{{ municipality.label }}{% endfilter %}",
    "{% set x = salutation %}{{ x }}",
    "{% set x %}{{ salutation }}{% endset %}{{ x|upper }}",
    "{% macro m() %}{{ municipality.label }}{% endmacro %}{{ m()|upper }}",
    "{{ municipality }}",
    "{{ municipality.type }}",
    "{% for c in municipality.name %}{{ c }}{% endfor %}",
    "{% autoescape false %}{{ salutation }}{% endautoescape %}",
    "{% include 'unsafe_part.txt' %}",
    "{% filter upper %}{% include 'safe_part.txt' %}{% endfilter %}",
    "{% include name_of_part %}",
]
SAFE = [
    "{{ municipality.label }} {{ municipality['name'] }} {{ municipality.ags }}",
    "{% if portal_link %}{{ salutation }}{% else %}{{ municipality.label }}{% endif %}",
    "{% for i in [1, 2] %}{{ municipality.label }}{% endfor %}",
    "{% include 'safe_part.txt' %}",
]


def _folder(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "probe.subject.txt").write_text("Betreff {{ municipality.label }}")
    (folder / "probe.txt").write_text(body)
    (folder / "probe.html").write_text("<p>{{ salutation }}</p>")
    (folder / "safe_part.txt").write_text("{{ municipality.label }}")
    (folder / "unsafe_part.txt").write_text("{{ municipality.label|lower }}")
    return folder


@pytest.mark.parametrize("body", UNSAFE)
def test_a_template_that_uses_a_field_otherwise_is_rendered_per_mail(
    tmp_path: Path, body: str
) -> None:
    folder = _folder(tmp_path, body)
    assert not stand_in_safe("probe", folder)
    assert "probe.txt" in (template_problem("probe", folder) or "")
    renders = RenderOnce(folder)
    context = {
        "municipality": {"ags": "1", "name": "Aalen", "label": "Stadt Aalen", "type": "Stadt"},
        "name_of_part": "safe_part.txt",
    }
    values = {
        "municipality.ags": "1",
        "municipality.name": "Aalen",
        "municipality.label": "Stadt Aalen",
        "salutation": "Hallo,",
    }
    for _ in range(3):
        renders.compose("probe", "key", values, lambda: {**context, "salutation": "Hallo,"})
    assert renders.rendered == 3  # per mail


@pytest.mark.parametrize("body", SAFE)
def test_a_template_that_only_prints_the_fields_is_rendered_once(tmp_path: Path, body: str) -> None:
    folder = _folder(tmp_path, body)
    assert stand_in_safe("probe", folder)
    renders = RenderOnce(folder)
    for name in ("Aalen", "Böbingen & <Rems>", "Essingen"):
        values = {
            "municipality.ags": "1",
            "municipality.name": name,
            "municipality.label": f"Stadt {name}",
            "salutation": f"Hallo {name},",
        }

        def make() -> dict[str, Any]:
            return {
                "municipality": {"ags": "1", "name": name, "label": f"Stadt {name}"},  # noqa: B023
                "salutation": f"Hallo {name},",  # noqa: B023
                "portal_link": "x",
            }

        context, rendered = renders.compose("probe", "key", values, make)
        from efa_rollout.mail.render import render_mail

        assert rendered == render_mail("probe", make(), folder=folder)
        assert context == make()
    assert renders.rendered == 3  # the first mail, the stand-ins, the check; then filled in


def test_the_context_key_covers_what_build_context_reads_of_the_enrolment() -> None:
    campaign, enrolment, municipality = sample_objects(NOW)
    campaign.definition = get_definition("viba-bw").model_dump(mode="json")
    read: set[str] = set()

    class Recording:
        def __getattr__(self, name: str) -> Any:
            read.add(name)
            return getattr(enrolment, name)

    for kind in CAMPAIGN_KINDS:
        build_context(
            None,
            campaign=campaign,
            enrolment=Recording(),  # type: ignore[arg-type]
            municipality=municipality,
            contacts=[],
            kind=kind,
            sequence=1,
            now=NOW,
            settings=get_settings(),
            portal_link="x",
            extra=sample_extra(kind, NOW),
            definition=campaign_definition(campaign),
            done_items={"x"},
        )
    # What build_context reads besides these would have to be part of the key.
    assert read and read <= set(CONTEXT_ENROLMENT_FIELDS)


def test_the_key_tells_apart_what_prints_differently() -> None:
    assert frozen(1) != frozen(True) != frozen(1.0)
    assert frozen({"a": 1, "b": 2}) != frozen({"b": 2, "a": 1})  # the order can print
    assert frozen([date(2025, 1, 1)]) != frozen([datetime(2025, 1, 1)])
    assert frozen(datetime(2025, 1, 1, tzinfo=UTC)) == frozen(datetime(2025, 1, 1, tzinfo=UTC))
    for value in (object(), type("Sub", (str,), {})("x"), type("D", (dict,), {})()):
        with pytest.raises(NotCacheable):
            frozen(value)
    campaign, enrolment, _ = sample_objects(NOW)
    key = {
        "campaign": campaign,
        "kind": "reminder",
        "sequence": 1,
        "now": NOW,
        "portal_link": "x",
        "definition": None,
        "done_items": set(),
    }
    assert context_key(enrolment=enrolment, extra={"a": object()}, **key) is None
    assert context_key(enrolment=enrolment, extra={"a": 1}, **key) != context_key(
        enrolment=enrolment, extra={"a": 2}, **key
    )


def test_a_definition_paragraph_naming_the_municipality_is_rendered_per_mail() -> None:
    campaign, enrolment, _ = sample_objects(NOW)
    definition = get_definition("viba-bw").model_copy(
        update={"mail": {"reminder": "Liebe {{ kommune }}"}}
    )
    key = dict(campaign=campaign, enrolment=enrolment, sequence=1, now=NOW, portal_link=None)
    args: dict[str, Any] = {**key, "extra": None, "done_items": set(), "definition": definition}
    assert context_key(kind="reminder", **args) is None
    assert context_key(kind="summary", **args) is not None


@pytest.mark.parametrize(
    ("value", "plain"),
    [("Stadt Aalen", True), ("", False), (" Aalen", False), ("A  B", False), ("A\nB", False)],
)
def test_only_values_rendering_leaves_alone_are_filled_in(value: str, plain: bool) -> None:
    assert plain_value(value) is plain
    assert render_once.PER_MAIL == (
        "municipality.ags",
        "municipality.name",
        "municipality.label",
        "salutation",
    )
