//! The tokio driver of the Key Distribution function: one UDP socket (pushes and MTK messages
//! leave from it, acknowledgements arrive on it), the Key Request events, the timers.
//!
//! The [`Distributor`] is sans-IO; this loop only moves bytes and time. Calls that may reach
//! the store or the key source ([`Distributor::on_event`], [`Distributor::on_timeout`]: MSK
//! creation, MTK state, the counter ceiling, registration pages, GBA key lookups) run on the
//! blocking pool, the distributor moved in and back out, so the runtime's threads never wait
//! on SQLite or a BSF; the Key Request events queued when one arrives go with it (at most
//! `MAX_EVENTS_PER_CALL`, [`Distributor::on_events`]), so a registration storm costs one trip,
//! one batch of MSK messages and one counter reservation per call, not per event.
//! [`Distributor::on_datagram`] runs inline: matching and verifying an acknowledgement touches
//! neither (a few microseconds of HMAC). A fan-out is cut into
//! batches by the distributor, and the loop reads acknowledgements between them. Each call
//! gets both clocks as read then ([`clocks`]); the loop sleeps until the distributor's next
//! deadline on the monotonic clock, so a step of the wall clock moves no timer.
//!
//! Datagrams go out in batches with `sendmmsg(2)` on Linux (one system call per up to
//! [`SENDMMSG_CHUNK`] datagrams), `send_to` one by one elsewhere (`bmsc::mmsg`, shared with the
//! media driver). A sender task of its own
//! does the sending, fed in order through a queue of `SEND_QUEUE` (2) batches: while it sends
//! one page of a fan-out (the kernel's share of the work, loopback delivery included), the
//! distributor already builds the next page on the other core. A send error concerns one
//! datagram (an unreachable UE): it is logged and the rest of the batch goes on; the push is
//! retransmitted as usual. MTK objects are written atomically: a temporary file `.<name>.tmp`
//! in the same directory, then a rename (the FLUTE sender ignores dot files).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinError;
use tokio::time::Instant;

use crate::bmsc::distribution::{Action, Datagram, DistributionError, Distributor, Now};
use crate::bmsc::events::KeyRequestEvent;
pub use crate::bmsc::mmsg::{SENDMMSG_CHUNK, send_batch};

/// Largest datagram read: acknowledgements are under 100 octets; anything longer is not one.
const RECV_BUFFER: usize = 2048;

/// Datagrams read per wake-up before timers and events get their turn.
const MAX_DRAIN: usize = 1024;

/// Batches queued for the sender task before the driver waits for it (bounds the memory held
/// by built but unsent messages to this many pages).
const SEND_QUEUE: usize = 2;

/// Key Request events handed to the distributor in one trip to the blocking pool.
const MAX_EVENTS_PER_CALL: usize = 256;

/// Largest batch of datagrams made by joining consecutive batches (a batch already this large,
/// such as a fan-out page of `Tuning::batch_size`, goes as it is).
const MAX_JOINED: usize = 1024;

/// After `on_timeout` failed (store unavailable), timers wait this long before the next try.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Both clocks, read now: the monotonic one (tokio's, so that a test with a paused runtime
/// drives it) for the distributor's schedule, the wall clock for protocol times.
#[must_use]
pub fn clocks() -> Now {
    Now::new(Instant::now().into_std(), SystemTime::now())
}

/// The driver stopped abnormally.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum DriverError {
    /// A distributor call panicked on the blocking pool; the distributor is lost.
    #[error("key distribution task failed: {0}")]
    Task(#[from] JoinError),
    /// The sender task ended before the driver (it panicked).
    #[error("datagram sender stopped")]
    Sender,
}

