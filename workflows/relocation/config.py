"""Relocation settings: limits, the installation's key, validation timing, email."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from statewright.errors import ConfigurationError
from statewright.workflows.relocation.crypto import load_private_key
from statewright.workflows.relocation.format import Limits
from statewright.workflows.relocation.mail import MailBackend, backend_from_url


@dataclass(frozen=True)
class RelocationConfig:
    """Everything a relocation needs to know about this installation."""

    limits: Limits = field(default_factory=Limits)
    private_key_path: Path | None = None
    #: How often the validating state looks at the sandbox's result.
    validation_interval: timedelta = timedelta(seconds=2)
    #: How long one sandbox validation may take before it is run again.
    validation_timeout: timedelta = timedelta(minutes=5)
    #: How many sandbox validations a relocation may start.
    max_validation_runs: int = 3
    import_batch: int = 1000
    email_backend: str = "console"
    email_from: str = "statewright <relocation@statewright.invalid>"

    @cached_property
    def private_key(self) -> rsa.RSAPrivateKey | None:
        if self.private_key_path is None:
            return None
        try:
            pem = self.private_key_path.read_bytes()
        except OSError as error:
            raise ConfigurationError(
                f"STATEWRIGHT_RELOCATION_PRIVATE_KEY {str(self.private_key_path)!r} cannot be "
                f"read: {error.strerror}; it must name this installation's private.pem "
                "(`statewright keys generate` writes one)"
            ) from None
        if b"PUBLIC KEY-----" in pem:
            raise ConfigurationError(
                f"STATEWRIGHT_RELOCATION_PRIVATE_KEY {str(self.private_key_path)!r} is a public "
                "key; it must name this installation's private key (private.pem), and the "
                "public key goes to whoever exports"
            )
        try:
            return load_private_key(pem)
        except ValueError as error:
            raise ConfigurationError(
                f"STATEWRIGHT_RELOCATION_PRIVATE_KEY {str(self.private_key_path)!r} is not a "
                f"readable PEM private key: {error}"
            ) from None

    @cached_property
    def mailer(self) -> MailBackend:
        return backend_from_url(self.email_backend)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RelocationConfig:
        env = os.environ if environ is None else environ
        key = env.get("STATEWRIGHT_RELOCATION_PRIVATE_KEY")
        defaults = Limits()
        return cls(
            limits=Limits(
                max_file_bytes=_int(
                    env, "STATEWRIGHT_RELOCATION_MAX_FILE_BYTES", defaults.max_file_bytes
                ),
                max_decompressed_bytes=_int(
                    env,
                    "STATEWRIGHT_RELOCATION_MAX_DECOMPRESSED_BYTES",
                    defaults.max_decompressed_bytes,
                ),
                max_orgs=_int(env, "STATEWRIGHT_RELOCATION_MAX_ORGS", defaults.max_orgs),
                max_users=_int(env, "STATEWRIGHT_RELOCATION_MAX_USERS", defaults.max_users),
            ),
            private_key_path=Path(key) if key else None,
            validation_interval=timedelta(
                seconds=_int(env, "STATEWRIGHT_RELOCATION_VALIDATION_INTERVAL", 2)
            ),
            validation_timeout=timedelta(
                seconds=_int(env, "STATEWRIGHT_RELOCATION_VALIDATION_TIMEOUT", 300)
            ),
            max_validation_runs=_int(env, "STATEWRIGHT_RELOCATION_VALIDATION_RUNS", 3),
            email_backend=env.get("STATEWRIGHT_EMAIL_BACKEND", "console"),
            email_from=env.get("STATEWRIGHT_EMAIL_FROM", cls.email_from),
        )


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"{key} {raw!r} is not a positive whole number")
    return int(raw)
