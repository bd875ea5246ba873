//! Test vectors for `qshield::crypto`: every check compares the aws-lc-rs backed code with an
//! independent implementation (RustCrypto's `sha2`, `hmac`, `hkdf`, `aes-gcm`,
//! `chacha20poly1305`, `ml-kem`, and `x25519-dalek`) and, where one exists, with a published
//! standard vector. Pinned hex values that no standard provides were computed once with the
//! independent crate; both implementations must still produce them.

use proptest::prelude::*;
use qshield::crypto::aead::counter_nonce;
use qshield::crypto::dh::{DhPublic, DhSecret};
use qshield::crypto::kem::{
    KemPublic, KemSecret, MLKEM768_CIPHERTEXT_BYTES, MLKEM768_PUBLIC_BYTES, MLKEM768_SECRET_BYTES,
};
use qshield::crypto::{CipherSuite, CryptoError, PacketKey, PublicIdentity, Secret, kdf, labels};

const SUITES: [CipherSuite; 2] = [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305];

/// Hex to bytes; panics on bad hex (test constants only).
fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("valid hex in a test constant")
}

fn unhex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().expect("32-byte hex constant")
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

// ====================================================================== independent references

/// Reference implementations from RustCrypto, written only against their own APIs.
mod reference {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use hkdf::Hkdf;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    pub fn sha256(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// HKDF-Extract; `salt = None` is RFC 5869's "not provided" (a zero block).
    pub fn hkdf_extract(salt: Option<&[u8]>, ikm: &[u8]) -> [u8; 32] {
        Hkdf::<Sha256>::extract(salt, ikm).0.into()
    }

    pub fn hkdf_expand(prk: &[u8], info: &[u8], len: usize) -> Vec<u8> {
        let mut okm = vec![0u8; len];
        Hkdf::<Sha256>::from_prk(prk)
            .expect("PRK of hash length")
            .expand(info, &mut okm)
            .expect("length within 255 blocks");
        okm
    }

    /// The 96-bit nonce built from the design's layout, independently of `counter_nonce`.
    pub fn nonce(counter: u64) -> [u8; 12] {
        let c = counter.to_le_bytes();
        [0, 0, 0, 0, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]
    }

    /// `ciphertext ‖ tag` with the given raw 12-byte nonce.
    pub fn seal_raw(
        suite: qshield::crypto::CipherSuite,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        msg: &[u8],
    ) -> Vec<u8> {
        let payload = Payload { msg, aad };
        match suite {
            qshield::crypto::CipherSuite::Aes256Gcm => aes_gcm::Aes256Gcm::new(key.into())
                .encrypt(nonce.into(), payload)
                .expect("in-range lengths"),
            qshield::crypto::CipherSuite::ChaCha20Poly1305 => {
                chacha20poly1305::ChaCha20Poly1305::new(key.into())
                    .encrypt(nonce.into(), payload)
                    .expect("in-range lengths")
            }
        }
    }

    /// Opens `ciphertext ‖ tag` with the given raw 12-byte nonce.
    pub fn open_raw(
        suite: qshield::crypto::CipherSuite,
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        msg: &[u8],
    ) -> Option<Vec<u8>> {
        let payload = Payload { msg, aad };
        match suite {
            qshield::crypto::CipherSuite::Aes256Gcm => aes_gcm::Aes256Gcm::new(key.into())
                .decrypt(nonce.into(), payload)
                .ok(),
            qshield::crypto::CipherSuite::ChaCha20Poly1305 => {
                chacha20poly1305::ChaCha20Poly1305::new(key.into())
                    .decrypt(nonce.into(), payload)
                    .ok()
            }
        }
    }

    pub fn seal(
        suite: qshield::crypto::CipherSuite,
        key: &[u8; 32],
        counter: u64,
        aad: &[u8],
        msg: &[u8],
    ) -> Vec<u8> {
        seal_raw(suite, key, &nonce(counter), aad, msg)
    }

    pub fn open(
        suite: qshield::crypto::CipherSuite,
        key: &[u8; 32],
        counter: u64,
        aad: &[u8],
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        open_raw(suite, key, &nonce(counter), aad, sealed)
    }
}

// ====================================================================== SHA-256, HMAC, HKDF

mod kdf_vectors {
    use super::*;

