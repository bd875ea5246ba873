//! Integration tests of the config loader and the identity files: every example in
//! `configs/` loads; a table of broken configs, each refused with the right field path and
//! line; units through the config; identity files written, read back, and refused when
//! tampered with.

use qshield::cidr::IpCidr;
use qshield::config::identity_files::{
    self, IdentityFileError, MLKEM768_KEY_FILE, PUBLIC_KEY_FILE, X25519_KEY_FILE,
};
use qshield::config::{self, ConfigError, QkdPolicy, units};
use qshield::constants as k;
use qshield::crypto::{CipherSuite, StaticIdentity};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn key_b64(site: &str) -> String {
    let path = configs_dir().join("keys").join(site).join(PUBLIC_KEY_FILE);
    fs::read_to_string(path).unwrap().trim().to_string()
}

/// The origin used for inline test configs: inside `configs/`, so relative key files resolve.
fn origin() -> PathBuf {
    configs_dir().join("test.toml")
}

fn parse(text: &str) -> Result<config::Config, ConfigError> {
    let text = text
        .replace("KEY_A", &key_b64("site-a"))
        .replace("KEY_B", &key_b64("site-b"));
    config::parse(&text, &origin())
}

// ------------------------------------------------------------------ examples

#[test]
fn every_example_config_loads() {
    let mut count = 0;
    for entry in fs::read_dir(configs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!cfg.peers.is_empty(), "{}", path.display());
            count += 1;
        }
    }
    assert!(count >= 3, "expected at least 3 examples, found {count}");
}

#[test]
fn every_madrid_example_loads() {
    let dir = configs_dir().join("madrid");
    let (mut sites, mut kmes) = (0, 0);
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("site-") && name.ends_with(".toml") {
            let cfg = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cfg.qkd.policy, QkdPolicy::Require, "{name}");
            sites += 1;
        } else if name.starts_with("kme-") && name.ends_with(".toml") {
            let cfg = qshield::kme::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                format!("{}.toml", cfg.id),
                name,
                "the file is named after its KME"
            );
            kmes += 1;
        }
    }
    assert_eq!((sites, kmes), (2, 5), "two hospitals, five KMEs");
}

#[test]
fn example_pair_points_at_each_other() {
    let a = config::load(&configs_dir().join("site-a.toml")).unwrap();
    let b = config::load(&configs_dir().join("site-b.toml")).unwrap();
    assert_eq!(a.peers[0].public_key.to_base64(), key_b64("site-b"));
    assert_eq!(b.peers[0].public_key.to_base64(), key_b64("site-a"));
    assert_eq!(
        a.peers[0].endpoint,
        Some("198.18.0.2:51820".parse().unwrap())
    );
    assert_eq!(
        b.peers[0].endpoint,
        Some("198.18.0.1:51820".parse().unwrap())
    );
    assert_eq!(a.interface.identity_dir, configs_dir().join("keys/site-a"));
    let v6: IpCidr = "fd00:5159::1/64".parse().unwrap();
    assert!(a.interface.addresses.contains(&v6));
    assert_eq!(
        a.peers[0].persistent_keepalive,
        Some(Duration::from_secs(25))
    );
}

#[test]
fn commented_example_sets_every_option() {
    let c = config::load(&configs_dir().join("site-a-chacha.toml")).unwrap();
    assert_eq!(c.interface.cipher, CipherSuite::ChaCha20Poly1305);
    assert_eq!(c.interface.listen, "0.0.0.0:51821".parse().unwrap());
    assert_eq!(
        c.interface.control_socket,
        Path::new("/run/qshield/qs1.sock")
    );
    assert_eq!(c.rotation.rekey_after_bytes, 8 << 30);
    assert_eq!(c.rotation.reject_after_bytes, 10 << 30);
    assert_eq!(c.rotation.rekey_after, Duration::from_secs(120));
    assert_eq!(c.rotation.reject_after, Duration::from_secs(180));
    assert_eq!(c.qkd.policy, QkdPolicy::Disable);
    assert_eq!(c.interface.offload, config::OffloadMode::Auto);
    assert_eq!(
        c.interface.metrics_listen,
        Some("127.0.0.1:9465".parse().unwrap())
    );
}

