"""Credentials in URLs and free text: found, refused, redacted, in time linear in the input.

The one redactor of the agent: the log formatter, the configuration's error lines and the camera's
displayed URL all use it. Every pattern here is linear by construction: no quantifier is nested in another,
and each scan resumes where the previous one ended, so each character is looked at a bounded number of
times (a 30 kB HTTP method once took the old backtracking regex 5 s).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from pydantic import SecretStr

MASK = "***"

# Parameter names that carry a credential: "?password=x", "&passwd=x", ";pwd=x", "api_key=x", "Token=x".
# Matched in the text folded to lower-case ASCII bytes (same length, one byte a character): a
# case-insensitive pattern would lose the regex engine's first-character scan and run 10 times slower.
_CREDENTIAL_NAMES = (
    "password|passwd|passphrase|pass|pwd|pw|access_token|token|secret|apikey|api_key|key|auth"
    "|credentials|credential|signature|sig"
)
_CREDENTIAL_PARAMETER = re.compile(rf"({_CREDENTIAL_NAMES})=([^&;#\s\"'<>]+)".encode())
# "Bearer <token>" as an Authorization header quoted in a library's message; 16+ characters, as a real
# token is (the prose "bearer token" is left alone).
_BEARER = re.compile(rb"bearer\s+([^\s\"'<>]{16,})")
# Where a word of free text ends: a URL's user information is looked for up to there, not only up to the
# first "/", because a password written unescaped may hold one.
_WORD_END = re.compile(r"[\s\"'<>`]")
_QUERY_OR_WORD_END = re.compile(r"[?#\s\"'<>`]")
_AUTHORITY_END = re.compile(r"[/?#\s\"'<>`]")


# A word's user and secret before its last "@": tried only where a word starts (the look-behind), and
# each repetition takes one character in one way only, so a word costs time linear in its length once.
_BARE_USERINFO = re.compile(r"(?<![^\s\"'<>`])((?:[^\s\"'<>`@:%]|%(?!3[aA]))*)(?::(?!//)|%3[aA])[^\s\"'<>`]*@")


def _folded(text: str) -> bytes:
    return text.encode("ascii", "replace").lower()


def _user_of(userinfo: str) -> str:
    """The user name in ``user:password``, ``user%3Apassword`` or ``user``; the rest is the secret."""
    cut = len(userinfo)
    for mark in (userinfo.find(":"), userinfo.lower().find("%3a"), userinfo.find("/")):
        if 0 <= mark < cut:
            cut = mark
    return userinfo[:cut]


def _masked_userinfo(userinfo: str) -> str:
    user = _user_of(userinfo)
    return f"{user}:{MASK}@" if user else f"{MASK}@"


def _redact_bare_userinfo(text: str) -> str:
    """``user:secret@host`` without a scheme (a broker host, a TURN URL) as ``user:***@host``."""
    return _BARE_USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", text) if "@" in text else text


def _redact_parameters(text: str) -> str:
    """Every credential parameter's value and every bearer token as ***; a name counts wherever it
    ends ("dbpassword=" too): here, hiding too much costs less than hiding too little."""
    folded = _folded(text)
    spans = [match.span(2) for match in _CREDENTIAL_PARAMETER.finditer(folded)]
    spans += [match.span(1) for match in _BEARER.finditer(folded)]
    if not spans:
        return text
    pieces: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if start >= done:
            pieces.append(text[done:start])
            pieces.append(MASK)
            done = end
    pieces.append(text[done:])
    return "".join(pieces)


def redact_text(text: str) -> str:
    """Free text (a log line, an error message) with every credential in a URL replaced by ***.

    Each ``scheme://`` is handled once: its user information, up to the last ``@`` of the word, becomes
    ``user:***@``; so does ``user:secret@`` in a word without a scheme; then every credential parameter
    (``password=``, ``token=``, ...) anywhere in the text.
    """
    if "://" in text:
        pieces: list[str] = []
        done = 0
        position = text.find("://")
        while position >= 0:
            start = position + 3
            end_match = _WORD_END.search(text, start)
            end = end_match.start() if end_match else len(text)
            at = text.rfind("@", start, end)
            if at >= 0:
                pieces.append(text[done:start])
                pieces.append(_masked_userinfo(text[start:at]))
                done = at + 1
            position = text.find("://", max(end, start))
        pieces.append(text[done:])
        text = "".join(pieces)
    return _redact_parameters(_redact_bare_userinfo(text))


def _authority_start(url: str) -> int:
    """Where the authority of ``scheme://authority/...`` (or of ``turn:host?...``) begins."""
    separator = url.find("://")
    return separator + 3 if separator >= 0 else url.find(":") + 1


