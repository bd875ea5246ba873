//! The store's own tests: pads, block pairs, discarding, expiry.

use super::*;

/// How long delivery records are kept in the tests that do not forget them, ms.
const KEPT: u64 = 1_000_000;

#[test]
fn unconfirmed_blocks_are_discarded_and_their_numbers_reused() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Store::open(&dir.path().join("db")).unwrap();
    assert_eq!(leader.leader_add("f", &[1u8; 16]).unwrap(), 0);
    leader.confirm("f", 2).unwrap();
    assert_eq!(leader.leader_add("f", &[2u8; 8]).unwrap(), 2);
    let before = leader.link_levels("f").unwrap();
    assert_eq!((before.follower_sends_bytes, before.next_seq), (12, 4));
    assert_eq!(leader.discard_unconfirmed("f").unwrap(), 8);
    let after = leader.link_levels("f").unwrap();
    assert_eq!(
        (after.leader_sends_bytes, after.follower_sends_bytes),
        (8, 8),
        "only the confirmed pair is left"
    );
    assert_eq!((after.confirmed_seq, after.next_seq), (2, 2));
    assert!(leader.unconfirmed("f", 10).unwrap().is_empty());
    assert_eq!(leader.leader_add("f", &[3u8; 4]).unwrap(), 2, "reused");
}

#[test]
fn a_pair_may_give_one_direction_everything() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Store::open(&dir.path().join("l")).unwrap();
    let follower = Store::open(&dir.path().join("f")).unwrap();
    assert_eq!(leader.leader_add_split("f", &[1u8; 10], 10).unwrap(), 0);
    assert_eq!(leader.leader_add_split("f", &[2u8; 6], 0).unwrap(), 2);
    let l = leader.link_levels("f").unwrap();
    assert_eq!(
        (l.leader_unconfirmed_bytes, l.follower_sends_bytes),
        (10, 6)
    );
    // The empty blocks 1 and 2 are skipped, not the end of the push.
    let push = leader.unconfirmed("f", 10).unwrap();
    let seqs: Vec<u64> = push.iter().map(|b| b.0).collect();
    assert_eq!(seqs, [0, 3]);
    follower.follower_store("l", &push).unwrap();
    leader.confirm("f", 4).unwrap();
    let l = leader.link_levels("f").unwrap();
    assert_eq!((l.leader_sends_bytes, l.leader_unconfirmed_bytes), (10, 0));
    assert_eq!(follower.link_levels("l").unwrap().next_seq, 4);
    // A CV-QKD pair: both ends place the key alike, the next pair is seq + 2.
    assert_eq!(
        follower
            .follower_store_pair("l", 4, &[], &[3u8; 8])
            .unwrap(),
        8
    );
    let f = follower.link_levels("l").unwrap();
    assert_eq!(
        (f.leader_sends_bytes, f.follower_sends_bytes, f.next_seq),
        (10, 14, 6)
    );
}

#[test]
fn expired_keys_are_erased_and_their_ids_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(&dir.path().join("db")).unwrap();
    let key = |id: &str| NewKey {
        id: id.to_string(),
        bytes: Zeroizing::new(vec![7u8; 32]),
    };
    st.enc_local("m", "s", &[key("k1"), key("k2")], 10, 1_000, 0)
        .unwrap();
    st.enc_local("m", "s", &[key("k3")], 10, 5_000, 0).unwrap();
    // At its deadline a key is not found, as an unknown one, even before the sweep.
    let ids = ["k1".to_string()];
    assert!(matches!(
        st.dec_keys("s", "m", &ids, 1_000),
        Err(StoreError::NotFound)
    ));
    assert!(st.expire_pending(999, 9_999, KEPT).unwrap().is_empty());
    let expired = st.expire_pending(1_000, 9_999, KEPT).unwrap();
    assert_eq!(expired.get(&("m".into(), "s".into())), Some(&2));
    assert_eq!(st.pending_count("m", "s").unwrap(), 1);
    assert!(st.expire_pending(1_000, 9_999, KEPT).unwrap().is_empty());
    assert!(matches!(
        st.dec_keys("s", "m", &ids, 0),
        Err(StoreError::NotFound)
    ));
    // The key that did not expire is delivered once; no ID is stored again.
    assert_eq!(
        st.dec_keys("s", "m", &["k3".into()], 4_999).unwrap().len(),
        1
    );
    for id in ["k1", "k3"] {
        assert!(
            matches!(
                st.enc_local("m", "s", &[key(id)], 10, 9_000, 0),
                Err(StoreError::Reused(_))
            ),
            "{id}"
        );
    }
    assert_eq!(st.pending_count("m", "s").unwrap(), 0);
}

