//! Micro-benchmarks of the per-command hot paths, without I/O or a database:
//! decoding a command, encoding a FETCH answer, ENVELOPE and BODYSTRUCTURE of
//! a typical message, ban matching against 10,000 bans, and what the
//! metrics add to each command.
//! Run with `cargo bench --bench hot_paths`.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_server::directory::bans::{BanList, Scope};
use imap_server::imap::commands::fetch::encode_items;
use imap_server::store::{BanRecord, MessageData, ParseCache};
use imap_types::IntoStatic;
use imap_types::command::CommandBody;
use imap_types::fetch::MacroOrMessageDataItemNames;

/// A newsletter with a text and an HTML part and a small attachment: the
/// shape of most mail that is not a one-line notification.
fn typical_message() -> Vec<u8> {
    let mut text = String::new();
    for line in 0..60 {
        text.push_str(&format!(
            "Line {line}: your weekly digest of offers, orders and account updates.\r\n"
        ));
    }
    let attachment: String = (0..200).map(|n| format!("{:076}\r\n", n * 7919)).collect();
    format!(
        "Return-Path: <news@shop.example>\r\n\
Received: from mx.shop.example (mx.shop.example [192.0.2.7]) by mx.example.com; Tue, 24 Nov 2026 10:00:00 +0000\r\n\
From: \"Shop News\" <news@shop.example>\r\n\
To: \"Box\" <box@example.com>, other@example.com\r\n\
Cc: =?utf-8?q?J=C3=BCrgen?= <juergen@example.net>\r\n\
Subject: =?utf-8?q?Your_weekly_digest_=E2=80=94_November?=\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <digest.4711@shop.example>\r\n\
In-Reply-To: <previous.4710@shop.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n\
--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n\
--inner\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<html><body><pre>{text}</pre></body></html>\r\n\
--inner--\r\n\
--outer\r\nContent-Type: application/pdf; name=\"digest.pdf\"\r\nContent-Disposition: attachment; filename=\"digest.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{attachment}--outer--\r\n"
    )
    .into_bytes()
}

fn decoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode command");
    for (name, line) in [
        (
            "LOGIN",
            &b"a1 LOGIN \"user01@bench.test\" \"0123456789abcdef0123456789abcdef\"\r\n"[..],
        ),
        (
            "UID FETCH index",
            b"a2 UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)\r\n",
        ),
        (
            "UID SEARCH TEXT",
            b"a3 UID SEARCH CHARSET UTF-8 TEXT \"zephyr\" NOT DELETED\r\n",
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| CommandCodec::default().decode(black_box(line)).is_ok())
        });
    }
    group.finish();
}

/// The item names of a `FETCH` command line.
fn fetch_items(line: &[u8]) -> MacroOrMessageDataItemNames<'static> {
    let (_, command) = CommandCodec::default()
        .decode(line)
        .expect("a valid FETCH command");
    match command.body {
        CommandBody::Fetch {
            macro_or_item_names,
            ..
        } => macro_or_item_names.into_static(),
        other => panic!("not a FETCH: {other:?}"),
    }
}

fn fetch_encoding(c: &mut Criterion) {
    let raw = typical_message();
    let cache = ParseCache {
        size: Some(raw.len() as u32),
        envelope: Some(imap_server::mime::envelope(&raw)),
        body_structure: Some(imap_server::mime::body_structure(&raw, true)),
        body: Some(imap_server::mime::body_structure(&raw, false)),
    };
    let message = MessageData {
        id: "0b7e5d1c-2f3a-4c55-9d1e-6f7a8b9c0d1e".to_owned(),
        uid: 1234,
        flags: vec!["\\Seen".to_owned(), "$Forwarded".to_owned()],
        timestamp: Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap(),
        cache: cache.clone(),
        stored_size: 0,
        modseq: 1,
        content: None,
        header_block: None,
    };
    let mut group = c.benchmark_group("encode FETCH answer");
    for (name, line) in [
        (
            "index (UID FLAGS RFC822.SIZE ENVELOPE)",
            &b"a UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)\r\n"[..],
        ),
        ("BODYSTRUCTURE", b"a UID FETCH 1:* (UID BODYSTRUCTURE)\r\n"),
        (
            "BODY.PEEK[] of the whole message (25 KiB)",
            b"a UID FETCH 1:* (UID BODY.PEEK[])\r\n",
        ),
    ] {
        let items = fetch_items(line);
        group.bench_function(name, |b| {
            b.iter(|| encode_items(black_box(&items), &message, &cache, &raw).map(|v| v.len()))
        });
    }
    group.finish();
}

fn mime(c: &mut Criterion) {
    let raw = typical_message();
    c.bench_function("ENVELOPE of a typical message", |b| {
        b.iter(|| imap_server::mime::envelope(black_box(&raw)))
    });
    c.bench_function("BODYSTRUCTURE of a typical message", |b| {
        b.iter(|| imap_server::mime::body_structure(black_box(&raw), true))
    });
}

fn bans(c: &mut Criterion) {
    // 10,000 bans: exact addresses, exact domains, sender substrings and
    // legacy `contains:` values, as an operator's list grows over the years.
    let records: Vec<BanRecord> = (0..10_000)
        .map(|n| {
            let (scope, value, match_type) = match n % 4 {
                0 => ("email", format!("spam{n}@junk{n}.example"), "exact"),
                1 => ("domain", format!("junk{n}.example"), "exact"),
                2 => ("sender", format!("promo{n}"), "contains"),
                _ => ("email", format!("contains:bulk{n}-"), "exact"),
            };
            BanRecord {
                id: n.to_string(),
                scope: scope.to_owned(),
                value,
                match_type: match_type.to_owned(),
                active: true,
            }
        })
        .collect();
    let list = BanList::new(&records);
    let mut group = c.benchmark_group("bans (10,000)");
    group.bench_function("address not banned", |b| {
        b.iter(|| list.is_banned(Scope::Email, black_box("Someone.Else@Example.com")))
    });
    group.bench_function("address banned (contains)", |b| {
        b.iter(|| list.is_banned(Scope::Email, black_box("x-bulk4711-y@example.com")))
    });
    group.bench_function("sender of a message, not hidden", |b| {
        b.iter(|| list.hides_sender(black_box("\"Shop News\" <news@shop.example>")))
    });
    group.finish();
}

/// What every command pays for its metrics: the label lookup, the counter
/// and histogram updates, and the byte counters of one read and one write.
fn metrics(c: &mut Criterion) {
    use imap_server::ops::metrics::{CommandStatus, Metrics};
    let metrics = Metrics::new();
    let traffic = metrics.traffic();
    let took = std::time::Duration::from_micros(700);
    c.bench_function("metrics of one command", |b| {
        b.iter(|| {
            metrics.command(black_box("FETCH"), CommandStatus::Ok, Some(took));
            traffic.received.inc_by(black_box(40));
            traffic.sent.inc_by(black_box(900));
        })
    });
}

criterion_group!(benches, decoding, fetch_encoding, mime, bans, metrics);
criterion_main!(benches);
