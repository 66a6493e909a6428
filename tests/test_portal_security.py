"""Attacks on the portal, against a live server: each must fail and leak nothing."""

# Fixtures come from test_portal_support; test parameters of the same name use them.
# ruff: noqa: F811

from __future__ import annotations

import io
import logging
import secrets
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select
from test_portal_support import (  # noqa: F401 (fixtures)
    AALEN,
    AALEN_MARKERS,
    ESSINGEN,
    EWA,
    VIBA,
    LivePortal,
    World,
    assert_no_aalen_data,
    basis_of,
    brake,
    complete_ewa_form,
    csrf_of,
    live_portal,
    portal,
    world,
)

from efa_rollout.portal.security import (
    FailureBrake,
    RedactTokens,
    install_log_redaction,
    redact,
)
from efa_rollout.services.links import check_token, hash_token, issue_token, revoke_tokens
from models import Contact, PortalToken

#: Words that only appear on a page with data (never on an error page).
#: (The district office itself sits in Aalen, so its address in the footer may say "Aalen".)
DATA_WORDS = (
    "Essingen",
    "Stadt Aalen",
    "Wohnsitzanmeldung",
    "eWA",
    "Fragebogen",
    "Checkliste",
    ESSINGEN,
    AALEN,
)


def assert_plain_error(response: httpx.Response, status: int) -> None:
    """A German error page with STATUS and none of the campaign's or municipalities' data."""
    assert response.status_code == status
    assert 'lang="de"' in response.text
    for word in DATA_WORDS:
        assert word not in response.text, f"{word!r} on an error page"
    assert_no_aalen_data(response.text)


# -- one municipality's link never reaches another's data ------------------------------------


def test_each_link_shows_only_its_own_municipality(portal: LivePortal, world: World) -> None:
    essingen = portal.page(world.essingen_token).text
    assert "Gemeinde Essingen" in essingen
    assert_no_aalen_data(essingen)
    assert "Stadt Aalen" not in essingen and AALEN not in essingen
    aalen = portal.page(world.aalen_token).text
    assert "Stadt Aalen" in aalen and "geheim-aalen@aalen.example" in aalen
    assert "Essingen" not in aalen and "hans.haupt@essingen.example" not in aalen


def test_csrf_of_one_link_is_useless_for_another(portal: LivePortal, world: World) -> None:
    essingen_csrf = portal.csrf(world.essingen_token)
    response = portal.post(
        world.aalen_token,
        "fragebogen",
        {"csrf": essingen_csrf, "aktion": "entwurf", "f.offene_punkte": "überschrieben"},
    )
    assert response.status_code == 403
    assert_no_aalen_data(response.text)
    assert [r.answers.get("offene_punkte") for r in world.responses(world.aalen_enrolment)] == [
        "AALEN-INTERN: nur für Aalen"
    ]


def test_form_fields_naming_another_ags_or_campaign_have_no_effect(
    portal: LivePortal, world: World
) -> None:
    tampered = {
        **complete_ewa_form(),
        "ags": AALEN,
        "campaign_id": VIBA,
        "campaign": VIBA,
        "enrolment_id": str(world.aalen_enrolment),
        "token": world.aalen_token,
        "f.ags": AALEN,
        "f.unbekannt": "x",
    }
    response = portal.answers(world.essingen_token, tampered, "absenden")
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/p/{world.essingen_token}?")
    essingen = world.responses(world.essingen_enrolment)
    assert len(essingen) == 1 and essingen[0].status == "submitted"
    assert "ags" not in essingen[0].answers and "unbekannt" not in essingen[0].answers
    aalen = world.responses(world.aalen_enrolment)
    assert len(aalen) == 1 and aalen[0].status == "draft"  # untouched
    page = portal.page(world.essingen_token).text
    assert_no_aalen_data(page)


