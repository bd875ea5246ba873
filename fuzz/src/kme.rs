//! A KME driven in-process for the `etsi014`, `kme_link_push` and `kme_relay` targets: the
//! real router (`kme::http::router`, every route and role layer) over the real state
//! (`kme::shared_state_without_server`: redb store, quotas, counters, neighbour client) on
//! a current-thread tokio runtime built once, each request sent with
//! `tower::ServiceExt::oneshot` and the caller's ID put in as the accept loop does.
//!
//! The KME is `kme-b` of a line `kme-a` — `kme-b` — `kme-c`: SAEs `sae-b` and `sae-b2`
//! here, `sae-a` behind `kme-a` (this KME follows that random-source link: `kme-a` pushes
//! key blocks to it) and `sae-c` behind `kme-c` (this KME leads that link; its neighbours
//! are `127.0.0.1:1`, where nothing listens, so a hop sent on fails at once). Each input
//! gets a fresh store.
//!
//! Every answer is checked ([`Kme::call`]): the status is one ETSI 014 allows (200, 400,
//! 401, 503; never a 500 or a 404), an error body is the spec's JSON with a message; and
//! against a model of the keys ([`KeyModel`]): keys from `enc_keys` are new IDs of the
//! size asked; `dec_keys` returns only keys made for that pair, with the same bytes, each
//! at most once; a relayed key delivered here is the masked key XOR the pad pushed by the
//! link, and no pad byte is spent twice.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use qshield::kme::tls::Caller;
use qshield::pki::{self, Entity, PkiPlan};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use tower::ServiceExt;

/// The runtime every request runs on.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
});

/// Certificates for every KME and SAE named here, made once per process.
static PKI: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let entity = |name: &str| Entity {
        name: name.into(),
        sans: vec![],
    };
    pki::init(&PkiPlan {
        out: dir.path().to_path_buf(),
        ca: "fuzz-ca".into(),
        kmes: KMES.iter().map(|n| entity(n)).collect(),
        saes: SAES.iter().map(|n| entity(n)).collect(),
    })
    .expect("pki init");
    dir
});

/// The KMEs of the line; this one is `kme-b`.
pub const KMES: [&str; 3] = ["kme-a", "kme-b", "kme-c"];
/// Every SAE: `sae-b`, `sae-b2` here, `sae-a` behind `kme-a`, `sae-c` behind `kme-c`.
pub const SAES: [&str; 4] = ["sae-a", "sae-b", "sae-b2", "sae-c"];
/// Callers a target may pick: the SAEs, the KMEs, and a stranger.
pub const CALLERS: [&str; 8] = [
    "sae-a", "sae-b", "sae-b2", "sae-c", "kme-a", "kme-b", "kme-c", "stranger",
];

/// The config of `kme-b` (paths into the PKI and `data`).
pub fn config_text(pki: &Path, data: &Path) -> String {
    format!(
        r#"
[kme]
id = "kme-b"
listen = "127.0.0.1:1"
data_dir = "{data}"
ca_file = "{pki}/ca.pem"
cert_file = "{pki}/kme-b.pem"
key_file = "{pki}/kme-b.key"
max_key_per_request = 4
max_key_count = 16

[[sae]]
id = "sae-b"

[[sae]]
id = "sae-b2"

[[remote_sae]]
id = "sae-a"
route = ["kme-a"]

[[remote_sae]]
id = "sae-c"
route = ["kme-c"]

[[link]]
peer = "kme-a"
url = "https://127.0.0.1:1"
role = "follower"
source = "random"
rate_bits_per_second = 1000

[[link]]
peer = "kme-c"
url = "https://127.0.0.1:1"
role = "leader"
source = "random"
rate_bits_per_second = 1000

[[sae_pair]]
master = "sae-b"
slave = "sae-b2"
both_ways = true

[[sae_pair]]
master = "sae-a"
slave = "sae-b"
both_ways = true

[[sae_pair]]
master = "sae-b"
slave = "sae-c"

[[sae_pair]]
master = "sae-a"
slave = "sae-c"
"#,
        data = data.display(),
        pki = pki.display()
    )
}

/// An answer.
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A key this KME made or received, as the model knows it.
struct ModelKey {
    master: String,
    slave: String,
    /// `None`: made for a remote slave (never served here), or bytes the model cannot know.
    bytes: Option<Vec<u8>>,
    delivered: bool,
}

