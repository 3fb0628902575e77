//! The HTTP front over real sockets: limits that protect the process, graceful shutdown, and
//! the headers every answer carries. Hostile inputs are in `hostile_http.rs`.
#![cfg(feature = "http")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use larder::{Db, Server, ServerConfig};

/// Sends raw bytes and reads the whole answer (the server closes or the timeout hits).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if let Some(text) = complete(&answer) {
                    return text;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The answer once its head and `Content-Length` body have arrived.
fn complete(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    (body.len() >= length).then(|| text.into_owned())
}

fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn health_answers_json_with_the_security_headers() {
    let server = Server::start(Db::in_memory().unwrap(), "127.0.0.1:0").unwrap();
    let answer = get(server.addr(), "/api/health");
    assert_eq!(status(&answer), 200, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/json; charset=utf-8"),
        "{answer}"
    );
    assert!(
        lower.contains("x-content-type-options: nosniff"),
        "{answer}"
    );
    assert!(answer.contains(r#""status":"ok""#));
    assert!(answer.contains(r#""integrity_ok":true"#), "{answer}");
    assert!(answer.contains(r#""writable":true"#), "{answer}");
}

#[test]
fn unknown_routes_and_methods_get_json_errors() {
    let server = Server::start(Db::in_memory().unwrap(), "127.0.0.1:0").unwrap();
    let answer = get(server.addr(), "/nope");
    assert_eq!(status(&answer), 404);
    assert!(answer.contains(r#""error":"no such route""#), "{answer}");
    let answer = exchange(
        server.addr(),
        b"DELETE /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&answer), 405, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("application/json; charset=utf-8"),
        "{answer}"
    );
}

#[test]
fn an_over_limit_chunked_body_is_413() {
    let db = Db::in_memory().unwrap();
    db.collections()
        .create("notes", larder::CollectionSpec::new())
        .unwrap();
    let key = db
        .keys()
        .create(larder::NewApiKey::new(larder::KeyKind::Secret, "k"))
        .unwrap()
        .secret;
    let config = ServerConfig {
        max_body_bytes: 1024,
        ..ServerConfig::default()
    };
    let server = Server::start_with(db.clone(), "127.0.0.1:0", config).unwrap();
    let mut request = format!(
        "POST /api/data/notes HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(b"a\r\n{\"text\": \"\r\n");
    for _ in 0..4 {
        request.extend_from_slice(format!("400\r\n{}\r\n", "a".repeat(1024)).as_bytes());
    }
    request.extend_from_slice(b"2\r\n\"}\r\n0\r\n\r\n");
    let answer = exchange(server.addr(), &request);
    assert_eq!(status(&answer), 413, "{answer}");
    assert_eq!(
        db.collections().info("notes").unwrap().document_count,
        0,
        "nothing stored"
    );
    // A small chunked body on the same route is fine.
    let small = format!(
        "POST /api/data/notes HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\nConnection: close\r\n\r\ne\r\n{{\"text\": \"hi\"}}\r\n0\r\n\r\n"
    );
    assert_eq!(status(&exchange(server.addr(), small.as_bytes())), 201);
    assert_eq!(status(&get(server.addr(), "/api/health")), 200);
}

#[test]
fn shutdown_stops_serving_and_drop_shuts_down() {
    let server = Server::start(Db::in_memory().unwrap(), "127.0.0.1:0").unwrap();
    let addr = server.addr();
    assert_eq!(status(&get(addr, "/api/health")), 200);
    server.shutdown();
    assert!(TcpStream::connect(addr).is_err() || status(&get(addr, "/api/health")) == 0);
    let again = Server::start(Db::in_memory().unwrap(), "127.0.0.1:0").unwrap();
    let addr = again.addr();
    drop(again);
    assert!(TcpStream::connect(addr).is_err() || status(&get(addr, "/api/health")) == 0);
}

#[test]
fn cors_allows_exactly_the_configured_origins() {
    let db = Db::in_memory().unwrap();
    db.project()
        .update_settings(&serde_json::json!({"ALLOWED_ORIGINS": "https://app.example.com"}))
        .unwrap();
    assert!(
        db.project()
            .update_settings(&serde_json::json!({"ALLOWED_ORIGINS": ["*"]}))
            .is_err()
    );
    assert!(
        db.project()
            .update_settings(&serde_json::json!({"ALLOWED_ORIGINS": ["null"]}))
            .is_err()
    );
    let server = Server::start(db, "127.0.0.1:0").unwrap();
    let preflight = |origin: &str| {
        exchange(
            server.addr(),
            format!(
                "OPTIONS /api/health HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .to_ascii_lowercase()
    };
    let allowed = preflight("https://app.example.com");
    assert!(
        allowed.contains("access-control-allow-origin: https://app.example.com"),
        "{allowed}"
    );
    assert!(allowed.contains("vary:"), "{allowed}");
    for origin in [
        "https://evil.example.com",
        "null",
        "https://app.example.com.evil.com",
    ] {
        let refused = preflight(origin);
        assert!(
            !refused.contains("access-control-allow-origin"),
            "{origin}: {refused}"
        );
    }
}
