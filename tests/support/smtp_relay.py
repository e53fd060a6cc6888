"""A real SMTP relay for tests (aiosmtpd: STARTTLS, implicit TLS or plain, SASL auth, refusals, down and up again).

It is the demo's relay (redpss/demo/mail.py), so the demo and the tests relay through the same code.
"""

from __future__ import annotations

from redpss.demo.mail import Received, SmtpRelay

__all__ = ["Received", "SmtpRelay"]
