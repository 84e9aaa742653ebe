"""Alerts to people: a Slack-compatible webhook (FLIGHTS_ALERT_WEBHOOK_URL) and, optionally, email
through an SMTP server (FLIGHTS_SMTP_*). No Dagster: the alert sensors (pipelines/orchestration/alerts.py) and
the scoring server build an `Alert` and call `send`.

A delivery that fails is retried FLIGHTS_ALERT_RETRIES times with exponential backoff
(FLIGHTS_ALERT_RETRY_DELAY, doubled each time), within a deadline: every call waits at most
FLIGHTS_SERVICE_TIMEOUT for an answer, and the channels (tried at the same time) give up after
FLIGHTS_ALERT_SECONDS in all. One that still fails is reported in the returned `Delivery` and
logged, never raised: an alert never fails the pipeline. Email goes over verified TLS when asked
(FLIGHTS_SMTP_STARTTLS, FLIGHTS_SMTP_SSL, FLIGHTS_SMTP_CA_FILE) and always when there is a login:
a password is never sent in clear. The webhook URL (a secret, for Slack) and the SMTP password
appear in no message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit

from resources.settings import Settings, settings

log = logging.getLogger("flights.alerts")
ICONS = {"error": ":red_circle:", "warning": ":large_yellow_circle:", "info": ":large_blue_circle:"}


@dataclass(frozen=True)
class Alert:
    """What happened (`kind`), in a title and a few lines; `link` is the Dagster run (or the page)
    to open."""

    kind: str
    title: str
    lines: tuple[str, ...] = ()
    link: str | None = None
    severity: str = "info"  # info | warning | error
    fields: dict[str, str] = field(default_factory=dict)  # asset, partition, model_version, run_id ...

    def text(self) -> str:
        body = [f"{ICONS.get(self.severity, '')} *{self.title}*".strip(), *self.lines]
        if self.link:
            body.append(f"<{self.link}|Open in Dagster>")
        return "\n".join(body)

    def slack_payload(self) -> dict:
        """Slack's incoming-webhook JSON: `text` (the fallback every receiver reads) and blocks."""
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": self.text()}}]
        if self.fields:
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"*{k}*: {v}"} for k, v in list(self.fields.items())[:10]]})
        return {"text": self.text(), "blocks": blocks,
                "metadata": {"event_type": f"flights.{self.kind}", "event_payload": dict(self.fields)}}

    def email(self, s: Settings) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[flights {self.severity}] {self.title}"
        message["From"] = s.alert_email_from
        message["To"] = ", ".join(s.alert_email_to)
        lines = [*self.lines, "", *(f"{k}: {v}" for k, v in self.fields.items())]
        if self.link:
            lines += ["", f"Dagster: {self.link}"]
        message.set_content("\n".join(lines))
        return message


@dataclass(frozen=True)
class Delivery:
    channel: str  # webhook | email
    ok: bool
    attempts: int
    error: str | None = None


class Refused(Exception):
    """A delivery that retrying cannot fix (no TLS for a login, an untrusted certificate): not retried."""


def _post_webhook(url: str, alert: Alert, timeout: float) -> None:
    request = urllib.request.Request(url, data=json.dumps(alert.slack_payload()).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"HTTP {response.status}")


def _verified(connect):
    """`connect()` with its certificate errors said as a refusal (the CA setting to give)."""
    try:
        return connect()
    except ssl.SSLCertVerificationError as exc:
        raise Refused(f"TLS certificate not trusted ({exc.verify_message}); nothing sent. A private CA: "
                      "FLIGHTS_SMTP_CA_FILE") from None