/// What the KME must have: the keys it handed out or took in, and the link pool `kme-a`
/// filled by pushes.
#[derive(Default)]
pub struct KeyModel {
    keys: HashMap<String, ModelKey>,
    /// Blocks of the `kme-a` link as stored: the first push of a sequence number wins,
    /// numbers below the next expected, and `u64::MAX`, are ignored.
    blocks: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
    /// (seq, byte) of the `kme-a` pool spent by relays.
    spent: HashSet<(u64, usize)>,
    /// IDs the model knows, for targets to pick from.
    pub ids: Vec<String>,
    /// The pool levels are no longer known (a raw push the model could not read was taken).
    levels_unknown: bool,
}

/// The in-process KME and its model.
pub struct Kme {
    router: axum::Router,
    _data: tempfile::TempDir,
    /// The model the answers are checked against.
    pub model: KeyModel,
}

fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

impl Kme {
    /// `kme-b` with an empty store.
    pub fn new() -> Kme {
        let data = tempfile::tempdir_in(scratch_root()).expect("a scratch store directory");
        let text = config_text(PKI.path(), &data.path().join("store"));
        let cfg = qshield::kme::config::parse(&text, Path::new("kme-b.toml")).expect("config");
        let shared = RUNTIME
            .block_on(qshield::kme::shared_state_without_server(cfg))
            .expect("the KME state");
        Kme {
            router: qshield::kme::http::router(shared),
            _data: data,
            model: KeyModel::default(),
        }
    }

