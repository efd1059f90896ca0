"""Email backends: console (the default), a directory of .eml files, or SMTP.

A backend raises ``UndeliverableError`` when a message can never be delivered as it is
(the server refused it for good), and any other error when trying again may help.
"""

from __future__ import annotations

import re
import smtplib
import sys
from email.errors import HeaderParseError, NonASCIILocalPartDefect
from email.message import EmailMessage
from email.policy import SMTPUTF8
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from statewright import ConfigurationError


class UndeliverableError(OSError):
    """A message that can never be delivered as it is; the message says why, for people.

    An ``OSError``, like the SMTP errors it stands for, so a sender that treats every
    mail error alike still does."""


#: The common shape of an address: ASCII dot-atoms, a domain of two labels or more. The
#: email package's parser accepts every such address as it is; checking it here spares
#: the parser (about 140 us an address, most of a relocation import's time).
PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)


def address_problem(value: str) -> str | None:
    """Why ``value`` is not exactly one email address, or ``None`` when it is one.

    Non-ASCII is allowed where the email package allows it (a UTF-8 local part or
    domain, sent with SMTPUTF8); lists, groups, display names and comments are not.
    """
    if PLAIN_ADDRESS.fullmatch(value):
        return None
    try:
        header = SMTPUTF8.header_factory("To", value)
    except (HeaderParseError, IndexError, ValueError):  # the parser raises on some input
        return "must be an email address"
    addresses = header.addresses
    if len(addresses) > 1:
        return f"must be exactly one email address, not a list of {len(addresses)}"
    defects = [d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)]
    if len(addresses) != 1 or defects or "@" not in value:
        return "must be an email address"
    if addresses[0].addr_spec != value:
        return "must be a bare email address (no name, comment or angle brackets)"
    return None


def compose(sender: str, recipient: str, subject: str, body: str, *, key: str) -> EmailMessage:
    """A plain-text message; ``key`` makes its Message-ID (and says what it is for)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(idstring=key)
    message.set_content(body)
    return message


class MailBackend(Protocol):
    """Delivers one message; raises if it could not."""

    def send(self, message: EmailMessage) -> None: ...


#: Where the console backend keeps the messages it summarises.
CONSOLE_MAIL_DIRECTORY = Path(".statewright/mail")


class ConsoleBackend:
    """For development: one line per message on standard error (never standard output,
    which may carry a command's JSON), and the whole message as an .eml file."""

    def __init__(self, directory: Path = CONSOLE_MAIL_DIRECTORY) -> None:
        self.files = FileBackend(directory)

    def send(self, message: EmailMessage) -> None:
        path = self.files.write(message)
        sys.stderr.write(f"email to {message['To']}: {message['Subject']} ({path})\n")


class FileBackend:
    """Writes each message as an .eml file into a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        self.write(message)

    def write(self, message: EmailMessage) -> Path:
        """Write ``message``; returns its file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("@", "_").replace("/", "_")
        path = self.directory / f"{name}.eml"
        path.write_bytes(message.as_bytes(policy=SMTPUTF8))
        return path


class SmtpBackend:
    """Sends through an SMTP server."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        """Send ``message``; SMTPUTF8 is used when an address needs it and the server offers
        it, and a server that does not is a permanent refusal of that message alone."""
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
                client.send_message(message)
        except smtplib.SMTPNotSupportedError as error:
            raise UndeliverableError(f"the mail server refused it: {error}") from error
        except smtplib.SMTPRecipientsRefused as error:
            refusals = list(error.recipients.values())
            if all(code >= 500 for code, _ in refusals):
                raise UndeliverableError(_refused(*refusals[0])) from error
            raise
        except smtplib.SMTPResponseException as error:  # the sender or the data refused
            if error.smtp_code >= 500:
                raise UndeliverableError(_refused(error.smtp_code, error.smtp_error)) from error
            raise


def _refused(code: int, text: bytes | str) -> str:
    reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"the mail server refused it: {code} {reply}"[:500]


def backend_from_url(value: str) -> MailBackend:
    """``console`` (summaries on stderr, messages in .statewright/mail), ``file:DIRECTORY``
    or ``smtp://HOST:PORT``."""
    if value == "console":
        return ConsoleBackend()
    if value.startswith("file:"):
        return FileBackend(Path(value.removeprefix("file:")))
    parts = urlsplit(value)
    if parts.scheme == "smtp" and parts.hostname:
        return SmtpBackend(parts.hostname, parts.port or 25)
    raise ConfigurationError(
        f"STATEWRIGHT_EMAIL_BACKEND {value!r} is not known; allowed: console, file:DIRECTORY, "
        "smtp://HOST:PORT"
    )