#[test]
fn offload_modes() {
    assert_eq!(
        parse(MINIMAL).unwrap().interface.offload,
        config::OffloadMode::Auto
    );
    let off = MINIMAL.replace("name = \"qs0\"", "name = \"qs0\"\noffload = \"off\"");
    assert_eq!(
        parse(&off).unwrap().interface.offload,
        config::OffloadMode::Off
    );
}

// ------------------------------------------------------------------ defaults and units

const MINIMAL: &str = r#"[interface]
name = "qs0"
address = "198.19.0.1/24"
identity_dir = "/etc/qshield/site-a"
[[peer]]
name = "site-b"
public_key = "KEY_B"
allowed_ips = "198.19.0.2/32"
"#;

/// `metrics_listen` is off by default, loopback unless `metrics_public = true`, and a
/// refusal names the field and its line.
#[test]
fn metrics_listen_is_loopback_unless_public() {
    let with =
        |lines: &str| parse(&MINIMAL.replace("[interface]", &format!("[interface]\n{lines}")));
    assert_eq!(parse(MINIMAL).unwrap().interface.metrics_listen, None);
    let local = with("metrics_listen = \"127.0.0.1:9465\"").unwrap();
    assert_eq!(
        local.interface.metrics_listen,
        Some("127.0.0.1:9465".parse().unwrap())
    );
    let e = with("metrics_listen = \"198.18.0.1:9465\"")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("interface.metrics_listen")
            && e.contains("not a loopback address")
            && e.contains(":2:"),
        "{e}"
    );
    let public = with("metrics_listen = \"198.18.0.1:9465\"\nmetrics_public = true").unwrap();
    assert_eq!(
        public.interface.metrics_listen,
        Some("198.18.0.1:9465".parse().unwrap())
    );
    let e = with("metrics_listen = \"9465\"").unwrap_err().to_string();
    assert!(
        e.contains("interface.metrics_listen") && e.contains("not IP:PORT"),
        "{e}"
    );
}

#[test]
fn defaults_fill_every_optional_key() {
    let c = parse(MINIMAL).unwrap();
    let i = &c.interface;
    assert_eq!(i.mtu, k::DEFAULT_TUNNEL_MTU_BYTES);
    assert_eq!(
        i.listen,
        format!("0.0.0.0:{}", config::DEFAULT_LISTEN_PORT)
            .parse()
            .unwrap()
    );
    assert_eq!(i.cipher, CipherSuite::Aes256Gcm);
    assert_eq!(
        i.control_socket,
        Path::new(config::DEFAULT_CONTROL_DIR).join("qs0.sock")
    );
    assert_eq!(i.identity_dir, Path::new("/etc/qshield/site-a"));
    let r = c.rotation;
    assert_eq!(r.rekey_after_bytes, k::DEFAULT_REKEY_AFTER_BYTES);
    assert_eq!(r.reject_after_bytes, k::DEFAULT_REKEY_AFTER_BYTES / 4 * 5);
    assert_eq!(r.rekey_after, k::DEFAULT_REKEY_AFTER);
    assert_eq!(r.reject_after, k::DEFAULT_REKEY_AFTER * 3 / 2);
    assert_eq!(c.qkd.policy, QkdPolicy::Disable);
    assert_eq!(c.peers[0].endpoint, None);
    assert_eq!(c.peers[0].persistent_keepalive, None);
}

fn with_rotation(lines: &str) -> Result<config::Config, ConfigError> {
    parse(&format!("{MINIMAL}[rotation]\n{lines}\n"))
}

#[test]
fn default_hard_byte_budget_leaves_a_margin_for_small_soft_budgets() {
    let c = with_rotation("rekey_after_bytes = \"4MiB\"").unwrap();
    assert_eq!(
        c.rotation.reject_after_bytes,
        (4 << 20) + k::DEFAULT_REJECT_MIN_MARGIN_BYTES
    );
    let c = with_rotation("rekey_after_bytes = \"1TiB\"").unwrap();
    assert_eq!(c.rotation.reject_after_bytes, (1u64 << 40) / 4 * 5);
}