    /// Sends one request as `caller` and checks the answer's status and error body.
    /// `None` when `uri` is not a URI at all (no client could send it).
    pub fn call(
        &mut self,
        caller: &str,
        method: Method,
        uri: &str,
        body: Vec<u8>,
    ) -> Option<Reply> {
        // a HEAD answer carries no body (HTTP strips it): only its status is checked
        let is_head = method == Method::HEAD;
        let what = format!(
            "{method} {uri} ({} body bytes: {:?})",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .ok()?;
        req.extensions_mut().insert(Caller(caller.to_string()));
        let router = self.router.clone();
        let reply = RUNTIME.block_on(async move {
            let resp = router.oneshot(req).await.expect("the router is infallible");
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .expect("a body");
            Reply {
                status,
                body: body.to_vec(),
            }
        });
        check_status(caller, &what, &reply, is_head);
        Some(reply)
    }

    /// `enc_keys` answered `reply` to `master` for `slave` (`size_bits` asked, if known):
    /// records the keys; checks they are new and of the size.
    pub fn note_enc(&mut self, master: &str, slave: &str, size_bits: Option<u32>, reply: &Reply) {
        if reply.status != StatusCode::OK {
            return;
        }
        let keys = container_keys(reply);
        assert!(!keys.is_empty(), "enc_keys 200 with no key");
        let local = SAES[1..3].contains(&slave);
        for (id, bytes) in keys {
            if let Some(bits) = size_bits {
                assert_eq!(bytes.len() * 8, bits as usize, "key size");
            }
            let known = self.model.keys.insert(
                id.clone(),
                ModelKey {
                    master: master.into(),
                    slave: slave.into(),
                    bytes: local.then_some(bytes),
                    delivered: false,
                },
            );
            assert!(known.is_none(), "key ID {id} handed out twice");
            self.model.ids.push(id);
        }
    }

    /// `dec_keys` answered `reply` to `slave` for keys of `master` with IDs `asked`:
    /// each key returned was asked for, made for this pair, not delivered before, and has
    /// the bytes the model knows.
    pub fn note_dec(&mut self, slave: &str, master: &str, asked: &[String], reply: &Reply) {
        if reply.status != StatusCode::OK {
            return;
        }
        for (id, bytes) in container_keys(reply) {
            assert!(asked.contains(&id), "dec_keys returned {id}, not asked for");
            let k = self
                .model
                .keys
                .get_mut(&id)
                .unwrap_or_else(|| panic!("dec_keys returned {id}, which this KME never made"));
            assert_eq!(
                (k.master.as_str(), k.slave.as_str()),
                (master, slave),
                "{id}"
            );
            assert!(!k.delivered, "key {id} delivered twice");
            k.delivered = true;
            if let Some(expected) = &k.bytes {
                assert_eq!(&bytes, expected, "key {id} changed bytes");
            }
        }
    }

    /// A link push from `caller` of `blocks` was answered `reply`: only `kme-a` may push,
    /// and what it stored follows the first-push-wins rule.
    pub fn note_push(&mut self, caller: &str, blocks: &[(u64, Vec<u8>)], reply: &Reply) {
        if reply.status != StatusCode::OK {
            return;
        }
        assert_eq!(caller, "kme-a", "a link push accepted from {caller}");
        for (seq, bytes) in blocks {
            if *seq < self.model.next_seq || *seq == u64::MAX {
                continue;
            }
            self.model.blocks.insert(*seq, bytes.clone());
            self.model.next_seq = seq + 1;
        }
    }

    /// A relay from `caller` was answered `reply`: if it delivered keys here, each is its
    /// masked bytes XOR the pad the ranges name, and no pad byte was spent before. A relay
    /// refused after its route was checked (a key ID this KME holds, no pad at the next hop,
    /// the hop beyond unreachable) still costs the pad it names: its sender spent its copy,
    /// so this KME discards its own (`relay_in`); one refused before spends nothing.
    pub fn note_relay(&mut self, caller: &str, req: &RelayBody, reply: &Reply) {
        if reply.status != StatusCode::OK {
            if passes_route_check(caller, req) {
                self.model.discard(&req.pads);
            }
            return;
        }
        assert_eq!(caller, "kme-a", "a relay accepted from {caller}");
        let mut pad = Vec::new();
        let mut known = true;
        for r in &req.pads {
            assert_eq!(r.seq % 2, 0, "a relay from kme-a spent this KME's own pad");
            for i in r.offset as usize..r.offset as usize + r.len as usize {
                assert!(
                    self.model.spent.insert((r.seq, i)),
                    "pad byte {i} of block {} spent twice",
                    r.seq
                );
                match self.model.blocks.get(&r.seq).and_then(|b| b.get(i)) {
                    Some(&b) => pad.push(b),
                    None => known = false,
                }
            }
        }
        if req.route.len() != 1 {
            return;
        }
        let mut at = 0;
        for (id, masked) in &req.keys {
            let bytes = known.then(|| {
                masked
                    .iter()
                    .zip(&pad[at..])
                    .map(|(m, p)| m ^ p)
                    .collect::<Vec<u8>>()
            });
            at += masked.len();
            self.model.keys.entry(id.clone()).or_insert(ModelKey {
                master: req.master.clone(),
                slave: req.slave.clone(),
                bytes,
                delivered: false,
            });
            self.model.ids.push(id.clone());
        }
    }
}

impl Kme {
    /// The `kme-a` link's pool levels in the status document match the model: what the
    /// pushes stored, less what relays spent (this KME sends from odd blocks, which no
    /// target spends; `kme-a` sends from even ones).
    pub fn check_levels(&mut self) {
        let reply = self
            .call("kme-a", Method::GET, "/kme/v1/status", vec![])
            .expect("a URI");
        if self.model.levels_unknown {
            return;
        }
        assert_eq!(reply.status, StatusCode::OK);
        let doc = reply.json().expect("JSON");
        let links = doc["links"].as_array().expect("links");
        let link = links
            .iter()
            .find(|l| l["peer"] == "kme-a")
            .expect("the kme-a link");
        let bytes = |odd: bool| -> u64 {
            let m = &self.model;
            m.blocks
                .iter()
                .filter(|(seq, _)| *seq % 2 == u64::from(odd))
                .map(|(_, b)| b.len() as u64)
                .sum()
        };
        let spent = self.model.spent.len() as u64;
        assert_eq!(
            link["receive_pool_bits"],
            8 * (bytes(false) - spent),
            "{doc}"
        );
        assert_eq!(link["send_pool_bits"], 8 * bytes(true), "{doc}");
    }
}

/// Whether `kme-b` (configured as [`config_text`] says) takes `req` from `caller` past its
/// body and route checks (`decode_keys`, `check_route`): the body has keys as long as its pad
/// ranges, and it is a relay of `sae-a` (behind `kme-a`) from `kme-a` to `sae-b` here or on
/// to `sae-c` behind `kme-c`. A target's body never carries a share.
fn passes_route_check(caller: &str, req: &RelayBody) -> bool {
    let masked: usize = req.keys.iter().map(|(_, m)| m.len()).sum();
    let pads: usize = req.pads.iter().map(|p| p.len as usize).sum();
    let route: Vec<&str> = req.route.iter().map(String::as_str).collect();
    caller == "kme-a"
        && req.passed == ["kme-a"]
        && !req.keys.is_empty()
        && masked == pads
        && req.master == "sae-a"
        && match req.slave.as_str() {
            "sae-b" => route == ["kme-b"],
            "sae-c" => route == ["kme-b", "kme-c"],
            _ => false,
        }
}

impl KeyModel {
    /// The pad `ranges` name, of blocks `kme-a` sends from (even ones), is spent: the bytes
    /// of stored blocks the ranges cover, as `discard_ranges` clips them.
    fn discard(&mut self, ranges: &[PadRange]) {
        for r in ranges.iter().filter(|r| r.seq % 2 == 0) {
            let Some(len) = self.blocks.get(&r.seq).map(Vec::len) else {
                continue;
            };
            let start = (r.offset as usize).min(len);
            let end = start.saturating_add(r.len as usize).min(len);
            for i in start..end {
                self.spent.insert((r.seq, i));
            }
        }
    }

