//! Every figure `docs/protocol.md`, `docs/kme.md`, `docs/testing.md` and the README state that a constant of the code decides
//! is checked against that constant, so a changed constant cannot leave a stale document
//! (the DoS figures of protocol.md §5 once said 200 and 60/s while the code had 4000 and
//! 1500/s).

use qshield::constants::*;
use qshield::kme::config::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE, DEFAULT_PENDING_KEY_EXPIRY, DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    MAX_PENDING_KEY_EXPIRY,
};
use qshield::kme::link::cvqkd::{CVQKD_ALARM_AFTER_ABORTS, CVQKD_PULSES_WAIT};
use qshield::kme::link::random::MAX_BLOCK_BYTES;
use qshield::proto::wire::{
    COOKIE_REPLY_BYTES, FRAGMENT_PAYLOAD_MAX_BYTES, FRAGMENTS_MAX, INITIATION_FIXED_BYTES,
    INITIATION_PAYLOAD_MIN_BYTES, QKD_KEY_ID_MAX_BYTES, RESPONSE_BYTES, fragment_count,
};
use std::time::Duration;

/// The file's text with every run of whitespace made one space (a figure may be wrapped).
fn read(path: &str) -> String {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of section `heading` (from its heading to the next of the same level).
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let level = heading.split(' ').next().unwrap();
    let rest = &doc[start + heading.len()..];
    let end = rest.find(&format!(" {level} ")).unwrap_or(rest.len());
    &rest[..end]
}

