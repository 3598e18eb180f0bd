//! Framing: splits the byte stream into complete commands (lines plus the
//! literals they announce), with hard caps on line and literal sizes, and
//! buffers responses. Commands never touch the socket.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::compress::Deflate;
use crate::config::Limits;
use crate::imap::refusal::{Problem, recover_tag};
use crate::imap::response::Sink;
use crate::ops::metrics::Traffic;

/// What reading the next command produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete command, lines ending in CRLF, literals inline.
    Command(Vec<u8>),
    /// The command was refused while being read; its tag, when it could be recovered.
    Refused {
        tag: Option<String>,
        problem: Problem,
    },
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection.
    Closed,
    Io(io::Error),
    /// A non-synchronizing literal so large that reading it to skip it is not
    /// worth it; the connection must close.
    Flood,
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// One line, as read.
enum Line {
    /// Without its line ending.
    Complete(Vec<u8>),
    /// Longer than the limit; consumed up to its end. Holds its beginning.
    TooLong(Vec<u8>),
}

/// How long, and how much, a closing connection keeps reading (see `close`).
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// What each buffer starts with, and keeps between commands: thousands of
/// sessions sit idle, so this is per-connection memory that counts.
const BUFFER_KEPT: usize = 2048;
/// Past this, an emptied input buffer is given back.
const BUFFER_LIMIT: usize = 64 * 1024;

/// How much of a too-long line is kept to recover the tag from.
const HEAD: usize = 128;

