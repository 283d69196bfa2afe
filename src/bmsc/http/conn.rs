//! Per-connection time limits of the Key Request server. hyper's own `header_read_timeout`
//! also runs while a keep-alive connection waits for its next request, which would make the
//! idle timeout no longer than the request timeout; this clock tells the phases apart:
//!
//! - idle: no request under way; closed after `idle_timeout` without a byte;
//! - head: a request's first byte arrived, its header is not complete; cut
//!   `request_timeout` after that first byte (slowloris);
//! - busy: the header is complete; the service bounds body reading and handling by
//!   `request_timeout` from the first byte, and the connection is cut a little after that as
//!   a backstop.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Time a busy request gets past `request_timeout` before its connection is cut: the service
/// answers 408/503 itself at `request_timeout`, this only catches a stuck write.
const BUSY_GRACE: Duration = Duration::from_secs(2);

/// `start + d`, saturating at a year ahead for durations no configuration means literally.
pub(super) fn after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .unwrap_or_else(|| start + Duration::from_secs(365 * 86_400))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for a request since then.
    Idle(Instant),
    /// Reading a request header whose first byte came then.
    Head(Instant),
    /// Serving a request that started then.
    Busy(Instant),
}

/// What the watchdog does when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// Idle too long: close gracefully.
    Idle,
    /// A request took too long: cut the connection.
    Request,
}

/// The phase of one connection, shared by its I/O, its service and its watchdog.
#[derive(Debug)]
pub(super) struct ConnClock {
    phase: Mutex<Phase>,
    /// Wakes the watchdog when the phase changes (a stored permit is never lost).
    pub(super) changed: Notify,
}

impl ConnClock {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        })
    }

    fn set(&self, f: impl FnOnce(Phase) -> Phase) -> Phase {
        let mut p = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let before = *p;
        *p = f(before);
        if *p != before {
            self.changed.notify_one();
        }
        *p
    }

    /// Octets arrived: an idle connection starts reading a request.
    fn bytes_read(&self) {
        self.set(|p| match p {
            Phase::Idle(_) => Phase::Head(Instant::now()),
            other => other,
        });
    }

    /// The header is complete: the request's start (its first byte, or now when it had been
    /// read ahead with the previous one).
    pub(super) fn request_started(&self) -> Instant {
        match self.set(|p| match p {
            Phase::Head(s) | Phase::Busy(s) => Phase::Busy(s),
            Phase::Idle(_) => Phase::Busy(Instant::now()),
        }) {
            Phase::Busy(s) | Phase::Head(s) | Phase::Idle(s) => s,
        }
    }

    /// The response is handed to hyper: idle again.
    pub(super) fn request_finished(&self) {
        self.set(|_| Phase::Idle(Instant::now()));
    }

    /// The next deadline and what it means; the idle one is left out once closing.
    pub(super) fn deadline(
        &self,
        request_timeout: Duration,
        idle_timeout: Duration,
        closing: bool,
    ) -> Option<(Instant, Expiry)> {
        let p = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match p {
            Phase::Idle(_) if closing => None,
            Phase::Idle(s) => Some((after(s, idle_timeout), Expiry::Idle)),
            Phase::Head(s) => Some((after(s, request_timeout), Expiry::Request)),
            Phase::Busy(s) => Some((
                after(after(s, request_timeout), BUSY_GRACE),
                Expiry::Request,
            )),
        }
    }
}

/// A stream that reports reads to its [`ConnClock`].
#[derive(Debug)]
pub(super) struct Watched<T> {
    inner: T,
    clock: Arc<ConnClock>,
}

impl<T> Watched<T> {
    pub(super) fn new(inner: T, clock: Arc<ConnClock>) -> Self {
        Self { inner, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_read();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
