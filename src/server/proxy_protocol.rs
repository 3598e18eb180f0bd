//! The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer in front
//! tells us who its client is, in a header before the first IMAP or TLS byte.
//!
//! Only connections from `PROXY_PROTOCOL_FROM` are asked for a header, and
//! they must send one: anyone else could otherwise claim any address and
//! escape the per-address caps, the login penalty and the loopback rule. From
//! every other address nothing is read ahead: a header there is just bytes,
//! a bad command or a bad TLS hello.
//!
//! The header is read exactly, never past its end, so the bytes behind it
//! (an IMAPS client's ClientHello, sent at once) stay in the socket for the
//! layer above. Reading is bounded in time and size: v1 is one line of at most
//! 107 bytes, v2 a 16-byte header and at most `MAX_V2_PAYLOAD` bytes.
//! Parsing is the `ppp` crate's.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use ppp::v1;
use ppp::v2;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature, the first 12 of its 16 fixed bytes.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;
/// Addresses (at most 216 bytes, for unix sockets) and TLVs. HAProxy sends a
/// few dozen bytes of TLVs at most for what we ask of it; 1 KiB leaves room
/// for SSL details without letting a sender make us buffer 64 KiB.
const MAX_V2_PAYLOAD: usize = 1024;
/// The v1 line, CRLF included (the protocol's own bound).
const MAX_V1_LINE: usize = 107;
/// Both versions are longer than this; read it at once, then decide.
const PROBE: usize = 8;
/// How long a trusted proxy may take to send its header: it writes it in its
/// first packet, so anything slow is not a working proxy.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Which peers must speak the PROXY protocol (`PROXY_PROTOCOL_FROM`).
#[derive(Debug, Clone)]
pub struct ProxyProtocol {
    trusted: Vec<IpNet>,
    /// How long the header may take to arrive.
    pub header_timeout: Duration,
}

impl ProxyProtocol {
    pub fn new(trusted: Vec<IpNet>) -> ProxyProtocol {
        ProxyProtocol {
            trusted,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }

    /// Whether a connection from `peer` must start with a header. An IPv4
    /// proxy reaching a dual-stack listener appears as `::ffff:a.b.c.d`.
    pub fn expects_header_from(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|net| net.contains(&peer))
    }
}

/// Why a trusted peer's connection is closed before the first IMAP byte.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("no PROXY header within {0:?}")]
    TimedOut(Duration),
    #[error("closed before the PROXY header ended")]
    Closed,
    #[error("not a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY v1 header: {0}")]
    V1(String),
    #[error("malformed PROXY v2 header: {0}")]
    V2(String),
    #[error("PROXY v2 header of {0} bytes is over the limit of {MAX_V2_PAYLOAD}")]
    TooLong(usize),
    #[error("PROXY v1 line longer than {MAX_V1_LINE} bytes")]
    LineTooLong,
    #[error("reading the PROXY header: {0}")]
    Io(std::io::Error),
}

/// Reads the header and returns the client's address: the one it names, or
/// `socket` itself for a proxy speaking for itself (v2 `LOCAL`, v1
/// `UNKNOWN`: its health checks) or for a non-IP client (a unix socket).
pub async fn read_client_address<S: AsyncRead + Unpin>(
    stream: &mut S,
    socket: SocketAddr,
    timeout: Duration,
) -> Result<SocketAddr, HeaderError> {
    let header = tokio::time::timeout(timeout, read_header(stream))
        .await
        .map_err(|_| HeaderError::TimedOut(timeout))??;
    Ok(header.unwrap_or(socket))
}

/// The address a well-formed header names, if it names one.
async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, HeaderError> {
    let mut bytes = vec![0u8; PROBE];
    read_exact(stream, &mut bytes).await?;
    if bytes.starts_with(&V2_SIGNATURE[..PROBE]) {
        read_v2(stream, bytes).await
    } else if bytes.starts_with(b"PROXY ") {
        read_v1(stream, bytes).await
    } else {
        Err(HeaderError::Missing)
    }
}

async fn read_v2<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut bytes: Vec<u8>,
) -> Result<Option<SocketAddr>, HeaderError> {
    bytes.resize(V2_FIXED, 0);
    read_exact(stream, &mut bytes[PROBE..]).await?;
    if &bytes[..V2_SIGNATURE.len()] != V2_SIGNATURE {
        return Err(HeaderError::Missing);
    }
    let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if length > MAX_V2_PAYLOAD {
        return Err(HeaderError::TooLong(length));
    }
    bytes.resize(V2_FIXED + length, 0);
    read_exact(stream, &mut bytes[V2_FIXED..]).await?;
    let header =
        v2::Header::try_from(bytes.as_slice()).map_err(|e| HeaderError::V2(e.to_string()))?;
    if header.command == v2::Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v2::Addresses::IPv6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        // The protocol says: use the connection's own addresses.
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
    })
}

