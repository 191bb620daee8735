//! A minimal AMQP client for the load tool, built on Warren's own codec: it writes many frames per
//! syscall and decodes replies in batches, so the tool costs little CPU next to the broker.

use amqp_codec::*;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// A plain or TLS socket.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How to reach a broker over TLS: the client configuration (trusting `--tls-ca`) and the
/// name its certificate must carry.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({:?})", self.server_name)
    }
}

impl Tls {
    /// Trusts the certificates of PEM file `ca_file`; the server's certificate must name
    /// `server_name`.
    pub fn new(ca_file: &std::path::Path, server_name: &str) -> Result<Tls, Error> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_file).map_err(|e| e.to_string())? {
            roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
        Ok(Tls { config: Arc::new(config), server_name })
    }
}

pub struct RawClient {
    stream: Box<dyn Stream>,
    rbuf: BytesMut,
    pub wbuf: BytesMut,
    pub frame_max: u32,
}

pub type Error = String;

impl RawClient {
    /// Connect, authenticate with PLAIN and open `vhost` and channel 1.
    pub async fn connect(
        addr: &str,
        user: &str,
        password: &str,
        vhost: &str,
        tls: Option<&Tls>,
    ) -> Result<RawClient, Error> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(
                tokio_rustls::TlsConnector::from(tls.config.clone())
                    .connect(tls.server_name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {addr}: {e}"))?,
            ),
        };
        stream.write_all(PROTOCOL_HEADER).await.map_err(|e| e.to_string())?;
        let mut c = RawClient {
            stream,
            rbuf: BytesMut::with_capacity(1 << 16),
            wbuf: BytesMut::with_capacity(1 << 16),
            frame_max: 131_072,
        };
        c.expect(0, |m| matches!(m, Method::ConnectionStart(_))).await?;
        let mut response = vec![0u8];
        response.extend_from_slice(user.as_bytes());
        response.push(0);
        response.extend_from_slice(password.as_bytes());
        c.send(
            0,
            &Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: FieldTable::new(),
                mechanism: "PLAIN".into(),
                response: Bytes::from(response),
                locale: "en_US".into(),
            }),
        )
        .await?;
        let tune = match c.expect(0, |m| matches!(m, Method::ConnectionTune(_))).await? {
            Method::ConnectionTune(t) => t,
            _ => unreachable!("expect filtered the method"),
        };
        c.frame_max = if tune.frame_max == 0 { 131_072 } else { tune.frame_max.min(131_072) };
        c.send(
            0,
            &Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: tune.channel_max,
                frame_max: c.frame_max,
                heartbeat: 0,
            }),
        )
        .await?;
        c.send(0, &Method::ConnectionOpen(ConnectionOpen { virtual_host: vhost.into(), ..Default::default() })).await?;
        c.expect(0, |m| matches!(m, Method::ConnectionOpenOk(_))).await?;
        c.send(1, &Method::ChannelOpen(ChannelOpen::default())).await?;
        c.expect(1, |m| matches!(m, Method::ChannelOpenOk(_))).await?;
        Ok(c)
    }

    pub async fn send(&mut self, channel: u16, method: &Method) -> Result<(), Error> {
        encode_method(&mut self.wbuf, channel, method);
        self.flush().await
    }

    pub async fn flush(&mut self) -> Result<(), Error> {
        self.stream.write_all(&self.wbuf).await.map_err(|e| e.to_string())?;
        self.wbuf.clear();
        Ok(())
    }

    /// The next frame from the server.
    pub async fn next_frame(&mut self) -> Result<Frame, Error> {
        loop {
            if let Some(f) = decode_frame(&mut self.rbuf, 0).map_err(|e| e.to_string())? {
                return Ok(f);
            }
            self.rbuf.reserve(1 << 16);
            let n = self.stream.read_buf(&mut self.rbuf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("server closed the connection".into());
            }
        }
    }

    /// Closes the connection with the AMQP handshake and waits for close-ok, so the broker has
    /// handled everything sent before (a broker may drop what is still unread in a socket that
    /// is simply closed: RabbitMQ does, under flow control).
    pub async fn close(mut self) -> Result<(), Error> {
        let close = ConnectionClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
        self.send(0, &Method::ConnectionClose(close)).await?;
        self.expect(0, |m| matches!(m, Method::ConnectionCloseOk)).await.map(|_| ())
    }

    /// Wait for a method on `channel` matching `want`; a close from the server is an error.
    pub async fn expect(&mut self, channel: u16, want: impl Fn(&Method) -> bool) -> Result<Method, Error> {
        loop {
            if let Frame::Method { channel: ch, method } = self.next_frame().await? {
                match &method {
                    Method::ConnectionClose(c) => {
                        return Err(format!("server closed the connection: {} {}", c.reply_code, c.reply_text))
                    }
                    Method::ChannelClose(c) => {
                        return Err(format!("server closed the channel: {} {}", c.reply_code, c.reply_text))
                    }
                    _ => {}
                }
                if ch == channel && want(&method) {
                    return Ok(method);
                }
            }
        }
    }
}

impl RawClient {
    /// A whole frame is already buffered: reading the next one will not wait for the socket.
    pub fn frame_ready(&self) -> bool {
        self.rbuf.len() >= 7 && {
            let size = u32::from_be_bytes([self.rbuf[3], self.rbuf[4], self.rbuf[5], self.rbuf[6]]) as usize;
            self.rbuf.len() >= 8 + size
        }
    }

    /// Queue one publish (method, header, body) to `exchange` in the write buffer.
    pub fn push_publish_to(&mut self, exchange: &str, routing_key: &str, properties: &[u8], body: &[u8]) {
        let publish = Method::BasicPublish(BasicPublish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            ..Default::default()
        });
        encode_method(&mut self.wbuf, 1, &publish);
        encode_content_header(&mut self.wbuf, 1, BASIC_CLASS_ID, body.len() as u64, properties);
        encode_body(&mut self.wbuf, 1, body, self.frame_max);
    }

    /// Sends `method` on channel 1 and waits for the answer `want` matches.
    pub async fn call(&mut self, method: Method, want: impl Fn(&Method) -> bool) -> Result<Method, Error> {
        self.send(1, &method).await?;
        self.expect(1, want).await
    }
}
