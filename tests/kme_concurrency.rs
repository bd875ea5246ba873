//! 8 SAE clients call enc_keys and dec_keys on one KME at once, 40 rounds each: every key a
//! master asked for is got, and got by exactly one slave (its partner), identical; none is
//! delivered twice. A fixed amount of work, not a time: how fast is `benches/kme.rs`'s job.

mod support;

use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use support::kme::*;

const SAES: usize = 8;
const ROUNDS: u32 = 40;

/// Keys one client asks for as master: round r asks for 1 + r % 4.
fn keys_per_client() -> usize {
    (1..=ROUNDS).map(|r| 1 + (r % 4) as usize).sum()
}

type Keys = Arc<Mutex<HashMap<String, String>>>;
type Queues = Arc<Vec<Mutex<Vec<String>>>>;

struct Shared {
    base: String,
    master_got: Keys,
    slave_got: Keys,
    queues: Queues,
    double: Arc<Mutex<u64>>,
}

/// SAE i is master for its partner i^1 and slave for it.
async fn client(pki: Arc<Pki>, i: usize, s: Arc<Shared>) {
    let c = pki.client(Some(&sae_name(i)));
    let partner = i ^ 1;
    for round in 1..=ROUNDS {
        let number = 1 + round % 4;
        let url = format!("{}/{}/enc_keys?number={number}", s.base, sae_name(partner));
        let r = c.get(url).send().await.unwrap();
        let k = keys(r).await;
        let what = "a key ID handed to two masters";
        record_once(&mut s.master_got.lock().unwrap(), &k, what);
        let ids = k.keys.iter().map(|key| key.key_ID.clone());
        s.queues[partner].lock().unwrap().extend(ids);
        fetch(&c, i, &s, round.is_multiple_of(7)).await;
    }
}

/// Fetches what the partner left for SAE i; sometimes asks again for a fetched key.
async fn fetch(c: &reqwest::Client, i: usize, s: &Shared, retry: bool) -> usize {
    let ids: Vec<String> = std::mem::take(&mut *s.queues[i].lock().unwrap());
    for chunk in ids.chunks(16) {
        let url = format!("{}/{}/dec_keys", s.base, sae_name(i ^ 1));
        let r = c
            .post(&url)
            .json(&key_ids_body(chunk))
            .send()
            .await
            .unwrap();
        let k = keys(r).await;
        record_once(
            &mut s.slave_got.lock().unwrap(),
            &k,
            "a key delivered twice to slaves",
        );
        if retry {
            let again = c
                .get(format!("{url}?key_ID={}", chunk[0]))
                .send()
                .await
                .unwrap();
            assert_eq!(
                again.status(),
                StatusCode::BAD_REQUEST,
                "second delivery refused"
            );
            *s.double.lock().unwrap() += 1;
        }
    }
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_saes_at_once_get_every_key_exactly_once() {
    let names: Vec<String> = (0..SAES).map(sae_name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pki = Arc::new(Pki::new("conc-ca", &["kme-a"], &refs));
    let data = private_tempdir();
    let spec = Spec::local("kme-a", free_port(), &refs);
    let kme = start_spec(&pki, data.path(), &spec).await;
    let s = Arc::new(Shared {
        base: base(kme.local_addr()),
        master_got: Keys::default(),
        slave_got: Keys::default(),
        queues: Arc::new((0..SAES).map(|_| Mutex::new(Vec::new())).collect()),
        double: Arc::default(),
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..SAES)
        .map(|i| tokio::spawn(client(pki.clone(), i, s.clone())))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..SAES {
        let c = pki.client(Some(&sae_name(i)));
        fetch(&c, i, &s, false).await;
    }
    let (m, sl) = (
        s.master_got.lock().unwrap().clone(),
        s.slave_got.lock().unwrap().clone(),
    );
    assert_eq!(
        m, sl,
        "every master key got by exactly one slave, identical"
    );
    assert_eq!(
        m.len(),
        SAES * keys_per_client(),
        "every key a master asked for was delivered"
    );
    assert!(
        *s.double.lock().unwrap() > 0,
        "second deliveries were attempted (and refused)"
    );
    println!(
        "{} keys delivered to masters and slaves in {:.1} s; {} second-delivery attempts refused",
        m.len(),
        started.elapsed().as_secs_f64(),
        s.double.lock().unwrap()
    );
    kme.shutdown().await;
}