    #[test]
    fn sha256_matches_fips_180_vectors_and_sha2() {
        // FIPS 180-2 / NIST examples: "", "abc", and the two-block message.
        let cases: [(&[u8], &str); 3] = [
            (
                b"",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
        ];
        for (msg, want) in cases {
            let want = unhex32(want);
            assert_eq!(kdf::hash(&[msg]), want);
            assert_eq!(reference::sha256(msg), want);
            // Splitting into parts must not change the digest.
            let (a, b) = msg.split_at(msg.len() / 2);
            assert_eq!(kdf::hash(&[a, b]), want);
            assert_eq!(kdf::hash(&[b"", a, b"", b]), want);
        }
        assert_eq!(kdf::hash(&[]), reference::sha256(b""));
    }

    #[test]
    fn hmac_matches_rfc_4231_and_hmac_crate() {
        // RFC 4231 test cases 1, 2 and 6 (key longer than the block).
        let cases: [(Vec<u8>, &[u8], &str); 3] = [
            (
                vec![0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, msg, want) in cases {
            let want = unhex32(want);
            assert_eq!(kdf::hmac(&key, &[msg]), want);
            assert_eq!(reference::hmac_sha256(&key, msg), want);
            let (a, b) = msg.split_at(3);
            assert_eq!(kdf::hmac(&key, &[a, b]), want);
        }
    }

    /// RFC 5869 appendix A.1–A.3 (SHA-256): full PRK and the first 32 bytes of OKM, which is
    /// what `kdf::expand` produces (one block).
    #[test]
    fn hkdf_matches_rfc_5869_cases_1_to_3() {
        struct Case {
            ikm: Vec<u8>,
            salt: Vec<u8>,
            info: Vec<u8>,
            prk: &'static str,
            okm: &'static str,
        }
        let cases = [
            Case {
                ikm: vec![0x0b; 22],
                salt: (0x00u8..=0x0c).collect(),
                info: (0xf0u8..=0xf9).collect(),
                prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
                okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
                      34007208d5b887185865",
            },
            Case {
                ikm: (0x00u8..=0x4f).collect(),
                salt: (0x60u8..=0xaf).collect(),
                info: (0xb0u8..=0xff).collect(),
                prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
                okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c\
                      59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71\
                      cc30c58179ec3e87c14c01d5c1f3434f1d87",
            },
            Case {
                // Salt not provided: HMAC pads an empty key with zeros, so the empty salt
                // of `kdf::extract` equals RFC 5869's HashLen zero bytes.
                ikm: vec![0x0b; 22],
                salt: vec![],
                info: vec![],
                prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
                okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d\
                      9d201395faa4b61a96c8",
            },
        ];
        for c in cases {
            let okm_full = unhex(&c.okm.split_whitespace().collect::<String>());
            let prk = kdf::extract(&c.salt, &c.ikm);
            assert_eq!(prk.expose()[..], unhex(c.prk)[..]);
            assert_eq!(kdf::expand(&prk, &c.info).expose()[..], okm_full[..32]);

            // The independent crate agrees, including on the bytes beyond our one block.
            let salt = if c.salt.is_empty() {
                None
            } else {
                Some(&c.salt[..])
            };
            let ref_prk = reference::hkdf_extract(salt, &c.ikm);
            assert_eq!(ref_prk[..], unhex(c.prk)[..]);
            assert_eq!(
                reference::hkdf_expand(&ref_prk, &c.info, okm_full.len()),
                okm_full
            );
        }
        // An explicit all-zero salt is the same as no salt.
        assert_eq!(
            kdf::extract(&[0u8; 32], &[0x0b; 22]),
            kdf::extract(&[], &[0x0b; 22])
        );
    }

    /// The key-schedule shape: ck0 = H(PROTOCOL), two mixes, one expand. Expected values were
    /// computed with `sha2` + `hkdf`; a change to a label or to `mix` breaks this test.
    #[test]
    fn pinned_chain_of_mixes() {
        let ck0 = kdf::hash(&[labels::PROTOCOL]);
        let ck1 = kdf::mix(&Secret::new(ck0), labels::MIX_ES, &[0x11; 32]);
        let ck2 = kdf::mix(&ck1, labels::MIX_QKD, &[0x22; 32]);
        let key = kdf::expand(&ck2, labels::TRAFFIC_INITIATOR_TO_RESPONDER);

        let r_ck0 = reference::sha256(labels::PROTOCOL);
        let r_ck1 = reference::hkdf_extract(Some(&r_ck0), &[labels::MIX_ES, &[0x11; 32]].concat());
        let r_ck2 = reference::hkdf_extract(Some(&r_ck1), &[labels::MIX_QKD, &[0x22; 32]].concat());
        let r_key = reference::hkdf_expand(&r_ck2, labels::TRAFFIC_INITIATOR_TO_RESPONDER, 32);

        let pinned = [
            (ck0, r_ck0, PINNED_CK0),
            (*ck1.expose(), r_ck1, PINNED_CK1),
            (*ck2.expose(), r_ck2, PINNED_CK2),
        ];
        for (ours, theirs, want) in pinned {
            assert_eq!(hex::encode(theirs), want, "reference differs from the pin");
            assert_eq!(hex::encode(ours), want, "qshield differs from the pin");
        }
        assert_eq!(hex::encode(&r_key), PINNED_TRAFFIC_KEY);
        assert_eq!(hex::encode(key.expose()), PINNED_TRAFFIC_KEY);
    }

    const PINNED_CK0: &str = "6d8c70305d437fa7d45180942701a174ee656db6618f20833ea99ebd616dece9";
    const PINNED_CK1: &str = "3bd9ea553b0088a281538507ac0d358b86f1fd6d5a4c999116b9c2efc61397eb";
    const PINNED_CK2: &str = "9f3a74b90c48a28ed8e12c78114483941883b1f0e55aaadda2edce3984bc0f07";
    const PINNED_TRAFFIC_KEY: &str =
        "cba081040f412da7306d8807bed5f918b5ed58c02ad7e9ea7e0d13bf5195ba90";

    /// `mix` binds the label: moving bytes between label and input changes nothing only if
    /// the concatenation is equal (documented behaviour), and a different label changes ck.
    #[test]
    fn mix_is_extract_over_label_then_input() {
        let ck = Secret::new([7u8; 32]);
        let a = kdf::mix(&ck, b"qshield v1 mix x", b"y");
        let b = kdf::mix(&ck, b"qshield v1 mix ", b"xy");
        assert_eq!(a, b, "mix is HKDF-Extract(ck, label || input)");
        assert_ne!(a, kdf::mix(&ck, labels::MIX_ES, b"y"));
        assert_ne!(
            a,
            kdf::mix(&Secret::new([8u8; 32]), b"qshield v1 mix x", b"y")
        );
    }

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn hash_matches_sha2(data in prop::collection::vec(any::<u8>(), 0..600), cut in any::<prop::sample::Index>()) {
            let (a, b) = data.split_at(cut.index(data.len() + 1));
            prop_assert_eq!(kdf::hash(&[a, b]), reference::sha256(&data));
        }

        #[test]
        fn hmac_matches_hmac_crate(
            key in prop::collection::vec(any::<u8>(), 0..200),
            data in prop::collection::vec(any::<u8>(), 0..600),
            cut in any::<prop::sample::Index>(),
        ) {
            let (a, b) = data.split_at(cut.index(data.len() + 1));
            prop_assert_eq!(kdf::hmac(&key, &[a, b]), reference::hmac_sha256(&key, &data));
        }

        #[test]
        fn extract_expand_mix_match_hkdf_crate(
            salt in prop::collection::vec(any::<u8>(), 0..100),
            ikm in prop::collection::vec(any::<u8>(), 0..300),
            info in prop::collection::vec(any::<u8>(), 0..200),
            ck in any::<[u8; 32]>(),
            label in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let prk = kdf::extract(&salt, &ikm);
            prop_assert_eq!(*prk.expose(), reference::hkdf_extract(Some(&salt), &ikm));
            let okm = kdf::expand(&prk, &info);
            prop_assert_eq!(&okm.expose()[..], &reference::hkdf_expand(prk.expose(), &info, 32)[..]);
            let mixed = kdf::mix(&Secret::new(ck), &label, &ikm);
            let concat = [&label[..], &ikm[..]].concat();
            prop_assert_eq!(*mixed.expose(), reference::hkdf_extract(Some(&ck), &concat));
        }
    }
}

// ====================================================================== AEAD

mod aead_vectors {
    use super::*;

    fn key_for(suite: CipherSuite, key: &[u8; 32]) -> PacketKey {
        PacketKey::new(suite, &Secret::new(*key))
    }

    #[test]
    fn nonce_layout_is_four_zero_bytes_then_counter_le() {
        assert_eq!(counter_nonce(0), [0u8; 12]);
        assert_eq!(
            counter_nonce(0x0102_0304_0506_0708).to_vec(),
            unhex("000000000807060504030201")
        );
        assert_eq!(
            counter_nonce(u64::MAX).to_vec(),
            unhex("00000000ffffffffffffffff")
        );
        for c in [0, 1, 1 << 32, u64::MAX - 1] {
            assert_eq!(counter_nonce(c), reference::nonce(c));
        }
    }

    /// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14
    /// (AES-256, zero key, zero IV): the zero IV is exactly our nonce for counter 0.
    #[test]
    fn aes_gcm_matches_gcm_spec_test_cases_13_and_14() {
        let key = [0u8; 32];
        let cases: [(Vec<u8>, &str); 2] = [
            (vec![], "530f8afbc74536b9a963b4f1c4cb738b"),
            (
                vec![0u8; 16],
                "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
            ),
        ];
        let k = key_for(CipherSuite::Aes256Gcm, &key);
        for (pt, want) in cases {
            let want = unhex(want);
            assert_eq!(k.seal_to_vec(0, b"", &pt), want);
            assert_eq!(k.open_to_vec(0, b"", &want).unwrap(), pt);
            assert_eq!(
                reference::seal(CipherSuite::Aes256Gcm, &key, 0, b"", &pt),
                want
            );
        }
    }

    const A5_KEY: &str = "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0";
    const A5_AAD: &str = "f33388860000000000004e91";
    const A5_PLAINTEXT: &str = "496e7465726e65742d4472616674732061726520647261667420646f63756d65\
        6e74732076616c696420666f722061206d6178696d756d206f6620736978206d6f6e74687320616e64206d\
        617920626520757064617465642c207265706c616365642c206f72206f62736f6c65746564206279206f74\
        68657220646f63756d656e747320617420616e792074696d652e20497420697320696e617070726f707269\
        61746520746f2075736520496e7465726e65742d447261667473206173207265666572656e6365206d6174\
        657269616c206f7220746f2063697465207468656d206f74686572207468616e206173202fe2809c776f72\
        6b20696e2070726f67726573732e2fe2809d";
    const A5_CIPHERTEXT: &str = "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2\
        4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a8\
        4abd0b948114ad176e008d33bd60f982b1ff37c8559797a06ef4f0ef61c186324e2b3506383606907b6a7c\
        02b0f9f6157b53c867e4b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523eaf\
        4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a0bb2316053fa76991955ebd6\
        3159434ecebb4e466dae5a1073a6727627097a1049e617d91d361094fa68f0ff77987130305beaba2eda04\
        df997b714d6c6f2c29a6ad5cb4022b02709b";
    const A5_TAG: &str = "eead9d67890cbb22392336fea1851f38";

    /// RFC 8439 appendix A.5: nonce 00000000 ‖ 0102030405060708, which is our layout with
    /// counter 0x0807060504030201, so the full qshield path is checked against the RFC.
    #[test]
    fn chacha_matches_rfc_8439_appendix_a5_through_our_nonce_layout() {
        let key = unhex32(A5_KEY);
        let counter = 0x0807_0605_0403_0201u64;
        assert_eq!(
            counter_nonce(counter).to_vec(),
            unhex("000000000102030405060708")
        );
        let aad = unhex(A5_AAD);
        let pt = unhex(A5_PLAINTEXT);
        let mut want = unhex(A5_CIPHERTEXT);
        want.extend_from_slice(&unhex(A5_TAG));
        assert_eq!(pt.len(), 265);

        let k = key_for(CipherSuite::ChaCha20Poly1305, &key);
        assert_eq!(k.seal_to_vec(counter, &aad, &pt), want);
        assert_eq!(k.open_to_vec(counter, &aad, &want).unwrap(), pt);
        assert_eq!(
            reference::seal(CipherSuite::ChaCha20Poly1305, &key, counter, &aad, &pt),
            want
        );
    }

    /// RFC 8439 §2.8.2. Its nonce (07000000 ‖ 4041424344454647) has a non-zero first word, so
    /// it cannot go through `PacketKey` (which exposes no raw-nonce path); it validates the
    /// reference crate that every other ChaCha20-Poly1305 check leans on.
    #[test]
    fn reference_chacha_matches_rfc_8439_section_2_8_2() {
        let key = unhex32("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce: [u8; 12] = unhex("070000004041424344454647").try_into().unwrap();
        let aad = unhex("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
                   for the future, sunscreen would be it.";
        let want = unhex(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca96712\
             82fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58\
             fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116\
             1ae10b594f09e26a7e902ecbd0600691",
        );
        let got = reference::seal_raw(CipherSuite::ChaCha20Poly1305, &key, &nonce, &aad, pt);
        assert_eq!(got, want);
    }

    /// Our own layout, pinned for both suites: counter 2^32 + 5 so the high counter bytes
    /// reach the nonce; expected bytes computed with `aes-gcm` / `chacha20poly1305`.
    #[test]
    fn pinned_vectors_in_our_layout() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let counter = (1u64 << 32) + 5;
        let aad = unhex("04000000a1b2c3d40500000001000000");
        let pt: Vec<u8> = (0u8..64).collect();
        for (suite, want) in [
            (CipherSuite::Aes256Gcm, PINNED_AES),
            (CipherSuite::ChaCha20Poly1305, PINNED_CHACHA),
        ] {
            let reference = reference::seal(suite, &key, counter, &aad, &pt);
            assert_eq!(hex::encode(&reference), want, "{suite}: reference vs pin");
            let ours = key_for(suite, &key).seal_to_vec(counter, &aad, &pt);
            assert_eq!(hex::encode(&ours), want, "{suite}: qshield vs pin");
        }
    }

    const PINNED_AES: &str = "297eb11375b37258eb8a14dc76e212c9ce1eeb51beef8635b1ec3b613ee98c39dc0ab68e3630512db7d97b35f8a2e35052c715eb0332d40fa6109a9174c01d9b139e9483fd410b9529a56fa44138aa87";
    const PINNED_CHACHA: &str = "0a61e80e9e777e99dda4ddda3dad49009deffebbf160c066034196501ddf7625772e1630feb22d430089f2109a4968df64816bc530e76a8b383a72780e0bfcc70d8794b335188457f0a2fe91669f3149";

    const EDGE_COUNTERS: [u64; 5] = [0, 1, 1 << 32, u64::MAX - 1, u64::MAX];

    /// Seals with one implementation, opens with the other, at the edge counters, in place.
    fn cross_check(suite: CipherSuite, key: &[u8; 32], counter: u64, aad: &[u8], pt: &[u8]) {
        let k = key_for(suite, key);
        // qshield in place: ciphertext in the buffer, tag returned separately.
        let mut buf = pt.to_vec();
        let tag = k.seal(counter, aad, &mut buf);
        buf.extend_from_slice(&tag);
        let reference = reference::seal(suite, key, counter, aad, pt);
        assert_eq!(buf, reference, "{suite} counter {counter}: seal differs");
        assert_eq!(
            reference::open(suite, key, counter, aad, &buf).as_deref(),
            Some(pt),
            "{suite} counter {counter}: reference cannot open ours"
        );
        let mut theirs = reference;
        let n = k.open(counter, aad, &mut theirs).expect("opens reference");
        assert_eq!(&theirs[..n], pt, "{suite} counter {counter}: open differs");
        assert_eq!(n, pt.len());
    }

    #[test]
    fn cross_open_both_directions_at_edge_counters() {
        let key = [0x5au8; 32];
        for suite in SUITES {
            for counter in EDGE_COUNTERS {
                for len in [0, 1, 15, 16, 17, 1420] {
                    let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                    cross_check(suite, &key, counter, b"header", &pt);
                }
            }
        }
    }

    #[test]
    fn every_mismatch_is_a_bad_tag() {
        let key = [9u8; 32];
        for suite in SUITES {
            let k = key_for(suite, &key);
            let sealed = k.seal_to_vec(42, b"aad", b"payload");
            let other_suite = SUITES.into_iter().find(|s| *s != suite).unwrap();
            let bad = Err(CryptoError::BadTag);
            assert_eq!(k.open_to_vec(43, b"aad", &sealed), bad, "counter");
            assert_eq!(k.open_to_vec(42, b"aaD", &sealed), bad, "aad");
            assert_eq!(k.open_to_vec(42, b"", &sealed), bad, "empty aad");
            let wrong_key = key_for(suite, &[8u8; 32]);
            assert_eq!(wrong_key.open_to_vec(42, b"aad", &sealed), bad, "key");
            let wrong_suite = key_for(other_suite, &key);
            assert_eq!(wrong_suite.open_to_vec(42, b"aad", &sealed), bad, "suite");
            for i in 0..sealed.len() {
                let mut t = sealed.clone();
                t[i] ^= 0x80;
                assert_eq!(k.open_to_vec(42, b"aad", &t), bad, "flip byte {i}");
            }
            // Truncations, including inputs shorter than a tag, fail without panicking.
            for n in 0..sealed.len() {
                assert_eq!(k.open_to_vec(42, b"aad", &sealed[..n]), bad, "len {n}");
            }
            // The reference agrees that the tampered forms are forgeries.
            let mut t = sealed.clone();
            t[0] ^= 1;
            assert_eq!(reference::open(suite, &key, 42, b"aad", &t), None);
        }
    }

    fn counter_strategy() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(1 << 32),
            Just(u64::MAX - 1),
            any::<u64>(),
        ]
    }

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn seal_open_match_reference_crates(
            key in any::<[u8; 32]>(),
            counter in counter_strategy(),
            aad in prop::collection::vec(any::<u8>(), 0..64),
            pt in prop::collection::vec(any::<u8>(), 0..2000),
        ) {
            for suite in SUITES {
                cross_check(suite, &key, counter, &aad, &pt);
            }
        }
    }
}

// ====================================================================== X25519

mod x25519_vectors {
    use super::*;
    use x25519_dalek::{PublicKey, StaticSecret, x25519};

