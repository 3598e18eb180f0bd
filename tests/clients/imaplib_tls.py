"""Python's imaplib over implicit TLS (IMAP4_SSL) and STARTTLS, verifying the
server's certificate against the test's own CA file.

Usage: imaplib_tls.py PLAIN_PORT TLS_PORT CAFILE EMAIL TOKEN
"""

import imaplib
import ssl
import sys

plain_port, tls_port, cafile, email, token = sys.argv[1:6]
context = ssl.create_default_context(cafile=cafile)


def check(ok, what):
    if not ok:
        print(f"failed: {what}", file=sys.stderr)
        sys.exit(1)


with imaplib.IMAP4_SSL("localhost", int(tls_port), ssl_context=context, timeout=20) as imap:
    check("AUTH=PLAIN" in imap.capabilities, f"imaps capabilities {imap.capabilities}")
    typ, _ = imap.login(email, token)
    check(typ == "OK", "imaps login")
    typ, data = imap.select("INBOX")
    check(typ == "OK", f"imaps select {data}")
    imap.logout()
    print("ok: imaps")

with imaplib.IMAP4("localhost", int(plain_port), timeout=20) as imap:
    check("STARTTLS" in imap.capabilities, f"plain capabilities {imap.capabilities}")
    check("LOGINDISABLED" in imap.capabilities, "LOGINDISABLED before STARTTLS")
    typ, _ = imap.starttls(ssl_context=context)
    check(typ == "OK", "starttls")
    check("AUTH=PLAIN" in imap.capabilities, f"capabilities after STARTTLS {imap.capabilities}")
    check("STARTTLS" not in imap.capabilities, "no STARTTLS after STARTTLS")
    typ, _ = imap.login(email, token)
    check(typ == "OK", "login after starttls")
    typ, data = imap.list()
    check(typ == "OK" and any(b"Sent" in line for line in data), f"list {data}")
    imap.logout()
    print("ok: starttls")
