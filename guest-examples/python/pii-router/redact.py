"""Finding and masking personal data in free text: e-mail addresses,
payment-card numbers (Luhn-checked) and phone numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
"""An e-mail address."""
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
"""13 to 19 digits, optionally grouped by spaces or dashes (checked with Luhn)."""
PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{5,}\d(?!\w)")
"""A phone-like run: optional ``+``, digits and separators, 7 to 15 digits."""
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
"""A date, which looks like a phone number but is not one."""


def luhn_ok(digits: str) -> bool:
    """Whether ``digits`` passes the Luhn checksum of payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass
class Findings:
    """What redaction found: the kinds (``email``, ``card``, ``phone``, in
    the order they are searched for, each once) and how many in all."""

    kinds: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, kind: str) -> None:
        """Counts one finding of ``kind``."""
        self.count += 1
        if kind not in self.kinds:
            self.kinds.append(kind)


def redact_text(text: str, found: Findings) -> str:
    """``text`` with e-mails, card numbers and phone numbers replaced by
    ``[email]``, ``[card]`` and ``[phone]``; ``found`` counts them."""

    def email(m: re.Match[str]) -> str:
        found.add("email")
        return "[email]"

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group())
        if not luhn_ok(digits):
            return m.group()  # an order number, not a card: maybe a phone below
        found.add("card")
        return "[card]"

    def phone(m: re.Match[str]) -> str:
        digits = sum(ch.isdigit() for ch in m.group())
        if not 7 <= digits <= 15 or ISO_DATE.fullmatch(m.group()):
            return m.group()
        found.add("phone")
        return "[phone]"

    text = EMAIL.sub(email, text)
    text = CARD.sub(card, text)
    return PHONE.sub(phone, text)


def redact(value: object, found: Findings, keep: frozenset[str] = frozenset()) -> object:
    """``value`` (parsed JSON) with every string redacted, at any depth,
    except the values of object fields named in ``keep``."""
    if isinstance(value, str):
        return redact_text(value, found)
    if isinstance(value, list):
        return [redact(v, found, keep) for v in value]
    if isinstance(value, dict):
        return {k: v if k in keep else redact(v, found, keep) for k, v in value.items()}
    return value