/// Checks that `text` (named `what`) states each phrase; reports every missing one at once.
fn assert_states(what: &str, text: &str, phrases: &[String]) {
    let missing: Vec<&String> = phrases
        .iter()
        .filter(|p| !text.contains(p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{what} does not state what the constants say; missing: {missing:#?}"
    );
}

fn secs(d: Duration) -> u64 {
    assert_eq!(d.subsec_nanos(), 0, "{d:?} is not whole seconds");
    d.as_secs()
}

fn log2(n: u64) -> u32 {
    assert!(n.is_power_of_two(), "{n} is not a power of two");
    n.trailing_zeros()
}

#[test]
fn protocol_md_dos_figures_match_the_constants() {
    let doc = read("docs/protocol.md");
    let timers = section(&doc, "## 5. Timers");
    assert_states(
        "docs/protocol.md §5",
        timers,
        &[
            format!(
                "| under load | more than {UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND} handshake datagrams"
            ),
            format!(
                "| per-source rate | under load, after mac2: {HANDSHAKE_DATAGRAMS_PER_SOURCE_PER_SECOND} handshake datagrams per second, burst {HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST}, per source address; {RATE_LIMITER_SOURCES_MAX} sources tracked"
            ),
            format!(
                "in a second, and for {} s after the last datagram over that count",
                secs(UNDER_LOAD_HOLD)
            ),
            format!("the {RATE_LIMITER_EVICT_BATCH} fullest buckets are evicted"),
            format!(
                "| cookie secret | replaced every {} s; a cookie is used for {} s |",
                secs(COOKIE_SECRET_MAX_AGE),
                secs(COOKIE_VALID_FOR)
            ),
        ],
    );
    let data = section(&doc, "### 2.5 Data");
    assert_states(
        "docs/protocol.md §2.5",
        data,
        &[format!(
            "at most {} go out per {} ms",
            qshield::net::TOO_BIG_ANSWERS_PER_WINDOW,
            qshield::net::TOO_BIG_ANSWER_WINDOW.as_millis()
        )],
    );
    let reassembly = section(&doc, "### 2.1 Handshake fragment");
    assert_states(
        "docs/protocol.md §2.1",
        reassembly,
        &[format!(
            "at most {REASSEMBLY_SLOTS_MAX} messages in progress, {REASSEMBLY_SLOTS_PER_SOURCE_MAX} per source address, each discarded after {} s without a new fragment",
            secs(REASSEMBLY_TIMEOUT)
        )],
    );
}

#[test]
fn protocol_md_timer_figures_match_the_constants() {
    let doc = read("docs/protocol.md");
    let timers = section(&doc, "## 5. Timers");
    let per_second = Duration::from_secs(1).as_nanos() / MIN_INITIATION_INTERVAL.as_nanos();
    assert_states(
        "docs/protocol.md §5",
        timers,
        &[
            format!(
                "| handshake retransmission | {} ms, doubling to {} s for the first {} s of a handshake (a lossy path), then to {} s (a peer that is down), plus jitter of up to a third of the interval, at most {} ms",
                REKEY_TIMEOUT_INITIAL.as_millis(),
                secs(REKEY_TIMEOUT_FAST_MAX),
                secs(REKEY_FAST_PHASE),
                secs(REKEY_TIMEOUT_MAX),
                REKEY_TIMEOUT_JITTER_MAX.as_millis()
            ),
            format!(
                "| stalled handshake | reported once (a warning in the log) when still unanswered {} s after the first initiation",
                secs(HANDSHAKE_STALLED_AFTER)
            ),
            format!(
                "| give up a handshake | after {} s",
                secs(REKEY_ATTEMPT_TIME)
            ),
            format!(
                "| passive keepalive | {} s after receiving data",
                secs(KEEPALIVE_TIMEOUT)
            ),
            format!(
                "| dead peer | data sent but nothing received for {} s",
                secs(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT_MAX)
            ),
            format!(
                "| cookie replies | under load, to a source that is not a peer's known endpoint: at most {COOKIE_REPLIES_PER_SOURCE_PER_SECOND} per second per source address (burst {COOKIE_REPLIES_PER_SOURCE_BURST}) and {COOKIE_REPLIES_PER_SECOND_MAX} per second in all"
            ),
            format!(
                "at most one per {} ms ({per_second}/s",
                MIN_INITIATION_INTERVAL.as_millis()
            ),
        ],
    );
}

#[test]
fn protocol_md_wire_and_budget_figures_match_the_constants() {
    let doc = read("docs/protocol.md");
    let initiation = INITIATION_FIXED_BYTES + INITIATION_PAYLOAD_MIN_BYTES;
    let frag = FRAGMENT_PAYLOAD_MAX_BYTES;
    assert_states(
        "docs/protocol.md §1–§2",
        &doc,
        &[
            format!("every handshake datagram is at most {MAX_HANDSHAKE_DATAGRAM_BYTES} bytes"),
            format!("a {REPLAY_WINDOW_PACKETS}-packet anti-replay window"),
            format!(
                "| 1 | handshake initiation fragment | ≤ {MAX_HANDSHAKE_DATAGRAM_BYTES} bytes each, {} fragments per initiation |",
                fragment_count(initiation)
            ),
            format!(
                "| 2 | handshake response fragment | ≤ {MAX_HANDSHAKE_DATAGRAM_BYTES} bytes each, {} fragments per response |",
                fragment_count(RESPONSE_BYTES)
            ),
            format!("| 3 | cookie reply | {COOKIE_REPLY_BYTES} bytes |"),
            format!(
                "| 4 | data | {DATA_HEADER_BYTES}-byte header + padded inner packet + {AEAD_TAG_BYTES}-byte tag |"
            ),
            format!("| message[idx*{frag}..]|"),
            format!("`count = ceil(message_len / {frag})`, at most {FRAGMENTS_MAX}"),
            format!("(1..={})", FRAGMENTS_MAX * frag),
            format!("`message[idx*{frag} .. min((idx+1)*{frag}, message_len)]`"),
            format!("### 2.2 Initiation (reassembled, {initiation} bytes without a QKD key_ID)"),
            format!("qkd_key_id (≤ {QKD_KEY_ID_MAX_BYTES})"),
            format!("### 2.3 Response ({RESPONSE_BYTES} bytes)"),
            format!("zero-padded to a multiple of {PADDING_MULTIPLE_BYTES} bytes"),
            format!(
                "Overhead: {DATA_OVERHEAD_BYTES} bytes + UDP + IP. On a 1500-byte underlay that leaves 1500 − 40 − 8 − {DATA_OVERHEAD_BYTES} = **{DEFAULT_TUNNEL_MTU_BYTES} bytes**"
            ),
        ],
    );
    assert_eq!(UNDERLAY_HEADERS_MAX_BYTES, 40 + 8, "the MTU sum above");
    let rotation = section(&doc, "## 4. Sessions and rotation");
    assert_states(
        "docs/protocol.md §4",
        rotation,
        &[
            format!("(default {} GiB)", DEFAULT_REKEY_AFTER_BYTES >> 30),
            format!(
                "(default soft × {DEFAULT_REJECT_BYTES_NUMERATOR}/{DEFAULT_REJECT_BYTES_DENOMINATOR}, and at least soft + {} MiB)",
                DEFAULT_REJECT_MIN_MARGIN_BYTES >> 20
            ),
            format!("(default {} s;", secs(DEFAULT_REKEY_AFTER)),
            format!("a random part of 1/{REKEY_SPREAD_DIVISOR} of it early"),
            format!(
                "(default soft × {DEFAULT_REJECT_TIME_NUMERATOR}/{DEFAULT_REJECT_TIME_DENOMINATOR})"
            ),
            format!(
                "| {PACKET_CAP_SOFT_NUMERATOR}/{PACKET_CAP_SOFT_DENOMINATOR} of the cipher's cap |"
            ),
            format!(
                "AES-256-GCM 2^{} packets",
                log2(AES_GCM_MAX_PACKETS_PER_KEY)
            ),
            format!("ChaCha20-Poly1305 2^{} |", log2(CHACHA_MAX_PACKETS_PER_KEY)),
            format!(
                "AES-GCM 2^{}, ChaCha20-Poly1305 2^{}",
                log2(AES_GCM_MAX_FORGERIES_PER_KEY),
                log2(CHACHA_MAX_FORGERIES_PER_KEY)
            ),
            format!("staged (up to {STAGED_PACKETS_MAX})"),
        ],
    );
}

#[test]
fn readme_figures_match_the_constants() {
    let readme = read("README.md");
    assert_states(
        "README.md",
        &readme,
        &[
            format!(
                "mtu = {DEFAULT_TUNNEL_MTU_BYTES} # default: 1500 − IPv6 − UDP − {DATA_OVERHEAD_BYTES} bytes of tunnel overhead"
            ),
            format!(
                "(AES-256-GCM: 2^{} packets;",
                log2(AES_GCM_MAX_PACKETS_PER_KEY)
            ),
            format!("older than the {REPLAY_WINDOW_PACKETS}-packet window"),
            format!("the {STAGED_PACKETS_MAX}-packet staging queue"),
            format!("an {REPLAY_WINDOW_PACKETS}-packet anti-replay window"),
            format!(
                "(over {UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND} handshake datagrams a second)"
            ),
            format!(
                "that source's rate ({HANDSHAKE_DATAGRAMS_PER_SOURCE_PER_SECOND} a second, burst {HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST})"
            ),
            format!(
                "refuses initiations stamped more than {} s ahead of the responder's clock",
                secs(INITIATION_TIMESTAMP_AHEAD_MAX)
            ),
        ],
    );
}

#[test]
fn qkd_flow_and_replay_guard_figures_match_the_constants() {
    assert_eq!(
        secs(QKD_UNCONFIRMED_DEC_KEYS_REFILL_INTERVAL),
        1,
        "docs/protocol.md says the dec_keys budget refills by one per second"
    );
    let protocol = read("docs/protocol.md");
    assert_states(
        "docs/protocol.md",
        &protocol,
        &[
            format!(
                "more than {} s (`INITIATION_TIMESTAMP_AHEAD_MAX`) ahead of the responder's clock",
                secs(INITIATION_TIMESTAMP_AHEAD_MAX)
            ),
            format!(
                "at most {} s ahead of the responder's clock",
                secs(INITIATION_TIMESTAMP_AHEAD_MAX)
            ),
            format!(
                "at most {QKD_UNCONFIRMED_DEC_KEYS_BURST} `dec_keys` calls plus one per second"
            ),
            format!(
                "waits {} s (`QKD_SIMULTANEOUS_START_YIELD`)",
                secs(QKD_SIMULTANEOUS_START_YIELD)
            ),
        ],
    );
    let readme = read("README.md");
    assert_states(
        "README.md",
        &readme,
        &[
            format!(
                "the higher static key waits {} s",
                secs(QKD_SIMULTANEOUS_START_YIELD)
            ),
            format!("queues at most {QKD_QUEUE_PER_PEER_MAX} requests per peer"),
        ],
    );
}

#[test]
fn kme_md_figures_match_the_constants() {
    let kme = read("docs/kme.md");
    assert_states(
        "docs/kme.md",
        &kme,
        &[
            format!("`max_connections` [{DEFAULT_MAX_CONNECTIONS}]"),
            format!("`max_connections_per_source` [{DEFAULT_MAX_CONNECTIONS_PER_SOURCE}]"),
            format!(
                "`tls_handshake_timeout` [{}s]",
                secs(DEFAULT_TLS_HANDSHAKE_TIMEOUT)
            ),
            format!(
                "`header_read_timeout` [{}s]",
                secs(DEFAULT_HEADER_READ_TIMEOUT)
            ),
            format!("`idle_timeout` [{}s]", secs(DEFAULT_IDLE_TIMEOUT)),
            format!("max_connections = {DEFAULT_MAX_CONNECTIONS} "),
            format!("max_connections_per_source = {DEFAULT_MAX_CONNECTIONS_PER_SOURCE} "),
            format!(
                "`pending_key_expiry` defaults to {} minutes (1 s to {} d)",
                secs(DEFAULT_PENDING_KEY_EXPIRY) / 60,
                secs(MAX_PENDING_KEY_EXPIRY) / 86_400
            ),
            format!(
                "pending_key_expiry = \"{}m\"",
                secs(DEFAULT_PENDING_KEY_EXPIRY) / 60
            ),
            format!("blocks of at most {} KiB", MAX_BLOCK_BYTES / 1024),
            format!("`CVQKD_PULSES_WAIT`, {} s,", secs(CVQKD_PULSES_WAIT)),
            format!(
                "{} such blocks in a row (`CVQKD_ALARM_AFTER_ABORTS`)",
                match CVQKD_ALARM_AFTER_ABORTS {
                    2 => "Two",
                    n => panic!("docs/kme.md says 'Two such blocks'; the constant is {n}"),
                }
            ),
        ],
    );
}

#[test]
fn kme_md_routing_figures_match_the_constants() {
    use qshield::kme::config::MULTIPATH_PATHS_MAX;
    use qshield::kme::routing::{
        ADVERT_CALL_TIMEOUT, ADVERT_CHECK_INTERVAL, ADVERT_INTERVAL, ADVERT_MAX_AGE,
        RECENT_RELAYS_MAX,
    };
    use qshield::kme::shares_in::{KEYS_WAITING_MAX, SHARE_WAIT};
    use qshield::kme::topology::database::{LINKS_PER_ADVERT_MAX, ORIGINS_MAX};
    let kme = read("docs/kme.md");
    let routes = section(&kme, "## Routes");
    let second = |d: Duration| match secs(d) {
        1 => "Every second".to_string(),
        n => panic!("docs/kme.md says 'Every second'; ADVERT_INTERVAL is {n} s"),
    };
    assert_states(
        "docs/kme.md, Routes",
        routes,
        &[
            format!(
                "forgets an origin not heard of for {} s (`ADVERT_MAX_AGE`)",
                secs(ADVERT_MAX_AGE)
            ),
            format!("At most {ORIGINS_MAX} origins and {LINKS_PER_ADVERT_MAX} links an advert"),
            format!("{} (`ADVERT_INTERVAL`)", second(ADVERT_INTERVAL)),
            format!(
                "every {} ms (`ADVERT_CHECK_INTERVAL`)",
                ADVERT_CHECK_INTERVAL.as_millis()
            ),
            format!(
                "within {} s (`ADVERT_CALL_TIMEOUT`)",
                secs(ADVERT_CALL_TIMEOUT)
            ),
            format!("do not all arrive within {} s", secs(SHARE_WAIT)),
            format!("at most {KEYS_WAITING_MAX} keys wait at once"),
        ],
    );
    assert_states(
        "docs/kme.md",
        &kme,
        &[
            format!("(2 to {MULTIPATH_PATHS_MAX}, default 2)"),
            format!("the last {RECENT_RELAYS_MAX} relays this KME took part in"),
        ],
    );
}

#[test]
fn testing_md_peer_queue_figures_match_the_constants() {
    use qshield::daemon::runtime::PEER_QUEUES_UPDATE_INTERVAL;
    use qshield::net::peer_queues::PEER_QUEUES_MAX;
    let doc = read("docs/testing.md");
    let text = section(&doc, "## Handshake flood");
    assert_states(
        "docs/testing.md, Handshake flood",
        text,
        &[
            format!(
                "at most every {} ms (`PEER_QUEUES_UPDATE_INTERVAL`)",
                PEER_QUEUES_UPDATE_INTERVAL.as_millis()
            ),
            format!("At most {PEER_QUEUES_MAX} endpoints (`PEER_QUEUES_MAX`"),
        ],
    );
}
