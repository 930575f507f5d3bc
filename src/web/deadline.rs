//! The write timeout: a stream whose writes fail with `TimedOut` once they have made no
//! progress for a while, so that a client that sends requests but never reads the answers
//! (its receive window full, the response stuck in the agent's memory) is closed instead of
//! holding a connection slot and a response forever.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Sleep};

/// `inner`, with writes (and flushes) that fail after `timeout` without progress.
pub struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write is pending; reset by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Set when the timeout closed the stream, for the caller to count.
    fired: Arc<AtomicBool>,
}

impl<S> WriteDeadline<S> {
    /// Wraps `inner`; `fired` is set if the timeout ever fails a write.
    pub fn new(inner: S, timeout: Duration, fired: Arc<AtomicBool>) -> Self {
        WriteDeadline {
            inner,
            timeout,
            stalled: None,
            fired,
        }
    }

    /// After a pending write: arms the timer if it is not, and fails once it has run out.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.fired.store(true, Ordering::Relaxed);
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client read nothing for {timeout:?}"),
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn track<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => match self.check_stall(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.track(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_reader_that_stops_reading_fails_the_writer_after_the_timeout() {
        // A small in-memory pipe: its buffer fills after 64 bytes unless the other end reads.
        let (writer, mut reader) = tokio::io::duplex(64);
        let fired = Arc::new(AtomicBool::new(false));
        let mut w = WriteDeadline::new(writer, Duration::from_millis(100), Arc::clone(&fired));
        w.write_all(&[1; 64]).await.unwrap();
        let mut got = vec![0; 64];
        reader.read_exact(&mut got).await.unwrap();
        // The reader reads again, slowly but within the timeout: every write gets through.
        let slow = tokio::spawn(async move {
            let mut buf = vec![0; 64];
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                reader.read_exact(&mut buf).await.unwrap();
            }
            reader
        });
        w.write_all(&[2; 256]).await.unwrap();
        let _reader = slow.await.unwrap();
        assert!(!fired.load(Ordering::Relaxed));
        // Now it reads nothing: the write that cannot go through fails.
        let started = std::time::Instant::now();
        let e = w.write_all(&[3; 256]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(fired.load(Ordering::Relaxed));
    }
}