#[test]
fn pads_are_spent_once_and_match_on_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Store::open(&dir.path().join("l")).unwrap();
    let follower = Store::open(&dir.path().join("f")).unwrap();
    let block: Vec<u8> = (0..64u8).collect();
    leader.leader_add("f", &block).unwrap();
    let push = leader.unconfirmed("l", 10).unwrap();
    assert!(push.is_empty(), "per-peer pools");
    let push = leader.unconfirmed("f", 10).unwrap();
    assert_eq!(push.len(), 2);
    assert!(
        leader.take_pad("f", Direction::LeaderSends, 1).is_err(),
        "unconfirmed"
    );
    follower.follower_store("l", &push).unwrap();
    follower.follower_store("l", &push).unwrap();
    leader.confirm("f", 2).unwrap();
    assert_eq!(follower.link_levels("l").unwrap().leader_sends_bytes, 32);
    let pad = leader.take_pad("f", Direction::LeaderSends, 20).unwrap();
    assert_eq!(&pad.bytes[..], &block[..20]);
    let got = {
        let keys = vec![Zeroizing::new(vec![0u8; 20])];
        let masked = xor_split(&keys, &pad.bytes);
        let ids = ["k1".to_string()];
        let act = HopAction::Deliver {
            master: "m".into(),
            slave: "s".into(),
            ids: ids.to_vec(),
            max_pending: 10,
            deadline_ms: 2000,
        };
        follower
            .relay_hop("l", Direction::LeaderSends, &pad.ranges, &masked, act)
            .unwrap();
        follower.dec_keys("s", "m", &ids, 1000).unwrap()
    };
    assert_eq!(&got[0].bytes[..], &[0u8; 20][..]);
    let ids = ["k1".to_string()];
    let act = HopAction::Deliver {
        master: "m".into(),
        slave: "s".into(),
        ids: ids.to_vec(),
        max_pending: 10,
        deadline_ms: 2000,
    };
    let masked = vec![Zeroizing::new(vec![0u8; 20])];
    assert!(
        follower
            .relay_hop("l", Direction::LeaderSends, &pad.ranges, &masked, act)
            .is_err(),
        "spent"
    );
    assert!(matches!(
        follower.dec_keys("s", "m", &ids, 1000),
        Err(StoreError::NotFound)
    ));
    assert_eq!(leader.link_levels("f").unwrap().leader_sends_bytes, 12);
    let pad = follower
        .take_pad("l", Direction::FollowerSends, 32)
        .unwrap();
    assert_eq!(&pad.bytes[..], &block[32..]);
}

/// Compiles only if `T` zeroizes itself when dropped.
fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}

#[test]
fn the_stores_key_bytes_zeroize_on_drop() {
    assert_zeroize_on_drop::<Secret>();
}

/// Found by the `kme_link_push` fuzz target: a pushed block numbered `u64::MAX` made the
/// next expected number overflow (a panic with overflow checks on; without them it wrapped
/// to 0, and every number was taken again, so a spent block could be stored anew and its
/// pad used twice). A number with no successor is refused; the numbering holds.
#[test]
fn a_pushed_block_numbered_u64_max_is_refused_and_the_numbering_holds() {
    let dir = tempfile::tempdir().unwrap();
    let follower = Store::open(&dir.path().join("f")).unwrap();
    let block = |seq: u64| (seq, Zeroizing::new(vec![7u8; 8]));
    assert_eq!(follower.follower_store("l", &[block(4)]).unwrap(), 8);
    assert_eq!(follower.follower_store("l", &[block(u64::MAX)]).unwrap(), 0);
    assert_eq!(follower.link_levels("l").unwrap().next_seq, 5);
    assert_eq!(
        follower.follower_store("l", &[block(0), block(4)]).unwrap(),
        0,
        "numbers already used stay refused"
    );
    assert_eq!(follower.link_levels("l").unwrap().leader_sends_bytes, 8);
}

#[test]
fn pad_the_sender_passed_is_discarded_and_the_rest_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Store::open(&dir.path().join("l")).unwrap();
    let follower = Store::open(&dir.path().join("f")).unwrap();
    for fill in [1u8, 2, 3] {
        leader.leader_add_split("f", &[fill; 20], 10).unwrap();
    }
    follower
        .follower_store("l", &leader.unconfirmed("f", 10).unwrap())
        .unwrap();
    leader.confirm("f", 6).unwrap();
    // the follower spends 14 bytes of its direction (blocks 1, 3) in a relay that never
    // reaches the leader; the next relay it sends shows the leader where it got to
    let lost = follower
        .take_pad("l", Direction::FollowerSends, 14)
        .unwrap();
    assert_eq!(
        lost.ranges.last().unwrap().end(),
        PadPosition { seq: 3, offset: 4 }
    );
    let at = |seq, offset| PadPosition { seq, offset };
    assert_eq!(
        leader
            .discard_passed("f", Direction::FollowerSends, at(3, 4))
            .unwrap(),
        14
    );
    let (l, f) = (
        leader.link_levels("f").unwrap(),
        follower.link_levels("l").unwrap(),
    );
    assert_eq!(
        l.follower_sends_bytes, f.follower_sends_bytes,
        "both ends agree"
    );
    assert_eq!(l.follower_sends_bytes, 16);
    assert_eq!(
        leader
            .discard_passed("f", Direction::FollowerSends, at(3, 4))
            .unwrap(),
        0,
        "nothing twice"
    );
    // what follows the position is still the same pad at both ends
    let next = follower.take_pad("l", Direction::FollowerSends, 8).unwrap();
    let masked = xor_split(&[Zeroizing::new(vec![0x5a; 8])], &next.bytes);
    let action = HopAction::Deliver {
        master: "m".into(),
        slave: "s".into(),
        ids: vec!["k".into()],
        max_pending: 10,
        deadline_ms: u64::MAX,
    };
    leader
        .relay_hop("f", Direction::FollowerSends, &next.ranges, &masked, action)
        .unwrap();
    let got = leader.dec_keys("s", "m", &["k".into()], 0).unwrap();
    assert_eq!(*got[0].bytes, vec![0x5a; 8], "unmasked with the same pad");
    assert_eq!(leader.link_levels("f").unwrap().follower_sends_bytes, 8);
}

