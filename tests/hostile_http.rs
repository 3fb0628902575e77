//! Hostile HTTP over real sockets: oversized and lying bodies, header floods, trickling
//! clients, smuggling shapes, nested and non-UTF-8 JSON, odd methods and a panicking handler.
//! Every refusal is a 4xx with a generic JSON body, and the server keeps serving after each.
#![cfg(feature = "http")]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::wire::{Reply, request, send_raw};
use larder::{CollectionSpec, Db, KeyKind, NewApiKey, Server, ServerConfig, ServerHandle};
use serde_json::json;

struct Fixture {
    db: Db,
    server: ServerHandle,
    sk: String,
}

fn fixture_with(db: Db, config: ServerConfig) -> Fixture {
    db.collections()
        .create("notes", CollectionSpec::new())
        .unwrap();
    let sk = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "server"))
        .unwrap()
        .secret;
    let server = Server::start_with(db.clone(), "127.0.0.1:0", config).unwrap();
    Fixture { db, server, sk }
}

fn fixture() -> Fixture {
    fixture_with(
        Db::in_memory().unwrap(),
        ServerConfig {
            max_body_bytes: 4096,
            ..ServerConfig::default()
        },
    )
}

impl Fixture {
    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The head of a POST to the notes collection, without its length headers.
    fn post_head(&self) -> String {
        format!(
            "POST /api/data/notes HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\nContent-Type: application/json\r\n",
            self.sk
        )
    }

    fn count(&self) -> u64 {
        self.db.collections().info("notes").unwrap().document_count
    }

