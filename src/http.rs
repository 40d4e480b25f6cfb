//! The `/metrics` endpoint: a small HTTP/1.1 server on tokio, enough for
//! Prometheus and curl. One request per connection (`Connection: close`),
//! heads up to 8 KiB, a read deadline so a slow client cannot hold a task.
//! With a bearer token configured, `/metrics` answers 401 without it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Metrics;

const MAX_HEAD: usize = 8 * 1024;
const READ_DEADLINE: Duration = Duration::from_secs(10);

/// Reads a bearer token file: the first line, trimmed; an empty token is
/// an error.
pub fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("{}: the bearer token file is empty", path.display()));
    }
    Ok(token)
}

/// Binds `addr`. A bare port (`9464`) or `:9464` means 127.0.0.1.
pub async fn bind(addr: &str) -> Result<TcpListener, String> {
    let addr = listen_addr(addr)?;
    TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// Parses a listen address; without a host, loopback.
pub fn listen_addr(addr: &str) -> Result<SocketAddr, String> {
    let a = addr.trim();
    let full = if let Some(port) = a.strip_prefix(':') {
        format!("127.0.0.1:{port}")
    } else if a.chars().all(|c| c.is_ascii_digit()) && !a.is_empty() {
        format!("127.0.0.1:{a}")
    } else {
        a.to_string()
    };
    full.parse().map_err(|_| format!("{addr:?} is not an address like 127.0.0.1:9464"))
}

/// Serves until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, token: Option<String>) {
    let token: Option<Arc<str>> = token.map(Arc::from);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let token = token.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, metrics, token).await {
                tracing::debug!(error = %e, "Metrics connection ended with an error");
            }
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    metrics: Arc<Metrics>,
    token: Option<Arc<str>>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(READ_DEADLINE, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
        }
    })
    .await
    .unwrap_or(Ok(false))?;
    if !complete {
        return respond(&mut stream, "400 Bad Request", "text/plain", b"bad request\n").await;
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let request = lines.next().unwrap_or("");
    let mut parts = request.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let authorization = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            if let Some(t) = &token {
                let ok = authorization
                    .as_deref()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), t.as_bytes()));
                if !ok {
                    return respond(&mut stream, "401 Unauthorized", "text/plain", b"unauthorized\n").await;
                }
            }
            let body = metrics.render();
            let body = if method == "HEAD" { Vec::new() } else { body.into_bytes() };
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &body).await
        }
        ("GET" | "HEAD", "/" | "/healthz") => respond(&mut stream, "200 OK", "text/plain", b"vigie\n").await,
        // Readiness: 503 while the store cannot be written or a partition
        // is held back; the body says why.
        ("GET" | "HEAD", "/ready") => match metrics.ready() {
            Ok(()) => respond(&mut stream, "200 OK", "text/plain", b"ready\n").await,
            Err(why) => {
                let body = format!("not ready: {why}\n");
                respond(&mut stream, "503 Service Unavailable", "text/plain", body.as_bytes()).await
            }
        },
        ("GET" | "HEAD", _) => respond(&mut stream, "404 Not Found", "text/plain", b"not found\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", b"method not allowed\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_default_to_loopback() {
        assert_eq!(listen_addr("9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(listen_addr(":9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(listen_addr("0.0.0.0:1").unwrap().to_string(), "0.0.0.0:1");
        assert!(listen_addr("localhost").is_err());
    }

    async fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let auth = auth.map(|a| format!("Authorization: Bearer {a}\r\n")).unwrap_or_default();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn metrics_need_the_token_when_one_is_set() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Arc::new(Metrics::new(crate::metrics::DEFAULT_MAX_SERIES));
        m.events_ingested.inc_by(7);
        let task = tokio::spawn(serve(listener, m, Some("s3cret".into())));
        assert!(get(addr, "/metrics", None).await.starts_with("HTTP/1.1 401"));
        assert!(get(addr, "/metrics", Some("wrong")).await.starts_with("HTTP/1.1 401"));
        let ok = get(addr, "/metrics", Some("s3cret")).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("\nvigie_events_ingested_total 7\n"), "{ok}");
        assert!(get(addr, "/nope", None).await.starts_with("HTTP/1.1 404"));
        task.abort();
    }
}