#[test]
fn units_round_trip_through_the_config() {
    for bytes in [1u64 << 20, 3 << 30, 1_500_000_000, 5_000_001] {
        let text = format!("rekey_after_bytes = \"{}\"", units::format_bytes(bytes));
        assert_eq!(
            with_rotation(&text).unwrap().rotation.rekey_after_bytes,
            bytes
        );
        let text = format!("rekey_after_bytes = {bytes}");
        assert_eq!(
            with_rotation(&text).unwrap().rotation.rekey_after_bytes,
            bytes
        );
    }
    for ms in [1000u64, 1500, 90_000, 5_400_000, 172_800_000] {
        let d = Duration::from_millis(ms);
        let text = format!("rekey_after_seconds = \"{}\"", units::format_duration(d));
        assert_eq!(with_rotation(&text).unwrap().rotation.rekey_after, d);
    }
    let c = with_rotation("rekey_after_seconds = 90").unwrap();
    assert_eq!(c.rotation.rekey_after, Duration::from_secs(90));
    assert_eq!(c.rotation.reject_after, Duration::from_secs(135));
}

#[test]
fn keepalive_off_forms() {
    for value in ["0", "\"off\"", "\"0s\""] {
        let text = format!("{MINIMAL}persistent_keepalive = {value}\n");
        assert_eq!(parse(&text).unwrap().peers[0].persistent_keepalive, None);
    }
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let text = MINIMAL.replace("/etc/qshield/site-a", "keys/x").replace(
        "identity_dir",
        "control_socket = \"run/q.sock\"\nidentity_dir",
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.interface.identity_dir, configs_dir().join("keys/x"));
    assert_eq!(c.interface.control_socket, configs_dir().join("run/q.sock"));
}

#[test]
fn ipv6_listen_address_and_endpoint() {
    let text = MINIMAL.replace(
        "identity_dir",
        "listen_address = \"::\"\nlisten_port = 4500\nidentity_dir",
    ) + "endpoint = \"[fd00:5159::2]:51820\"\n";
    let c = parse(&text).unwrap();
    assert_eq!(c.interface.listen, "[::]:4500".parse().unwrap());
    assert_eq!(
        c.peers[0].endpoint,
        Some("[fd00:5159::2]:51820".parse().unwrap())
    );
}

#[test]
fn nested_prefixes_in_two_peers_are_allowed() {
    let text = format!(
        "{MINIMAL}[[peer]]\nname = \"hub\"\npublic_key = \"KEY_A\"\nallowed_ips = [\"198.19.0.0/16\"]\n"
    );
    assert_eq!(parse(&text).unwrap().peers.len(), 2);
}

#[test]
fn own_key_as_peer_is_refused_once_the_identity_is_known() {
    let c = parse(MINIMAL).unwrap();
    let own_b = c.peers[0].public_key.clone();
    let err = config::check_identity(&c, &origin(), &own_b).unwrap_err();
    assert!(
        err.to_string()
            .contains("peer[0].public_key: peer 'site-b' has this site's own")
    );
    let other = StaticIdentity::generate().unwrap().public();
    assert!(config::check_identity(&c, &origin(), &other).is_ok());
}

#[test]
fn same_network_written_with_other_host_bits_overlaps() {
    let text = second_peer("site-c", "KEY_A", "\"198.19.0.2/32\"")
        .replace(
            "allowed_ips = \"198.19.0.2/32\"\n[[peer]]",
            "allowed_ips = \"198.19.7.0/24\"\n[[peer]]",
        )
        .replace(
            "allowed_ips = \"198.19.0.2/32\"\n",
            "allowed_ips = \"198.19.7.9/24\"\n",
        );
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field(), Some("peer[1].allowed_ips"), "{err}\n{text}");
}