    fn dh(sk: [u8; 32]) -> DhSecret {
        DhSecret::from_bytes(&Secret::new(sk)).expect("any 32 bytes are an X25519 key")
    }

    const ALICE_SK: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_PK: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const BOB_SK: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    const BOB_PK: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
    const SHARED: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

    #[test]
    fn rfc_7748_section_6_1() {
        let (a_sk, b_sk) = (unhex32(ALICE_SK), unhex32(BOB_SK));
        let (a_pk, b_pk) = (unhex32(ALICE_PK), unhex32(BOB_PK));
        let shared = unhex32(SHARED);
        let (alice, bob) = (dh(a_sk), dh(b_sk));
        assert_eq!(alice.public(), DhPublic(a_pk));
        assert_eq!(bob.public(), DhPublic(b_pk));
        assert_eq!(alice.agree(&DhPublic(b_pk)).unwrap().expose(), &shared);
        assert_eq!(bob.agree(&DhPublic(a_pk)).unwrap().expose(), &shared);

        let r_alice = StaticSecret::from(a_sk);
        assert_eq!(PublicKey::from(&r_alice).to_bytes(), a_pk);
        assert_eq!(
            r_alice.diffie_hellman(&PublicKey::from(b_pk)).to_bytes(),
            shared
        );
    }

