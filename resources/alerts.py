"""Alerts to people: a Slack-compatible webhook (FLIGHTS_ALERT_WEBHOOK_URL) and, optionally, email
through an SMTP server (FLIGHTS_SMTP_*). No Dagster: the alert sensors (pipelines/orchestration/alerts.py) and
the scoring server build an `Alert` and call `send`.

A delivery that fails is retried FLIGHTS_ALERT_RETRIES times with exponential backoff
(FLIGHTS_ALERT_RETRY_DELAY, doubled each time); one that still fails is reported in the returned
`Delivery` and logged, never raised: an alert never fails the pipeline. The webhook URL (a
secret, for Slack) and the SMTP password appear in no message.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
import urllib.error
import urllib.request
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


def _post_webhook(url: str, alert: Alert) -> None:
    request = urllib.request.Request(url, data=json.dumps(alert.slack_payload()).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"HTTP {response.status}")


def _send_email(s: Settings, alert: Alert) -> None:
    with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
        if s.smtp_starttls:
            smtp.starttls()
        if s.smtp_username:
            smtp.login(s.smtp_username, s.smtp_password or "")
        smtp.send_message(alert.email(s))


def _described(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"


def _with_retries(channel: str, where: str, attempt, s: Settings, sleep) -> Delivery:
    delay = s.alert_retry_delay
    error = None
    for n in range(1, s.alert_retries + 2):
        try:
            attempt()
            return Delivery(channel, True, n)
        except Exception as exc:  # noqa: BLE001 - any failure of delivery is retried, then reported
            error = f"{where}: {_described(exc)}"
            if n <= s.alert_retries:
                sleep(delay)
                delay *= 2
    log.warning(f"alert not delivered by {channel} after {s.alert_retries + 1} attempts ({error})")
    return Delivery(channel, False, s.alert_retries + 1, error)


def configured(s: Settings | None = None) -> bool:
    s = s or settings()
    return bool(s.alert_webhook_url or s.smtp_host)


def send(alert: Alert, s: Settings | None = None, sleep=time.sleep) -> list[Delivery]:
    """Deliver `alert` to every configured channel; never raises."""
    s = s or settings()
    out = []
    if s.alert_webhook_url:
        host = urlsplit(s.alert_webhook_url).netloc  # the path of a Slack URL is its secret
        out.append(_with_retries("webhook", f"webhook at {host}", lambda: _post_webhook(s.alert_webhook_url, alert), s, sleep))
    if s.smtp_host:
        out.append(_with_retries("email", f"SMTP {s.smtp_host}:{s.smtp_port}", lambda: _send_email(s, alert), s, sleep))
    return out
