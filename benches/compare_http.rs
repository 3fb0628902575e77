//! larder's HTTP front against PocketBase on the same machine, in the same run, driven by the same
//! keep-alive load generator (in this file) on the same routes: requests per second, p50/p99
//! latency, and each server's resident memory idle, after each workload and with many idle
//! connections open.
//!
//! ```text
//! benches/compare.sh http                                   # installs PocketBase, runs it all
//! LARDER_COMPARE_POCKETBASE=/path/to/pocketbase cargo bench --bench compare_http
//! LARDER_COMPARE_SMOKE=1 cargo bench --bench compare_http   # 0.3 s per workload, small data
//! ```
//!
//! Both servers get the same data: `DOCS` documents of about 200 bytes of JSON (`title`, `n`,
//! `body`, `owner`) in a collection readable by signed-in users (`items`, with an index on `n`
//! on both sides) and in a public one (`public_items`), and `USERS` users. An answer counts
//! only when its status is the expected one; anything else is an error, reported. Settings by
//! environment: `LARDER_COMPARE_SECONDS` (per workload, default 10), `LARDER_COMPARE_DOCS`
//! (default 10,000), `LARDER_COMPARE_IDLE_CONNECTIONS` (default 2,000),
//! `LARDER_COMPARE_CACHE_MIB` (larder's page cache, default 64).

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use larder::{Client, CollectionSpec, Db, KeyKind, NewApiKey, NewUser, Rule, Rules};
use serde_json::{Value, json};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const CONNECTIONS: usize = 16;
const USERS: usize = 16;
const PASSWORD: &str = "a long enough passphrase";
const SUPERUSER: &str = "admin@example.com";
/// Documents match `n > FILTER_ABOVE` about half the time: the count behind a page is real work.
const FILTER_ABOVE: u64 = 500;
const PAGE: usize = 20;

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    smoke: bool,
    warmup: Duration,
    measure: Duration,
    docs: usize,
    idle_connections: usize,
    cache_mib: u32,
    pocketbase: Option<PathBuf>,
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Settings {
    fn from_env() -> Settings {
        let smoke = std::env::var("LARDER_COMPARE_SMOKE").is_ok_and(|v| v != "0" && !v.is_empty());
        let seconds: f64 =
            env_parse("LARDER_COMPARE_SECONDS").unwrap_or(if smoke { 0.3 } else { 10.0 });
        Settings {
            smoke,
            warmup: Duration::from_secs_f64(if smoke { 0.1 } else { 1.0 }),
            measure: Duration::from_secs_f64(seconds),
            docs: env_parse("LARDER_COMPARE_DOCS").unwrap_or(if smoke { 1_000 } else { 10_000 }),
            idle_connections: env_parse("LARDER_COMPARE_IDLE_CONNECTIONS").unwrap_or(if smoke {
                200
            } else {
                2_000
            }),
            cache_mib: env_parse("LARDER_COMPARE_CACHE_MIB").unwrap_or(64),
            pocketbase: std::env::var_os("LARDER_COMPARE_POCKETBASE")
                .map(PathBuf::from)
                .filter(|p| !p.as_os_str().is_empty()),
        }
    }
}

/// The same document on both sides: about 200 bytes of JSON.
fn document(i: usize, owner: &str) -> Value {
    json!({
        "title": format!("item {i}"),
        "n": i % 1000,
        "body": "lorem ipsum dolor sit amet ".repeat(5),
        "owner": owner,
    })
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// A server process, killed (and reaped) when dropped, so no error path leaves one running.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn spawn(mut command: Command, addr: SocketAddr) -> BenchResult<ServerProcess> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut server = ServerProcess { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait()? {
                return Err(format!("the server exited at start: {status}").into());
            }
            if TcpStream::connect(addr).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err("the server did not listen within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn memory(&self) -> BenchResult<Memory> {
        Memory::of(self.child.id())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free at the time of asking (the server binds it a moment later).
fn free_addr() -> BenchResult<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Clone, Copy)]
struct Memory {
    /// `VmRSS`: resident now.
    current_kib: u64,
    /// `VmHWM`: the most ever resident.
    peak_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> BenchResult<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> BenchResult<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))?;
            Ok(line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?)
        };
        Ok(Memory {
            current_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }
}