    /// RFC 7748 §5.2: single scalar multiplications; the second input u-coordinate has its
    /// top bit set, which X25519 must ignore.
    #[test]
    fn rfc_7748_section_5_2() {
        let cases = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
        ];
        for (k, u, want) in cases {
            let (k, u, want) = (unhex32(k), unhex32(u), unhex32(want));
            assert_eq!(dh(k).agree(&DhPublic(u)).unwrap().expose(), &want);
            assert_eq!(x25519(k, u), want);
        }
    }

    #[test]
    fn private_bytes_round_trip_unchanged() {
        // RFC 7748 scalars are not clamped: export must return what was loaded.
        for sk in [ALICE_SK, BOB_SK] {
            let sk = unhex32(sk);
            assert_eq!(dh(sk).to_bytes().unwrap().expose(), &sk);
        }
        let fresh = DhSecret::generate().unwrap();
        let again = DhSecret::from_bytes(&fresh.to_bytes().unwrap()).unwrap();
        assert_eq!(again.public(), fresh.public());
        let r = StaticSecret::from(*fresh.to_bytes().unwrap().expose());
        assert_eq!(PublicKey::from(&r).to_bytes(), fresh.public().0);
    }

    /// Points of small order, their non-canonical encodings (u + p) and their forms with the
    /// ignored top bit set: every one gives the all-zero shared secret in the reference, and
    /// qshield refuses every one with `LowOrderPoint`.
    #[test]
    fn low_order_points_are_refused() {
        let canonical = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ];
        let sk = unhex32(ALICE_SK);
        let ours = dh(sk);
        for p in canonical {
            let mut p = unhex32(p);
            for _top_bit in 0..2 {
                let theirs = StaticSecret::from(sk).diffie_hellman(&PublicKey::from(p));
                assert!(
                    !theirs.was_contributory(),
                    "{}: not low order",
                    hex::encode(p)
                );
                assert_eq!(
                    ours.agree(&DhPublic(p)),
                    Err(CryptoError::LowOrderPoint),
                    "{}",
                    hex::encode(p)
                );
                p[31] |= 0x80;
            }
        }
        // Some deny-lists also carry these "u − 19 with the top bit set" forms; under RFC 7748
        // masking they are ordinary points, and both implementations accept them alike.
        for p in [
            "cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
            "4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
        ] {
            let p = unhex32(p);
            let want = StaticSecret::from(sk).diffie_hellman(&PublicKey::from(p));
            assert!(want.was_contributory());
            assert_eq!(ours.agree(&DhPublic(p)).unwrap().expose(), want.as_bytes());
        }
    }

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn agree_and_public_match_dalek(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            let (ra, rb) = (StaticSecret::from(a), StaticSecret::from(b));
            let (pa, pb) = (PublicKey::from(&ra), PublicKey::from(&rb));
            let (qa, qb) = (dh(a), dh(b));
            prop_assert_eq!(qa.public().0, pa.to_bytes());
            prop_assert_eq!(qb.public().0, pb.to_bytes());
            let shared = ra.diffie_hellman(&pb).to_bytes();
            prop_assert_eq!(*qa.agree(&qb.public()).unwrap().expose(), shared);
            prop_assert_eq!(*qb.agree(&qa.public()).unwrap().expose(), shared);
        }

        #[test]
        fn agree_with_any_u_coordinate_matches_dalek(k in any::<[u8; 32]>(), u in any::<[u8; 32]>()) {
            let want = x25519(k, u);
            let got = dh(k).agree(&DhPublic(u));
            if want == [0u8; 32] {
                prop_assert_eq!(got, Err(CryptoError::LowOrderPoint));
            } else {
                prop_assert_eq!(*got.unwrap().expose(), want);
            }
        }
    }
}