    /// The server still answers a plain request and a write.
    fn assert_alive(&self) {
        let reply = request(self.addr(), "GET", "/api/health", &[], None);
        assert_eq!(reply.status, 200, "{reply:?}");
        let before = self.count();
        let reply = request(
            self.addr(),
            "POST",
            "/api/data/notes",
            &[("x-api-key", &self.sk)],
            Some(&json!({"alive": true})),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        assert_eq!(self.count(), before + 1);
    }
}

/// A refusal: the status, a JSON body with a generic message, and nothing internal in it.
fn assert_refused(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {reply:?}");
    assert_generic(reply, what);
}

fn assert_generic(reply: &Reply, what: &str) {
    if reply.body.is_empty() {
        // hyper answers some malformed heads itself, with an empty body: nothing to leak.
        return;
    }
    let json = reply.json();
    assert!(json.is_object(), "{what}: not a JSON body: {reply:?}");
    let lower = reply.body.to_ascii_lowercase();
    for needle in [
        "panick",
        "redb",
        "tokio",
        "hyper",
        "axum",
        "serde",
        ".rs",
        "/src/",
        "backtrace",
        "thread",
        "unwrap",
        "line ",
        "column",
    ] {
        assert!(
            !lower.contains(needle),
            "{what}: `{needle}` in {}",
            reply.body
        );
    }
}

#[test]
fn bodies_over_the_limit_are_413_and_the_server_keeps_serving() {
    let f = fixture();
    let big = format!("{{\"text\": \"{}\"}}", "a".repeat(8000));
    // Declared and sent.
    let reply = send_raw(
        f.addr(),
        format!(
            "{}Content-Length: {}\r\n\r\n{big}",
            f.post_head(),
            big.len()
        )
        .as_bytes(),
    );
    assert_refused(&reply, 413, "declared");
    // Declared over the limit, body never sent: answered at once, not after a timeout.
    let started = Instant::now();
    let reply = send_raw(
        f.addr(),
        format!("{}Content-Length: 5000\r\n\r\n", f.post_head()).as_bytes(),
    );
    assert_refused(&reply, 413, "declared, not sent");
    assert!(started.elapsed() < Duration::from_secs(5));
    // 10^12 declared.
    let reply = send_raw(
        f.addr(),
        format!("{}Content-Length: 1000000000000\r\n\r\n{{}}", f.post_head()).as_bytes(),
    );
    assert_refused(&reply, 413, "10^12");
    // Chunked, over the limit in many small chunks.
    let mut chunked = format!("{}Transfer-Encoding: chunked\r\n\r\n", f.post_head()).into_bytes();
    chunked.extend_from_slice(b"9\r\n{\"text\":\"\r\n");
    for _ in 0..100 {
        chunked.extend_from_slice(format!("64\r\n{}\r\n", "b".repeat(100)).as_bytes());
    }
    chunked.extend_from_slice(b"2\r\n\"}\r\n0\r\n\r\n");
    assert_refused(&send_raw(f.addr(), &chunked), 413, "chunked");
    assert_eq!(f.count(), 0, "nothing over the limit was stored");
    f.assert_alive();
}

#[test]
fn a_lying_content_length_never_stores_a_mangled_document() {
    let f = fixture();
    // Says 10 bytes, sends more: the first 10 are not JSON (400); the rest is a garbage
    // second request on the same connection (400), not a smuggled write.
    let body = r#"{"text": "hello", "then": "GET /api/data/notes HTTP/1.1"}"#;
    let reply = send_raw(
        f.addr(),
        format!("{}Content-Length: 10\r\n\r\n{body}", f.post_head()).as_bytes(),
    );
    assert_refused(&reply, 400, "short length");
    // Says more than it sends, then waits: no document, and the server is not stuck.
    let mut stream = TcpStream::connect(f.addr()).unwrap();
    stream
        .write_all(format!("{}Content-Length: 200\r\n\r\n{{\"a\":1}}", f.post_head()).as_bytes())
        .unwrap();
    f.assert_alive();
    drop(stream);
    assert_eq!(f.count(), 1, "only assert_alive's write is stored");
}

#[test]
fn huge_header_lines_and_header_floods_are_431() {
    let f = fixture();
    let long = format!(
        "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    assert_refused(&send_raw(f.addr(), long.as_bytes()), 431, "one huge line");
    let mut flood = String::from("GET /api/health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..10_000 {
        flood.push_str(&format!("X-{i}: v\r\n"));
    }
    flood.push_str("\r\n");
    assert_refused(&send_raw(f.addr(), flood.as_bytes()), 431, "10k headers");
    // A long URL is a long head too.
    let url = format!(
        "GET /api/health?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(200_000)
    );
    let reply = send_raw(f.addr(), url.as_bytes());
    assert!(matches!(reply.status, 414 | 431), "long URL: {reply:?}");
    f.assert_alive();
}

#[test]
fn hundreds_of_trickling_connections_do_not_starve_a_fresh_request() {
    // The default limits: the liveness bound (3 s) is the issue's; the head deadline (10 s)
    // is what finally drops the tricklers.
    let f = fixture_with(Db::in_memory().unwrap(), ServerConfig::default());
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(f.addr()).unwrap();
            s.write_all(b"POST /api/data/notes HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    // Each trickles one more header byte; then a fresh client asks.
    for _ in 0..3 {
        for s in &mut slow {
            let _ = s.write_all(b"X");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let reply = request(f.addr(), "GET", "/api/health", &[], None);
    let waited = started.elapsed();
    assert_eq!(reply.status, 200);
    assert!(
        waited < Duration::from_secs(3),
        "a fresh request waited {waited:?}"
    );
    f.assert_alive();
}

#[test]
fn request_smuggling_shapes_are_400() {
    let f = fixture();
    let body = r#"{"text":"x"}"#;
    let head = f.post_head();
    let cases = [
        (
            "space before the colon",
            format!("{head}Transfer-Encoding : chunked\r\n\r\nc\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "two differing lengths",
            format!(
                "{head}Content-Length: {}\r\nContent-Length: 3\r\n\r\n{body}",
                body.len()
            ),
        ),
        (
            "an unknown transfer coding",
            format!("{head}Transfer-Encoding: xchunked\r\n\r\nc\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "chunked, then identity",
            format!("{head}Transfer-Encoding: chunked, identity\r\n\r\nc\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "a negative length",
            format!("{head}Content-Length: -1\r\n\r\n{body}"),
        ),
    ];
    for (what, raw) in cases {
        let reply = send_raw(f.addr(), raw.as_bytes());
        assert_refused(&reply, 400, what);
    }
    assert_eq!(f.count(), 0, "no smuggled write was stored");
    f.assert_alive();
}

#[test]
fn content_length_with_transfer_encoding_cannot_smuggle_a_second_request() {
    // hyper drops Content-Length when Transfer-Encoding is present, before any of our code
    // sees the request, and then follows RFC 9112 section 6.1: the body is read as chunked and
    // the connection is closed after the answer. So whichever length a proxy in front believed,
    // the bytes after the chunked body are never read as a request.
    let f = fixture();
    let body = r#"{"text":"x"}"#;
    let smuggled = format!(
        "POST /api/data/notes HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{{\"smuggled\":true}}",
        f.sk
    );
    let raw = format!(
        "{}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nc\r\n{body}\r\n0\r\n\r\n{smuggled}",
        f.post_head()
    );
    let mut stream = TcpStream::connect(f.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let first = common::wire::read_reply(&mut stream);
    assert!(
        matches!(first.status, 201 | 400),
        "one answer for the first request: {first:?}"
    );
    assert!(first.head.contains("connection: close"), "{first:?}");
    let second = common::wire::read_reply(&mut stream);
    assert_eq!(
        second.status, 0,
        "the smuggled request was answered: {second:?}"
    );
    let docs =
        f.db.collection::<serde_json::Value>("notes")
            .find(&larder::Query::new())
            .unwrap();
    assert!(
        docs.iter().all(|d| d.data.get("smuggled").is_none()),
        "the smuggled request was executed"
    );
    f.assert_alive();
}

#[test]
fn deeply_nested_and_non_utf8_json_are_400() {
    let f = fixture_with(Db::in_memory().unwrap(), ServerConfig::default());
    let nested = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let objects = format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let mut invalid = b"{\"text\": \"".to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    invalid.extend_from_slice(b"\"}");
    for (what, body) in [
        ("nested arrays", nested.into_bytes()),
        ("nested objects", objects.into_bytes()),
        ("invalid UTF-8", invalid),
        ("truncated", b"{\"text\": \"unfinished".to_vec()),
        ("a top-level array", b"[1, 2]".to_vec()),
        (
            "an escaped lone surrogate",
            br#"{"text": "\ud800"}"#.to_vec(),
        ),
    ] {
        for path in ["/api/data/notes", "/api/collections/notes/documents"] {
            let mut raw = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                f.sk,
                f.sk,
                body.len()
            )
            .into_bytes();
            raw.extend_from_slice(&body);
            let reply = send_raw(f.addr(), &raw);
            assert!(
                (400..500).contains(&reply.status),
                "{what} on {path}: {reply:?}"
            );
            assert_generic(&reply, what);
        }
    }
    assert_eq!(f.count(), 0);
    f.assert_alive();
}

#[test]
fn unsupported_methods_are_405() {
    let f = fixture();
    for method in ["DELETE", "PUT", "TRACE", "BREW", "PROPFIND"] {
        let reply = send_raw(
            f.addr(),
            format!("{method} /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_refused(&reply, 405, method);
        assert!(reply.head.contains("allow:"), "{method}: {reply:?}");
    }
    let reply = send_raw(
        f.addr(),
        format!(
            "TRACE /api/data/notes HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\nConnection: close\r\n\r\n",
            f.sk
        )
        .as_bytes(),
    );
    assert_refused(&reply, 405, "TRACE on a collection");
    f.assert_alive();
}

/// A mailer that panics: a bug in code the embedding program plugs in.
#[derive(Debug)]
struct PanickingMailer;

impl larder::Mailer for PanickingMailer {
    fn deliver(
        &self,
        _: &larder::OutboxMessage,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        panic!("secret detail from a plugged-in mailer")
    }
}

#[test]
fn a_panicking_handler_is_a_generic_500_and_the_server_lives() {
    let db = Db::builder().mailer(PanickingMailer).in_memory().unwrap();
    let f = fixture_with(db, ServerConfig::default());
    for _ in 0..3 {
        let reply = request(
            f.addr(),
            "POST",
            "/api/mail/send",
            &[("x-api-key", &f.sk)],
            Some(&json!({"to": "someone@example.com", "subject": "s", "text": "t"})),
        );
        assert_eq!(reply.status, 500, "{reply:?}");
        assert_generic(&reply, "panic");
        assert!(!reply.body.contains("secret detail"), "{reply:?}");
    }
    f.assert_alive();
}

/// Writes `head` and then `body` a piece at a time with `gap` between pieces, and reads the
/// answer.
fn trickle(addr: SocketAddr, head: &str, pieces: &[&[u8]], gap: Duration) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    for piece in pieces {
        std::thread::sleep(gap);
        // Once the server has answered (or closed), writing on would only earn a reset that
        // can discard the answer before it is read.
        stream.set_nonblocking(true).unwrap();
        let answered = stream.peek(&mut [0u8; 1]).is_ok();
        stream.set_nonblocking(false).unwrap();
        if answered || stream.write_all(piece).is_err() {
            break;
        }
    }
    common::wire::read_reply(&mut stream)
}

#[test]
fn an_upload_outlasts_the_request_timeout_while_bytes_flow_and_a_stalled_one_is_408() {
    let f = fixture_with(
        Db::in_memory().unwrap(),
        ServerConfig {
            request_timeout: Duration::from_secs(1),
            ..ServerConfig::default()
        },
    );
    f.db.buckets()
        .create("b", larder::BucketSpec::new())
        .unwrap();
    let head = |length: usize| {
        format!(
            "POST /api/files/b?filename=s.bin HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\
             Connection: close\r\n\r\n",
            f.sk
        )
    };
    // Eight bytes over about three seconds, never idle for long: stored.
    let pieces: Vec<&[u8]> = b"slowpoke".chunks(1).collect();
    let reply = trickle(f.addr(), &head(8), &pieces, Duration::from_millis(350));
    assert_eq!(reply.status, 201, "{reply:?}");
    let stored = reply.json()["name"].as_str().unwrap().to_owned();
    assert_eq!(f.db.bucket("b").read_to_vec(&stored).unwrap(), b"slowpoke");

    // Two bytes, then silence: cut off with 408, nothing stored.
    let reply = trickle(f.addr(), &head(10), &[b"st"], Duration::ZERO);
    assert_eq!(reply.status, 408, "{reply:?}");
    assert_generic(&reply, "a stalled upload");
    assert_eq!(f.db.buckets().info("b").unwrap().file_count, 1);

    // Any other request still has the whole request timeout, however its bytes trickle.
    let json_head = format!(
        "{}Content-Length: 12\r\nConnection: close\r\n\r\n",
        f.post_head()
    );
    let pieces: Vec<&[u8]> = br#"{"a": "bcd"}"#.chunks(1).collect();
    let reply = trickle(f.addr(), &json_head, &pieces, Duration::from_millis(350));
    assert_eq!(reply.status, 408, "{reply:?}");
    f.assert_alive();
}