def redact_url(url: str) -> str:
    """The URL as it may be shown: its user information as ``user:***@`` and credential parameters as
    ``password=***``. ``rtsp://viewer@host/s`` is shown as ``rtsp://viewer:***@host/s``, so a reader
    cannot tell whether a password goes with it. The user information is taken up to the last ``@``
    before the query, so an unescaped "/" in a password does not expose the rest of it."""
    start = _authority_start(url)
    end_match = _QUERY_OR_WORD_END.search(url, start)
    at = url.rfind("@", start, end_match.start() if end_match else len(url))
    if at >= 0:
        url = url[:start] + _masked_userinfo(url[start:at]) + url[at + 1 :]
    return _redact_parameters(url)


def credential_in_url(url: str) -> str | None:
    """What credential the URL holds, in words, or None. A user name alone is not a credential; a
    parameter name counts only as a whole word ("api_key=" does, "monkey=" does not)."""
    start = _authority_start(url)
    end_match = _AUTHORITY_END.search(url, start)
    at = url.rfind("@", start, end_match.start() if end_match else len(url))
    if at >= 0:
        userinfo = url[start:at]
        if ":" in userinfo:
            return "password in its user part"
        if "%3a" in userinfo.lower():
            return "password (encoded as %3A) in its user part"
    folded = _folded(url)
    for match in _CREDENTIAL_PARAMETER.finditer(folded):
        if match.start() == 0 or not folded[match.start() - 1 : match.start()].isalnum():
            return f"credential parameter {url[match.start(1) : match.end(1)]!r}"
    return None


def refuse_credentials(url: str, use_instead: str) -> str:
    """``url`` unchanged, or ValueError (for a validator) saying which credential it holds."""
    problem = credential_in_url(url)
    if problem:
        raise ValueError(f"must not hold a {problem}: use {use_instead}")
    return url


def split_checked_url(url: str, schemes: tuple[str, ...], wrong_scheme: str) -> SplitResult:
    """``url`` split, or ValueError (for a validator) when its scheme is not one of ``schemes`` or it has no host."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(wrong_scheme)
    if not parts.hostname:
        raise ValueError("has no host")
    return parts


def check_port(parts: SplitResult) -> None:
    """ValueError (for a validator) when the URL's port is not a number from 0 to 65535."""
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None


_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")


def check_host_name(value: str) -> str:
    """A DNS name or an IP address (IPv6 with or without brackets), nothing else: no user, no port."""
    if "@" in value:
        raise ValueError("must be a host name or address, without user or password")
    try:
        ipaddress.ip_address(value.strip("[]"))
        return value
    except ValueError:
        pass
    if not _HOST_NAME.match(value):
        raise ValueError("must be a host name or IP address")
    return value


def url_with_password(url: str, password: SecretStr | None) -> str:
    """The URL to hand to FFmpeg; only ever passed to the demuxer, never logged."""
    if password is None:
        return url
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password.get_secret_value(), safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def split_host_port(entry: str, default_port: int) -> tuple[str, int]:
    """``HOST``, ``[V6]``, ``HOST:PORT`` or ``[V6]:PORT`` as (host, port); a ValueError says what is wrong."""
    host, sep, port = entry.rpartition(":")
    if not sep or entry.endswith("]") or (":" in host and not host.startswith("[")):
        host, port = entry, str(default_port)
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"broker {entry[:80]!r} must be HOST or HOST:PORT")
    return check_host_name(host), int(port)