// ====================================================================== ML-KEM-768

/// Interoperability between aws-lc-rs (qshield) and RustCrypto `ml-kem`. All four directions
/// the crates allow are tested:
/// 1. `ml-kem` encapsulates to an aws-lc-rs public key, qshield decapsulates;
/// 2. qshield encapsulates to an `ml-kem` public key, `ml-kem` decapsulates;
/// 3. an `ml-kem` key exported in the FIPS 203 2400-byte expanded form loads into
///    `KemSecret::from_bytes` and decapsulates;
/// 4. qshield's 2400-byte private encoding loads into `ml-kem` (`from_expanded_bytes`),
///    re-encodes to the same bytes, and decapsulates.
#[allow(deprecated)] // ml-kem marks the expanded (2400-byte) encoding deprecated; we need it.
mod mlkem_vectors {
    use super::*;
    use ml_kem::{
        B32, Decapsulate, DecapsulationKey768, EncapsulationKey768, ExpandedKeyEncoding, KeyExport,
        Seed,
    };

    fn ml_ek(bytes: &[u8]) -> EncapsulationKey768 {
        let arr = bytes.try_into().expect("1184-byte key");
        EncapsulationKey768::new(&arr).expect("valid encapsulation key")
    }

    fn ml_dk(seed: &[u8; 64]) -> DecapsulationKey768 {
        DecapsulationKey768::from_seed(Seed::from(*seed))
    }

