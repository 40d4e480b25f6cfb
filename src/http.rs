//! The `/metrics` endpoint, on hyper's HTTP/1.1 server with vigie's
//! bounds: at most `max_connections` open at once (more are closed at
//! once), a deadline to read the request head and one for the whole
//! exchange, a 16 KiB request head, one request per connection. With a
//! bearer token configured, `/metrics` answers 401 without it; the token is
//! compared in constant time, its length included. `/ready` answers 503
//! while the service cannot store what it reads.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// The server's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; past it a new one is closed at once.
    pub max_connections: usize,
    /// To read the request's head.
    pub header_timeout: Duration,
    /// For the whole exchange (a client that does not read its answer).
    pub exchange_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            exchange_timeout: Duration::from_secs(30),
        }
    }
}

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

/// Serves until `stop` resolves (connections already open finish in
/// their own tasks).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    token: Option<String>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::select! {
        () = serve_with(listener, metrics, token, Limits::default()) => {}
        () = stop => {}
    }
}

/// [`serve`] with explicit bounds.
pub async fn serve_with(listener: TcpListener, metrics: Arc<Metrics>, token: Option<String>, limits: Limits) {
    let token: Option<Arc<str>> = token.map(Arc::from);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut backoff = Duration::ZERO;
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => {
                backoff = Duration::ZERO;
                s
            }
            Err(e) => {
                // Out of file descriptors, say: back off, log once a run.
                if backoff.is_zero() {
                    tracing::warn!(error = %e, "Accept failed; backing off");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream); // over the cap: closed at once
            continue;
        };
        let (metrics, token) = (metrics.clone(), token.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let r = answer(&req, &metrics, token.as_deref());
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(16 * 1024)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            if let Ok(Err(e)) = tokio::time::timeout(limits.exchange_timeout, conn).await {
                tracing::debug!(error = %e, "Metrics connection ended with an error");
            }
            drop(permit);
        });
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The answer to one request (HEAD gets the same head, hyper sends no body).
fn answer<B>(req: &Request<B>, metrics: &Metrics, token: Option<&str>) -> Response<Full<Bytes>> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match (get, req.uri().path()) {
        (true, "/metrics") => {
            if let Some(t) = token {
                if !authorized(req.headers().get(AUTHORIZATION), t) {
                    let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
                    r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return r;
                }
            }
            let mut r = text(StatusCode::OK, &metrics.render());
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            r
        }
        (true, "/" | "/healthz") => text(StatusCode::OK, "vigie\n"),
        // Readiness (`/readyz`, also `/ready`): 503 before the service has
        // joined its consumer group, while the store cannot be written or a
        // partition is held back; the body says why.
        (true, "/ready" | "/readyz") => match metrics.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {why}\n")),
        },
        (true, _) => text(StatusCode::NOT_FOUND, "not found\n"),
        (false, _) => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut().insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
    }
}

/// `Authorization: Bearer TOKEN`, the scheme in any case, the token
/// compared in constant time whatever its length (both are hashed first).
fn authorized(header: Option<&HeaderValue>, token: &str) -> bool {
    use sha2::{Digest, Sha256};
    let Some(v) = header.and_then(|h| h.to_str().ok()) else { return false };
    let v = v.trim();
    let Some((scheme, given)) = v.split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let a = Sha256::digest(given.trim().as_bytes());
    let b = Sha256::digest(token.as_bytes());
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[test]
    fn listen_addresses_default_to_loopback() {
        assert_eq!(listen_addr("9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(listen_addr(":9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(listen_addr("0.0.0.0:1").unwrap().to_string(), "0.0.0.0:1");
        assert!(listen_addr("localhost").is_err());
    }

    async fn request(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> String {
        request(addr, "GET", path, token.map(|t| format!("Bearer {t}")).as_deref()).await
    }

    #[tokio::test]
    async fn metrics_need_the_token_when_one_is_set() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Arc::new(Metrics::new(crate::metrics::DEFAULT_MAX_SERIES));
        m.events_ingested.inc_by(7);
        let task = tokio::spawn(serve(listener, m, Some("s3cret".into()), std::future::pending()));
        assert!(get(addr, "/metrics", None).await.starts_with("HTTP/1.1 401"));
        assert!(get(addr, "/metrics", Some("wrong")).await.starts_with("HTTP/1.1 401"));
        let ok = get(addr, "/metrics", Some("s3cret")).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("\nvigie_events_ingested_total 7\n"), "{ok}");
        assert!(get(addr, "/nope", None).await.starts_with("HTTP/1.1 404"));
        // The scheme in any case; a token that only starts right, or is
        // longer, is refused.
        assert!(request(addr, "GET", "/metrics", Some("bearer s3cret")).await.starts_with("HTTP/1.1 200"));
        assert!(request(addr, "GET", "/metrics", Some("BEARER s3cret")).await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/metrics", Some("s3cre")).await.starts_with("HTTP/1.1 401"));
        assert!(get(addr, "/metrics", Some("s3cret2")).await.starts_with("HTTP/1.1 401"));
        assert!(request(addr, "GET", "/metrics", Some("Basic s3cret")).await.starts_with("HTTP/1.1 401"));
        // HEAD: the same head, no body.
        let head = request(addr, "HEAD", "/metrics", Some("Bearer s3cret")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
            })
            .expect("a content-length");
        assert!(length > 0);
        assert!(head.ends_with("\r\n\r\n"), "no body after the head: {head:?}");
        assert!(request(addr, "POST", "/metrics", None).await.starts_with("HTTP/1.1 405"));
        task.abort();
    }

    #[tokio::test]
    async fn connections_are_capped_and_a_slow_client_is_cut() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Arc::new(Metrics::new(crate::metrics::DEFAULT_MAX_SERIES));
        let limits = Limits {
            max_connections: 2,
            header_timeout: Duration::from_millis(300),
            exchange_timeout: Duration::from_secs(5),
        };
        let task = tokio::spawn(serve_with(listener, m, None, limits));
        // Two clients that send half a head and wait.
        let mut idle = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost").await.unwrap();
            idle.push(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A third is closed at once, answered nothing.
        let mut third = TcpStream::connect(addr).await.unwrap();
        let _ = third.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), third.read_to_end(&mut out)).await.unwrap();
        assert!(out.is_empty(), "over the cap: {}", String::from_utf8_lossy(&out));
        // The slow ones are cut after the head deadline...
        for mut s in idle {
            let mut out = Vec::new();
            tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await.unwrap().ok();
        }
        // ...and their places serve again.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(get(addr, "/healthz", None).await.starts_with("HTTP/1.1 200"));
        task.abort();
    }
}