/// The line, one byte at a time after the probe: at most 99 small reads,
/// once per connection, and never a byte past the CRLF.
async fn read_v1<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut bytes: Vec<u8>,
) -> Result<Option<SocketAddr>, HeaderError> {
    while !bytes.ends_with(b"\r\n") {
        if bytes.len() == MAX_V1_LINE {
            return Err(HeaderError::LineTooLong);
        }
        let mut byte = [0u8; 1];
        read_exact(stream, &mut byte).await?;
        bytes.push(byte[0]);
    }
    let header =
        v1::Header::try_from(bytes.as_slice()).map_err(|e| HeaderError::V1(e.to_string()))?;
    Ok(match header.addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v1::Addresses::Unknown => None,
    })
}

async fn read_exact<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut [u8],
) -> Result<(), HeaderError> {
    match stream.read_exact(buffer).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(HeaderError::Closed),
        Err(e) => Err(HeaderError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKET: &str = "127.0.0.1:40000";

    async fn parse(bytes: &[u8]) -> Result<SocketAddr, HeaderError> {
        let mut input = bytes;
        read_client_address(&mut input, SOCKET.parse().unwrap(), Duration::from_secs(1)).await
    }

    fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.push(0x20 | command);
        bytes.push(family);
        bytes.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    #[tokio::test]
    async fn v1_names_the_client_and_stops_at_its_line_end() {
        let mut input: &[u8] = b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 143\r\nA1 NOOP\r\n";
        let address =
            read_client_address(&mut input, SOCKET.parse().unwrap(), Duration::from_secs(1))
                .await
                .unwrap();
        assert_eq!(address, "192.0.2.7:51000".parse().unwrap());
        assert_eq!(input, b"A1 NOOP\r\n", "nothing past the header is consumed");
        let v6 = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 51000 143\r\n").await;
        assert_eq!(v6.unwrap(), "[2001:db8::1]:51000".parse().unwrap());
    }

    #[tokio::test]
    async fn v1_unknown_keeps_the_socket_address() {
        let address = parse(b"PROXY UNKNOWN\r\n").await.unwrap();
        assert_eq!(address, SOCKET.parse().unwrap());
    }

    #[tokio::test]
    async fn v2_names_the_client_and_local_keeps_the_socket_address() {
        let mut payload = vec![192, 0, 2, 9, 10, 0, 0, 1];
        payload.extend_from_slice(&51001u16.to_be_bytes());
        payload.extend_from_slice(&143u16.to_be_bytes());
        let mut bytes = v2(1, 0x11, &payload);
        bytes.extend_from_slice(b"\x16\x03\x01");
        let mut input = bytes.as_slice();
        let address =
            read_client_address(&mut input, SOCKET.parse().unwrap(), Duration::from_secs(1))
                .await
                .unwrap();
        assert_eq!(address, "192.0.2.9:51001".parse().unwrap());
        assert_eq!(input, b"\x16\x03\x01", "the TLS hello behind it is left");
        let local = parse(&v2(0, 0x00, &[])).await.unwrap();
        assert_eq!(local, SOCKET.parse().unwrap());
    }

    #[tokio::test]
    async fn bad_headers_are_refused_with_their_reason() {
        assert!(matches!(
            parse(b"A1 LOGIN x y\r\n").await,
            Err(HeaderError::Missing)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 nonsense\r\n").await,
            Err(HeaderError::V1(_))
        ));
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(matches!(parse(&long).await, Err(HeaderError::LineTooLong)));
        assert!(matches!(
            parse(b"PROXY TCP4").await,
            Err(HeaderError::Closed)
        ));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(
            parse(&huge).await,
            Err(HeaderError::TooLong(65535))
        ));
        // IPv4 family with too few address bytes.
        assert!(matches!(
            parse(&v2(1, 0x11, &[1, 2, 3])).await,
            Err(HeaderError::V2(_))
        ));
    }

    #[test]
    fn listed_networks_match_and_so_do_their_mapped_ipv4_forms() {
        let networks = ["10.0.0.0/8", "127.0.0.1/32", "::1/128"];
        let trusted = ProxyProtocol::new(networks.iter().map(|n| n.parse().unwrap()).collect());
        assert!(trusted.expects_header_from("10.1.2.3".parse().unwrap()));
        assert!(trusted.expects_header_from("::ffff:10.1.2.3".parse().unwrap()));
        assert!(trusted.expects_header_from("127.0.0.1".parse().unwrap()));
        assert!(!trusted.expects_header_from("127.0.0.2".parse().unwrap()));
        assert!(trusted.expects_header_from("::1".parse().unwrap()));
    }
}
