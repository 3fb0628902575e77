//! A server-sent-events client over a real socket: the request as written, chunked transfer
//! decoded, events parsed as the WHATWG processing model reads them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// One event: its `id:` (if any), `event:` name and `data:` (parsed as JSON).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// An open event stream.
pub struct Stream {
    reader: BufReader<TcpStream>,
    /// Decoded body bytes not yet parsed into events.
    buffer: String,
    /// Every body byte received, for leak checks.
    pub raw: Vec<u8>,
    pub status: u16,
    pub head: String,
    /// The response body when it was not a stream (an error answer).
    pub body: String,
}

/// Opens `GET path` with the given extra header lines (`"Name: value"`).
pub fn open(addr: SocketAddr, path: &str, headers: &[&str]) -> Stream {
    try_open(addr, path, headers).expect("the server answers")
}

/// [`open`], or `None` when the connection fails before an answer's head and body came.
pub fn try_open(addr: SocketAddr, path: &str, headers: &[&str]) -> Option<Stream> {
    let mut socket = TcpStream::connect(addr).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    socket.write_all(request.as_bytes()).ok()?;
    let mut reader = BufReader::new(socket);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut stream = Stream {
        reader,
        buffer: String::new(),
        raw: Vec::new(),
        status,
        head,
        body: String::new(),
    };
    if !stream.head.contains("text/event-stream") {
        // An ordinary answer: read its body by its length.
        let length = stream
            .head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        stream.reader.read_exact(&mut body).ok()?;
        stream.body = String::from_utf8(body).ok()?;
    }
    Some(stream)
}

impl Stream {
    /// How long a read waits before the stream counts as ended.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
    }

    /// The next event, or `None` when the server ended the stream.
    pub fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
                continue;
            }
            if !self.read_chunk() {
                return None;
            }
        }
    }

    /// Events until one named `name` (included).
    pub fn until(&mut self, name: &str) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let event = self
                .next()
                .unwrap_or_else(|| panic!("the stream ended before `{name}`: {out:?}"));
            let done = event.event == name;
            out.push(event);
            if done {
                return out;
            }
        }
    }

    /// Reads one chunk of the chunked body; false at its end.
    fn read_chunk(&mut self) -> bool {
        let mut size = String::new();
        match self.reader.read_line(&mut size) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return false;
        };
        if size == 0 {
            return false;
        }
        let mut chunk = vec![0; size + 2];
        if self.reader.read_exact(&mut chunk).is_err() {
            return false;
        }
        chunk.truncate(size);
        assert!(chunk.is_ascii(), "event streams are ASCII");
        assert!(!chunk.contains(&b'\r'), "event streams use LF line ends");
        self.raw.extend_from_slice(&chunk);
        self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        true
    }
}

/// One event block; `None` for comments and the `retry:` field alone.
fn parse(block: &str) -> Option<Event> {
    let (mut id, mut event, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("event: ") {
            event = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(value).expect("data is one JSON line"));
        }
    }
    Some(Event {
        id,
        event: event?,
        data: data.unwrap_or(Value::Null),
    })
}
