"""Mail that municipalities can rely on: templates, message building, the outbox, delivery.

Queue with `queue_campaign_mail` (idempotent), deliver with `deliver` (or the Prefect flow
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
from efa_rollout.mail.outbox import (
    MailPreview,
    cancel_messages,
    list_messages,
    preview_campaign_mail,
    queue_campaign_mail,
    queue_coordinator_mail,
    queue_test_mail,
    retry_messages,
)
from efa_rollout.mail.render import MAIL_KINDS, MailRenderError, RenderedMail, render_mail

__all__ = [
    "MAIL_KINDS",
    "Attachment",
    "DeliveryReport",
    "InvalidAddressError",
    "MailPreview",
    "MailRenderError",
    "Recipient",
    "RenderedMail",
    "build_message",
    "cancel_messages",
    "deliver",
    "list_messages",
    "make_message_id",
    "normalize_address",
    "preview_campaign_mail",
    "queue_campaign_mail",
    "queue_coordinator_mail",
    "queue_test_mail",
    "render_mail",
    "retry_messages",
]
