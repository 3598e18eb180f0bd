//! Building server responses (RFC 3501 7). Responses are written into a
//! buffer that the connection flushes; nothing here does I/O of its own. A
//! long answer (FETCH of many large bodies) is handed to the connection in
//! chunks while it is being built, through the `Sink` the connection lends,
//! so that its memory is one chunk and one message, not the whole answer.
//!
//! The response grammar we emit is small, so it is written directly rather
//! than through imap-types' response tree: that keeps FETCH bodies streaming
//! from stored bytes without intermediate copies, and keeps every string we
//! emit on one code path, `mime::imap_string`, that decides between quoted
//! string, literal and encoded words.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        }
    }
}

/// Response codes (RFC 3501 7.1, RFC 5530, RFC 4315, RFC 7889).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Alert,
    Parse,
    ReadOnly,
    ReadWrite,
    TryCreate,
    Capability(String),
    UidNext(u32),
    UidValidity(u32),
    Unseen(u32),
    PermanentFlags(String),
    // RFC 5530
    Unavailable,
    AuthenticationFailed,
    AuthorizationFailed,
    Expired,
    PrivacyRequired,
    ContactAdmin,
    NoPerm,
    InUse,
    Corruption,
    ServerBug,
    ClientBug,
    Cannot,
    Limit,
    AlreadyExists,
    NonExistent,
    HasChildren,
    // RFC 7889
    TooBig,
    // RFC 4315
    AppendUid {
        uidvalidity: u32,
        uid: u32,
    },
    CopyUid {
        uidvalidity: u32,
        source: String,
        destination: String,
    },
    /// The charsets SEARCH accepts (RFC 3501 7.1).
    BadCharset(&'static str),
    // RFC 7162
    HighestModSeq(u64),
    /// The messages an UNCHANGEDSINCE test kept from changing.
    Modified(String),
    /// A SELECT ended the previous selection (QRESYNC enabled).
    Closed,
    /// RFC 4978: COMPRESS when it is on already.
    CompressionActive,
}

impl Code {
    fn write(&self, out: &mut String) {
        let text = match self {
            Code::Alert => "ALERT",
            Code::Parse => "PARSE",
            Code::ReadOnly => "READ-ONLY",
            Code::ReadWrite => "READ-WRITE",
            Code::TryCreate => "TRYCREATE",
            Code::Capability(list) => {
                let _ = write!(out, "CAPABILITY {list}");
                return;
            }
            Code::UidNext(n) => {
                let _ = write!(out, "UIDNEXT {n}");
                return;
            }
            Code::UidValidity(n) => {
                let _ = write!(out, "UIDVALIDITY {n}");
                return;
            }
            Code::Unseen(n) => {
                let _ = write!(out, "UNSEEN {n}");
                return;
            }
            Code::PermanentFlags(flags) => {
                let _ = write!(out, "PERMANENTFLAGS ({flags})");
                return;
            }
            Code::Unavailable => "UNAVAILABLE",
            Code::AuthenticationFailed => "AUTHENTICATIONFAILED",
            Code::AuthorizationFailed => "AUTHORIZATIONFAILED",
            Code::Expired => "EXPIRED",
            Code::PrivacyRequired => "PRIVACYREQUIRED",
            Code::ContactAdmin => "CONTACTADMIN",
            Code::NoPerm => "NOPERM",
            Code::InUse => "INUSE",
            Code::Corruption => "CORRUPTION",
            Code::ServerBug => "SERVERBUG",
            Code::ClientBug => "CLIENTBUG",
            Code::Cannot => "CANNOT",
            Code::Limit => "LIMIT",
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::NonExistent => "NONEXISTENT",
            Code::HasChildren => "HASCHILDREN",
            Code::TooBig => "TOOBIG",
            Code::AppendUid { uidvalidity, uid } => {
                let _ = write!(out, "APPENDUID {uidvalidity} {uid}");
                return;
            }
            Code::CopyUid {
                uidvalidity,
                source,
                destination,
            } => {
                let _ = write!(out, "COPYUID {uidvalidity} {source} {destination}");
                return;
            }
            Code::BadCharset(list) => {
                let _ = write!(out, "BADCHARSET ({list})");
                return;
            }
            Code::HighestModSeq(n) => {
                let _ = write!(out, "HIGHESTMODSEQ {n}");
                return;
            }
            Code::Modified(set) => {
                let _ = write!(out, "MODIFIED {set}");
                return;
            }
            Code::Closed => "CLOSED",
            Code::CompressionActive => "COMPRESSIONACTIVE",
        };
        out.push_str(text);
    }
}

/// Where a long answer goes while it is still being built: the connection.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Sends the bytes, or fails (the peer is gone or stopped reading).
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

/// Past this much, a streaming `Out` hands what it holds to its sink.
pub const STREAM_CHUNK: usize = 256 * 1024;

/// Responses waiting to be sent.
#[derive(Default)]
pub struct Out<'s> {
    buf: Vec<u8>,
    sink: Option<&'s mut dyn Sink>,
    /// A send to the sink failed: the connection is gone.
    broken: bool,
}

impl std::fmt::Debug for Out<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out")
            .field("buffered", &self.buf.len())
            .field("streaming", &self.sink.is_some())
            .field("broken", &self.broken)
            .finish()
    }
}

impl Out<'static> {
    pub fn new() -> Out<'static> {
        Out::default()
    }
}