pub struct Connection<S> {
    stream: S,
    input: BytesMut,
    output: Vec<u8>,
    max_line: usize,
    max_literal: u32,
    max_message_size: u32,
    write_timeout: std::time::Duration,
    /// Whether APPEND may send a message-sized literal: only once logged in,
    /// so that a stranger cannot make us buffer 50 MB per connection.
    message_literals: bool,
    /// Where the bytes read and written are counted, if anywhere.
    traffic: Option<Traffic>,
    /// COMPRESS=DEFLATE, once started.
    deflate: Option<Box<Deflate>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, limits: &Limits) -> Connection<S> {
        Connection {
            stream,
            input: BytesMut::with_capacity(BUFFER_KEPT),
            output: Vec::with_capacity(BUFFER_KEPT),
            max_line: limits.max_line,
            max_literal: limits.max_literal,
            max_message_size: limits.max_message_size,
            write_timeout: limits.write_timeout,
            message_literals: false,
            traffic: None,
            deflate: None,
        }
    }

    /// Counts every byte read and written from now on.
    pub fn count_traffic(&mut self, traffic: Traffic) {
        self.traffic = Some(traffic);
    }

    /// Allows (once logged in) or refuses message-sized literals for APPEND.
    pub fn allow_message_literals(&mut self, allowed: bool) {
        self.message_literals = allowed;
    }

    /// Drops what the client sent that has not been read yet, and says how
    /// much. After STARTTLS, bytes that arrived before the handshake were
    /// sent in clear and may have been injected by a man in the middle
    /// (CVE-2011-0411): they must never be taken as commands.
    pub fn discard_input(&mut self) -> usize {
        let dropped = self.input.len();
        self.input.clear();
        dropped
    }

    /// Compresses both ways from now on (COMPRESS, RFC 4978), once the OK
    /// has gone out uncompressed. Anything the client sent after the
    /// command was compressed already.
    pub fn start_compression(&mut self) {
        let already_read = self.input.split();
        self.deflate = Some(Box::new(Deflate::new(&already_read)));
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Queues bytes to send.
    pub fn write(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Sends what is queued. A client that does not read for
    /// `IMAP_WRITE_TIMEOUT` fails the write: its connection closes.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.flush_queued(true).await
    }

    /// Sends what is queued; `ends_answer` when nothing follows until the
    /// client speaks again.
    async fn flush_queued(&mut self, ends_answer: bool) -> io::Result<()> {
        let output = std::mem::take(&mut self.output);
        let sent = self.send_within_deadline(&output, ends_answer).await;
        self.output = output;
        self.output.clear();
        // A 5 MB FETCH answer must not stay allocated for the hours the
        // session then idles.
        self.output.shrink_to(BUFFER_KEPT);
        sent
    }

    async fn send_within_deadline(&mut self, bytes: &[u8], ends_answer: bool) -> io::Result<()> {
        let compressed;
        let bytes = match &mut self.deflate {
            Some(deflate) if !bytes.is_empty() => {
                compressed = deflate.deflate(bytes, ends_answer)?;
                &compressed[..]
            }
            _ => bytes,
        };
        let send = async {
            if !bytes.is_empty() {
                self.stream.write_all(bytes).await?;
                if let Some(traffic) = &self.traffic {
                    traffic.sent.inc_by(bytes.len() as u64);
                }
            }
            self.stream.flush().await
        };
        match tokio::time::timeout(self.write_timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
        }
    }

    /// Sends what is queued and closes gracefully: our side is shut down, and
    /// what the client still sends is read and dropped for a moment, so that
    /// the kernel does not answer unread input with a reset that would
    /// destroy the BYE before the client reads it.
    pub async fn close(&mut self) {
        if self.flush().await.is_err() {
            return;
        }
        let _ = self.stream.shutdown().await;
        let drain = async {
            let mut drained = 0usize;
            while drained < DRAIN_LIMIT {
                self.input.clear();
                match self.stream.read_buf(&mut self.input).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => drained += read,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }

    async fn fill(&mut self) -> Result<(), ReadError> {
        if self.input.is_empty() && self.input.capacity() > BUFFER_LIMIT {
            // Give back what a large literal (APPEND) made the buffer grow to.
            self.input = BytesMut::with_capacity(BUFFER_KEPT);
        }
        if let Some(deflate) = &mut self.deflate {
            return fill_compressed(&mut self.stream, deflate, &mut self.input, &self.traffic)
                .await;
        }
        if self.input.capacity() - self.input.len() < 1024 {
            self.input.reserve(8192);
        }
        let read = self.stream.read_buf(&mut self.input).await?;
        if read == 0 {
            return Err(ReadError::Closed);
        }
        if let Some(traffic) = &self.traffic {
            traffic.received.inc_by(read as u64);
        }
        Ok(())
    }

    async fn read_line(&mut self) -> Result<Line, ReadError> {
        let mut scanned = 0;
        loop {
            if let Some(offset) = self.input[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + offset;
                let mut line = self.input.split_to(end + 1).to_vec();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Line::Complete(line));
            }
            scanned = self.input.len();
            if scanned > self.max_line {
                return self.skip_rest_of_line().await;
            }
            self.fill().await?;
        }
    }

    /// Drops input until the end of an over-long line, keeping only its head.
    async fn skip_rest_of_line(&mut self) -> Result<Line, ReadError> {
        let head = self.input[..HEAD.min(self.input.len())].to_vec();
        self.input.clear();
        loop {
            self.fill().await?;
            if let Some(offset) = self.input.iter().position(|&b| b == b'\n') {
                self.input.advance(offset + 1);
                return Ok(Line::TooLong(head));
            }
            self.input.clear();
        }
    }

    /// Reads a single line (an AUTHENTICATE response, IDLE's DONE).
    /// `None` when it was too long.
    pub async fn read_plain_line(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        match self.read_line().await? {
            Line::Complete(line) => Ok(Some(line)),
            Line::TooLong(_) => Ok(None),
        }
    }

    async fn read_exact_into(
        &mut self,
        target: &mut Vec<u8>,
        mut length: usize,
    ) -> Result<(), ReadError> {
        loop {
            let available = self.input.len().min(length);
            target.extend_from_slice(&self.input[..available]);
            self.input.advance(available);
            length -= available;
            if length == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    async fn skip_exact(&mut self, mut length: u64) -> Result<(), ReadError> {
        loop {
            let available = (self.input.len() as u64).min(length) as usize;
            self.input.advance(available);
            length -= available as u64;
            if length == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Reads the next complete command. Synchronizing literals are asked for
    /// with a continuation request once their size has been checked, so an
    /// oversized literal is refused before any of it is sent.
    pub async fn read_frame(&mut self) -> Result<Frame, ReadError> {
        let mut command = Vec::new();
        loop {
            let line = match self.read_line().await? {
                Line::Complete(line) => line,
                Line::TooLong(head) => {
                    let start = if command.is_empty() { &head } else { &command };
                    return Ok(Frame::Refused {
                        tag: recover_tag(start),
                        problem: Problem::LineTooLong,
                    });
                }
            };
            command.extend_from_slice(&line);
            command.extend_from_slice(b"\r\n");
            let Some(literal) = literal_announcement(&line) else {
                return Ok(Frame::Command(command));
            };
            let append = self.message_literals && is_append(&command);
            let limit = if append {
                self.max_message_size
            } else {
                self.max_literal
            };
            if literal.length > u64::from(limit)
                || command.len() as u64 + literal.length > u64::from(limit) + self.max_line as u64
            {
                let tag = recover_tag(&command);
                let problem = Problem::LiteralTooBig { append, limit };
                if literal.synchronizing {
                    // The client waits for our go-ahead, which never comes: the
                    // command ends here and the next line is a new command.
                    return Ok(Frame::Refused { tag, problem });
                }
                self.skip_non_synchronizing(literal.length).await?;
                return Ok(Frame::Refused { tag, problem });
            }
            if literal.synchronizing {
                self.write(b"+ Ready for literal data\r\n");
                self.flush().await?;
            }
            self.read_exact_into(&mut command, literal.length as usize)
                .await?;
        }
    }

    /// The client sends a LITERAL+ literal without waiting, so the bytes are
    /// coming either way: skip them, and the rest of the command, to stay in
    /// step. Past a hard bound the connection is not worth keeping.
    async fn skip_non_synchronizing(&mut self, length: u64) -> Result<(), ReadError> {
        // Before login nothing large is ever expected: no skipping 100 MB
        // for a stranger.
        let hard_limit = if self.message_literals {
            u64::from(self.max_message_size) * 2
        } else {
            u64::from(self.max_literal) + self.max_line as u64
        };
        if length > hard_limit {
            return Err(ReadError::Flood);
        }
        self.skip_exact(length).await?;
        loop {
            let Line::Complete(line) = self.read_line().await? else {
                return Ok(());
            };
            match literal_announcement(&line) {
                Some(next) if next.length <= hard_limit => {
                    if next.synchronizing {
                        // We will not ask for it; the client gives up on the command.
                        return Ok(());
                    }
                    self.skip_exact(next.length).await?;
                }
                Some(_) => return Err(ReadError::Flood),
                None => return Ok(()),
            }
        }
    }
}

/// Parts of a long answer go straight out, behind what is already queued.
#[async_trait::async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Sink for Connection<S> {
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush_queued(false).await?;
        self.send_within_deadline(bytes, false).await
    }
}

/// Reads compressed bytes until some inflate into `input`.
async fn fill_compressed<S: AsyncRead + Unpin>(
    stream: &mut S,
    deflate: &mut Deflate,
    input: &mut BytesMut,
    traffic: &Option<Traffic>,
) -> Result<(), ReadError> {
    loop {
        if deflate.inflate(input)? > 0 {
            return Ok(());
        }
        let received = deflate.received_mut();
        if received.capacity() - received.len() < 1024 {
            received.reserve(8192);
        }
        let read = stream.read_buf(received).await?;
        if read == 0 {
            return Err(ReadError::Closed);
        }
        if let Some(traffic) = traffic {
            traffic.received.inc_by(read as u64);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Literal {
    length: u64,
    synchronizing: bool,
}

/// `{123}` or `{123+}` at the end of a line.
fn literal_announcement(line: &[u8]) -> Option<Literal> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let synchronizing = match digits.strip_suffix(b"+") {
        Some(rest) => {
            digits = rest;
            false
        }
        None => true,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(Literal {
        length,
        synchronizing,
    })
}

/// Whether the command being read is APPEND (which takes a message-sized literal).
fn is_append(command: &[u8]) -> bool {
    let mut words = command.split(|&b| b == b' ');
    words.next();
    words
        .next()
        .is_some_and(|name| name.eq_ignore_ascii_case(b"APPEND"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_announcements() {
        assert_eq!(
            literal_announcement(b"a LOGIN {5}"),
            Some(Literal {
                length: 5,
                synchronizing: true
            })
        );
        assert_eq!(
            literal_announcement(b"a APPEND x {42+}"),
            Some(Literal {
                length: 42,
                synchronizing: false
            })
        );
        assert_eq!(literal_announcement(b"a LOGIN {}"), None);
        assert_eq!(literal_announcement(b"a LOGIN {x}"), None);
        assert_eq!(literal_announcement(b"a NOOP"), None);
    }

    async fn frames(input: &[u8], limits: &Limits) -> (Vec<Frame>, Vec<u8>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut connection = Connection::new(server, limits);
        let (mut read_half, mut write_half) = tokio::io::split(client);
        write_half.write_all(input).await.unwrap();
        write_half.shutdown().await.unwrap();
        let mut frames = Vec::new();
        while let Ok(frame) = connection.read_frame().await {
            frames.push(frame);
        }
        drop(connection);
        let mut sent = Vec::new();
        read_half.read_to_end(&mut sent).await.unwrap();
        (frames, sent)
    }

    #[tokio::test]
    async fn pipelined_commands_with_literals_are_split() {
        let (frames, sent) = frames(
            b"a LOGIN {3}\r\nbob {2+}\r\nxy\r\nb NOOP\n",
            &Limits::default(),
        )
        .await;
        assert_eq!(
            frames,
            vec![
                Frame::Command(b"a LOGIN {3}\r\nbob {2+}\r\nxy\r\n".to_vec()),
                Frame::Command(b"b NOOP\r\n".to_vec()),
            ]
        );
        assert_eq!(sent, b"+ Ready for literal data\r\n");
    }

    #[tokio::test]
    async fn oversized_literals_are_refused_before_reading() {
        let limits = Limits {
            max_literal: 1024,
            ..Limits::default()
        };
        let (frames, sent) = frames(b"a LOGIN {5000}\r\nb NOOP\r\n", &limits).await;
        assert_eq!(
            frames,
            vec![
                Frame::Refused {
                    tag: Some("a".into()),
                    problem: Problem::LiteralTooBig {
                        append: false,
                        limit: 1024
                    }
                },
                Frame::Command(b"b NOOP\r\n".to_vec()),
            ]
        );
        assert!(sent.is_empty(), "no continuation for a refused literal");
    }

    #[tokio::test]
    async fn append_literals_are_message_sized_only_after_login() {
        let limits = Limits {
            max_literal: 1024,
            ..Limits::default()
        };
        let (frames, sent) = frames(b"a APPEND INBOX {5000}\r\n", &limits).await;
        assert_eq!(
            frames,
            vec![Frame::Refused {
                tag: Some("a".into()),
                problem: Problem::LiteralTooBig {
                    append: false,
                    limit: 1024
                }
            }]
        );
        assert!(sent.is_empty(), "no continuation before login");
    }

    #[tokio::test]
    async fn oversized_non_synchronizing_literals_are_skipped() {
        let limits = Limits {
            max_literal: 1024,
            ..Limits::default()
        };
        let mut input = b"a LOGIN {2000+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 2000));
        input.extend_from_slice(b" pw\r\nb NOOP\r\n");
        let (frames, _) = frames(&input, &limits).await;
        assert_eq!(frames.len(), 2);
        assert!(matches!(frames[0], Frame::Refused { .. }));
        assert_eq!(frames[1], Frame::Command(b"b NOOP\r\n".to_vec()));
    }

    #[tokio::test]
    async fn over_long_lines_are_refused_and_skipped() {
        let limits = Limits {
            max_line: 1024,
            ..Limits::default()
        };
        let mut input = b"t1 NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"\r\nt2 NOOP\r\n");
        let (frames, _) = frames(&input, &limits).await;
        assert_eq!(
            frames,
            vec![
                Frame::Refused {
                    tag: Some("t1".into()),
                    problem: Problem::LineTooLong
                },
                Frame::Command(b"t2 NOOP\r\n".to_vec()),
            ]
        );
    }
}
