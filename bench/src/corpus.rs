//! The benchmark's mail: the same messages, from a fixed seed, written as a
//! Maildir per user for Dovecot and as a PostgreSQL `COPY` stream for us.
//!
//! The size mix is that of a disposable-address inbox: mostly short
//! notifications, some HTML newsletters, a few attachments and the odd
//! large message.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The word `UID SEARCH SUBJECT` and `UID SEARCH TEXT` look for; it is in
/// about 2% of subjects and 3% of bodies.
pub const NEEDLE: &str = "zephyr";

pub const DOMAIN: &str = "bench.test";

const WORDS: [&str; 48] = [
    "account",
    "order",
    "shipped",
    "invoice",
    "welcome",
    "confirm",
    "password",
    "reset",
    "weekly",
    "digest",
    "offer",
    "discount",
    "meeting",
    "project",
    "update",
    "release",
    "ticket",
    "support",
    "delivery",
    "tracking",
    "receipt",
    "payment",
    "subscription",
    "renewal",
    "security",
    "alert",
    "verify",
    "code",
    "login",
    "device",
    "newsletter",
    "summer",
    "sale",
    "event",
    "reminder",
    "calendar",
    "invitation",
    "report",
    "monthly",
    "statement",
    "review",
    "feedback",
    "survey",
    "travel",
    "booking",
    "flight",
    "hotel",
    "photo",
];

/// Benchmark user `n` (1-based): the account both servers know.
pub fn user(n: usize) -> String {
    format!("user{n:02}@{DOMAIN}")
}

/// The disposable address of user `n`, which receives the corpus on our side.
pub fn address(n: usize) -> String {
    format!("box{n:02}@{DOMAIN}")
}

fn words(rng: &mut StdRng, count: usize, needle_chance: f64) -> String {
    let mut text = String::new();
    for i in 0..count {
        if i > 0 {
            text.push(' ');
        }
        if rng.random_bool(needle_chance) {
            text.push_str(NEEDLE);
        } else {
            text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        }
    }
    text
}

fn paragraphs(rng: &mut StdRng, bytes: usize) -> String {
    let needle = if rng.random_bool(0.03) { 0.02 } else { 0.0 };
    let mut text = String::new();
    while text.len() < bytes {
        let count = rng.random_range(6..14);
        text.push_str(&words(rng, count, needle));
        text.push_str(".\r\n");
    }
    text
}

fn base64_lines(rng: &mut StdRng, bytes: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes + bytes / 38);
    let mut written = 0;
    while written < bytes {
        for _ in 0..76 {
            text.push(ALPHABET[rng.random_range(0..64)] as char);
        }
        text.push_str("\r\n");
        written += 78;
    }
    text
}

/// Message `n` of the corpus for `to`, and its subject and sender (the
/// deployment's columns on our side).
pub struct Message {
    pub raw: Vec<u8>,
    pub subject: String,
    pub from: String,
    pub day: u32,
}