impl<'s> Out<'s> {
    /// An answer that may be sent in chunks while it is built.
    pub fn streaming(sink: &'s mut dyn Sink) -> Out<'s> {
        Out {
            buf: Vec::new(),
            sink: Some(sink),
            broken: false,
        }
    }

    /// Whether sending part of the answer failed; the connection must close.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// What is still buffered, and whether the connection broke.
    pub fn finish(self) -> (Vec<u8>, bool) {
        (self.buf, self.broken)
    }

    /// Adds bytes to the answer; a chunk's worth or more goes straight to the
    /// sink, behind what is buffered, without being copied into the buffer.
    pub async fn extend_large(&mut self, bytes: &[u8]) -> Result<(), super::outcome::Failure> {
        if bytes.len() < STREAM_CHUNK || self.sink.is_none() {
            self.buf.extend_from_slice(bytes);
            return Ok(());
        }
        self.send(bytes).await
    }

    /// Sends what is buffered, then `bytes`.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), super::outcome::Failure> {
        let Some(sink) = self.sink.as_mut() else {
            self.buf.extend_from_slice(bytes);
            return Ok(());
        };
        let mut sent = sink.send(&self.buf).await;
        if sent.is_ok() && !bytes.is_empty() {
            sent = sink.send(bytes).await;
        }
        self.buf.clear();
        if sent.is_err() {
            self.broken = true;
            self.buf = Vec::new();
            return Err(super::outcome::Failure::connection_lost());
        }
        Ok(())
    }

    /// Hands the buffered bytes to the sink once they are a chunk's worth.
    /// Without a sink (tests, benchmarks) everything stays buffered.
    pub async fn send_if_full(&mut self) -> Result<(), super::outcome::Failure> {
        if self.buf.len() < STREAM_CHUNK || self.sink.is_none() {
            return Ok(());
        }
        self.send(&[]).await
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Empties the buffer, and gives back memory a large answer took.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.shrink_to(4096);
    }

    /// A status response: `tag` is `None` for an untagged one.
    pub fn status(&mut self, tag: Option<&str>, status: Status, code: Option<&Code>, text: &str) {
        let mut line = String::with_capacity(32 + text.len());
        line.push_str(tag.unwrap_or("*"));
        line.push(' ');
        line.push_str(status.as_str());
        line.push(' ');
        if let Some(code) = code {
            line.push('[');
            code.write(&mut line);
            line.push_str("] ");
        }
        line.push_str(&sanitize_text(text));
        line.push_str("\r\n");
        self.buf.extend_from_slice(line.as_bytes());
    }

    pub fn tagged(&mut self, tag: &str, status: Status, code: Option<&Code>, text: &str) {
        self.status(Some(tag), status, code, text);
    }

    /// `* BYE text`; the text is never empty (Outlook fails on an empty one).
    pub fn bye(&mut self, text: &str) {
        let text = if text.trim().is_empty() {
            "Closing connection"
        } else {
            text
        };
        self.buf.extend_from_slice(b"* BYE ");
        self.buf.extend_from_slice(sanitize_text(text).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `* BYE [code] text`.
    pub fn bye_with(&mut self, code: &Code, text: &str) {
        let mut line = String::from("* BYE [");
        code.write(&mut line);
        line.push_str("] ");
        line.push_str(&sanitize_text(text));
        line.push_str("\r\n");
        self.buf.extend_from_slice(line.as_bytes());
    }

    /// Raw bytes of a response being assembled (a FETCH with literals).
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer itself, for a response written in place.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// An untagged data line: `* ` + `data` + CRLF. `data` must already be
    /// valid response syntax (built with the helpers below).
    pub fn untagged(&mut self, data: &str) {
        self.buf.extend_from_slice(b"* ");
        self.buf.extend_from_slice(data.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A command continuation request; an empty `text` is an empty SASL challenge.
    pub fn continuation(&mut self, text: &str) {
        self.buf.extend_from_slice(b"+ ");
        if !text.is_empty() {
            self.buf.extend_from_slice(sanitize_text(text).as_bytes());
        }
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// Human-readable text must be one line of TEXT-CHARs.
fn sanitize_text(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c == '\r' || c == '\n' || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    if cleaned.trim().is_empty() {
        "Done".into()
    } else {
        cleaned
    }
}

/// An IMAP `string` (quoted when it can be, else a literal; never an 8-bit
/// byte), written by the one encoder every answer uses.
pub fn quoted(value: &str) -> String {
    crate::mime::imap_string::string(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_responses_carry_codes_and_one_line_of_text() {
        let mut out = Out::new();
        out.tagged(
            "a1",
            Status::No,
            Some(&Code::AuthenticationFailed),
            "Invalid\r\nIMAP token",
        );
        assert_eq!(
            out.bytes(),
            b"a1 NO [AUTHENTICATIONFAILED] Invalid  IMAP token\r\n"
        );
    }

    #[test]
    fn bye_is_never_empty() {
        let mut out = Out::new();
        out.bye("");
        assert_eq!(out.bytes(), b"* BYE Closing connection\r\n");
    }

    #[test]
    fn strings_are_quoted_or_literal() {
        assert_eq!(quoted(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        // Never an 8-bit byte, never a NUL.
        assert_eq!(quoted("ü"), "\"=?UTF-8?B?w7w=?=\"");
        assert_eq!(quoted("a\0b"), "\"a\"");
    }
}