def test_contact_id_of_another_municipality_is_refused(portal: LivePortal, world: World) -> None:
    csrf = portal.csrf(world.essingen_token)
    response = portal.post(
        world.essingen_token,
        "kontakte",
        {
            "csrf": csrf,
            "k.rows": "1",
            "k.0.id": str(world.aalen_contact_id),
            "k.0.role": "Hauptamt",
            "k.0.name": "Mallory",
            "k.0.email": "mallory@evil.example",
            "k.0.delete": "",
        },
    )
    assert response.status_code == 422
    assert_no_aalen_data(response.text)
    with world.session() as session:
        contact = session.get(Contact, world.aalen_contact_id)
    assert contact is not None and contact.ags == AALEN
    assert contact.email == "geheim-aalen@aalen.example" and contact.name == "Zora Aalenerin"

    response = portal.post(
        world.essingen_token,
        "kontakte",
        {"csrf": csrf, "k.rows": "1", "k.0.id": str(world.aalen_contact_id), "k.0.delete": "1"},
    )
    with world.session() as session:
        assert session.get(Contact, world.aalen_contact_id) is not None


# -- bad links ---------------------------------------------------------------------------------


def test_expired_link_gets_410(portal: LivePortal, world: World) -> None:
    with world.session() as session:
        token = issue_token(
            session,
            campaign_id=EWA,
            ags=ESSINGEN,
            now=world.now - timedelta(days=200),
            valid_days=180,
        )
        session.commit()
    assert_plain_error(portal.page(token), 410)
    csrf = portal.csrf(world.essingen_token)
    response = portal.post(token, "fragebogen", {"csrf": csrf, "f.offene_punkte": "x"})
    assert_plain_error(response, 410)
    assert world.responses(world.essingen_enrolment) == []


def test_revoked_link_gets_410(portal: LivePortal, world: World) -> None:
    csrf = portal.csrf(world.aalen_token)
    with world.session() as session:
        assert revoke_tokens(session, campaign_id=EWA, ags=AALEN, now=world.now) == 1
        session.commit()
    assert_plain_error(portal.page(world.aalen_token), 410)
    response = portal.post(world.aalen_token, "fragebogen", {"csrf": csrf, "aktion": "entwurf"})
    assert_plain_error(response, 410)
    assert len(world.responses(world.aalen_enrolment)) == 1


@pytest.mark.parametrize(
    "token",
    [
        secrets.token_urlsafe(24),  # well-formed, never issued
        "abc",
        "x" * 500,
        "%2e%2e",
        "' OR 1=1 --",
    ],
)
def test_guessed_or_malformed_link_gets_404(portal: LivePortal, world: World, token: str) -> None:
    assert_plain_error(portal.client.get(f"/p/{token}"), 404)


def test_link_reused_after_rotation_is_dead(portal: LivePortal, world: World) -> None:
    from typer.testing import CliRunner

    from efa_rollout.cli import app

    old_csrf = portal.csrf(world.essingen_token)
    result = CliRunner().invoke(app, ["portal", "link", EWA, ESSINGEN, "--rotate"])
    assert result.exit_code == 0, result.output
    new = result.output.strip().splitlines()[1].rsplit("/", 1)[1]
    assert_plain_error(portal.page(world.essingen_token), 410)
    response = portal.post(
        world.essingen_token, "fragebogen", {"csrf": old_csrf, "f.offene_punkte": "alt"}
    )
    assert_plain_error(response, 410)
    assert portal.page(new).status_code == 200
    # the old link's CSRF token does not work with the new link either
    response = portal.post(new, "fragebogen", {"csrf": old_csrf, "f.offene_punkte": "alt"})
    assert response.status_code == 403
    # the ViBa link of the same municipality is another campaign: still valid
    assert portal.page(world.viba_token).status_code == 200


def test_token_lookup_states(world: World) -> None:
    with world.session() as session:
        assert check_token(session, world.essingen_token, now=world.now).valid
        later = world.now + timedelta(days=181)
        assert check_token(session, world.essingen_token, now=later).state == "expired"
        assert check_token(session, "kurz", now=world.now).state == "unknown"
        stored = session.exec(select(PortalToken.token_hash)).all()
    assert hash_token(world.essingen_token) in stored
    assert world.essingen_token not in stored


