//! Reading frames from a socket: a growing read buffer, many frames decoded per read, and the
//! frame_max check done by the codec from the 7-byte header before a payload is buffered.

use amqp_codec::{decode_frame, CodecError, Frame};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

pub enum ReadError {
    Codec(CodecError),
    Io,
}

pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

const READ_CHUNK: usize = 64 * 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader { inner, buf: BytesMut::with_capacity(READ_CHUNK) }
    }

    /// Decode one frame from what is already buffered.
    pub fn try_decode(&mut self, frame_max: u32) -> Result<Option<Frame>, CodecError> {
        decode_frame(&mut self.buf, frame_max)
    }

    /// Read more bytes from the socket; false on end of stream.
    pub async fn fill(&mut self) -> Result<bool, ReadError> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        match self.inner.read_buf(&mut self.buf).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(_) => Err(ReadError::Io),
        }
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
