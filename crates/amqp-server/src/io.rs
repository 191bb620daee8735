//! Reading frames from a socket: a growing read buffer, many frames decoded per read, and the
//! frame_max check done by the codec from the 7-byte header before a payload is buffered.

use amqp_codec::{decode_frame, CodecError, Frame};
use bytes::BytesMut;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use warren_broker::registry::{count, ConnectionStats};

pub enum ReadError {
    Codec(CodecError),
    Io,
}

pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    /// Where reads are counted, once the connection is registered.
    stats: Option<Arc<ConnectionStats>>,
}

/// What a busy connection reads per syscall at most.
const READ_CHUNK: usize = 64 * 1024;
/// What an idle connection holds: enough for most handshake frames. The buffer grows to
/// [`READ_CHUNK`] the first time it fills up.
const FIRST_READ: usize = 1024;
/// Room below which the buffer grows before the next read.
const MIN_ROOM: usize = 256;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader { inner, buf: BytesMut::with_capacity(FIRST_READ), stats: None }
    }

    pub fn count_into(&mut self, stats: Arc<ConnectionStats>) {
        self.stats = Some(stats);
    }

    /// Decode one frame from what is already buffered.
    pub fn try_decode(&mut self, frame_max: u32) -> Result<Option<Frame>, CodecError> {
        decode_frame(&mut self.buf, frame_max)
    }

    /// Read more bytes from the socket; false on end of stream.
    pub async fn fill(&mut self) -> Result<bool, ReadError> {
        if self.buf.capacity() - self.buf.len() < MIN_ROOM {
            self.buf.reserve(READ_CHUNK);
        }
        match self.inner.read_buf(&mut self.buf).await {
            Ok(0) => Ok(false),
            Ok(n) => {
                if let Some(stats) = &self.stats {
                    count(&stats.recv_oct, n as u64);
                    count(&stats.recv_cnt, 1);
                }
                Ok(true)
            }
            Err(_) => Err(ReadError::Io),
        }
    }

    /// Reads and drops what the peer sends; false at end of stream. After a framing error the
    /// stream cannot be parsed any more, but closing a socket with unread input makes the kernel
    /// send a reset, which can destroy the connection.close on its way to the client: so the
    /// rest is read and dropped (for a bounded time, by the caller) instead.
    pub async fn discard(&mut self) -> bool {
        self.buf.clear();
        if self.buf.capacity() < MIN_ROOM {
            self.buf.reserve(FIRST_READ);
        }
        matches!(self.inner.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }

    /// The next frame, reading as needed; `None` on end of stream.
    pub async fn next_frame(&mut self, frame_max: u32) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = self.try_decode(frame_max).map_err(ReadError::Codec)? {
                return Ok(Some(frame));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }
}
