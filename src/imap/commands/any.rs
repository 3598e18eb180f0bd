//! Commands valid in any state: CAPABILITY, NOOP, LOGOUT, ID (RFC 2971), and
//! the authenticated-state informational ones, ENABLE (RFC 5161) and
//! NAMESPACE (RFC 2342), and COMPRESS (RFC 4978), which the connection
//! carries out once its OK is sent.

use std::net::SocketAddr;

use imap_types::core::{IString, NString, Vec1};
use imap_types::extensions::compress::CompressionAlgorithm;
use imap_types::extensions::enable::CapabilityEnable;

use crate::imap::outcome::{Done, Failure, Outcome};
use crate::imap::response::{Code, Out, quoted};
use crate::logsafe::Escaped;

pub fn capability(list: &str, out: &mut Out<'_>) -> Outcome {
    out.untagged(&format!("CAPABILITY {list}"));
    Ok(Done::ok("CAPABILITY completed"))
}

/// COMPRESS DEFLATE, once per connection.
pub fn compress(algorithm: &CompressionAlgorithm, active: bool) -> Outcome {
    if active {
        return Err(Failure::no(
            Code::CompressionActive,
            "Compression is already on",
        ));
    }
    match algorithm {
        CompressionAlgorithm::Deflate => Ok(Done::ok("DEFLATE active")),
        _ => Err(Failure::no(Code::Cannot, "Only DEFLATE is supported")),
    }
}

pub fn noop() -> Outcome {
    Ok(Done::ok("NOOP completed"))
}

pub fn logout() -> Outcome {
    Ok(Done::ok("LOGOUT completed"))
}

pub fn id(
    parameters: Option<Vec<(IString<'_>, NString<'_>)>>,
    peer: &SocketAddr,
    out: &mut Out<'_>,
) -> Outcome {
    if let Some(parameters) = parameters {
        let described: Vec<String> = parameters
            .iter()
            .map(|(key, value)| {
                let value = value
                    .0
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
                    .unwrap_or_else(|| "NIL".into());
                format!("{}={value}", String::from_utf8_lossy(key.as_ref()))
            })
            .collect();
        let client = described.join(" ");
        tracing::debug!(peer = %peer, client = %Escaped(&client), "client identified itself");
    }
    out.untagged(&format!(
        "ID ({} {} {} {})",
        quoted("name"),
        quoted("imap-server"),
        quoted("version"),
        quoted(env!("CARGO_PKG_VERSION"))
    ));
    Ok(Done::ok("ID completed"))
}

/// What ENABLE can turn on (RFC 5161), once per session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Enabled {
    pub condstore: bool,
    pub qresync: bool,
}

/// ENABLE (RFC 5161): CONDSTORE and QRESYNC (which implies CONDSTORE, RFC
/// 7162 3.2.3). The ENABLED answer lists what this command enabled;
/// unknown capabilities are ignored (RFC 5161 3.1).
pub fn enable(
    requested: &Vec1<CapabilityEnable<'_>>,
    enabled: &mut Enabled,
    out: &mut Out<'_>,
) -> Outcome {
    let mut answer = String::from("ENABLED");
    for capability in requested.as_ref() {
        match capability {
            CapabilityEnable::CondStore if !enabled.condstore => {
                enabled.condstore = true;
                answer.push_str(" CONDSTORE");
            }
            // imap-types knows no QRESYNC variant: it is an `Other` atom.
            CapabilityEnable::Other(_)
                if capability.to_string().eq_ignore_ascii_case("QRESYNC") && !enabled.qresync =>
            {
                enabled.qresync = true;
                enabled.condstore = true;
                answer.push_str(" QRESYNC");
            }
            _ => {}
        }
    }
    out.untagged(&answer);
    Ok(Done::ok("ENABLE completed"))
}

/// One personal namespace with no prefix and `/` as delimiter; no shared or
/// other-users namespaces, since nobody sees anybody else's mail.
pub fn namespace(out: &mut Out<'_>) -> Outcome {
    out.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
    Ok(Done::ok("NAMESPACE completed"))
}