proptest::proptest! {
    /// Whatever the bytes, parsing returns (Ok or a located error) and never panics.
    #[test]
    fn parse_never_panics_on_mutated_examples(cut in 0usize..2000, len in 0usize..40, junk in ".{0,12}") {
        let text = fs::read_to_string(configs_dir().join("site-a-chacha.toml")).unwrap();
        let mut start = cut.min(text.len());
        while !text.is_char_boundary(start) { start -= 1; }
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) { end -= 1; }
        let mutated = format!("{}{junk}{}", &text[..start], &text[end..]);
        if let Err(e) = config::parse(&mutated, &configs_dir().join("m.toml")) {
            let _ = e.to_string();
        }
    }
}

// ------------------------------------------------------------------ malformed configs

/// One broken config: its text (KEY_A/KEY_B replaced by real keys), the field path the
/// error must name (`None` for a pure syntax error), its line, and a message fragment.
struct Case {
    text: String,
    field: Option<&'static str>,
    line: usize,
    says: &'static str,
}

/// The minimal config with line `line` (1-based) replaced by `replacement` (may span lines).
fn edit(line: usize, replacement: &str) -> String {
    let mut lines: Vec<String> = MINIMAL.lines().map(String::from).collect();
    lines[line - 1] = replacement.to_string();
    lines.join("\n") + "\n"
}

/// The minimal config plus `extra` appended.
/// A complete `[qkd]` section (7 lines after the two of MINIMAL's trailer).
const QKD_OK: &str = "[qkd]\npolicy = \"require\"\nkme_url = \"https://kme-a:8443\"\nsae_id = \"sae-a\"\npeer_sae_id = \"sae-b\"\nca_file = \"pki/ca.pem\"\ncert_file = \"pki/sae-a.pem\"\nkey_file = \"pki/sae-a.key\"\n";

#[test]
fn a_complete_qkd_section_parses() {
    let c = parse(&append(QKD_OK)).unwrap();
    assert_eq!(c.qkd.policy, QkdPolicy::Require);
    let kme = c.qkd.kme.expect("KME connection");
    assert_eq!(
        (kme.url.as_str(), kme.sae_id.as_str()),
        ("https://kme-a:8443", "sae-a")
    );
    assert_eq!(kme.key_size_bits, k::DEFAULT_QKD_KEY_BITS);
    assert!(kme.ca_file.is_absolute() || kme.ca_file.starts_with(origin().parent().unwrap()));
    assert_eq!(c.peers[0].qkd_sae_id.as_deref(), Some("sae-b"));
    let disabled = parse(&append("[qkd]\npolicy = \"disable\"")).unwrap();
    assert!(disabled.qkd.kme.is_none() && disabled.peers[0].qkd_sae_id.is_none());
}

fn append(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}

fn case(text: String, field: Option<&'static str>, line: usize, says: &'static str) -> Case {
    Case {
        text,
        field,
        line,
        says,
    }
}

fn second_peer(name: &str, key: &str, ips: &str) -> String {
    append(&format!(
        "[[peer]]\nname = \"{name}\"\npublic_key = \"{key}\"\nallowed_ips = {ips}"
    ))
}

