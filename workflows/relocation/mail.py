"""Email backends: console (the default), a directory of .eml files, or SMTP."""

from __future__ import annotations

import smtplib
import sys
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from engine.errors import ConfigurationError


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
        path.write_bytes(bytes(message))
        return path


class SmtpBackend:
    """Sends through an SMTP server."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
            client.send_message(message)


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
