//! `decant run --metrics-addr HOST:PORT`: a Prometheus endpoint. A tiny
//! HTTP/1.1 server (one request per connection, `GET /metrics`) is all a
//! scraper needs, so no web framework: the body is
//! [`decant::Progress::prometheus`].

use decant::Progress;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Binds `addr` now (so a taken port is an error before the run starts)
/// and serves the run's metrics until the process ends.
pub(super) async fn serve(addr: &str, progress: Arc<Progress>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| super::exit::Usage(format!("--metrics-addr {addr}: cannot listen: {e}")))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
    tokio::spawn(async move {
        // the rate since the previous scrape
        let mut last = (Instant::now(), 0u64);
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            // read the request head (a scraper sends no body)
            while len < buf.len() {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    stream.read(&mut buf[len..]),
                )
                .await
                {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => {
                        len += n;
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if head.starts_with("GET ") && (path == "/metrics" || path == "/")
            {
                let done = progress.migrated() + progress.failed();
                let secs = last.0.elapsed().as_secs_f64().max(1e-3);
                let rate = done.saturating_sub(last.1) as f64 / secs;
                last = (Instant::now(), done);
                ("200 OK", progress.prometheus(rate))
            } else {
                ("404 Not Found", "only GET /metrics here\n".to_string())
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    Ok(())
}