fn malformed_cases() -> Vec<Case> {
    let f = Some;
    vec![
        // TOML syntax and schema (reported by the deserializer, located via spans)
        case(edit(2, "name = = \"qs0\""), None, 2, "expected"),
        case(
            edit(2, "name = \"qs0\"\nname = \"qs1\""),
            f("interface.name"),
            3,
            "duplicate key",
        ),
        case(
            edit(1, "[interfac]"),
            f("interfac"),
            1,
            "unknown field `interfac`",
        ),
        case(
            MINIMAL.replace("[[peer]]", "bogus = 1\n[[peer]]"),
            f("interface.bogus"),
            5,
            "expected one of",
        ),
        case(
            append("foo = 1"),
            f("peer[0].foo"),
            9,
            "unknown field `foo`",
        ),
        case(
            append("[rotation]\nrekey_after = \"2m\""),
            f("rotation.rekey_after"),
            10,
            "rekey_after_seconds",
        ),
        case(
            edit(2, "# no name"),
            f("interface"),
            1,
            "missing field `name`",
        ),
        case(edit(8, ""), f("peer[0]"), 5, "missing field `allowed_ips`"),
        case(
            edit(4, "identity_dir = \"x\"\nmtu = \"big\""),
            f("interface.mtu"),
            5,
            "invalid type: string \"big\", expected an integer",
        ),
        case(
            edit(8, "allowed_ips = [\"198.19.0.2/32\", 3]"),
            f("peer[0].allowed_ips[1]"),
            8,
            "string",
        ),
        // [interface]
        case(
            edit(2, "name = \"a-very-long-ifname\""),
            f("interface.name"),
            2,
            "not a valid interface name",
        ),
        case(
            edit(2, "name = \"qs 0\""),
            f("interface.name"),
            2,
            "not a valid interface name",
        ),
        case(
            edit(3, "address = []"),
            f("interface.address"),
            3,
            "at least one",
        ),
        case(
            edit(3, "address = [\"198.19.0.1/24\", \"198.19.0.1/33\"]"),
            f("interface.address[1]"),
            3,
            "prefix length '33' is out of range",
        ),
        case(
            edit(3, "address = \"300.1.1.1/24\""),
            f("interface.address"),
            3,
            "not an IP address",
        ),
        case(
            edit(4, "identity_dir = \"x\"\nmtu = 1000"),
            f("interface.mtu"),
            5,
            "1000 is out of range (1280..=8920)",
        ),
        case(
            edit(4, "identity_dir = \"x\"\nlisten_port = 0"),
            f("interface.listen_port"),
            5,
            "out of range (1..=65535)",
        ),
        case(
            edit(4, "identity_dir = \"x\"\nlisten_port = 70000"),
            f("interface.listen_port"),
            5,
            "70000",
        ),
        case(
            edit(4, "identity_dir = \"x\"\nlisten_address = \"any\""),
            f("interface.listen_address"),
            5,
            "not an IPv4 or IPv6",
        ),
        case(
            edit(4, "identity_dir = \"x\"\ncipher = \"aes-128-gcm\""),
            f("interface.cipher"),
            5,
            "unknown cipher",
        ),
        case(
            edit(4, "identity_dir = \"x\"\noffload = \"on\""),
            f("interface.offload"),
            5,
            "not an offload mode",
        ),
        case(
            edit(4, "identity_dir = \"\""),
            f("interface.identity_dir"),
            4,
            "must not be empty",
        ),
        case(
            edit(
                4,
                &format!(
                    "identity_dir = \"x\"\ncontrol_socket = \"/{}\"",
                    "s".repeat(120)
                ),
            ),
            f("interface.control_socket"),
            5,
            "Unix socket path",
        ),
        // [rotation]
        case(
            append("[rotation]\nrekey_after_bytes = \"1KiB\""),
            f("rotation.rekey_after_bytes"),
            10,
            "below the minimum of 1MiB",
        ),
        case(
            append("[rotation]\nrekey_after_bytes = \"8 gigs\""),
            f("rotation.rekey_after_bytes"),
            10,
            "unknown unit 'gigs'",
        ),
        case(
            append("[rotation]\nrekey_after_bytes = -5"),
            f("rotation.rekey_after_bytes"),
            10,
            "must not be negative",
        ),
        case(
            append("[rotation]\nrekey_after_bytes = \"1.5GiB\""),
            f("rotation.rekey_after_bytes"),
            10,
            "fractions",
        ),
        case(
            append("[rotation]\nrekey_after_bytes = \"99999999TiB\""),
            f("rotation.rekey_after_bytes"),
            10,
            "too large",
        ),
        case(
            append("[rotation]\nrekey_after_seconds = \"500ms\""),
            f("rotation.rekey_after_seconds"),
            10,
            "below the minimum of 1s",
        ),
        case(
            append("[rotation]\nrekey_after_seconds = \"3d\""),
            f("rotation.rekey_after_seconds"),
            10,
            "above the maximum of 2d",
        ),
        case(
            append("[rotation]\nrekey_after_seconds = -1"),
            f("rotation.rekey_after_seconds"),
            10,
            "negative",
        ),
        case(
            append("[rotation]\nrekey_after_bytes = \"4GiB\"\nreject_after_bytes = \"4GiB\""),
            f("rotation.reject_after_bytes"),
            11,
            "must be greater than rotation.rekey_after_bytes",
        ),
        case(
            append("[rotation]\nreject_after_seconds = \"90s\""),
            f("rotation.reject_after_seconds"),
            10,
            "must be greater than rotation.rekey_after_seconds (2m)",
        ),
        // [qkd]
        case(
            append("[qkd]\npolicy = \"require\""),
            f("qkd.kme_url"),
            10,
            "required when qkd.policy is \"require\"",
        ),
        case(
            append("[qkd]\npolicy = \"allow\"\nkme_url = \"https://kme\""),
            f("qkd.sae_id"),
            10,
            "required when qkd.policy is \"allow\"",
        ),
        case(
            append(&format!("{QKD_OK}kme_url = \"http://kme:443\""))
                .replace("kme_url = \"https://kme-a:8443\"\n", ""),
            f("qkd.kme_url"),
            16,
            "must be https://",
        ),
        case(
            append(&format!("{QKD_OK}key_size = 100")),
            f("qkd.key_size"),
            17,
            "multiple of 8",
        ),
        case(
            append(&QKD_OK.replace("peer_sae_id = \"sae-b\"\n", "")),
            f("peer[0].qkd_sae_id"),
            5,
            "required when qkd.policy is \"require\"",
        ),
        case(
            append("[qkd]\npolicy = \"maybe\""),
            f("qkd.policy"),
            10,
            "unknown policy 'maybe'",
        ),
        // [[peer]]
        case(
            MINIMAL
                .split("[[peer]]")
                .next()
                .unwrap_or_default()
                .to_string(),
            f("peer"),
            4,
            "at least one [[peer]]",
        ),
        case(
            edit(6, "name = \"\""),
            f("peer[0].name"),
            6,
            "must not be empty",
        ),
        case(
            second_peer("site-b", "KEY_A", "\"198.19.0.3/32\""),
            f("peer[1].name"),
            10,
            "duplicate peer name 'site-b' (first used on line 6)",
        ),
        case(
            second_peer("site-c", "KEY_B", "\"198.19.0.3/32\""),
            f("peer[1].public_key"),
            11,
            "same public key as peer 'site-b'",
        ),
        case(
            second_peer("site-c", "KEY_A", "[\"198.19.0.3/32\", \"198.19.0.2/32\"]"),
            f("peer[1].allowed_ips[1]"),
            12,
            "also in peer 'site-b' (line 8)",
        ),
        case(
            edit(
                7,
                "public_key = \"KEY_B\"\npublic_key_file = \"keys/site-b/public.key\"",
            ),
            f("peer[0].public_key_file"),
            8,
            "both are set",
        ),
        case(edit(7, ""), f("peer[0]"), 5, "neither is set"),
        case(
            edit(7, "public_key = \"not base64!\""),
            f("peer[0].public_key"),
            7,
            "not valid base64",
        ),
        case(
            edit(7, "public_key = \"AAAA\""),
            f("peer[0].public_key"),
            7,
            "decodes to 3 bytes",
        ),
        case(
            edit(7, "public_key_file = \"keys/nowhere/public.key\""),
            f("peer[0].public_key_file"),
            7,
            "keys/nowhere/public.key",
        ),
        case(
            append("endpoint = \"198.18.0.2\""),
            f("peer[0].endpoint"),
            9,
            "missing the port",
        ),
        case(
            append("endpoint = \"site-b.example:51820\""),
            f("peer[0].endpoint"),
            9,
            "host names are not supported",
        ),
        case(
            append("endpoint = \"198.18.0.2:0\""),
            f("peer[0].endpoint"),
            9,
            "port 0",
        ),
        case(
            edit(8, "allowed_ips = []"),
            f("peer[0].allowed_ips"),
            8,
            "at least one",
        ),
        case(
            edit(8, "allowed_ips = [\"198.19.0.2/32\", \"x/33\"]"),
            f("peer[0].allowed_ips[1]"),
            8,
            "'x' is not an IP address",
        ),
        case(
            append("persistent_keepalive = \"fast\""),
            f("peer[0].persistent_keepalive"),
            9,
            "expected a whole number",
        ),
        case(
            append("persistent_keepalive = \"100000s\""),
            f("peer[0].persistent_keepalive"),
            9,
            "100000s is above the maximum of 65535s",
        ),
    ]
}