def _send_email(s: Settings, alert: Alert, timeout: float) -> None:
    """One SMTP delivery; TLS (verified: CA and host name) before any login, or no delivery at all."""
    try:
        tls = ssl.create_default_context(cafile=str(s.smtp_ca_file) if s.smtp_ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise Refused(f"FLIGHTS_SMTP_CA_FILE={s.smtp_ca_file} is not a readable PEM CA bundle ({exc}); nothing sent") from None
    if s.smtp_ssl:
        smtp = _verified(lambda: smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=timeout, context=tls))
    else:
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=timeout)
    end = time.monotonic() + timeout

    def within_deadline():  # a slow server answers each command late: the whole exchange ends by `end`
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        smtp.sock.settimeout(left)

    try:
        if not s.smtp_ssl and (s.smtp_starttls or s.smtp_username):
            within_deadline()
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise Refused("offers no STARTTLS; " + (
                    "FLIGHTS_SMTP_USERNAME is set and a login is never made in clear: nothing sent" if s.smtp_username else
                    "FLIGHTS_SMTP_STARTTLS asks for TLS: nothing sent"))
            within_deadline()
            _verified(lambda: smtp.starttls(context=tls))
        if s.smtp_username:
            within_deadline()
            smtp.login(s.smtp_username, s.smtp_password or "")
        within_deadline()
        smtp.send_message(alert.email(s))
    except BaseException:
        smtp.close()  # no QUIT: on a refused or broken connection it could only wait
        raise
    with contextlib.suppress(smtplib.SMTPException, OSError):  # delivered: a late answer to QUIT changes nothing
        smtp.quit()


def _timed_out(exc: BaseException) -> bool:
    """A server that took the connection and did not answer in time (smtplib says it as a
    disconnection caused by the timeout)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError) or (isinstance(seen, urllib.error.URLError) and isinstance(seen.reason, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _described(exc: BaseException, timeout: float) -> str:
    if _timed_out(exc):
        return f"no answer within {timeout:g} s (FLIGHTS_SERVICE_TIMEOUT, FLIGHTS_ALERT_SECONDS)"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"


def _with_retries(channel: str, where: str, attempt, s: Settings, sleep, deadline: float) -> Delivery:
    """`attempt(timeout)` until it succeeds, FLIGHTS_ALERT_RETRIES retries with backoff, all before
    `deadline` (time.monotonic()): no call waits past it and no retry starts that would end after it."""
    delay, error, n = s.alert_retry_delay, None, 0
    while n <= s.alert_retries:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error = error or f"{where}: no time left (FLIGHTS_ALERT_SECONDS={s.alert_seconds:g})"
            break
        n += 1
        timeout = min(s.service_timeout, remaining)
        try:
            attempt(timeout)
            return Delivery(channel, True, n)
        except Refused as exc:
            error = f"{where}: {exc}"
            break
        except Exception as exc:  # noqa: BLE001 - any failure of delivery is retried, then reported
            error = f"{where}: {_described(exc, timeout)}"
            if n > s.alert_retries or time.monotonic() + delay >= deadline:
                break
            sleep(delay)
            delay *= 2
    log.warning(f"alert not delivered by {channel} after {n} attempts ({error})")
    return Delivery(channel, False, n, error)


def configured(s: Settings | None = None) -> bool:
    s = s or settings()
    return bool(s.alert_webhook_url or s.smtp_host)


def send(alert: Alert, s: Settings | None = None, sleep=time.sleep, deadline: float | None = None) -> list[Delivery]:
    """Deliver `alert` to every configured channel, the channels at the same time, each given up
    at `deadline` (time.monotonic(); default: FLIGHTS_ALERT_SECONDS from now); never raises."""
    s = s or settings()
    deadline = time.monotonic() + s.alert_seconds if deadline is None else deadline
    channels = []
    if s.alert_webhook_url:
        host = urlsplit(s.alert_webhook_url).netloc  # the path of a Slack URL is its secret
        channels.append(("webhook", f"webhook at {host}", lambda timeout: _post_webhook(s.alert_webhook_url, alert, timeout)))
    if s.smtp_host:
        channels.append(("email", f"SMTP {s.smtp_host}:{s.smtp_port}", lambda timeout: _send_email(s, alert, timeout)))
    if len(channels) < 2:
        return [_with_retries(*channel, s, sleep, deadline) for channel in channels]
    with ThreadPoolExecutor(len(channels), thread_name_prefix="alert") as pool:
        return list(pool.map(lambda channel: _with_retries(*channel, s, sleep, deadline), channels))