    fn ml_dk_expanded(dk: &DecapsulationKey768) -> Vec<u8> {
        dk.to_expanded_bytes().to_vec()
    }

    fn ml_dk_from_expanded(bytes: &[u8]) -> Option<DecapsulationKey768> {
        let arr = bytes.try_into().ok()?;
        DecapsulationKey768::from_expanded_bytes(&arr).ok()
    }

    fn seed_from(a: [u8; 32], b: [u8; 32]) -> [u8; 64] {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        s
    }

    /// Direction 1 and 4 for one aws-lc-rs key.
    fn check_aws_key(m: [u8; 32]) {
        let ours = KemSecret::generate().unwrap();
        let ek = ml_ek(&ours.public().0);
        assert_eq!(ek.to_bytes().as_slice(), &ours.public().0[..]);

        let (ct, ss) = ek.encapsulate_deterministic(&B32::from(m));
        assert_eq!(ct.len(), MLKEM768_CIPHERTEXT_BYTES);
        assert_eq!(ours.decapsulate(&ct).unwrap().expose(), ss.as_slice());

        let private = ours.to_bytes().unwrap();
        assert_eq!(private.len(), MLKEM768_SECRET_BYTES);
        let theirs = ml_dk_from_expanded(&private).expect("ml-kem accepts aws-lc-rs encoding");
        assert_eq!(ml_dk_expanded(&theirs), private.to_vec());
        assert_eq!(theirs.encapsulation_key(), &ek);
        let (ct2, ss2) = ours.public().encapsulate().unwrap();
        assert_eq!(
            theirs.decapsulate_slice(&ct2).unwrap().as_slice(),
            ss2.expose()
        );
    }

    /// Directions 2 and 3 for one `ml-kem` key.
    fn check_ml_key(seed: [u8; 64]) {
        let theirs = ml_dk(&seed);
        let ek_bytes = theirs.encapsulation_key().to_bytes();
        assert_eq!(ek_bytes.len(), MLKEM768_PUBLIC_BYTES);
        let public = KemPublic::from_bytes(&ek_bytes).unwrap();
        let (ct, ss) = public.encapsulate().unwrap();
        assert_eq!(
            theirs.decapsulate_slice(&ct).unwrap().as_slice(),
            ss.expose()
        );

        let expanded = ml_dk_expanded(&theirs);
        let ours = KemSecret::from_bytes(&expanded).expect("qshield accepts FIPS 203 encoding");
        assert_eq!(ours.public(), &public);
        assert_eq!(ours.decapsulate(&ct).unwrap(), ss);
        assert_eq!(&ours.to_bytes().unwrap()[..], &expanded[..]);
    }

    #[test]
    fn interoperates_in_all_four_directions() {
        for i in 0..4u8 {
            check_aws_key([i; 32]);
            check_ml_key([i.wrapping_mul(37); 64]);
        }
    }

