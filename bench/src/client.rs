//! A minimal IMAP client: enough to log in, run a command and read its
//! whole answer, literals included, and to sit in IDLE.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// No single answer may take longer than this: a stuck server fails the run
/// instead of hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_tag: u32,
}

/// A user both servers know, with the same password (our IMAP token).
#[derive(Debug, Clone)]
pub struct Account {
    pub user: String,
    pub password: String,
}

impl Client {
    /// Connects and reads the greeting.
    pub async fn connect(server: SocketAddr) -> Result<Client> {
        anyhow::ensure!(
            server.ip().is_loopback(),
            "the load generator talks only to loopback"
        );
        let stream = TcpStream::connect(server)
            .await
            .with_context(|| format!("connect to {server}"))?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        let mut client = Client {
            reader: BufReader::with_capacity(64 * 1024, read),
            writer,
            next_tag: 1,
        };
        let greeting = client.line().await?;
        if !greeting.starts_with(b"* OK") {
            bail!("greeting: {}", String::from_utf8_lossy(&greeting));
        }
        Ok(client)
    }

    pub async fn login(server: SocketAddr, account: &Account) -> Result<Client> {
        let mut client = Client::connect(server).await?;
        client
            .run(&format!(
                "LOGIN {} {}",
                quoted(&account.user),
                quoted(&account.password)
            ))
            .await?;
        Ok(client)
    }

    /// Sends one command and returns everything the server answered up to and
    /// including the tagged OK; anything else than OK is an error.
    pub async fn run(&mut self, command: &str) -> Result<Vec<u8>> {
        let tag = self.send(command).await?;
        self.answer(&tag, command).await
    }

    pub async fn send(&mut self, command: &str) -> Result<String> {
        let tag = format!("b{}", self.next_tag);
        self.next_tag += 1;
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        Ok(tag)
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).await?;
        Ok(())
    }

    /// Reads until the tagged status line of `tag`.
    pub async fn answer(&mut self, tag: &str, command: &str) -> Result<Vec<u8>> {
        let mut all = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let line = self.line().await?;
            if line.starts_with(prefix.as_bytes()) {
                if !line[prefix.len()..].starts_with(b"OK") {
                    bail!("{command}: {}", String::from_utf8_lossy(&line).trim_end());
                }
                all.extend_from_slice(&line);
                return Ok(all);
            }
            all.extend_from_slice(&line);
        }
    }

    /// One logical response line: a line, plus every literal it announces and
    /// the text that follows each literal.
    pub async fn line(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let read =
                tokio::time::timeout(ANSWER_TIMEOUT, self.reader.read_until(b'\n', &mut out))
                    .await
                    .context("no answer within 60 s")??;
            if read == 0 {
                bail!("connection closed by the server");
            }
            match literal_length(&out[start..]) {
                Some(length) => {
                    let at = out.len();
                    out.resize(at + length, 0);
                    tokio::time::timeout(ANSWER_TIMEOUT, self.reader.read_exact(&mut out[at..]))
                        .await
                        .context("literal not sent within 60 s")??;
                }
                None => return Ok(out),
            }
        }
    }

    /// Enters IDLE and waits for the continuation.
    pub async fn idle(&mut self) -> Result<String> {
        let tag = self.send("IDLE").await?;
        loop {
            let line = self.line().await?;
            if line.starts_with(b"+") {
                return Ok(tag);
            }
        }
    }

    pub async fn logout(mut self) -> Result<()> {
        let tag = self.send("LOGOUT").await?;
        self.answer(&tag, "LOGOUT").await?;
        Ok(())
    }
}

/// `{123}\r\n` or `{123+}\r\n` at the end of a line.
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").or(line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&c| c == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

pub fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Every `UID n` in a FETCH answer.
pub fn uids_in(answer: &[u8]) -> Vec<u32> {
    let mut uids = Vec::new();
    let mut at = 0;
    while let Some(found) = find(&answer[at..], b"UID ") {
        let start = at + found + 4;
        let end = answer[start..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .map_or(answer.len(), |n| start + n);
        if let Some(uid) = std::str::from_utf8(&answer[start..end])
            .ok()
            .and_then(|s| s.parse().ok())
        {
            uids.push(uid);
        }
        at = end.max(start);
    }
    uids
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_recognised_at_the_end_of_a_line() {
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {42}\r\n"), Some(42));
        assert_eq!(literal_length(b"a APPEND INBOX {7+}\r\n"), Some(7));
        assert_eq!(literal_length(b"* OK {not}\r\n"), None);
        assert_eq!(literal_length(b"* 3 EXISTS\r\n"), None);
    }

    #[test]
    fn uids_are_read_from_fetch_answers() {
        let answer = b"* 1 FETCH (UID 7 FLAGS ())\r\n* 2 FETCH (FLAGS () UID 12)\r\nb3 OK done\r\n";
        assert_eq!(uids_in(answer), vec![7, 12]);
    }
}
