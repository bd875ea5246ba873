//! `kill -9` the KME binary twice under load from 8 SAEs and restart it on the same data
//! directory: no key is ever delivered twice, and every key a master received reaches its
//! slave — except keys whose `dec_keys` answer was lost with the killed process (their
//! delivery was committed, so they are never delivered again: ETSI 014 has no
//! acknowledgement, and "delivered once" wins). Those are only ever keys of a request in
//! flight at the kill, and the test checks exactly that.

mod kme_support;

use kme_support::*;
use qshield::qkd::etsi014::KeyContainer;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SAES: usize = 8;

#[derive(Default)]
struct Log {
    master_got: HashMap<String, String>,
    slave_got: HashMap<String, String>,
    /// key ID → the slave whose request for it got no answer.
    in_doubt: HashMap<String, usize>,
    queues: HashMap<usize, Vec<String>>,
}

fn name(i: usize) -> String {
    format!("sae-{i}")
}

fn spawn(config: &Path, log: &Path) -> Child {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_qshield"))
        .args(["kme", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap()
}

async fn wait_ready(pki: &Pki, base: &str) {
    let c = pki.client(Some("sae-0"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get(format!("{base}/sae-1/status")).send().await.is_err() {
        assert!(Instant::now() < deadline, "KME did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn client(
    pki: Arc<Pki>,
    i: usize,
    base: String,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
) {
    let c = pki.client(Some(&name(i)));
    while !stop.load(Ordering::Relaxed) {
        if enc(&c, i, &base, &log).await.is_err() || dec(&c, i, &base, &log).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn enc(c: &reqwest::Client, i: usize, base: &str, log: &Mutex<Log>) -> Result<(), ()> {
    let url = format!("{base}/{}/enc_keys?number=2", name(i ^ 1));
    let r = c.get(url).send().await.map_err(|_| ())?;
    assert_eq!(r.status(), StatusCode::OK);
    let k: KeyContainer = r.json().await.map_err(|_| ())?;
    let mut log = log.lock().unwrap();
    for key in &k.keys {
        assert!(
            log.master_got
                .insert(key.key_ID.clone(), key.key.clone())
                .is_none()
        );
        log.queues
            .entry(i ^ 1)
            .or_default()
            .push(key.key_ID.clone());
    }
    Ok(())
}

/// Fetches SAE i's queued keys; a request that gets no answer puts its IDs in doubt.
async fn dec(c: &reqwest::Client, i: usize, base: &str, log: &Mutex<Log>) -> Result<(), ()> {
    let ids = log.lock().unwrap().queues.remove(&i).unwrap_or_default();
    if ids.is_empty() {
        return Ok(());
    }
    let body = json!({"key_IDs": ids.iter().map(|id| json!({"key_ID": id})).collect::<Vec<_>>()});
    let sent = c
        .post(format!("{base}/{}/dec_keys", name(i ^ 1)))
        .json(&body)
        .send()
        .await;
    let answer = match sent {
        Ok(r) if r.status() == StatusCode::OK => r.json::<KeyContainer>().await.ok(),
        Ok(r) => panic!("dec_keys answered {}", r.status()),
        Err(_) => None,
    };
    let mut log = log.lock().unwrap();
    let Some(k) = answer else {
        log.in_doubt.extend(ids.into_iter().map(|id| (id, i)));
        return Err(());
    };
    for key in &k.keys {
        assert!(
            log.slave_got
                .insert(key.key_ID.clone(), key.key.clone())
                .is_none(),
            "delivered twice"
        );
    }
    Ok(())
}

/// After the last restart: keys in doubt are either delivered now (the killed KME had not
/// committed) or refused as not found (it had); never both. Returns the refused ones.
async fn settle_doubts(pki: &Pki, base: &str, log: &Mutex<Log>) -> usize {
    let doubts: Vec<(String, usize)> = log.lock().unwrap().in_doubt.clone().into_iter().collect();
    let mut lost_answers = 0;
    for (id, slave) in doubts {
        let c = pki.client(Some(&name(slave)));
        let url = format!("{base}/{}/dec_keys?key_ID={id}", name(slave ^ 1));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_load_loses_and_repeats_nothing() {
    let names: Vec<String> = (0..SAES).map(name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pki = Arc::new(Pki::new("restart-ca", &["kme-a"], &refs));
    let dir = private_tempdir();
    let spec = Spec {
        id: "kme-a",
        port: free_port(),
        extra_kme: "",
        saes: &refs,
        remote: &[],
        links: &[],
    };
    let config = dir.path().join("kme.toml");
    std::fs::write(&config, config_text(&pki, &dir.path().join("db"), &spec)).unwrap();
    let stderr = dir.path().join("kme.log");
    let base = format!("https://127.0.0.1:{}/api/v1/keys", spec.port);
    let mut child = spawn(&config, &stderr);
    wait_ready(&pki, &base).await;
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..SAES)
        .map(|i| {
            tokio::spawn(client(
                pki.clone(),
                i,
                base.clone(),
                log.clone(),
                stop.clone(),
            ))
        })
        .collect();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        child.kill().unwrap(); // SIGKILL, to this PID only
        child.wait().unwrap();
        child = spawn(&config, &stderr);
        wait_ready(&pki, &base).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..SAES {
        let c = pki.client(Some(&name(i)));
        dec(&c, i, &base, &log).await.unwrap();
    }
    let lost_answers = settle_doubts(&pki, &base, &log).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let log = log.lock().unwrap();
    assert!(
        log.master_got.len() > 50,
        "load too light: {}",
        log.master_got.len()
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
        "{} keys; {} whose dec_keys answer died with the KME",
        log.master_got.len(),
        missing.len()
    );
}
