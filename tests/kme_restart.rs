//! `kill -9` the KME binary twice under load from 8 SAEs and restart it on the same data
//! directory: no key is ever delivered twice, and every key a master received reaches its
//! slave — except keys whose `dec_keys` answer was lost with the killed process (their
//! delivery was committed, so they are never delivered again: ETSI 014 has no
//! acknowledgement, and "delivered once" wins). Those are only ever keys of a request in
//! flight at the kill, and the test checks exactly that. Each kill waits (polled) until
//! the KME has answered keys since its start and a request is in flight, and the test
//! requires that requests were cut off by the kills: the hard case happens every run.

mod support;

use qshield::qkd::etsi014::KeyContainer;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::kme::*;

const SAES: usize = 8;

#[derive(Default)]
struct Log {
    master_got: HashMap<String, String>,
    slave_got: HashMap<String, String>,
    /// key ID → the slave whose request for it got no answer.
    in_doubt: HashMap<String, usize>,
    queues: HashMap<usize, Vec<String>>,
}

/// Requests as the SAEs see them, read by the test at each kill.
#[derive(Default)]
struct Flight {
    /// Requests sent and not yet answered (or failed).
    in_flight: AtomicUsize,
    /// Keys the masters received (enc_keys answered).
    keys_answered: AtomicUsize,
    /// Kills so far (incremented just before each kill).
    kills: AtomicUsize,
    /// Requests sent before a kill that failed after it: in flight at the kill.
    cut_off: AtomicUsize,
}

/// One request in flight, from just before it is sent until its answer is read.
struct InFlight<'a> {
    flight: &'a Flight,
    kills_at_send: usize,
}

impl<'a> InFlight<'a> {
    fn start(flight: &'a Flight) -> Self {
        flight.in_flight.fetch_add(1, Ordering::SeqCst);
        let kills_at_send = flight.kills.load(Ordering::SeqCst);
        Self {
            flight,
            kills_at_send,
        }
    }

