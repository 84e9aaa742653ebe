"""Alert email over verified TLS only when there is a login, on a real loopback SMTP server
(aiosmtpd) that would take a password in clear: a server that offers no TLS gets no login and no
message; a certificate the client does not trust (STARTTLS or SMTPS) is refused, nothing sent;
trusted through FLIGHTS_SMTP_CA_FILE, the email is delivered and the login went over TLS."""

import datetime
import ipaddress
import ssl

import pytest

from tests.support import SmtpServer

PASSWORD = "mail-secret-81d2"


def certificates(folder):
    """A private CA and the server's certificate it signed, for 127.0.0.1: (ca.pem, server context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flights test CA")])

    def built(subject, public_key, issuer_key, ca: bool, extra=()):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        for extension in extra:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca = built(ca_name, ca_key.public_key(), ca_key, True,
               [x509.KeyUsage(False, False, False, False, False, True, True, False, False)])
    leaf = built(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), key.public_key(), ca_key, False,
                 [x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                  x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH])])
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", context


@pytest.fixture
def mail_settings(monkeypatch):
    def configure(server: SmtpServer, **env: str):
        monkeypatch.delenv("FLIGHTS_ALERT_WEBHOOK_URL", raising=False)
        for name in ("FLIGHTS_SMTP_STARTTLS", "FLIGHTS_SMTP_SSL", "FLIGHTS_SMTP_CA_FILE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in {"FLIGHTS_SMTP_HOST": "127.0.0.1", "FLIGHTS_SMTP_PORT": str(server.port),
                            "FLIGHTS_SMTP_USERNAME": "alerts", "FLIGHTS_SMTP_PASSWORD": PASSWORD,
                            "FLIGHTS_ALERT_EMAIL_TO": "ops@example.org", "FLIGHTS_ALERT_RETRIES": "2",
                            "FLIGHTS_ALERT_RETRY_DELAY": "0.05", **env}.items():
            monkeypatch.setenv(name, value)

    return configure


def _send():
    from resources.alerts import Alert, send

    (delivery,) = send(Alert("drift", "Dataset drift on 2013-03-04"))
    return delivery


def test_a_login_is_never_made_without_tls(mail_settings):
    server = SmtpServer(users={"alerts": PASSWORD})  # no TLS offered; it would take the password in clear
    try:
        for starttls in ("false", "true"):
            mail_settings(server, FLIGHTS_SMTP_STARTTLS=starttls)
            delivery = _send()
            assert not delivery.ok and delivery.attempts == 1, delivery  # retrying cannot fix it
            assert delivery.error == (f"SMTP 127.0.0.1:{server.port}: offers no STARTTLS; FLIGHTS_SMTP_USERNAME is set "
                                      "and a login is never made in clear: nothing sent")
        assert server.logins == [] and server.messages == []
    finally:
        server.close()


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
def test_an_untrusted_certificate_is_refused_and_a_trusted_one_delivers(tmp_path, mail_settings, implicit):
    ca_file, context = certificates(tmp_path)
    server = SmtpServer(tls=context, implicit=implicit, users={"alerts": PASSWORD})
    mode = {"FLIGHTS_SMTP_SSL": "true"} if implicit else {"FLIGHTS_SMTP_STARTTLS": "true"}
    try:
        mail_settings(server, **mode)  # the certificate is signed by a CA the system does not know
        delivery = _send()
        assert not delivery.ok and delivery.attempts == 1, delivery
        assert delivery.error.startswith(f"SMTP 127.0.0.1:{server.port}: TLS certificate not trusted (")
        assert delivery.error.endswith("nothing sent. A private CA: FLIGHTS_SMTP_CA_FILE") and PASSWORD not in delivery.error
        assert server.logins == [] and server.messages == []

        mail_settings(server, **mode, FLIGHTS_SMTP_CA_FILE=str(ca_file))
        delivery = _send()
        assert delivery.ok and delivery.attempts == 1, delivery
        assert server.logins == [("alerts", PASSWORD, True)]  # over TLS
        (message,) = server.messages
        assert message["Subject"] == "[flights info] Dataset drift on 2013-03-04" and message["To"] == "ops@example.org"
    finally:
        server.close()
