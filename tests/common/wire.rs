//! A raw HTTP/1.1 client over a real socket: one request per connection, every byte visible,
//! so hostile shapes (lying lengths, smuggling, trickling) can be sent exactly as written.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// The address a `larder serve` child announces on its stderr (`larder: serving on
/// http://ADDR`), waited for up to 30 s; the rest of its stderr is drained in the background.
pub fn announced_addr(child: &mut std::process::Child) -> SocketAddr {
    use std::io::BufRead;
    let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("larder: serving on http://") {
                let _ = send.send(url.to_owned());
            }
        }
    });
    receive
        .recv_timeout(Duration::from_secs(30))
        .expect("larder serve did not start")
        .parse()
        .unwrap()
}

/// An answer as it came off the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code, or 0 when the server closed without answering.
    pub status: u16,
    /// The head, lower-cased, for header checks.
    pub head: String,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends `request` as is and reads one answer (until its `Content-Length` body has arrived, the
/// server closes, or 10 s pass). Status 0 when nothing answers.
pub fn send_raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        // No server there (e.g. killed on purpose): no answer.
        return Reply {
            status: 0,
            head: String::new(),
            body: String::new(),
        };
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it read everything (a 413 or 431): that is fine.
    let _ = stream.write_all(request);
    read_reply(&mut stream)
}

/// Reads one answer from a stream.
pub fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                if let Some(reply) = parse(&bytes) {
                    return reply;
                }
            }
        }
    }
    parse(&bytes).unwrap_or(Reply {
        status: 0,
        head: String::new(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

fn parse(bytes: &[u8]) -> Option<Reply> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap_or(0))
        .unwrap_or(0);
    let body = &bytes[end + 4..];
    if body.len() < length {
        return None;
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some(Reply {
        status,
        head,
        body: String::from_utf8_lossy(&body[..length]).into_owned(),
    })
}

/// One request with a JSON body (or none), `Connection: close`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        text.push_str("Content-Type: application/json\r\n");
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(&body);
    send_raw(addr, text.as_bytes())
}
