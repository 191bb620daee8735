//! The machine's floor for request/response over loopback TCP: one client and one echo server,
//! one 16-byte message in flight, with blocking sockets (threads) and with tokio (tasks, as the
//! broker runs). An AMQP RPC round trip through a broker crosses loopback four times (request to
//! the broker, to the server, reply to the broker, to the client): twice this round trip is the
//! least it can take.
//!
//! ```text
//! cargo run --release --example tcp_pingpong -- 100000
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SIZE: usize = 16;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e6
}

fn report(kind: &str, mut samples: Vec<Duration>, elapsed: Duration) {
    samples.sort_unstable();
    println!(
        "{{\"kind\":\"{kind}\",\"round_trips\":{},\"round_trips_per_s\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1}}}",
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
    );
}

fn threads(n: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; SIZE];
        while s.read_exact(&mut buf).is_ok() {
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let mut buf = [7u8; SIZE];
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        c.write_all(&buf)?;
        c.read_exact(&mut buf)?;
        samples.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    drop(c);
    let _ = server.join();
    report("threads", samples, elapsed);
    Ok(())
}

async fn tasks(n: usize) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; SIZE];
        while s.read_exact(&mut buf).await.is_ok() {
            s.write_all(&buf).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut c = tokio::net::TcpStream::connect(addr).await?;
    c.set_nodelay(true)?;
    let mut buf = [7u8; SIZE];
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        c.write_all(&buf).await?;
        c.read_exact(&mut buf).await?;
        samples.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    drop(c);
    let _ = server.await;
    report("tokio", samples, elapsed);
    Ok(())
}

fn main() -> std::io::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    threads(n)?;
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(tasks(n))
}