/// Runs the Key Distribution function until `shutdown` completes; returns the distributor
/// (its state is persisted as it goes: nothing needs saving at shutdown).
///
/// # Errors
/// [`DriverError::Task`] when a distributor call panicked.
pub async fn run_distribution(
    distributor: Distributor,
    socket: UdpSocket,
    events: mpsc::Receiver<KeyRequestEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<Distributor, DriverError> {
    let socket = Arc::new(socket);
    let (to_sender, batches) = mpsc::channel::<Vec<Datagram>>(SEND_QUEUE);
    let sender = tokio::spawn(send_in_order(Arc::clone(&socket), batches));
    let outcome = drive(distributor, &socket, &to_sender, events, shutdown).await;
    drop(to_sender);
    let sent = sender.await;
    let d = outcome?;
    sent?;
    Ok(d)
}

/// The sender task: sends every queued batch, in order, until the queue closes.
async fn send_in_order(socket: Arc<UdpSocket>, mut batches: mpsc::Receiver<Vec<Datagram>>) {
    while let Some(batch) = batches.recv().await {
        send_batch(&socket, &batch).await;
    }
}

/// The driver loop proper; batches to send go to `to_sender`.
async fn drive(
    distributor: Distributor,
    socket: &UdpSocket,
    to_sender: &mpsc::Sender<Vec<Datagram>>,
    mut events: mpsc::Receiver<KeyRequestEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<Distributor, DriverError> {
    let mut d = distributor;
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut events_open = true;
    let mut paused_until: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        flush(&mut d, to_sender).await?;
        let deadline = match (d.poll_timeout(), paused_until) {
            (Some(t), Some(p)) => Some(t.max(p)),
            (t, _) => t,
        };
        // Deadlines are monotonic: a step of the wall clock moves none of them.
        let wake = deadline.map(Instant::from_std);
        tokio::select! {
            () = &mut shutdown => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    d.on_datagram(from, buf.get(..n).unwrap_or_default(), clocks());
                    for _ in 1..MAX_DRAIN {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => d.on_datagram(
                                from,
                                buf.get(..n).unwrap_or_default(),
                                clocks(),
                            ),
                            Err(_) => break,
                        }
                    }
                }
                Err(e) => tracing::debug!("distribution socket: {e}"),
            },
            event = events.recv(), if events_open => match event {
                Some(event) => {
                    let batch = with_queued(event, &mut events);
                    let (back, _) = blocking(d, move |d| {
                        for e in d.on_events(batch, clocks()) {
                            tracing::warn!("key request event not distributed: {e}");
                        }
                        Ok(())
                    })
                    .await?;
                    d = back;
                }
                None => events_open = false,
            },
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                let (back, result) = blocking(d, |d| d.on_timeout(clocks())).await?;
                d = back;
                paused_until = match result {
                    Ok(()) => None,
                    Err(e) => {
                        tracing::warn!("key distribution: {e}");
                        Some(clocks().mono + ERROR_PAUSE)
                    }
                };
            }
        }
    }
    flush(&mut d, to_sender).await?;
    Ok(d)
}

/// `first` and the events queued behind it, at most [`MAX_EVENTS_PER_CALL`] in all: one trip
/// to the blocking pool carries them all (a registration storm queues one event per 200).
fn with_queued(
    first: KeyRequestEvent,
    events: &mut mpsc::Receiver<KeyRequestEvent>,
) -> Vec<KeyRequestEvent> {
    let mut batch = vec![first];
    while batch.len() < MAX_EVENTS_PER_CALL {
        match events.try_recv() {
            Ok(event) => batch.push(event),
            Err(_) => break,
        }
    }
    batch
}

/// Runs `f` on the blocking pool with the distributor moved in, and hands it back.
async fn blocking(
    mut d: Distributor,
    f: impl FnOnce(&mut Distributor) -> Result<(), DistributionError> + Send + 'static,
) -> Result<(Distributor, Result<(), DistributionError>), DriverError> {
    Ok(tokio::task::spawn_blocking(move || {
        let r = f(&mut d);
        (d, r)
    })
    .await?)
}

/// Carries out every queued action, in order (datagrams through the sender task; runs of
/// consecutive datagram batches, such as the pushes of many registrations handled in one
/// call, are joined into one batch of at most [`MAX_JOINED`] datagrams).
async fn flush(
    d: &mut Distributor,
    to_sender: &mpsc::Sender<Vec<Datagram>>,
) -> Result<(), DriverError> {
    let mut pending: Option<Action> = None;
    loop {
        let Some(action) = pending.take().or_else(|| d.poll_action()) else {
            return Ok(());
        };
        match action {
            Action::SendUdp(mut batch) => {
                while batch.len() < MAX_JOINED {
                    match d.poll_action() {
                        Some(Action::SendUdp(more)) if batch.len() + more.len() <= MAX_JOINED => {
                            batch.extend(more);
                        }
                        other => {
                            pending = other;
                            break;
                        }
                    }
                }
                to_sender
                    .send(batch)
                    .await
                    .map_err(|_| DriverError::Sender)?;
            }
            Action::WriteMtkObject { path, bytes } => {
                let shown = path.display().to_string();
                match tokio::task::spawn_blocking(move || crate::files::write_atomic(&path, &bytes))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(path = %shown, "MTK object not written: {e}"),
                    Err(e) => tracing::warn!(path = %shown, "MTK object not written: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(i: u16) -> KeyRequestEvent {
        KeyRequestEvent::Registered {
            btid: format!("b{i}@bsf.example.org").parse().expect("btid"),
            ue_addr: std::net::IpAddr::from([127, 0, 0, 1]),
            service_ids: vec![format!("s{i}")],
        }
    }

    fn service_of(e: &KeyRequestEvent) -> String {
        match e {
            KeyRequestEvent::Registered { service_ids, .. } => service_ids.concat(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn queued_events_go_with_the_first_in_order_up_to_the_limit() {
        let (tx, mut rx) = mpsc::channel(1024);
        for i in 1..=300 {
            tx.try_send(registered(i)).expect("queued");
        }
        let batch = with_queued(registered(0), &mut rx);
        assert_eq!(batch.len(), MAX_EVENTS_PER_CALL);
        let names: Vec<String> = batch.iter().map(service_of).collect();
        let want: Vec<String> = (0..256).map(|i| format!("s{i}")).collect();
        assert_eq!(names, want);
        let rest = with_queued(rx.try_recv().expect("left"), &mut rx);
        assert_eq!(rest.len(), 300 - 255);
        assert_eq!(service_of(&rest[0]), "s256");
        assert!(with_queued(registered(9), &mut rx).len() == 1);
    }
}
