"""A mail client's session with Python's imaplib, against the server under test.

Usage: imaplib_session.py HOST PORT USER TOKEN
Prints one line per check; exits non-zero on the first failure.
"""
import imaplib
import sys
import threading

host, port, user, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def check(condition, what):
    if not condition:
        print("FAILED:", what)
        sys.exit(1)
    print("ok:", what)


m = imaplib.IMAP4(host, port)
typ, _ = m.login(user, token)
check(typ == "OK", "login")

typ, boxes = m.list()
names = [line.decode() for line in boxes]
check(typ == "OK" and any('"INBOX"' in n for n in names), "list shows INBOX")
check(any('"box@alice.example"' in n for n in names), "list shows the address")

typ, data = m.select("INBOX")
check(typ == "OK" and data[0] == b"2", "select INBOX: 2 messages")

typ, data = m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")
check(typ == "OK" and len([d for d in data if d]) == 2, "uid fetch of the index")

typ, data = m.fetch("1", "(BODY.PEEK[])")
body = data[0][1]
check(typ == "OK" and b"Subject: Hello" in body, "fetch a body")

typ, data = m.search(None, "FROM", "bob")
check(typ == "OK" and data[0] == b"1", "search FROM")
typ, data = m.uid("SEARCH", None, "TEXT", "needle")
check(typ == "OK" and data[0] == b"1", "uid search TEXT")

typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
check(typ == "OK" and b"\\Flagged" in data[0], "store +FLAGS")
typ, data = m.fetch("1", "(FLAGS)")
check(b"\\Flagged" in data[0], "flag persisted")


def append_later():
    other = imaplib.IMAP4(host, port)
    other.login(user, token)
    other.append("INBOX", None, None, b"From: x@y.example\r\nSubject: Pushed\r\n\r\nhi\r\n")
    other.logout()


# imaplib has no IDLE: speak it by hand on the same connection.
tag = m._new_tag()
m.send(tag + b" IDLE\r\n")
check(m.readline().startswith(b"+"), "idle accepted")
threading.Timer(0.5, append_later).start()
line = m.readline()
check(line.strip() == b"* 3 EXISTS", "idle reports the new message: %r" % line)
m.send(b"DONE\r\n")
while True:
    line = m.readline()
    if line.startswith(tag):
        check(b"OK" in line, "idle ends with OK")
        break

typ, _ = m.logout()
check(typ == "BYE", "logout")