pub fn message(rng: &mut StdRng, n: usize, to: &str) -> Message {
    let subject_words = rng.random_range(3..9);
    let subject = format!("{} #{n}", words(rng, subject_words, 0.003));
    let sender = format!(
        "{}{}",
        WORDS[rng.random_range(0..WORDS.len())],
        rng.random_range(1..500)
    );
    let from = format!("{sender}@example.org");
    let day = rng.random_range(1..=28);
    let header = format!(
        "Return-Path: <{from}>\r\nFrom: \"{sender}\" <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
Date: Tue, {day} Oct 2026 {:02}:{:02}:00 +0000\r\nMessage-ID: <{n}.{}@example.org>\r\nMIME-Version: 1.0\r\n",
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random::<u32>()
    );
    let kind = rng.random_range(0..100);
    let raw = if kind < 70 {
        let size = rng.random_range(600..5_000);
        format!(
            "{header}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{}",
            paragraphs(rng, size)
        )
    } else if kind < 88 {
        let size = rng.random_range(1_500..8_000);
        let text = paragraphs(rng, size);
        format!(
            "{header}Content-Type: multipart/alternative; boundary=\"alt{n}\"\r\n\r\n\
--alt{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
--alt{n}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>{}</p></body></html>\r\n\
--alt{n}--\r\n",
            text.replace("\r\n", "</p>\r\n<p>")
        )
    } else {
        let attachment = if kind < 98 {
            rng.random_range(8_000..30_000)
        } else {
            rng.random_range(80_000..160_000)
        };
        let size = rng.random_range(400..2_000);
        format!(
            "{header}Content-Type: multipart/mixed; boundary=\"mix{n}\"\r\n\r\n\
--mix{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n\
--mix{n}\r\nContent-Type: application/pdf; name=\"document-{n}.pdf\"\r\n\
Content-Disposition: attachment; filename=\"document-{n}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\
--mix{n}--\r\n",
            paragraphs(rng, size),
            base64_lines(rng, attachment)
        )
    };
    Message {
        raw: raw.into_bytes(),
        subject,
        from,
        day,
    }
}

/// Writes `users` × `messages` messages: Maildirs under `maildir/<user>/Maildir`
/// and, when asked, a `COPY emails (…) FROM STDIN` text stream.
pub fn write(
    users: usize,
    messages: usize,
    seed: u64,
    maildir: &Path,
    copy: Option<&mut dyn Write>,
) -> Result<u64> {
    let mut copy = copy.map(BufWriter::new);
    let mut total = 0u64;
    for u in 1..=users {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(u as u64));
        let base = maildir.join(user(u)).join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(base.join(sub)).with_context(|| format!("create {base:?}"))?;
        }
        let to = address(u);
        for n in 0..messages {
            let message = message(&mut rng, n, &to);
            total += message.raw.len() as u64;
            // Maildir names: unique, with S= so Dovecot need not stat (and
            // `:2,` with no flags: unseen, like ours).
            let name = format!(
                "{}.M{n}P{u}.bench,S={}:2,",
                1_790_000_000 + n,
                message.raw.len()
            );
            fs::write(base.join("cur").join(name), &message.raw)?;
            if let Some(copy) = copy.as_mut() {
                copy_row(copy, &to, &message)?;
            }
        }
    }
    if let Some(mut copy) = copy {
        copy.flush()?;
    }
    Ok(total)
}

/// One row of `COPY emails (mailbox_owner, subject, from_addr, to_addrs,
/// timestamp, size, raw) FROM STDIN` in the text format.
fn copy_row(out: &mut impl Write, to: &str, message: &Message) -> io::Result<()> {
    write!(
        out,
        "{}\t{}\t{}\t{}\t2026-10-{:02} 12:00:00+00\t{}\t\\\\x",
        copy_text(to),
        copy_text(&message.subject),
        copy_text(&message.from),
        copy_text(to),
        message.day,
        message.raw.len()
    )?;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = Vec::with_capacity(message.raw.len() * 2 + 1);
    for byte in &message.raw {
        hex.push(HEX[usize::from(byte >> 4)]);
        hex.push(HEX[usize::from(byte & 15)]);
    }
    hex.push(b'\n');
    out.write_all(&hex)
}

fn copy_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_the_same_for_the_same_seed() {
        let a = message(&mut StdRng::seed_from_u64(3), 1, "box01@bench.test");
        let b = message(&mut StdRng::seed_from_u64(3), 1, "box01@bench.test");
        assert_eq!(a.raw, b.raw);
    }

    #[test]
    fn copy_rows_escape_bytea_and_text() {
        let message = Message {
            raw: b"A\r\n".to_vec(),
            subject: "tab\there".to_owned(),
            from: "a@b".to_owned(),
            day: 3,
        };
        let mut out = Vec::new();
        copy_row(&mut out, "box@x", &message).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "box@x\ttab\\there\ta@b\tbox@x\t2026-10-03 12:00:00+00\t3\t\\\\x410d0a\n"
        );
    }
}