def test_repeated_bad_links_are_braked_but_a_valid_link_opens(
    portal: LivePortal, world: World
) -> None:
    for _ in range(5):
        assert portal.client.get(f"/p/{secrets.token_urlsafe(24)}").status_code == 404
    blocked = portal.client.get(f"/p/{secrets.token_urlsafe(24)}")
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert_plain_error(blocked, 429)
    # The same address (a town hall behind the same NAT) still opens its valid link.
    assert portal.page(world.essingen_token).status_code == 200
    csrf = portal.csrf(world.essingen_token)
    response = portal.post(world.essingen_token, "fragebogen", {"csrf": csrf, "aktion": "entwurf"})
    assert response.status_code in (200, 303)


def test_brake_delays_grow_and_expire() -> None:
    brake = FailureBrake(max_failures=4, window=60, base_delay=0.1, max_delay=0.5)
    penalties = [brake.record_failure("10.0.0.1", now=100.0 + i) for i in range(5)]
    assert [p.delay for p in penalties] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert [p.blocked for p in penalties] == [False] * 4 + [True]
    assert penalties[-1].retry_after == 56
    assert not brake.record_failure("10.0.0.2", now=104.0).blocked  # other addresses unaffected
    assert brake.failures("10.0.0.1", now=165.0) == 0  # the window passed


# -- CSRF, request size, headers, logs -----------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "csrf"),
    [
        ("fragebogen", None),
        ("fragebogen", ""),
        ("fragebogen", "0" * 64),
        ("checkliste", None),
        ("checkliste", "zu-kurz"),
        ("kontakte", None),
        ("kontakte", "0" * 64),
    ],
)
def test_missing_or_wrong_csrf_gets_403(
    portal: LivePortal, world: World, form: str, csrf: str | None
) -> None:
    data = {"aktion": "absenden", **complete_ewa_form(), "erledigt": "interesse_bekundet"}
    data.update({"k.rows": "1", "k.0.role": "Hauptamt", "k.0.email": "x@essingen.example"})
    if csrf is not None:
        data["csrf"] = csrf
    response = portal.post(world.essingen_token, form, data)
    assert response.status_code == 403
    assert "Essingen" not in response.text
    assert world.responses(world.essingen_enrolment) == []


