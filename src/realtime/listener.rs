//! The one `LISTEN` connection of an instance: it hears every committed
//! device-session change and token change, from any instance, and hands
//! them to [`Realtime::received`].

use std::sync::Arc;
use std::time::Duration;

use crate::db::models::notifications::{DEVICE_CHANNEL, TOKENS_CHANNEL};
use crate::realtime::tls::{self, ListenTarget};
use crate::realtime::Realtime;

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait before reconnecting: after an outage of any length the
/// listener is back within this of the database (one connection attempt
/// per instance this often is cheap).
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Keeps one `LISTEN` connection open, reconnecting with backoff, and
/// forwards notifications. Runs until aborted.
pub async fn listen(database_url: String, realtime: Arc<Realtime>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match listen_once(&database_url, &realtime, &mut backoff).await {
            Ok(()) => tracing::warn!("notification listener disconnected; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "notification listener failed; reconnecting"),
        }
        realtime.set_listening(false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn listen_once(
    database_url: &str,
    realtime: &Realtime,
    backoff: &mut Duration,
) -> Result<(), ListenError> {
    let ListenTarget {
        mut config, tls, ..
    } = tls::target(database_url).map_err(ListenError::Config)?;
    // A connection that dies silently (a NAT or a failover dropping it)
    // would leave the caches trusting a listener that hears nothing.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    match tls {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await?;
            serve(client, connection, realtime, backoff).await
        }
        None => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            serve(client, connection, realtime, backoff).await
        }
    }
}

/// Why the listener is not listening.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    /// `DATABASE_URL` cannot be used as it is.
    #[error("{0}")]
    Config(String),
    /// Connecting or listening failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// Listens on an open connection until it drops.
async fn serve<S, T>(
    client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
    realtime: &Realtime,
    backoff: &mut Duration,
) -> Result<(), ListenError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if tx
                        .send((n.channel().to_owned(), n.payload().to_owned()))
                        .is_err()
                    {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "notification connection error");
                    return;
                }
                None => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {DEVICE_CHANNEL}; LISTEN {TOKENS_CHANNEL}"))
        .await?;
    realtime.set_listening(true);
    *backoff = FIRST_BACKOFF;
    tracing::info!("listening for device-session and token changes");
    while let Some((channel, payload)) = rx.recv().await {
        realtime.received(&channel, &payload);
    }
    driver.abort();
    Ok(())
}