#[test]
fn malformed_configs_name_field_and_line() {
    let cases = malformed_cases();
    assert!(cases.len() >= 25);
    let origin = origin();
    for (n, c) in cases.iter().enumerate() {
        let err = match parse(&c.text) {
            Ok(_) => panic!("case {n} was accepted:\n{}", c.text),
            Err(e) => e,
        };
        let msg = err.to_string();
        println!("{msg}");
        let ctx = format!("case {n}: {msg}\n---\n{}", c.text);
        assert_eq!(err.field(), c.field, "{ctx}");
        assert_eq!(err.location().map(|l| l.line), Some(c.line), "{ctx}");
        let prefix = format!("{}:{}:", origin.display(), c.line);
        assert!(msg.starts_with(&prefix), "{ctx}");
        if let Some(field) = c.field {
            assert!(msg.contains(&format!(": {field}: ")), "{ctx}");
        }
        assert!(msg.contains(c.says), "case {n} lacks {:?}: {ctx}", c.says);
    }
}

#[test]
fn message_format_is_file_line_column_field_problem() {
    let text = edit(8, "allowed_ips = [\"198.19.0.2/32\", \"198.19.0.9/33\"]")
        .replace("KEY_B", &key_b64("site-b"));
    let err = config::parse(&text, Path::new("configs/site-a.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "configs/site-a.toml:8:33: peer[0].allowed_ips[1]: '198.19.0.9/33': prefix length '33' \
         is out of range (0-32 for IPv4, 0-128 for IPv6)"
    );
}

#[test]
fn unreadable_file_is_named() {
    let path = Path::new("/nonexistent/qshield.toml");
    let err = config::load(path).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/qshield.toml: cannot read config")
    );
}

