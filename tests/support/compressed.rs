//! The client side of COMPRESS=DEFLATE (RFC 4978) for tests: raw DEFLATE
//! both ways over any stream, plain or TLS, with the bytes that crossed
//! the wire counted.

use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Compressed<S> {
    stream: S,
    compress: Compress,
    decompress: Decompress,
    /// Inflated and not read yet.
    plain: Vec<u8>,
    /// Compressed bytes received in all.
    pub wire_bytes: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Compressed<S> {
    /// Starts compressing on a stream whose COMPRESS was just answered OK.
    pub fn new(stream: S) -> Compressed<S> {
        Compressed {
            stream,
            compress: Compress::new(Compression::default(), false),
            decompress: Decompress::new(false),
            plain: Vec::new(),
            wire_bytes: 0,
        }
    }

    /// Sends bytes compressed, flushed so the server can read them now.
    pub async fn send(&mut self, bytes: &[u8]) {
        let compressed = self.deflate(bytes);
        self.send_raw(&compressed).await;
    }

    /// Sends bytes as they are (to send the server garbage).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
        self.stream.flush().await.expect("flush");
    }

    pub fn deflate(&mut self, bytes: &[u8]) -> Vec<u8> {
        // Room for incompressible input and the flush: all goes in at once.
        let mut out = Vec::with_capacity(bytes.len() * 2 + 1024);
        let before = self.compress.total_in();
        self.compress
            .compress_vec(bytes, &mut out, FlushCompress::Sync)
            .expect("compress");
        assert_eq!((self.compress.total_in() - before) as usize, bytes.len());
        out
    }

    /// One line, CRLF removed; None when the server closed the connection.
    pub async fn try_line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.plain.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.plain.drain(..end + 2).collect();
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            if !self.receive().await {
                return None;
            }
        }
    }

    pub async fn line(&mut self) -> String {
        self.try_line()
            .await
            .expect("the server closed the connection")
    }

    /// Exactly `length` bytes (a literal's).
    pub async fn bytes(&mut self, length: usize) -> Vec<u8> {
        while self.plain.len() < length {
            assert!(self.receive().await, "the server closed the connection");
        }
        self.plain.drain(..length).collect()
    }

    /// Reads and inflates more; false at the end of the stream.
    async fn receive(&mut self) -> bool {
        let mut buffer = vec![0u8; 16 * 1024];
        let read = tokio::time::timeout(ANSWER_TIMEOUT, self.stream.read(&mut buffer))
            .await
            .expect("the server did not answer in time")
            .unwrap_or(0);
        if read == 0 {
            return false;
        }
        self.wire_bytes += read;
        let mut input = &buffer[..read];
        while !input.is_empty() {
            let (before_in, before_out) = (self.decompress.total_in(), self.decompress.total_out());
            self.plain.reserve(64 * 1024);
            self.decompress
                .decompress_vec(input, &mut self.plain, FlushDecompress::Sync)
                .expect("the server's stream inflates");
            input = &input[(self.decompress.total_in() - before_in) as usize..];
            if self.decompress.total_out() == before_out && self.decompress.total_in() == before_in
            {
                break;
            }
        }
        true
    }

    /// Sends a command and reads up to its tagged line.
    pub async fn run(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.until_tagged(tag).await
    }

    pub async fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let prefix = format!("{tag} ");
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(&prefix);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }
}