    /// Stops checking pool levels (the model lost track of what was stored).
    pub fn forget_levels(&mut self) {
        self.levels_unknown = true;
    }

    /// The next block the link expects.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The stored blocks of the `kme-a` link: sequence number and length.
    pub fn block_lengths(&self) -> Vec<(u64, usize)> {
        self.blocks.iter().map(|(s, b)| (*s, b.len())).collect()
    }
}

impl Default for Kme {
    fn default() -> Self {
        Kme::new()
    }
}

/// One pad range of a relay body.
#[derive(Clone, Debug)]
pub struct PadRange {
    /// Block.
    pub seq: u64,
    /// First byte.
    pub offset: u32,
    /// Bytes.
    pub len: u32,
}

/// A relay request as a target builds it.
#[derive(Clone, Debug)]
pub struct RelayBody {
    /// Master SAE.
    pub master: String,
    /// Slave SAE.
    pub slave: String,
    /// The KMEs passed, the sender last.
    pub passed: Vec<String>,
    /// The route from the receiver on.
    pub route: Vec<String>,
    /// Pad ranges.
    pub pads: Vec<PadRange>,
    /// Key IDs and masked bytes.
    pub keys: Vec<(String, Vec<u8>)>,
}

impl RelayBody {
    /// The JSON body `POST /kme/v1/relay` takes.
    pub fn to_json(&self) -> Vec<u8> {
        let pads: Vec<_> = self
            .pads
            .iter()
            .map(|p| serde_json::json!({"seq": p.seq, "offset": p.offset, "len": p.len}))
            .collect();
        let keys: Vec<_> = self
            .keys
            .iter()
            .map(|(id, m)| serde_json::json!({"key_ID": id, "masked": B64.encode(m)}))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "master": self.master, "slave": self.slave, "passed": self.passed,
            "route": self.route,
            "pads": pads, "keys": keys,
        }))
        .expect("JSON")
    }
}

/// The JSON body of a link push.
pub fn push_json(blocks: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let blocks: Vec<_> = blocks
        .iter()
        .map(|(seq, key)| serde_json::json!({"seq": seq, "key": B64.encode(key)}))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "blocks": blocks })).expect("JSON")
}

/// The keys of a 200 Key container: (ID, bytes).
fn container_keys(reply: &Reply) -> Vec<(String, Vec<u8>)> {
    let v = reply.json().expect("a 200 answer is JSON");
    let keys = v["keys"].as_array().expect("a Key container");
    keys.iter()
        .map(|k| {
            let id = k["key_ID"].as_str().expect("key_ID").to_string();
            let bytes = B64
                .decode(k["key"].as_str().expect("key"))
                .expect("base64 key");
            (id, bytes)
        })
        .collect()
}

/// Statuses and error bodies as the KME documents them.
fn check_status(caller: &str, uri: &str, reply: &Reply, head: bool) {
    let code = reply.status.as_u16();
    if head {
        assert!(matches!(code, 200 | 400 | 401 | 503), "HEAD {uri}: {code}");
        return;
    }
    let what = || {
        format!(
            "{code} to {caller} for {uri}: {}",
            String::from_utf8_lossy(&reply.body)
        )
    };
    match code {
        200 => assert!(reply.json().is_some(), "a 200 that is not JSON: {}", what()),
        401 if reply.body.is_empty() => {}
        400 | 401 | 503 => {
            let v = reply
                .json()
                .unwrap_or_else(|| panic!("an error body that is not JSON: {}", what()));
            let message = v["message"].as_str().unwrap_or_default();
            assert!(
                !message.is_empty(),
                "an error body without a message: {}",
                what()
            );
        }
        _ => panic!("status outside 200/400/401/503: {}", what()),
    }
}

/// `s` percent-encoded as one path segment or query value.
pub fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