def test_cross_site_post_is_refused_even_with_csrf(portal: LivePortal, world: World) -> None:
    page = portal.page(world.essingen_token).text
    response = portal.post(
        world.essingen_token,
        "fragebogen",
        {"csrf": csrf_of(page), "basis": basis_of(page), "f.offene_punkte": "x"},
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert world.responses(world.essingen_enrolment) == []


def test_oversized_request_gets_413(portal: LivePortal, world: World) -> None:
    csrf = portal.csrf(world.essingen_token)
    big = {"csrf": csrf, "aktion": "entwurf", "f.offene_punkte": "x" * 70_000}
    response = portal.post(world.essingen_token, "fragebogen", big)
    assert response.status_code == 413
    assert "zu umfangreich" in response.text and "Essingen" not in response.text

    def chunks():  # no Content-Length: the limit holds while streaming
        yield f"csrf={csrf}&f.offene_punkte=".encode()
        for _ in range(20):
            yield b"y" * 8192

    response = portal.client.post(
        f"/p/{world.essingen_token}/fragebogen",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert world.responses(world.essingen_enrolment) == []


def test_file_uploads_are_refused(portal: LivePortal, world: World) -> None:
    csrf = portal.csrf(world.essingen_token)
    response = portal.client.post(
        f"/p/{world.essingen_token}/fragebogen",
        data={"csrf": csrf},
        files={"anhang": ("a.txt", b"hallo", "text/plain")},
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/p/{token}",
        "/p/{bad}",
        "/",
        "/static/portal.css",
        "/gibt-es-nicht",
        "/p/{token}/fragebogen",
    ],
)
def test_security_headers_everywhere(portal: LivePortal, world: World, path: str) -> None:
    url = path.format(token=world.essingen_token, bad=secrets.token_urlsafe(24))
    response = portal.client.get(url)
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'none'" in csp and "unsafe-inline" not in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert "server" not in headers
    if path == "/gibt-es-nicht":
        assert response.status_code == 404 and "Dieser Link ist ungültig" in response.text
    if path.endswith("/fragebogen"):
        assert response.status_code == 405  # GET on a form target


def test_page_has_no_inline_script_or_style_and_no_external_resources(
    portal: LivePortal, world: World
) -> None:
    body = portal.page(world.essingen_token).text
    assert "<script" not in body and "<style" not in body and " style=" not in body
    assert "http://" not in body.replace("http://127.0.0.1:8080", "")
    assert "https://" not in body


def test_tokens_never_reach_the_logs(live_portal: LivePortal, world: World) -> None:
    portal = live_portal  # the subject is uvicorn's own access log
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    loggers = [logging.getLogger(n) for n in ("uvicorn.access", "efa_rollout.portal")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    install_log_redaction()
    try:
        bad = secrets.token_urlsafe(24)
        portal.page(world.essingen_token)
        portal.client.get(f"/p/{bad}")
        portal.post(world.essingen_token, "fragebogen", {"csrf": "x"})
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    output = stream.getvalue()
    assert "/p/***" in output  # the access log still says what happened
    assert world.essingen_token not in output and bad not in output


def test_redaction_filter() -> None:
    assert redact("GET /p/abcDEF_-123/fragebogen HTTP/1.1") == "GET /p/***/fragebogen HTTP/1.1"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s"',
        ("127.0.0.1", "GET", "/p/geheim?ok=1"),
        None,
    )
    RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1 - "GET /p/***?ok=1"'


def test_no_aalen_marker_in_any_essingen_response(portal: LivePortal, world: World) -> None:
    """A sweep over every response the Essingen link produces."""
    token = world.essingen_token
    bodies = [
        portal.page(token).text,
        portal.answers(token, {"f.funktionspostfach": "falsch"}, "absenden").text,
        portal.answers(token, {"f.offene_punkte": "ok"}, "entwurf").text,
        portal.page(token).text,
    ]
    for body in bodies:
        for marker in AALEN_MARKERS:
            assert marker not in body


def test_oversized_body_in_one_chunk_without_length(live_portal: LivePortal, world: World) -> None:
    """The chunk that overflows is the last one: the answer must not wait for more."""
    portal = live_portal  # the subject is a body streamed over a real connection
    csrf = portal.csrf(world.essingen_token)

    def one_chunk():
        yield f"csrf={csrf}&f.offene_punkte=".encode() + b"z" * 70_000

    response = portal.client.post(
        f"/p/{world.essingen_token}/fragebogen",
        content=one_chunk(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert response.status_code == 413


def test_csrf_secret_is_kept_private_and_stable(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from efa_rollout.portal.security import CsrfSigner, load_secret

    monkeypatch.delenv("EFA_PORTAL_SECRET", raising=False)
    first = load_secret(tmp_path / "data")
    assert load_secret(tmp_path / "data") == first  # forms survive a restart
    assert (tmp_path / "data" / "portal-secret").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("EFA_PORTAL_SECRET", "kurz")
    with pytest.raises(ValueError):
        load_secret(tmp_path / "data")
    monkeypatch.setenv("EFA_PORTAL_SECRET", "s" * 40)
    assert load_secret(tmp_path / "other") == b"s" * 40
    signer = CsrfSigner(first)
    assert signer.verify("a" * 64, signer.token_for("a" * 64))
    assert not signer.verify("b" * 64, signer.token_for("a" * 64))