#[test]
fn delivery_records_are_forgotten_once_kept_long_enough() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(&dir.path().join("db")).unwrap();
    let key = |id: &str| NewKey {
        id: id.to_string(),
        bytes: Zeroizing::new(vec![7u8; 32]),
    };
    // written at 100 (to the master), then to the slave at 200: one record, timed 100
    st.enc_local("m", "s", &[key("k1")], 10, 5_000, 100)
        .unwrap();
    st.dec_keys("s", "m", &["k1".into()], 200).unwrap();
    // an older version's record, without a time
    {
        let txn = st.db.begin_write().unwrap();
        txn.open_table(schema::DELIVERED)
            .unwrap()
            .insert("old", DELIVERED_SLAVE)
            .unwrap();
        txn.commit().unwrap();
    }
    let reused = |st: &Store, id: &str| {
        matches!(
            st.enc_local("m", "s", &[key(id)], 10, 9_000, 0),
            Err(StoreError::Reused(_))
        )
    };
    st.expire_pending(1_099, 0, 1_000).unwrap();
    assert!(reused(&st, "k1") && reused(&st, "old"), "kept for 1 000 ms");
    st.expire_pending(1_100, 0, 1_000).unwrap();
    assert!(
        !reused(&st, "k1"),
        "forgotten: the ID could be stored again"
    );
    assert!(
        reused(&st, "old"),
        "the untimed record counts from the first sweep, 1 099"
    );
    st.expire_pending(2_099, 0, 1_000).unwrap();
    assert!(!reused(&st, "old"));
}

#[test]
fn a_key_stored_without_a_deadline_expires_from_the_first_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(&dir.path().join("db")).unwrap();
    let key = NewKey {
        id: "k".into(),
        bytes: Zeroizing::new(vec![7u8; 32]),
    };
    st.enc_local("m", "s", &[key], 10, 5_000, 5).unwrap();
    // as an older version stored it: no deadline
    {
        let txn = st.db.begin_write().unwrap();
        txn.open_table(schema::PENDING_DEADLINE)
            .unwrap()
            .remove("k")
            .unwrap();
        txn.open_table(schema::PENDING_BY_DEADLINE)
            .unwrap()
            .remove((5_000, "k"))
            .unwrap();
        txn.commit().unwrap();
    }
    // the first sweep (nothing due) gives it the deadline 100; later sweeps keep it
    assert!(st.expire_pending(10, 100, KEPT).unwrap().is_empty());
    let expired = st.expire_pending(100, 1_000, KEPT).unwrap();
    assert_eq!(expired.get(&("m".into(), "s".into())), Some(&1));
}

#[test]
fn discarding_a_refused_relays_ranges_skips_spent_bytes_and_other_directions() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Store::open(&dir.path().join("l")).unwrap();
    let follower = Store::open(&dir.path().join("f")).unwrap();
    leader.leader_add_split("f", &[7u8; 32], 16).unwrap();
    follower
        .follower_store("l", &leader.unconfirmed("f", 10).unwrap())
        .unwrap();
    leader.confirm("f", 2).unwrap();
    // the leader relays 8 bytes of its direction; the follower refuses that relay
    let pad = leader.take_pad("f", Direction::LeaderSends, 8).unwrap();
    let other = PadRange {
        seq: 1,
        offset: 0,
        len: 4,
    };
    let mut ranges = pad.ranges.clone();
    ranges.push(other);
    assert_eq!(
        follower
            .discard_ranges("l", Direction::LeaderSends, &ranges)
            .unwrap(),
        8,
        "the leader's direction only"
    );
    assert_eq!(
        follower
            .discard_ranges("l", Direction::LeaderSends, &ranges)
            .unwrap(),
        0,
        "spent already"
    );
    let f = follower.link_levels("l").unwrap();
    let l = leader.link_levels("f").unwrap();
    assert_eq!(
        f.leader_sends_bytes, l.leader_sends_bytes,
        "both ends agree"
    );
    assert_eq!(f.follower_sends_bytes, 16, "the other direction untouched");
    // a range past a block's end or of a block gone is skipped
    let gone = PadRange {
        seq: 40,
        offset: 0,
        len: 4,
    };
    let past = PadRange {
        seq: pad.ranges[0].seq,
        offset: 12,
        len: 100,
    };
    assert_eq!(
        follower
            .discard_ranges("l", Direction::LeaderSends, &[gone, past])
            .unwrap(),
        4
    );
}