    /// FIPS 203 implicit rejection is deterministic (K̄ = J(z ‖ c)): with the same private key,
    /// both implementations must return the same pseudo-random secret for a bad ciphertext.
    #[test]
    fn implicit_rejection_matches() {
        let ours = KemSecret::generate().unwrap();
        let theirs = ml_dk_from_expanded(&ours.to_bytes().unwrap()).unwrap();
        let (mut ct, ss) = ours.public().encapsulate().unwrap();
        ct[100] ^= 0x01;
        let ours_rejected = ours.decapsulate(&ct).unwrap();
        assert_ne!(ours_rejected, ss);
        assert_eq!(
            ours_rejected.expose(),
            theirs.decapsulate_slice(&ct).unwrap().as_slice()
        );
    }

    /// A deterministic vector: key from a fixed seed and encapsulation with a fixed message,
    /// computed by `ml-kem`; aws-lc-rs must decapsulate it to the pinned secret.
    #[test]
    fn pinned_deterministic_vector() {
        let seed: [u8; 64] = std::array::from_fn(|i| i as u8);
        let m = [0x42u8; 32];
        let theirs = ml_dk(&seed);
        let ek = theirs.encapsulation_key();
        let (ct, ss) = ek.encapsulate_deterministic(&B32::from(m));
        let expanded = ml_dk_expanded(&theirs);
        assert_eq!(
            hex::encode(reference::sha256(&ek.to_bytes())),
            PINNED_EK_SHA256
        );
        assert_eq!(hex::encode(reference::sha256(&ct)), PINNED_CT_SHA256);
        assert_eq!(hex::encode(ss.as_slice()), PINNED_SS);

        let ours = KemSecret::from_bytes(&expanded).unwrap();
        assert_eq!(
            hex::encode(ours.decapsulate(&ct).unwrap().expose()),
            PINNED_SS
        );
    }

    const PINNED_EK_SHA256: &str =
        "0b7934c83125c788995e2ba6bd761e33046b3e40571be53e023309a29f398cc9";
    const PINNED_CT_SHA256: &str =
        "9c7b2f8d05c70575ec03ed8f93b7bb298e1506b97e54e5e885748965b1466f1c";
    const PINNED_SS: &str = "b83e7f23b33f909715c7a50b0d4b1f6684d53e1f4b9056f803b29f058ccb5566";

    #[test]
    fn private_encoding_round_trips() {
        let a = KemSecret::generate().unwrap();
        let bytes = a.to_bytes().unwrap();
        let b = KemSecret::from_bytes(&bytes).unwrap();
        assert_eq!(b.public(), a.public());
        assert_eq!(&b.to_bytes().unwrap()[..], &bytes[..]);
        let (ct, ss) = b.public().encapsulate().unwrap();
        assert_eq!(a.decapsulate(&ct).unwrap(), ss);
        assert_eq!(b.decapsulate(&ct).unwrap(), ss);
        // The encoding's layout: ek sits at 1152..2336, followed by SHA3-256(ek).
        assert_eq!(&bytes[1152..2336], &a.public().0[..]);
    }

    #[test]
    fn corrupted_hash_of_ek_is_refused() {
        let a = KemSecret::generate().unwrap();
        let good = a.to_bytes().unwrap();
        let mut bad = good.to_vec();
        bad[2336] ^= 0x01; // first byte of H(ek)
        assert!(matches!(
            KemSecret::from_bytes(&bad),
            Err(CryptoError::BadPrivateKey(_))
        ));
        assert!(ml_dk_from_expanded(&bad).is_none(), "ml-kem agrees");

        // Changing ek without fixing H(ek) is refused too.
        let mut bad_ek = good.to_vec();
        bad_ek[1152] ^= 0x01;
        assert!(KemSecret::from_bytes(&bad_ek).is_err());
        assert!(ml_dk_from_expanded(&bad_ek).is_none());

        for len in [0, MLKEM768_SECRET_BYTES - 1, MLKEM768_SECRET_BYTES + 1] {
            let v = vec![0u8; len];
            assert!(KemSecret::from_bytes(&v).is_err());
        }
    }

    #[test]
    fn public_key_with_out_of_range_coefficient_is_refused() {
        let a = KemSecret::generate().unwrap();
        // Set the first 12-bit coefficient to 0xfff (> q = 3329): FIPS 203 §7.2 modulus check.
        let mut ek = a.public().0.clone();
        ek[0] = 0xff;
        ek[1] |= 0x0f;
        assert!(KemPublic::from_bytes(&ek).is_err());
        let arr = ek.as_slice().try_into().unwrap();
        assert!(EncapsulationKey768::new(&arr).is_err(), "ml-kem agrees");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        #[test]
        fn random_keys_interoperate(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), m in any::<[u8; 32]>()) {
            check_ml_key(seed_from(a, b));
            check_aws_key(m);
        }
    }
}

// ====================================================================== public identity

mod identity_vectors {
    use super::*;
    use base64::Engine as _;
    use ml_kem::{DecapsulationKey768, KeyExport, Seed};

    /// X25519: RFC 7748 Alice; ML-KEM-768: `ml-kem` key from the seed 00 01 … 3f.
    fn example() -> (Vec<u8>, PublicIdentity) {
        let x = unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let seed: [u8; 64] = std::array::from_fn(|i| i as u8);
        let ek = DecapsulationKey768::from_seed(Seed::from(seed))
            .encapsulation_key()
            .to_bytes();
        let bytes = [&x[..], &ek[..]].concat();
        let id = PublicIdentity::from_bytes(&bytes).unwrap();
        (bytes, id)
    }

