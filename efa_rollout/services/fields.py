"""Value parsers for typed answers: text, e-mail, phone, dates, yes/no, numbers, choices."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from efa_rollout.definitions import QuestionField
from efa_rollout.domain.contacts import is_phone
from efa_rollout.texts import say

_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")


_TRUE = frozenset({"ja", "j", "true", "1", "yes", "wahr"})


_FALSE = frozenset({"nein", "n", "false", "0", "no", "falsch"})


MAX_TEXT = 500


MAX_TEXTAREA = 5000


class InvalidValue(ValueError):
    """A value that does not fit its field; the message is the German reason."""


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict | tuple) and not value


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        raise InvalidValue(say("field.text_missing"))
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise InvalidValue(say("field.text_missing"))
    return value.strip()


def text_parser(limit: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = as_text(value)
        if len(text) > limit:
            raise InvalidValue(say("field.text_too_long", limit=limit))
        return text

    return parse


def parse_email(value: Any) -> str:
    from efa_rollout.mail.message import NON_ASCII, InvalidAddressError, contact_address

    text = as_text(value)
    try:
        return contact_address(text)
    except InvalidAddressError as error:
        if say(NON_ASCII) in error.message:
            raise InvalidValue(error.message) from None
        raise InvalidValue(say("field.email_invalid", text=text)) from None


def parse_phone(value: Any) -> str:
    text = " ".join(as_text(value).split())
    if not is_phone(text):
        raise InvalidValue(say("field.phone_invalid", text=text))
    return text


def parse_date_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = as_text(value)
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise InvalidValue(say("field.date_invalid", text=text))


def parse_yesno(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = as_text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidValue(say("field.yesno_invalid", text=text))


def parse_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise InvalidValue(say("field.number_missing"))
    if isinstance(value, int | float):
        number: int | float = value
    else:
        text = as_text(value).replace(" ", "")
        if not _NUMBER.match(text):
            raise InvalidValue(say("field.number_invalid", text=text))
        number = float(text.replace(",", "."))
    if isinstance(number, float):
        if number != number or number in (float("inf"), float("-inf")):
            raise InvalidValue(say("field.number_infinite"))
        if number.is_integer():
            return int(number)
    return number


def choice_parser(question: QuestionField) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = as_text(value)
        for choice in question.choices:
            if text == choice.value:
                return choice.value
        folded = text.casefold()
        for choice in question.choices:
            if folded in (choice.value.casefold(), choice.label.casefold()):
                return choice.value
        options = ", ".join(say("field.option", label=c.label) for c in question.choices)
        raise InvalidValue(say("field.choice_invalid", text=text, options=options))

    return parse
