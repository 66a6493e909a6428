"""Mail that municipalities can rely on: templates, message building, the outbox, delivery.

Queueing is a use case (`efa_rollout.services.outbox.queue_campaign_mail`, idempotent); this
package renders, builds, records and delivers: `deliver` (or the Prefect flow
`flows.deliver_outbox`). Rendering and building never talk to a server.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each name of the package lives; imported on first use, so that importing one module of
#: the package (a read-only CLI command) does not import delivery, the ledger and the builder.
_EXPORTS = {
    "DeliveryReport": "delivery",
    "deliver": "delivery",
    "Attachment": "message",
    "InvalidAddressError": "message",
    "Recipient": "message",
    "build_message": "message",
    "make_message_id": "message",
    "normalize_address": "message",
    "MAIL_KINDS": "render",
    "MailRenderError": "render",
    "RenderedMail": "render",
    "render_mail": "render",
}


def __getattr__(name: str) -> Any:
    """The package's names, imported from their module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "MAIL_KINDS",
    "Attachment",
    "DeliveryReport",
    "InvalidAddressError",
    "MailRenderError",
    "Recipient",
    "RenderedMail",
    "build_message",
    "deliver",
    "make_message_id",
    "normalize_address",
    "render_mail",
]