/// CPU time (user + system, all threads) a process has used so far, in seconds.
fn cpu_seconds(pid: &str) -> BenchResult<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces) start with the state, the
    // third field: utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(") ").ok_or("malformed /proc stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 over one keep-alive connection

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> BenchResult<Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    fn expect(self, status: u16, what: &str) -> BenchResult<Value> {
        if self.status != status {
            return Err(format!(
                "{what}: {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
            .into());
        }
        self.json()
    }
}

/// One keep-alive connection; answers are read by `Content-Length` or chunk by chunk.
struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    pending: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

impl Connection {
    fn open(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        // A server that stops answering fails the run instead of hanging it.
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Connection {
            stream,
            pending: Vec::with_capacity(16 * 1024),
        })
    }

    fn read_more(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.pending.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Consumes everything up to and including the next `delimiter`.
    fn take_through(&mut self, delimiter: &[u8]) -> io::Result<Vec<u8>> {
        loop {
            if let Some(at) = find(&self.pending, delimiter) {
                let mut taken: Vec<u8> = self.pending.drain(..at + delimiter.len()).collect();
                taken.truncate(at);
                return Ok(taken);
            }
            self.read_more()?;
        }
    }

    fn take_exactly(&mut self, length: usize) -> io::Result<Vec<u8>> {
        while self.pending.len() < length {
            self.read_more()?;
        }
        Ok(self.pending.drain(..length).collect())
    }

    /// Sends one request and reads its whole answer.
    fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(request)?;
        let head = self.take_through(b"\r\n\r\n")?;
        let head = std::str::from_utf8(&head).map_err(|_| invalid("answer head not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no status line"))?;
        let (mut length, mut chunked) = (None, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = Some(value.parse().map_err(|_| invalid("bad content-length"))?);
            } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let size_line = self.take_through(b"\r\n")?;
                let size_text = std::str::from_utf8(&size_line)
                    .map_err(|_| invalid("bad chunk size"))?
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim();
                let size =
                    usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
                if size == 0 {
                    // Trailers (if any) up to the empty line.
                    while !self.take_through(b"\r\n")?.is_empty() {}
                    break body;
                }
                body.extend(self.take_exactly(size)?);
                self.take_exactly(2)?;
            }
        } else {
            self.take_exactly(length.unwrap_or(0))?
        };
        Ok(Answer { status, body })
    }
}

