//! The mutual-TLS client to neighbour KMEs: one place that builds their URLs (from the
//! link's port and the [`super::routes`] table), posts to them, and reads the `message`
//! of their error bodies. A link task is given its [`Neighbour`]; the relay picks one from
//! [`Neighbours`]. Imports only the config and the route table.

use super::config::LinkConfig;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The client to every neighbour KME (this KME's certificate).
#[derive(Clone)]
pub struct Neighbours {
    client: reqwest::Client,
    /// The API port of each link's peer.
    ports: Arc<BTreeMap<String, u16>>,
}

impl Neighbours {
    /// The neighbours of `links`, reached with `client`.
    pub fn new(client: reqwest::Client, links: &[LinkConfig]) -> Self {
        let ports = links
            .iter()
            .map(|l| (l.peer.clone(), l.addr.port()))
            .collect();
        Self {
            client,
            ports: Arc::new(ports),
        }
    }

    /// The neighbour `peer` (port 0, so any call fails, if no link leads there).
    pub fn to(&self, peer: &str) -> Neighbour {
        Neighbour {
            client: self.client.clone(),
            peer: peer.to_string(),
            port: self.ports.get(peer).copied().unwrap_or(0),
        }
    }
}

/// One neighbour KME: its ID (the name its certificate and the client's resolver know)
/// and API port.
#[derive(Clone)]
pub struct Neighbour {
    client: reqwest::Client,
    peer: String,
    port: u16,
}

impl Neighbour {
    /// The neighbour's KME ID.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The URL of `route` (a [`super::routes`] path) at this neighbour.
    pub fn url(&self, route: &str) -> String {
        format!("https://{}:{}{route}", self.peer, self.port)
    }

    /// A POST of `route` at this neighbour, to be given its body and sent.
    pub fn post(&self, route: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(route))
    }
}

/// The `message` of a neighbour's JSON error body, if it has one.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["message"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_error_bodies() {
        let link = LinkConfig {
            peer: "kme-b".into(),
            addr: "127.0.0.1:8443".parse().unwrap(),
            role: crate::kme::config::LinkRole::Leader,
            source: crate::kme::config::SourceKind::Random,
            rate_bits_per_second: 1000,
            pool_max_bits: 8000,
            cvqkd: None,
        };
        let n = Neighbours::new(reqwest::Client::new(), &[link]);
        let b = n.to("kme-b");
        assert_eq!(
            b.url(crate::kme::routes::RELAY),
            "https://kme-b:8443/kme/v1/relay"
        );
        assert_eq!(n.to("x").url("/p"), "https://x:0/p");
        assert_eq!(error_message(br#"{"message":"m"}"#).as_deref(), Some("m"));
        assert_eq!(error_message(b"<html>"), None);
    }
}
