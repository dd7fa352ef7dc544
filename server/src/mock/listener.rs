//! Accepting mock connections: `TCP_NODELAY` on every socket, and a per-connection switch that
//! makes the socket close with a TCP RST (`SO_LINGER` 0) instead of a FIN.
//!
//! An axum handler never sees its socket, so a handler that wants a reset flips the
//! connection's [`ResetSwitch`] (reached through `ConnectInfo`) and then fails its response
//! body. hyper reacts to the body error by dropping the connection, which drops the
//! [`ResettableStream`]; its `Drop` sets `SO_LINGER` to zero just before the socket closes, so
//! the kernel sends a RST and discards anything unsent.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, Listener},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// Shared with the connection's handlers: once set, the connection closes with a RST.
#[derive(Clone, Debug, Default)]
pub(super) struct ResetSwitch(Arc<AtomicBool>);

impl ResetSwitch {
    pub(super) fn arm(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_armed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A listener whose connections can be reset; wraps one that yields plain TCP streams.
pub(super) struct ResettingListener<L> {
    inner: L,
}

impl<L> ResettingListener<L> {
    pub(super) fn new(inner: L) -> ResettingListener<L> {
        ResettingListener { inner }
    }
}

impl<L> Listener for ResettingListener<L>
where
    L: Listener<Io = TcpStream, Addr = SocketAddr>,
{
    type Io = ResettableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (ResettableStream, SocketAddr) {
        let (tcp, addr) = self.inner.accept().await;
        let stream = ResettableStream {
            tcp,
            switch: ResetSwitch::default(),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl<L> Connected<IncomingStream<'_, ResettingListener<L>>> for ResetSwitch
where
    L: Listener<Io = TcpStream, Addr = SocketAddr>,
{
    fn connect_info(stream: IncomingStream<'_, ResettingListener<L>>) -> ResetSwitch {
        stream.io().switch.clone()
    }
}

/// A TCP stream that closes with a RST when its switch was armed.
pub(super) struct ResettableStream {
    tcp: TcpStream,
    switch: ResetSwitch,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.switch.is_armed() {
            // Linger 0 makes the close below (when `tcp` drops) abort the connection; it cannot
            // block, unlike a non-zero linger. A failure leaves an ordinary close.
            let _ = self.tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A FIN before the RST would let the client see a clean end of stream.
        if self.switch.is_armed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