// ------------------------------------------------------------------ identity files

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn written_identity() -> (tempfile::TempDir, PathBuf, StaticIdentity) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("site");
    let id = StaticIdentity::generate().unwrap();
    identity_files::write_identity(&dir, &id).unwrap();
    (tmp, dir, id)
}

#[test]
fn identity_round_trips_with_modes() {
    let (_tmp, dir, id) = written_identity();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(X25519_KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(MLKEM768_KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(PUBLIC_KEY_FILE)), 0o644);
    let public = fs::read_to_string(dir.join(PUBLIC_KEY_FILE)).unwrap();
    assert_eq!(public, format!("{}\n", id.public().to_base64()));
    let back = identity_files::read_identity(&dir).unwrap();
    assert_eq!(back.public(), id.public());
    assert_eq!(identity_files::read_public(&dir).unwrap(), id.public());
    let from_file = identity_files::read_public_file(&dir.join(PUBLIC_KEY_FILE)).unwrap();
    assert_eq!(from_file, id.public());
    let (ct, ss) = id.public().kem.encapsulate().unwrap();
    assert_eq!(back.kem.decapsulate(&ct).unwrap(), ss);
}

#[test]
fn identity_reads_without_public_file() {
    let (_tmp, dir, id) = written_identity();
    fs::remove_file(dir.join(PUBLIC_KEY_FILE)).unwrap();
    assert_eq!(identity_files::read_public(&dir).unwrap(), id.public());
}

#[test]
fn write_refuses_to_overwrite() {
    let (_tmp, dir, id) = written_identity();
    let before = fs::read(dir.join(X25519_KEY_FILE)).unwrap();
    let other = StaticIdentity::generate().unwrap();
    let err = identity_files::write_identity(&dir, &other).unwrap_err();
    assert!(matches!(err, IdentityFileError::Exists { .. }), "{err}");
    assert!(err.to_string().contains(X25519_KEY_FILE), "{err}");
    assert_eq!(fs::read(dir.join(X25519_KEY_FILE)).unwrap(), before);
    assert_eq!(identity_files::read_public(&dir).unwrap(), id.public());
}