    /// The request failed: counted as cut off when a kill came after it was sent.
    fn failed(&self) {
        if self.flight.kills.load(Ordering::SeqCst) > self.kills_at_send {
            self.flight.cut_off.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.flight.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn client(
    pki: Arc<Pki>,
    i: usize,
    base: String,
    log: Arc<Mutex<Log>>,
    flight: Arc<Flight>,
    stop: Arc<AtomicBool>,
) {
    let c = pki.client(Some(&sae_name(i)));
    while !stop.load(Ordering::Relaxed) {
        if enc(&c, i, &base, &log, &flight).await.is_err()
            || dec(&c, i, &base, &log, &flight).await.is_err()
        {
            // Back off while the KME is down (a retry pace, not a wait for an event).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn enc(
    c: &reqwest::Client,
    i: usize,
    base: &str,
    log: &Mutex<Log>,
    flight: &Flight,
) -> Result<(), ()> {
    let url = format!("{base}/{}/enc_keys?number=2", sae_name(i ^ 1));
    let request = InFlight::start(flight);
    let r = c.get(url).send().await.map_err(|_| request.failed())?;
    assert_eq!(r.status(), StatusCode::OK);
    let k: KeyContainer = r.json().await.map_err(|_| request.failed())?;
    drop(request);
    flight
        .keys_answered
        .fetch_add(k.keys.len(), Ordering::SeqCst);
    let mut log = log.lock().unwrap();
    record_once(&mut log.master_got, &k, "a key ID handed to two masters");
    for key in &k.keys {
        log.queues
            .entry(i ^ 1)
            .or_default()
            .push(key.key_ID.clone());
    }
    Ok(())
}

/// Fetches SAE i's queued keys; a request that gets no answer puts its IDs in doubt.
async fn dec(
    c: &reqwest::Client,
    i: usize,
    base: &str,
    log: &Mutex<Log>,
    flight: &Flight,
) -> Result<(), ()> {
    let ids = log.lock().unwrap().queues.remove(&i).unwrap_or_default();
    if ids.is_empty() {
        return Ok(());
    }
    let body = key_ids_body(&ids);
    let request = InFlight::start(flight);
    let sent = c
        .post(format!("{base}/{}/dec_keys", sae_name(i ^ 1)))
        .json(&body)
        .send()
        .await;
    let answer = match sent {
        Ok(r) if r.status() == StatusCode::OK => r.json::<KeyContainer>().await.ok(),
        Ok(r) => panic!("dec_keys answered {}", r.status()),
        Err(_) => None,
    };
    if answer.is_none() {
        request.failed();
    }
    drop(request);
    let mut log = log.lock().unwrap();
    let Some(k) = answer else {
        log.in_doubt.extend(ids.into_iter().map(|id| (id, i)));
        return Err(());
    };
    record_once(&mut log.slave_got, &k, "delivered twice");
    Ok(())
}

/// After the last restart: keys in doubt are either delivered now (the killed KME had not
/// committed) or refused as not found (it had); never both. Returns the refused ones.
async fn settle_doubts(pki: &Pki, base: &str, log: &Mutex<Log>) -> usize {
    let doubts: Vec<(String, usize)> = log.lock().unwrap().in_doubt.clone().into_iter().collect();
    let mut lost_answers = 0;
    for (id, slave) in doubts {
        let c = pki.client(Some(&sae_name(slave)));
        let url = format!("{base}/{}/dec_keys?key_ID={id}", sae_name(slave ^ 1));
        let r = c.get(url).send().await.unwrap();
        match r.status() {
            StatusCode::OK => {
                let k: KeyContainer = r.json().await.unwrap();
                let mut log = log.lock().unwrap();
                assert!(log.slave_got.insert(id, k.keys[0].key.clone()).is_none());
            }
            StatusCode::BAD_REQUEST => lost_answers += 1,
            s => panic!("{s}"),
        }
    }
    lost_answers
}

/// Keys the masters must receive from a (re)started KME before it is killed again.
const KEYS_PER_EPOCH: usize = 100;

/// Polls until the masters received `keys` more keys (the KME is serving load).
async fn wait_for_keys(flight: &Flight, keys: usize) {
    let target = flight.keys_answered.load(Ordering::SeqCst) + keys;
    let deadline = Instant::now() + Duration::from_secs(30);
    while flight.keys_answered.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "no load served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Once the KME has served `KEYS_PER_EPOCH` keys, SIGKILLs it (this PID only) at a
/// moment a request is in flight; returns how many were.
async fn kill_under_load(child: &mut Child, flight: &Flight) -> usize {
    wait_for_keys(flight, KEYS_PER_EPOCH).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = flight.in_flight.load(Ordering::SeqCst);
        if n > 0 {
            flight.kills.fetch_add(1, Ordering::SeqCst);
            child.kill().unwrap();
            child.wait().unwrap();
            return n;
        }
        assert!(Instant::now() < deadline, "never a request in flight");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_load_loses_and_repeats_nothing() {
    let names: Vec<String> = (0..SAES).map(sae_name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pki = Arc::new(Pki::new("restart-ca", &["kme-a"], &refs));
    let dir = private_tempdir();
    let spec = Spec::local("kme-a", free_port(), &refs);
    let config = write_config(&pki, dir.path(), &spec);
    let stderr = dir.path().join("kme.log");
    let base = format!("https://127.0.0.1:{}/api/v1/keys", spec.port);
    let mut child = spawn_kme(&config, &stderr);
    wait_ready(&pki, &base).await;
    let log = Arc::new(Mutex::new(Log::default()));
    let flight = Arc::new(Flight::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..SAES)
        .map(|i| {
            tokio::spawn(client(
                pki.clone(),
                i,
                base.clone(),
                log.clone(),
                flight.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut in_flight_at_kills = Vec::new();
    for _ in 0..2 {
        let n = kill_under_load(&mut child, &flight).await;
        in_flight_at_kills.push(n);
        child = spawn_kme(&config, &stderr);
        wait_ready(&pki, &base).await;
    }
    // The restarted KME serves keys again before the load stops.
    wait_for_keys(&flight, KEYS_PER_EPOCH).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..SAES {
        let c = pki.client(Some(&sae_name(i)));
        dec(&c, i, &base, &log, &flight).await.unwrap();
    }
    let lost_answers = settle_doubts(&pki, &base, &log).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let log = log.lock().unwrap();
    // The hard case happened: requests were in flight at each kill, and some were cut off
    // by it (sent before, failed after).
    let cut_off = flight.cut_off.load(Ordering::SeqCst);
    assert!(
        in_flight_at_kills.iter().all(|&n| n > 0) && cut_off > 0,
        "requests in flight at the kills: {in_flight_at_kills:?}, cut off: {cut_off}"
    );
    for (id, key) in &log.slave_got {
        assert_eq!(
            log.master_got.get(id),
            Some(key),
            "slave got what the master got"
        );
    }
    let missing: Vec<&String> = log
        .master_got
        .keys()
        .filter(|id| !log.slave_got.contains_key(*id))
        .collect();
    assert!(
        missing.iter().all(|id| log.in_doubt.contains_key(*id)),
        "lost keys: {missing:?}"
    );
    assert_eq!(missing.len(), lost_answers);
    println!(
        "{} keys; in flight at the kills {in_flight_at_kills:?}; {cut_off} requests cut off; \
         {} keys whose dec_keys answer died with the KME",
        log.master_got.len(),
        missing.len()
    );
}
