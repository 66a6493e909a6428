"""Mail that municipalities can rely on: templates, message building, the outbox, delivery.

Queueing is a use case (`efa_rollout.services.outbox.queue_campaign_mail`, idempotent); this
package renders, builds, records and delivers: `deliver` (or the Prefect flow
`flows.deliver_outbox`). Rendering and building never talk to a server.
"""

from efa_rollout.mail.delivery import DeliveryReport, deliver
from efa_rollout.mail.message import (
    Attachment,
    InvalidAddressError,
    Recipient,
    build_message,
    make_message_id,
    normalize_address,
)
from efa_rollout.mail.render import MAIL_KINDS, MailRenderError, RenderedMail, render_mail

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
