//! The HTTP side of the KME: the router (every route of [`super::routes`], each group
//! behind its role layer, [`super::roles`]) and the mutual-TLS accept loop (connection
//! caps, handshake and idle timeouts; the caller's CN goes into each request's
//! extensions). One file per route group: [`etsi014`], [`relay`], [`link_push`],
//! [`cvqkd`], [`status`]. Handlers import the shared state, never this wiring.

mod accept;
pub mod cvqkd;
pub mod etsi014;
pub mod link_push;
pub mod relay;
pub mod status;
pub mod topology;

use super::link::cvqkd::wire;
use super::roles;
use super::routes;
use super::state::Shared;
use accept::{
    ACCEPT_BACKOFF, Connections, SHUTDOWN_GRACE, Throttled, connection, fit_to_descriptors,
};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Every route, each group behind the role layer of its certificates. Public (hidden) so
/// the fuzz targets drive it in-process, with [`crate::kme::shared_state_without_server`].
#[doc(hidden)]
pub fn router(shared: Arc<Shared>) -> Router {
    // Each group of endpoints admits one role of certificate (`kme::roles`).
    let etsi = Router::new()
        .route(routes::ETSI_STATUS, get(etsi014::status))
        .route(
            routes::ETSI_ENC_KEYS,
            get(etsi014::enc_keys_get).post(etsi014::enc_keys_post),
        )
        .route(
            routes::ETSI_DEC_KEYS,
            get(etsi014::dec_keys_get).post(etsi014::dec_keys_post),
        )
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            roles::etsi_endpoints,
        ));
    let kme_to_kme = Router::new()
        .route(routes::RELAY, post(relay::relay_in))
        .route(
            routes::LINK_KEYS,
            post(link_push::link_keys)
                .layer(DefaultBodyLimit::max(link_push::LINK_PUSH_BODY_LIMIT_BYTES)),
        )
        .route(routes::LINK_SPENT, post(link_push::link_spent))
        .route(routes::TOPOLOGY, post(topology::adverts))
        .route(
            routes::CVQKD_LINK,
            post(cvqkd::handle).layer(DefaultBodyLimit::max(wire::body_limit(&shared.cfg.links))),
        )
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            roles::kme_endpoints,
        ));
    Router::new()
        .merge(etsi)
        .merge(kme_to_kme)
        .route(routes::KME_STATUS, get(status::kme_status))
        .fallback(etsi014::fallback)
        .method_not_allowed_fallback(etsi014::fallback)
        .with_state(shared)
}

/// Serves the API on `listener` until `stop` changes; then stops accepting, calls
/// `on_stop`, and gives open connections 5 s (`SHUTDOWN_GRACE`) to finish.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut stop: watch::Receiver<bool>,
    on_stop: impl FnOnce(),
) {
    let app = router(shared.clone());
    let limits = shared.cfg.connections;
    let mut conns = Connections::new(fit_to_descriptors(limits));
    let mut accept_errors = Throttled::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, from)) => {
                    let Some(authenticated) = conns.admit(from.ip()) else {
                        drop(tcp);
                        continue;
                    };
                    let (app, acc, stop) = (app.clone(), acceptor.clone(), stop.clone());
                    let task = connection(tcp, acc, app, stop, authenticated.clone(), limits);
                    let abort = conns.tasks.spawn(task);
                    conns.opened(from.ip(), authenticated, abort);
                }
                Err(e) => {
                    if let Some(n) = accept_errors.note() {
                        tracing::warn!(
                            "accept failed ({n} times since the last report): {e}; retrying every {} ms",
                            ACCEPT_BACKOFF.as_millis()
                        );
                    }
                    // Out of descriptors: the oldest quarter of the connections still in
                    // their TLS handshake give theirs up, so the backlog (where an SAE may
                    // wait behind connections that will never authenticate) drains fast.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        let n = conns.handshakes().div_ceil(4);
                        for _ in 0..n {
                            conns.evict_oldest_handshake(None);
                        }
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            _ = stop.changed() => break,
            Some(done) = conns.tasks.join_next_with_id(), if !conns.tasks.is_empty() => {
                conns.closed(done.map_or_else(|e| e.id(), |(id, ())| id));
            }
        }
    }
    drop(listener);
    on_stop();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.tasks.join_next().await.is_some() {}
    })
    .await;
}