#[test]
fn write_refuses_when_only_public_key_exists_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(PUBLIC_KEY_FILE), "x\n").unwrap();
    let id = StaticIdentity::generate().unwrap();
    let err = identity_files::write_identity(tmp.path(), &id).unwrap_err();
    assert!(err.to_string().contains(PUBLIC_KEY_FILE), "{err}");
    assert!(!tmp.path().join(X25519_KEY_FILE).exists());
    assert!(!tmp.path().join(MLKEM768_KEY_FILE).exists());
}

#[test]
fn readable_private_keys_are_refused() {
    for (file, bad_mode) in [
        (X25519_KEY_FILE, 0o644),
        (MLKEM768_KEY_FILE, 0o640),
        (X25519_KEY_FILE, 0o604),
    ] {
        let (_tmp, dir, _id) = written_identity();
        let path = dir.join(file);
        fs::set_permissions(&path, fs::Permissions::from_mode(bad_mode)).unwrap();
        let err = identity_files::read_identity(&dir).unwrap_err();
        assert!(
            matches!(err, IdentityFileError::Permissions { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
    }
}

#[test]
fn corrupted_private_keys_are_refused() {
    let (_tmp, dir, _id) = written_identity();
    let path = dir.join(MLKEM768_KEY_FILE);
    fs::write(&path, "this is not base64!\n").unwrap();
    let err = identity_files::read_identity(&dir).unwrap_err();
    assert!(matches!(err, IdentityFileError::Base64 { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn wrong_lengths_are_refused() {
    use base64::Engine as _;
    let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
    let (_tmp, dir, _id) = written_identity();
    fs::write(dir.join(X25519_KEY_FILE), b64(31) + "\n").unwrap();
    let err = identity_files::read_identity(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            IdentityFileError::Length {
                got: 31,
                expected: 32,
                ..
            }
        ),
        "{err}"
    );
    let (_tmp, dir, _id) = written_identity();
    fs::write(dir.join(MLKEM768_KEY_FILE), b64(2399)).unwrap();
    let err = identity_files::read_identity(&dir).unwrap_err();
    assert!(
        matches!(err, IdentityFileError::Length { got: 2399, .. }),
        "{err}"
    );
    let (_tmp, dir, _id) = written_identity();
    fs::write(dir.join(MLKEM768_KEY_FILE), b64(2400)).unwrap();
    let err = identity_files::read_identity(&dir).unwrap_err();
    assert!(matches!(err, IdentityFileError::Key { .. }), "{err}");
    let (_tmp, dir, _id) = written_identity();
    fs::write(dir.join(X25519_KEY_FILE), "A".repeat(10_000)).unwrap();
    let err = identity_files::read_identity(&dir).unwrap_err();
    assert!(matches!(err, IdentityFileError::TooLarge { .. }), "{err}");
}

#[test]
fn mismatched_public_key_file_is_refused() {
    let (_tmp, dir, _id) = written_identity();
    let other = StaticIdentity::generate().unwrap();
    fs::write(dir.join(PUBLIC_KEY_FILE), other.public().to_base64()).unwrap();
    let err = identity_files::read_identity(&dir).unwrap_err();
    assert!(matches!(err, IdentityFileError::Mismatch { .. }), "{err}");
}

#[test]
fn missing_private_key_is_named() {
    let (_tmp, dir, _id) = written_identity();
    fs::remove_file(dir.join(MLKEM768_KEY_FILE)).unwrap();
    let err = identity_files::read_identity(&dir).unwrap_err();
    assert!(matches!(err, IdentityFileError::Io { .. }), "{err}");
    assert!(err.to_string().contains(MLKEM768_KEY_FILE), "{err}");
}

#[test]
fn config_with_a_corrupt_public_key_file_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("peer.key"), "AAAA\n").unwrap();
    let text = MINIMAL.replace("public_key = \"KEY_B\"", "public_key_file = \"peer.key\"");
    let err = config::parse(&text, &tmp.path().join("c.toml")).unwrap_err();
    assert_eq!(err.field(), Some("peer[0].public_key_file"));
    assert!(
        err.to_string()
            .contains("peer.key: invalid public key: decodes to 3 bytes"),
        "{err}"
    );
}