    #[test]
    fn pinned_example_encoding() {
        let (bytes, id) = example();
        assert_eq!(bytes.len(), 32 + 1184);
        assert_eq!(id.to_bytes(), bytes);
        assert_eq!(&id.dh.0[..], &bytes[..32]);
        assert_eq!(&id.kem.0[..], &bytes[32..]);

        let b64 = id.to_base64();
        assert_eq!(b64.len(), 1624); // 4 * ceil(1216 / 3)
        assert!(b64.starts_with(PINNED_B64_PREFIX), "{}", &b64[..44]);
        assert_eq!(
            hex::encode(reference::sha256(b64.as_bytes())),
            PINNED_B64_SHA256
        );
        // An independent base64 (the `base64` crate is also qshield's, so decode instead).
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .unwrap();
        assert_eq!(decoded, bytes);
        assert_eq!(id.fingerprint(), PINNED_FINGERPRINT);
        assert_eq!(id.digest(), reference::sha256(&bytes));
        assert_eq!(
            hex::encode(&reference::sha256(&bytes)[..8]),
            PINNED_FINGERPRINT
        );
    }

    // The first 40 characters encode the first 30 bytes of the X25519 key (computed with
    // Python's `base64` module, independently of Rust).
    const PINNED_B64_PREFIX: &str = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066Spjqqb";
    const PINNED_B64_SHA256: &str =
        "cc4171b4888406bdfaa04e39992d7c7837a60cdc35ab087d83095802ed9dbb77";
    const PINNED_FINGERPRINT: &str = "a2859ad834a332db";

    #[test]
    fn parsing_accepts_wrapped_text_and_refuses_bad_input() {
        let (_, id) = example();
        let b64 = id.to_base64();
        let wrapped: String = b64
            .as_bytes()
            .chunks(64)
            .map(|c| format!("  {}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(PublicIdentity::from_base64(&wrapped).unwrap(), id);
        let short = &b64[..b64.len() - 4];
        assert!(PublicIdentity::from_base64(short).is_err());
        let mut bad = b64.into_bytes();
        bad[10] = b'*';
        assert!(PublicIdentity::from_base64(std::str::from_utf8(&bad).unwrap()).is_err());
    }
}

// ====================================================================== labels

mod label_vectors {
    use super::*;

    macro_rules! label_list {
        ($($name:ident),* $(,)?) => { &[$((stringify!($name), labels::$name)),*] };
    }

    /// Every label, in declaration order.
    const ALL: &[(&str, &[u8])] = label_list![
        PROTOCOL,
        MAC1,
        COOKIE_KEY,
        COOKIE_VALUE,
        MIX_ES,
        MIX_KEM_RESPONDER_STATIC,
        MIX_SS,
        MIX_EE,
        MIX_SE,
        MIX_KEM_EPHEMERAL,
        MIX_KEM_INITIATOR_STATIC,
        MIX_QKD,
        MIX_NO_QKD,
        KEY_INITIATOR_STATIC,
        KEY_INITIATION_PAYLOAD,
        KEY_CONFIRM_CLASSICAL,
        KEY_CONFIRM_FULL,
        TRAFFIC_INITIATOR_TO_RESPONDER,
        TRAFFIC_RESPONDER_TO_INITIATOR,
    ];

    /// The list above is the whole module: a label added, removed or reordered in
    /// `labels.rs` without updating this test fails here.
    #[test]
    fn list_covers_the_labels_module_in_order() {
        let source = include_str!("../crates/qshield-core/src/crypto/labels.rs");
        let declared: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub const "))
            .map(|rest| rest.split(':').next().unwrap().trim())
            .collect();
        let listed: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
        assert_eq!(declared, listed);
    }

    #[test]
    fn labels_are_distinct_versioned_and_prefix_free() {
        for (i, (name, a)) in ALL.iter().enumerate() {
            assert!(!a.is_empty(), "{name} is empty");
            assert!(
                a.starts_with(b"qshield v1"),
                "{name} lacks the version prefix"
            );
            assert!(a.is_ascii(), "{name} is not ASCII");
            for (other, b) in &ALL[i + 1..] {
                assert_ne!(a, b, "{name} == {other}");
                assert!(!b.starts_with(a), "{name} is a prefix of {other}");
                assert!(!a.starts_with(b), "{other} is a prefix of {name}");
            }
        }
    }

    /// SHA-256 over `len(label) as u32 big-endian ‖ label` for every label in declaration
    /// order. Any byte of any label changing changes this digest.
    #[test]
    fn pinned_digest_of_all_labels() {
        let mut encoded = Vec::new();
        for (_, l) in ALL {
            encoded.extend_from_slice(&u32::try_from(l.len()).unwrap().to_be_bytes());
            encoded.extend_from_slice(l);
        }
        assert_eq!(
            hex::encode(reference::sha256(&encoded)),
            PINNED_LABELS_SHA256
        );
        assert_eq!(hex::encode(kdf::hash(&[&encoded])), PINNED_LABELS_SHA256);
    }

    const PINNED_LABELS_SHA256: &str =
        "7070d56284d8e820e5394f77aaa224bd9b5adda0dca2573424fffc5489d6667f";
}
