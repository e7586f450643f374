"""Validation rules: what a field value must pass, and who may use the review UI.

Typed values must fit their field (``value_limit_problem``: at most ``FieldSpec.max_chars``
characters, no control or invisible characters, one line unless the field is multiline), must
parse (``extractor.normalize.validate_value``), and an amount must be printed on the page: a total the model assembled from words that do not read as that amount, or that an
operator typed but cannot be found, is flagged for a second look.

Operator ids are checked before any action records them (``operator_id``; the store applies the
same rule, so a script writing to it directly cannot record an id the UI would refuse), and the
optional team password is kept only as a salted PBKDF2 hash (``hash_password``,
``password_matches``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import unicodedata

from extractor.correctness import amounts_on_page
from extractor.document import Document, FieldSpec
from extractor.normalize import collapse_ws, parse_amount, validate_value


def invisible_chars(text: str, allow: str = "") -> list[str]:
    """Control and invisible format characters in ``text`` (``U+XXXX``), except ``allow``."""
    return sorted({f"U+{ord(c):04X}" for c in text
                   if unicodedata.category(c).startswith("C") and c not in allow})


def value_limit_problem(value: str, spec: FieldSpec) -> str | None:
    """Why ``value`` cannot be stored in field ``spec`` whatever it means, or ``None``: longer
    than the field allows, or holding control or invisible characters (line breaks only in a
    multiline field)."""
    if len(value) > spec.max_chars:
        return (f"{len(value)} characters long; field {spec.name!r} holds at most "
                f"{spec.max_chars}")
    bad = invisible_chars(value, allow="\n" if spec.multiline else "")
    if bad:
        return "holds control or invisible characters: " + ", ".join(bad)
    return None


def field_problem(value: str | None, spec: FieldSpec, doc: Document | None) -> str | None:
    """Why ``value`` fails ``spec``'s rules, or ``None``. An absent value has no problem."""
    if value is None or not value.strip():
        return None
    msg = value_limit_problem(value, spec) or validate_value(value, spec.type)
    if msg:
        return msg
    if spec.type == "amount" and doc is not None and doc.words:
        v = parse_amount(value)
        if v is not None and round(v, 2) not in amounts_on_page(doc):
            return f"{value!r} is not printed on the page"
    return None


# -- who may use the UI: operator ids and the team password ----------------------------------

MAX_OPERATOR_CHARS = 64
PASSWORD_SCHEME = "pbkdf2_sha256"
PASSWORD_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256 (~0.5 s here)
MIN_PASSWORD_CHARS = 8


def operator_id(raw: str | None) -> str:
    """The operator id recorded with every action: ``raw`` with whitespace runs collapsed.

    Raises ``ValueError`` saying what is wrong: empty, longer than ``MAX_OPERATOR_CHARS``, or
    holding control or invisible format characters (a right-to-left override would make one
    operator's name read as another's in the history).
    """
    name = collapse_ws(raw or "")
    if not name:
        raise ValueError("operator name is empty; enter your name first")
    if len(name) > MAX_OPERATOR_CHARS:
        raise ValueError(f"operator name is {len(name)} characters long; at most "
                         f"{MAX_OPERATOR_CHARS} are allowed")
    bad = invisible_chars(name)
    if bad:
        raise ValueError("operator name holds control or invisible characters: " + ", ".join(bad))
    return name


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, iterations: int = PASSWORD_ITERATIONS,
                  salt: bytes | None = None) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (base64) of ``password``, salted at random.

    ``kvloop review`` hands only this to the UI process, never the password itself.
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password has {len(password)} characters; use at least "
                         f"{MIN_PASSWORD_CHARS}")
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{PASSWORD_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def parse_password_hash(encoded: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, digest) of a ``hash_password`` string; ``ValueError`` if it is not one."""
    parts = encoded.strip().split("$")
    try:
        if len(parts) != 4 or parts[0] != PASSWORD_SCHEME:
            raise ValueError
        iterations = int(parts[1])
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
        if iterations < 1 or not salt or len(digest) != hashlib.sha256().digest_size:
            raise ValueError
    except (ValueError, binascii.Error):
        raise ValueError(f"not a kvloop password hash (expected {PASSWORD_SCHEME}$ITERATIONS$"
                         "SALT$HASH, as `kvloop review --hash-password` prints)") from None
    return iterations, salt, digest


def password_matches(password: str, encoded: str) -> bool:
    """Whether ``password`` is the one ``encoded`` was made from (constant-time comparison)."""
    iterations, salt, want = parse_password_hash(encoded)
    got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(got, want)