/// The bytes of one request; `headers` are complete lines without the CRLF.
fn request(method: &str, path: &str, headers: &[String], body: Option<&Value>) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    let body = body.map(Value::to_string);
    if let Some(body) = &body {
        let _ = write!(
            text,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    text.push_str("\r\n");
    if let Some(body) = body {
        text.push_str(&body);
    }
    text.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// The load generator

/// Builds the request a connection sends next, from (connection index, request sequence).
type MakeRequest = Arc<dyn Fn(usize, u64) -> Vec<u8> + Send + Sync>;

/// Reads (items on the page, total matching) from a list answer.
type PageOf = fn(&Value) -> Option<(usize, u64)>;

struct Workload {
    name: &'static str,
    expected_status: u16,
    make: MakeRequest,
    /// For list pages: (items on the page, total matching) from an answer, checked before the
    /// run so both sides are seen doing the same work.
    page: Option<PageOf>,
}

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

#[derive(Default)]
struct ConnectionTally {
    ok: u64,
    latencies_us: Vec<u32>,
    errors: u64,
    /// Each unexpected status (or I/O error) with one example answer.
    error_kinds: BTreeMap<String, (u64, String)>,
}

impl ConnectionTally {
    fn error(&mut self, kind: String, example: impl FnOnce() -> String) {
        self.errors += 1;
        self.error_kinds
            .entry(kind)
            .or_insert_with(|| (0, example()))
            .0 += 1;
    }
}

struct Outcome {
    per_second: f64,
    ok: u64,
    errors: u64,
    error_kinds: BTreeMap<String, (u64, String)>,
    p50_ms: f64,
    p99_ms: f64,
    /// The server's CPU time per answer counted: its cost, whatever the load generator's.
    server_cpu_us: f64,
    /// Share of the machine's cores the server and the load generator used in the window.
    server_cores: f64,
    generator_cores: f64,
}

/// `connections` keep-alive connections send requests back to back for warm-up plus the
/// measured window; an answer counts when it completes inside the window.
fn drive(
    server_pid: u32,
    addr: SocketAddr,
    connections: usize,
    workload: &Workload,
    warmup: Duration,
    measure: Duration,
) -> BenchResult<Outcome> {
    let phase = Arc::new(AtomicU8::new(WARMING));
    let answered = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|index| {
            let (phase, answered, make, expected) = (
                phase.clone(),
                answered.clone(),
                workload.make.clone(),
                workload.expected_status,
            );
            std::thread::spawn(move || -> ConnectionTally {
                let mut tally = ConnectionTally::default();
                let mut connection = None;
                let mut sequence = 0u64;
                while phase.load(Ordering::Relaxed) != STOPPING {
                    let conn = match &mut connection {
                        Some(conn) => conn,
                        None => match Connection::open(addr) {
                            Ok(conn) => connection.insert(conn),
                            Err(e) => {
                                tally.error(format!("connect: {}", e.kind()), || e.to_string());
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    let bytes = make(index, sequence);
                    sequence += 1;
                    let started = Instant::now();
                    let answer = conn.exchange(&bytes);
                    let took = started.elapsed();
                    let counted = phase.load(Ordering::Relaxed) == MEASURING;
                    match answer {
                        Ok(answer) if answer.status == expected => {
                            if counted {
                                answered.fetch_add(1, Ordering::Relaxed);
                                tally.ok += 1;
                                tally
                                    .latencies_us
                                    .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                            }
                        }
                        Ok(answer) => {
                            if counted {
                                tally.error(format!("status {}", answer.status), || {
                                    String::from_utf8_lossy(&answer.body)
                                        .chars()
                                        .take(200)
                                        .collect()
                                });
                            }
                        }
                        Err(e) => {
                            // The connection's state is unknown: start a new one.
                            connection = None;
                            if counted {
                                tally.error(format!("I/O: {}", e.kind()), || e.to_string());
                            }
                        }
                    }
                }
                tally
            })
        })
        .collect();
    std::thread::sleep(warmup);
    let server_pid = server_pid.to_string();
    let cpu =
        || -> BenchResult<(f64, f64)> { Ok((cpu_seconds(&server_pid)?, cpu_seconds("self")?)) };
    let cpu_before = cpu()?;
    phase.store(MEASURING, Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(measure);
    // A window shorter than one answer (a short smoke run of slow logins on a busy machine)
    // is stretched until one arrives, so a rate is never zero for lack of time.
    while answered.load(Ordering::Relaxed) == 0 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    phase.store(STOPPING, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu_after = cpu()?;
    let mut total = ConnectionTally::default();
    for worker in workers {
        let tally = worker.join().map_err(|_| "a load thread panicked")?;
        total.ok += tally.ok;
        total.errors += tally.errors;
        total.latencies_us.extend(tally.latencies_us);
        for (kind, (count, example)) in tally.error_kinds {
            total.error_kinds.entry(kind).or_insert((0, example)).0 += count;
        }
    }
    total.latencies_us.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if total.latencies_us.is_empty() {
            return f64::NAN;
        }
        let at = ((total.latencies_us.len() as f64 * p).ceil() as usize)
            .clamp(1, total.latencies_us.len())
            - 1;
        f64::from(total.latencies_us[at]) / 1000.0
    };
    Ok(Outcome {
        per_second: total.ok as f64 / elapsed.as_secs_f64(),
        ok: total.ok,
        errors: total.errors,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        error_kinds: total.error_kinds,
        server_cpu_us: (cpu_after.0 - cpu_before.0) * 1e6 / total.ok.max(1) as f64,
        server_cores: (cpu_after.0 - cpu_before.0) / elapsed.as_secs_f64(),
        generator_cores: (cpu_after.1 - cpu_before.1) / elapsed.as_secs_f64(),
    })
}

/// Opens `count` connections, each answering one request (so the server has really taken it
/// in), and keeps them open and idle until dropped.
fn open_idle(addr: SocketAddr, count: usize, probe: &[u8]) -> BenchResult<Vec<Connection>> {
    let mut open = Vec::with_capacity(count);
    for _ in 0..count {
        let mut conn = Connection::open(addr)?;
        let answer = conn.exchange(probe)?;
        if answer.status != 200 {
            return Err(format!("idle connection probe: status {}", answer.status).into());
        }
        open.push(conn);
    }
    Ok(open)
}

// ---------------------------------------------------------------------------------------------
// The two servers, set up with the same data and the same five workloads

/// A server under test, ready: its process, the workloads and a probe for idle connections.
struct Target {
    name: &'static str,
    process: ServerProcess,
    workloads: Vec<Workload>,
    idle_probe: Vec<u8>,
}

/// What both sides' workloads are built from.
struct Seeded {
    /// (access token, user id, email) per user.
    users: Vec<(String, String, String)>,
    item_ids: Vec<String>,
    public_ids: Vec<String>,
}

fn pick(ids: &[String], index: usize, sequence: u64) -> &str {
    // Connections walk the ids from different starting points, so reads spread over the file.
    let at = (index as u64 * 7919 + sequence * 13) % ids.len() as u64;
    &ids[at as usize]
}

const WORKLOAD_NAMES: [&str; 5] = [
    "authenticated GET by id",
    "anonymous GET by id",
    "filtered list page (n > 500, 20 a page)",
    "authenticated create",
    "login",
];

fn larder(settings: &Settings, dir: &Path) -> BenchResult<Target> {
    let path = dir.join("larder.redb");
    let (publishable, seeded) = {
        let db = Db::open(&path)?;
        let readers = Rules {
            list: Rule::Authenticated,
            view: Rule::Authenticated,
            create: Rule::Authenticated,
            update: Rule::Owner,
            delete: Rule::Owner,
        };
        db.collections().create(
            "items",
            CollectionSpec::new()
                .rules(readers)
                .owner_field("owner")
                .index("n"),
        )?;
        let public = Rules {
            list: Rule::Public,
            view: Rule::Public,
            create: Rule::Admin,
            update: Rule::Admin,
            delete: Rule::Admin,
        };
        db.collections()
            .create("public_items", CollectionSpec::new().rules(public))?;
        let publishable = db
            .keys()
            .create(NewApiKey::new(KeyKind::Publishable, "compare"))?
            .secret;
        let mut users = Vec::new();
        for i in 0..USERS {
            let email = format!("user{i}@example.com");
            let signed_in = db
                .users()
                .signup(NewUser::new(&email, PASSWORD), &Client::unknown())?;
            users.push((signed_in.access_token, signed_in.user.id, email));
        }
        let seed = |collection: &str| -> BenchResult<Vec<String>> {
            let docs: Vec<Value> = (0..settings.docs)
                .map(|i| document(i, &users[i % USERS].1))
                .collect();
            Ok(db
                .collection::<Value>(collection)
                .insert_many(&docs)?
                .into_iter()
                .map(|d| d.id)
                .collect())
        };
        let item_ids = seed("items")?;
        let public_ids = seed("public_items")?;
        (
            publishable,
            Seeded {
                users,
                item_ids,
                public_ids,
            },
        )
    }; // the file is closed here, for the server to open
    let addr = free_addr()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_larder"));
    command
        .arg("--db")
        .arg(&path)
        .arg("serve")
        .args(["--http", &addr.to_string()])
        .args(["--cache-mib", &settings.cache_mib.to_string()])
        // Room for the idle-connection measurement beyond the default cap of 1024.
        .args([
            "--max-connections",
            &(settings.idle_connections + 64).to_string(),
        ]);
    let process = ServerProcess::spawn(command, addr)?;

    let key = Arc::new(format!("x-api-key: {publishable}"));
    let seeded = Arc::new(seeded);
    let as_user = {
        let (key, seeded) = (key.clone(), seeded.clone());
        move |index: usize| {
            vec![
                key.to_string(),
                format!("Authorization: Bearer {}", seeded.users[index % USERS].0),
            ]
        }
    };
    let workloads = vec![
        Workload {
            name: WORKLOAD_NAMES[0],
            expected_status: 200,
            make: Arc::new({
                let (as_user, seeded) = (as_user.clone(), seeded.clone());
                move |index, sequence| {
                    let id = pick(&seeded.item_ids, index, sequence);
                    request(
                        "GET",
                        &format!("/api/data/items/{id}"),
                        &as_user(index),
                        None,
                    )
                }
            }),
            page: None,
        },
        Workload {
            name: WORKLOAD_NAMES[1],
            expected_status: 200,
            make: Arc::new({
                let (key, seeded) = (key.clone(), seeded.clone());
                move |index, sequence| {
                    let id = pick(&seeded.public_ids, index, sequence);
                    request(
                        "GET",
                        &format!("/api/data/public_items/{id}"),
                        std::slice::from_ref(&key),
                        None,
                    )
                }
            }),
            page: None,
        },
        Workload {
            name: WORKLOAD_NAMES[2],
            expected_status: 200,
            make: Arc::new({
                let as_user = as_user.clone();
                move |index, _| {
                    request(
                        "GET",
                        &format!(
                            "/api/data/items?n_gt={FILTER_ABOVE}&sort=-createdAt&limit={PAGE}"
                        ),
                        &as_user(index),
                        None,
                    )
                }
            }),
            page: Some(|answer| {
                let data = &answer["data"];
                Some((data["items"].as_array()?.len(), data["total"].as_u64()?))
            }),
        },
        Workload {
            name: WORKLOAD_NAMES[3],
            expected_status: 201,
            make: Arc::new({
                let (as_user, seeded) = (as_user.clone(), seeded.clone());
                move |index, sequence| {
                    let owner = &seeded.users[index % USERS].1;
                    let doc = document(sequence as usize, owner);
                    request("POST", "/api/data/items", &as_user(index), Some(&doc))
                }
            }),
            page: None,
        },
        Workload {
            name: WORKLOAD_NAMES[4],
            expected_status: 200,
            make: Arc::new({
                let (key, seeded) = (key.clone(), seeded.clone());
                move |index, _| {
                    let email = &seeded.users[index % USERS].2;
                    request(
                        "POST",
                        "/api/userAuth/login",
                        std::slice::from_ref(&key),
                        Some(&json!({"email": email, "password": PASSWORD})),
                    )
                }
            }),
            page: None,
        },
    ];
    let idle_probe = request(
        "GET",
        &format!("/api/data/public_items/{}", seeded.public_ids[0]),
        std::slice::from_ref(&key),
        None,
    );
    Ok(Target {
        name: "larder",
        process,
        workloads,
        idle_probe,
    })
}

fn pocketbase_serve(binary: &Path, dir: &Path) -> BenchResult<ServerProcess> {
    let addr = free_addr()?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .args(["--http", &addr.to_string()])
        .arg("--dir")
        .arg(dir);
    let process = ServerProcess::spawn(command, addr)?;
    // Listening comes a moment before the API answers.
    let health = request("GET", "/api/health", &[], None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Connection::open(addr).and_then(|mut c| c.exchange(&health)) {
            Ok(answer) if answer.status == 200 => return Ok(process),
            _ if Instant::now() > deadline => return Err("PocketBase is not healthy".into()),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn pocketbase_collection(name: &str, list_view: &str, create: Option<&str>) -> Value {
    json!({
        "name": name,
        "type": "base",
        "listRule": list_view,
        "viewRule": list_view,
        "createRule": create,
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "n", "type": "number"},
            {"name": "body", "type": "text"},
            {"name": "owner", "type": "text"},
            // larder keeps created and updated times on every document: the same work here.
            {"name": "created", "type": "autodate", "onCreate": true},
            {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true},
        ],
        "indexes": [format!("CREATE INDEX idx_{name}_n ON {name} (n)")],
    })
}

fn pocketbase(settings: &Settings, binary: &Path, dir: &Path) -> BenchResult<Target> {
    let data = dir.join("pb_data");
    let status = Command::new(binary)
        .args(["superuser", "upsert", SUPERUSER, PASSWORD, "--dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("pocketbase superuser upsert: {status}").into());
    }
    let seeded = {
        let setup = pocketbase_serve(binary, &data)?;
        let mut conn = Connection::open(setup.addr)?;
        let mut call = |method: &str, path: &str, headers: &[String], body: Option<&Value>| {
            conn.exchange(&request(method, path, headers, body))
        };
        let superuser = call(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            &[],
            Some(&json!({"identity": SUPERUSER, "password": PASSWORD})),
        )?
        .expect(200, "superuser login")?;
        let admin = [format!(
            "Authorization: {}",
            superuser["token"].as_str().ok_or("no superuser token")?
        )];
        // Seeding goes through the batch API (off by default), in transactions of 500.
        call(
            "PATCH",
            "/api/settings",
            &admin,
            Some(&json!({"batch": {"enabled": true, "maxRequests": 1000, "timeout": 60}})),
        )?
        .expect(200, "enable batches")?;
        let signed_in = "@request.auth.id != \"\"";
        let owner_is_caller = "@request.auth.id != \"\" && @request.body.owner = @request.auth.id";
        call(
            "POST",
            "/api/collections",
            &admin,
            Some(&pocketbase_collection(
                "items",
                signed_in,
                Some(owner_is_caller),
            )),
        )?
        .expect(200, "create items")?;
        call(
            "POST",
            "/api/collections",
            &admin,
            Some(&pocketbase_collection("public_items", "", None)),
        )?
        .expect(200, "create public_items")?;
        let mut users = Vec::new();
        for i in 0..USERS {
            let email = format!("user{i}@example.com");
            call(
                "POST",
                "/api/collections/users/records",
                &admin,
                Some(&json!({"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD})),
            )?
            .expect(200, "create user")?;
            let auth = call(
                "POST",
                "/api/collections/users/auth-with-password",
                &[],
                Some(&json!({"identity": email, "password": PASSWORD})),
            )?
            .expect(200, "user login")?;
            let token = auth["token"].as_str().ok_or("no user token")?.to_owned();
            let id = auth["record"]["id"]
                .as_str()
                .ok_or("no user id")?
                .to_owned();
            users.push((token, id, email));
        }
        let mut seed = |collection: &str| -> BenchResult<Vec<String>> {
            let mut ids = Vec::with_capacity(settings.docs);
            let all: Vec<usize> = (0..settings.docs).collect();
            for batch in all.chunks(500) {
                let requests: Vec<Value> = batch
                    .iter()
                    .map(|&i| {
                        json!({
                            "method": "POST",
                            "url": format!("/api/collections/{collection}/records"),
                            "body": document(i, &users[i % USERS].1),
                        })
                    })
                    .collect();
                let answers = call(
                    "POST",
                    "/api/batch",
                    &admin,
                    Some(&json!({"requests": requests})),
                )?
                .expect(200, "batch insert")?;
                for answer in answers.as_array().ok_or("batch answer not a list")? {
                    ids.push(
                        answer["body"]["id"]
                            .as_str()
                            .ok_or("no id in a batch answer")?
                            .to_owned(),
                    );
                }
            }
            Ok(ids)
        };
        let item_ids = seed("items")?;
        let public_ids = seed("public_items")?;
        Seeded {
            users,
            item_ids,
            public_ids,
        }
    }; // the setup process is stopped here: the measured one starts fresh on the seeded data
    let process = pocketbase_serve(binary, &data)?;

    let seeded = Arc::new(seeded);
    let as_user = {
        let seeded = seeded.clone();
        move |index: usize| vec![format!("Authorization: {}", seeded.users[index % USERS].0)]
    };
    let filter = format!("(n%3E{FILTER_ABOVE})"); // (n>500)
    let workloads = vec![
        Workload {
            name: WORKLOAD_NAMES[0],
            expected_status: 200,
            make: Arc::new({
                let (as_user, seeded) = (as_user.clone(), seeded.clone());
                move |index, sequence| {
                    let id = pick(&seeded.item_ids, index, sequence);
                    request(
                        "GET",
                        &format!("/api/collections/items/records/{id}"),
                        &as_user(index),
                        None,
                    )
                }
            }),
            page: None,
        },
        Workload {
            name: WORKLOAD_NAMES[1],
            expected_status: 200,
            make: Arc::new({
                let seeded = seeded.clone();
                move |index, sequence| {
                    let id = pick(&seeded.public_ids, index, sequence);
                    request(
                        "GET",
                        &format!("/api/collections/public_items/records/{id}"),
                        &[],
                        None,
                    )
                }
            }),
            page: None,
        },
        Workload {
            name: WORKLOAD_NAMES[2],
            expected_status: 200,
            make: Arc::new({
                let as_user = as_user.clone();
                move |index, _| {
                    request(
                        "GET",
                        &format!(
                            "/api/collections/items/records?filter={filter}&sort=-created&perPage={PAGE}"
                        ),
                        &as_user(index),
                        None,
                    )
                }
            }),
            page: Some(|answer| {
                Some((
                    answer["items"].as_array()?.len(),
                    answer["totalItems"].as_u64()?,
                ))
            }),
        },
        Workload {
            name: WORKLOAD_NAMES[3],
            expected_status: 200,
            make: Arc::new({
                let (as_user, seeded) = (as_user.clone(), seeded.clone());
                move |index, sequence| {
                    let owner = &seeded.users[index % USERS].1;
                    let doc = document(sequence as usize, owner);
                    request(
                        "POST",
                        "/api/collections/items/records",
                        &as_user(index),
                        Some(&doc),
                    )
                }
            }),
            page: None,
        },
        Workload {
            name: WORKLOAD_NAMES[4],
            expected_status: 200,
            make: Arc::new({
                let seeded = seeded.clone();
                move |index, _| {
                    let email = &seeded.users[index % USERS].2;
                    request(
                        "POST",
                        "/api/collections/users/auth-with-password",
                        &[],
                        Some(&json!({"identity": email, "password": PASSWORD})),
                    )
                }
            }),
            page: None,
        },
    ];
    let idle_probe = request(
        "GET",
        &format!(
            "/api/collections/public_items/records/{}",
            seeded.public_ids[0]
        ),
        &[],
        None,
    );
    Ok(Target {
        name: "PocketBase",
        process,
        workloads,
        idle_probe,
    })
}

// ---------------------------------------------------------------------------------------------
// Running and reporting

struct Report {
    idle: Memory,
    outcomes: Vec<(Outcome, Memory)>,
    before_idle_connections: Memory,
    with_idle_connections: Memory,
}

fn measure(settings: &Settings, target: &Target) -> BenchResult<Report> {
    // Settle after start, then take the idle figure.
    std::thread::sleep(Duration::from_millis(if settings.smoke {
        100
    } else {
        1000
    }));
    let idle = target.process.memory()?;
    let mut outcomes = Vec::new();
    for workload in &target.workloads {
        if let Some(page) = workload.page {
            let mut conn = Connection::open(target.process.addr)?;
            let answer = conn.exchange(&(workload.make)(0, 0))?;
            let json = answer.expect(workload.expected_status, workload.name)?;
            let (items, total) = page(&json).ok_or("a list answer without items or total")?;
            eprintln!(
                "  {:<11} {}: {items} items on the page, {total} matching",
                target.name, workload.name
            );
            if items != PAGE {
                return Err(format!("{}: {items} items, not {PAGE}", workload.name).into());
            }
        }
        let outcome = drive(
            target.process.child.id(),
            target.process.addr,
            CONNECTIONS,
            workload,
            settings.warmup,
            settings.measure,
        )?;
        let memory = target.process.memory()?;
        eprintln!(
            "  {:<11} {:<42} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}  server CPU {:.0} µs/answer ({:.2} cores, generator {:.2})  RSS {:.1} MiB (peak {:.1})",
            target.name,
            workload.name,
            outcome.per_second,
            outcome.p50_ms,
            outcome.p99_ms,
            outcome.errors,
            outcome.server_cpu_us,
            outcome.server_cores,
            outcome.generator_cores,
            mib(memory.current_kib),
            mib(memory.peak_kib),
        );
        for (kind, (count, example)) in &outcome.error_kinds {
            eprintln!("      {count} × {kind}: {example}");
        }
        outcomes.push((outcome, memory));
    }
    let before_idle_connections = target.process.memory()?;
    let idle_connections = open_idle(
        target.process.addr,
        settings.idle_connections,
        &target.idle_probe,
    )?;
    std::thread::sleep(Duration::from_millis(if settings.smoke {
        100
    } else {
        1000
    }));
    let with_idle_connections = target.process.memory()?;
    drop(idle_connections);
    Ok(Report {
        idle,
        outcomes,
        before_idle_connections,
        with_idle_connections,
    })
}

fn run_target(
    settings: &Settings,
    name: &str,
    start: impl FnOnce(&Path) -> BenchResult<Target>,
) -> BenchResult<Report> {
    let dir = tempfile::tempdir()?;
    eprintln!(
        "{name}: seeding {} documents twice, {USERS} users",
        settings.docs
    );
    let target = start(dir.path())?;
    eprintln!("{name}: measuring");
    measure(settings, &target)
}

/// Minimum ratios larder / PocketBase, per workload (login has an absolute target instead).
const RATIO_TARGETS: [Option<f64>; 5] = [Some(5.0), Some(10.0), Some(10.0), Some(5.0), None];
const LOGIN_PER_CORE_TARGET: f64 = 60.0;

fn print_tables(settings: &Settings, larder: &Report, pocketbase: Option<&Report>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!(
        "{cores} cores; {CONNECTIONS} keep-alive connections; {:.1} s per workload after {:.1} s warm-up; {} documents per collection; load generator on the same cores",
        settings.measure.as_secs_f64(),
        settings.warmup.as_secs_f64(),
        settings.docs,
    );
    println!();
    println!(
        "| workload (16 connections) | larder req/s | PocketBase req/s | larder / PocketBase (target) | larder p50 / p99 ms | PocketBase p50 / p99 ms | server CPU per answer, larder / PocketBase |"
    );
    println!("| --- | ---: | ---: | --- | --- | --- | --- |");
    for (i, name) in WORKLOAD_NAMES.iter().enumerate() {
        let ours = &larder.outcomes[i].0;
        let theirs = pocketbase.map(|p| &p.outcomes[i].0);
        let ratio = match (RATIO_TARGETS[i], theirs) {
            (Some(target), Some(theirs)) => {
                let ratio = ours.per_second / theirs.per_second;
                let verdict = if ratio >= target { "met" } else { "missed" };
                format!("{ratio:.1}× (≥ {target}×: {verdict})")
            }
            (Some(target), None) => format!("– (≥ {target}×)"),
            (None, theirs) => {
                let per_core = ours.per_second / cores as f64;
                let verdict = if per_core >= LOGIN_PER_CORE_TARGET {
                    "met"
                } else {
                    "missed"
                };
                let ratio = theirs.map_or(String::new(), |t| {
                    format!("{:.1}×; ", ours.per_second / t.per_second)
                });
                format!("{ratio}{per_core:.0}/s per core (≥ {LOGIN_PER_CORE_TARGET}: {verdict})")
            }
        };
        let errors = |o: &Outcome| {
            if o.errors == 0 {
                String::new()
            } else {
                format!(" ({} errors)", o.errors)
            }
        };
        let cpu = |o: &Outcome| {
            if o.server_cpu_us >= 1000.0 {
                format!("{:.1} ms", o.server_cpu_us / 1000.0)
            } else {
                format!("{:.0} µs", o.server_cpu_us)
            }
        };
        println!(
            "| {name} | {:.0}{} | {} | {ratio} | {:.2} / {:.2} | {} | {} / {} |",
            ours.per_second,
            errors(ours),
            theirs.map_or("–".to_owned(), |t| format!(
                "{:.0}{}",
                t.per_second,
                errors(t)
            )),
            ours.p50_ms,
            ours.p99_ms,
            theirs.map_or("–".to_owned(), |t| format!(
                "{:.2} / {:.2}",
                t.p50_ms, t.p99_ms
            )),
            cpu(ours),
            theirs.map_or("–".to_owned(), cpu),
        );
    }
    println!();
    let load_ceiling = f64::from(settings.cache_mib) + 32.0;
    println!("| resident memory, MiB: now (peak so far) | larder | PocketBase | larder target |");
    println!("| --- | ---: | ---: | --- |");
    let cell = |m: &Memory| format!("{:.1} ({:.1})", mib(m.current_kib), mib(m.peak_kib));
    let theirs = |pick: &dyn Fn(&Report) -> String| pocketbase.map_or("–".to_owned(), pick);
    println!(
        "| idle, just started on the seeded file | {} | {} | ≤ 20 |",
        cell(&larder.idle),
        theirs(&|p| cell(&p.idle)),
    );
    for (i, name) in WORKLOAD_NAMES.iter().enumerate() {
        println!(
            "| after {name} | {} | {} | ≤ {load_ceiling:.0} (cache + 32) |",
            cell(&larder.outcomes[i].1),
            theirs(&|p| cell(&p.outcomes[i].1)),
        );
    }
    let increase = |r: &Report| {
        mib(r.with_idle_connections.current_kib) - mib(r.before_idle_connections.current_kib)
    };
    println!(
        "| with {} idle connections open: increase | +{:.1} | +{} | ≤ +30 |",
        settings.idle_connections,
        increase(larder),
        theirs(&|p| format!("{:.1}", increase(p))),
    );
    println!(
        "| with {} idle connections open | {} | {} | |",
        settings.idle_connections,
        cell(&larder.with_idle_connections),
        theirs(&|p| cell(&p.with_idle_connections)),
    );
}

fn main() -> BenchResult<()> {
    let settings = Settings::from_env();
    let larder_report = run_target(&settings, "larder", |dir| larder(&settings, dir))?;
    let pocketbase_report = match &settings.pocketbase {
        Some(binary) => Some(run_target(&settings, "PocketBase", |dir| {
            pocketbase(&settings, binary, dir)
        })?),
        None => {
            eprintln!("PocketBase: not run (set LARDER_COMPARE_POCKETBASE to its binary)");
            None
        }
    };
    print_tables(&settings, &larder_report, pocketbase_report.as_ref());
    // Every larder workload must have been served without an unexpected answer: the smoke run
    // in CI relies on this to keep the harness (and the routes it drives) honest.
    let failed: Vec<&str> = WORKLOAD_NAMES
        .iter()
        .zip(&larder_report.outcomes)
        .filter(|(_, (o, _))| o.ok == 0 || o.errors > 0)
        .map(|(name, _)| *name)
        .collect();
    if !failed.is_empty() {
        return Err(format!("larder workloads with errors or no answer: {failed:?}").into());
    }
    Ok(())
}
