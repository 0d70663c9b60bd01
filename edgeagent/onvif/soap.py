"""Plain SOAP 1.2 for what zeep cannot take: the clock query and replies that are not valid XML.

Cameras send replies that zeep refuses (undeclared namespace prefixes, truncated documents); lxml's
recovering parser reads most of them, and elements are then matched by local name whatever their prefix.
Every request is bounded by ``timeout_s`` end to end; a reply over ``MAX_REPLY_BYTES`` is refused.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
from lxml import etree

from edgeagent.http_body import read_bounded
from edgeagent.onvif.errors import OnvifAuthError, OnvifError, OnvifTimeout, OnvifUnreachable

MAX_REPLY_BYTES = 1024 * 1024
SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
NONCE_ENCODING = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
AUTH_FAULTS = ("notauthorized", "not authorized", "authentication", "unauthorized", "sender not authorized")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    root: etree._Element | None  # None when nothing could be parsed
    server_date: dt.datetime | None  # the reply's HTTP Date header: the camera's clock, to the second

    def fault(self) -> str | None:
        """The fault's reason text, or None when the reply is not a fault."""
        if self.root is None:
            return None
        faults = list(find_all(self.root, "Fault"))
        if not faults:
            return None
        texts = [
            text for name in ("Text", "Reason", "faultstring", "Value", "Subcode") for text in texts_of(faults[0], name)
        ]
        return " / ".join(dict.fromkeys(texts)) or "fault"

    def auth_failed(self) -> bool:
        fault = self.fault()
        if self.status == 401:
            return True
        return fault is not None and any(word in fault.lower() for word in AUTH_FAULTS)


def local_name(tag: object) -> str:
    """``{ns}Name``, ``prefix:Name`` (a recovered undeclared prefix) and ``Name`` all give ``Name``."""
    text = tag if isinstance(tag, str) else ""
    return text.rpartition("}")[2].rpartition(":")[2]


def find_all(root: etree._Element, name: str) -> Iterator[etree._Element]:
    """Elements below ``root`` (not ``root`` itself) with the local name ``name``."""
    for element in root.iterdescendants():
        if local_name(element.tag) == name:
            yield element


def find(root: etree._Element, *path: str) -> etree._Element | None:
    """The first element reached by local names ``path``, each searched at any depth below the last."""
    current: etree._Element | None = root
    for name in path:
        if current is None:
            return None
        current = next(find_all(current, name), None)
    return current


def texts_of(root: etree._Element, name: str) -> list[str]:
    return [element.text.strip() for element in find_all(root, name) if element.text and element.text.strip()]


def parse_lenient(data: bytes) -> etree._Element | None:
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None


def security_header(username: str, password: str, offset: dt.timedelta) -> str:
    """A WS-Security UsernameToken (PasswordDigest) dated by the camera's clock: ours plus ``offset``."""
    created = (dt.datetime.now(dt.UTC) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")
    nonce = os.urandom(16)
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" s:mustUnderstand="1"><wsse:UsernameToken>'
        f"<wsse:Username>{escape(username)}</wsse:Username>"
        f'<wsse:Password Type="{DIGEST}">{digest}</wsse:Password>'
        f'<wsse:Nonce EncodingType="{NONCE_ENCODING}">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def envelope(body: str, security: str = "") -> bytes:
    header = f"<s:Header>{security}</s:Header>" if security else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP_ENV}"'
        ' xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"'
        ' xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">'
        f"{header}<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _server_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


async def call(url: str, action: str, body: str, timeout_s: float, security: str = "") -> Reply:
    """POST one SOAP request; the reply parsed leniently. Raises OnvifError when nothing came back."""
    headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with asyncio.timeout(timeout_s + 0.5), aiohttp.ClientSession(timeout=timeout) as session:  # noqa: SIM117
            async with session.post(url, data=envelope(body, security), headers=headers) as response:
                data = await read_bounded(response.content, MAX_REPLY_BYTES)
                if len(data) > MAX_REPLY_BYTES:
                    raise OnvifError(f"{url}: reply larger than {MAX_REPLY_BYTES} bytes")
                return Reply(
                    response.status, parse_lenient(data) if data else None, _server_date(response.headers.get("Date"))
                )
    except TimeoutError:
        raise OnvifTimeout(f"no answer from {url} within {timeout_s:g} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise OnvifUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None


def raise_for_reply(reply: Reply, what: str) -> etree._Element:
    """The reply's root, or the error it stands for."""
    if reply.auth_failed():
        raise OnvifAuthError(f"{what}: not authorized ({reply.fault() or reply.status})")
    fault = reply.fault()
    if fault is not None:
        raise OnvifError(f"{what}: fault: {fault}")
    if reply.root is None or reply.status >= 400:
        raise OnvifError(f"{what}: HTTP {reply.status} without a readable SOAP reply")
    return reply.root
