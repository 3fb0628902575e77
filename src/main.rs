//! The `larder` command line: serve a larder database file over HTTP, or inspect and change it.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use larder::{CollectionSpec, Db, KeyKind, NewApiKey, Query, Server, ServerConfig};
use serde_json::Value;

/// A backend in one file: users, sessions, API keys, permissions, JSON documents, files and
/// settings in one redb file, served over HTTP or inspected and changed from here.
#[derive(Parser, Debug)]
#[command(name = "larder", version, about)]
struct Cli {
    /// The database file (`serve` creates it when missing; the other commands need it).
    #[arg(
        long,
        global = true,
        default_value = "./larder.redb",
        env = "LARDER_DB"
    )]
    db: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Manage collections.
    #[command(subcommand)]
    Collections(CollectionsCommand),
    /// Read and write documents.
    #[command(subcommand)]
    Docs(DocsCommand),
    /// Serve the database over HTTP (all dialects, on one port) until Ctrl-C or SIGTERM.
    Serve {
        /// The address to listen on.
        #[arg(long = "http", default_value = "127.0.0.1:8090")]
        addr: String,
        /// The size of the page cache in MiB: the main part of the process's memory under load.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
        cache_mib: u32,
        /// Most open connections (event streams and sockets included); further clients wait
        /// in the accept queue.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        max_connections: u32,
        /// Days of change history kept for subscribers that resume from a position.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
        feed_keep_days: u32,
        /// Most transactions of change history kept.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
        feed_keep_changes: u64,
        /// Most MiB of change history kept.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
        feed_keep_mib: u64,
    },
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect app users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Verify the checksums of the whole file.
    Check,
    /// Remove abandoned uploads and orphaned files, then rewrite the file so the space freed
    /// by deletes is given back to the file system (the server must not be running).
    Compact,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create a key and print its secret (shown once).
    Create {
        /// secret (admin), publishable (client apps) or scoped.
        #[arg(long, value_enum, default_value = "secret")]
        kind: KindArg,
        /// A label for listings.
        #[arg(long, default_value = "cli")]
        label: String,
        /// A scoped key's grant, repeatable: `notes=read,write` (actions: read, write, delete;
        /// `files/<bucket>=…` for a bucket).
        #[arg(long = "grant", value_name = "COLLECTION=ACTIONS")]
        grants: Vec<String>,
    },
    /// List keys (never their secrets), one JSON object per line.
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id (32 hex characters).
        id: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum KindArg {
    Secret,
    Publishable,
    Scoped,
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// List users, one JSON object per line.
    List,
}

#[derive(Subcommand, Debug)]
enum CollectionsCommand {
    /// List collections with their document counts (one JSON object per line).
    List,
    /// Create a collection.
    Create {
        /// The collection's name (a-z, 0-9, _; starting with a letter).
        name: String,
        /// A field path to index (repeatable).
        #[arg(long = "index")]
        indexes: Vec<String>,
    },
    /// Delete a collection with all its documents.
    Delete {
        /// The collection's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum DocsCommand {
    /// Print documents (one JSON object per line), in id order.
    List {
        /// The collection.
        collection: String,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Skip this many first.
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Print one document.
    Get {
        /// The collection.
        collection: String,
        /// The document id.
        id: String,
    },
    /// Insert a document given as a JSON object and print it.
    Insert {
        /// The collection.
        collection: String,
        /// The document, e.g. '{"title": "hello"}'.
        json: String,
    },
    /// Delete a document and print it as it was.
    Delete {
        /// The collection.
        collection: String,
        /// The document id.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("larder: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let is_new = !cli.db.exists() || std::fs::metadata(&cli.db).is_ok_and(|m| m.len() == 0);
    let mut builder = Db::builder();
    // The server claims its port before it creates a file or prints a key: a port in use
    // leaves nothing behind.
    let mut listener = None;
    if let Command::Serve {
        cache_mib,
        addr,
        feed_keep_days,
        feed_keep_changes,
        feed_keep_mib,
        ..
    } = &cli.command
    {
        builder = builder
            .cache_bytes(mib_to_bytes(*cache_mib))
            .feed_retention(larder::Retention {
                max_batches: *feed_keep_changes,
                max_bytes: feed_keep_mib.saturating_mul(1 << 20),
                max_age: std::time::Duration::from_secs(u64::from(*feed_keep_days) * 86_400),
            });
        listener = Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| format!("cannot listen on {addr}: {}", os_cause(&e)))?,
        );
    }
    // Only `serve` creates a database: any other command on a mistyped path would otherwise
    // leave a new, empty file there and answer as if it were the real one.
    if is_new && !matches!(cli.command, Command::Serve { .. }) {
        return Err(format!(
            "{}: no database here; check the path (`larder serve` creates one)",
            cli.db.display()
        ));
    }
    let db = builder
        .open(&cli.db)
        .map_err(|e| format!("{}: {}", cli.db.display(), explain(&e)))?;
    match cli.command {
        Command::Serve {
            max_connections, ..
        } => {
            let listener = listener.ok_or("no socket to serve on")?;
            serve(db, listener, &cli.db, is_new, max_connections)?;
        }
        Command::Keys(KeysCommand::Create {
            kind,
            label,
            grants,
        }) => {
            let kind = match kind {
                KindArg::Secret => KeyKind::Secret,
                KindArg::Publishable => KeyKind::Publishable,
                KindArg::Scoped => KeyKind::Scoped,
            };
            if !grants.is_empty() && kind != KeyKind::Scoped {
                return Err("--grant is for scoped keys: add --kind scoped".into());
            }
            let mut new = NewApiKey::new(kind, label);
            for grant in &grants {
                let (collection, grant) = parse_grant(grant)?;
                new = new.grant(collection, grant);
            }
            let key = db.keys().create(new).map_err(text)?;
            print_json(&key)?;
        }
        Command::Keys(KeysCommand::List) => {
            for key in db.keys().list().map_err(text)? {
                print_json(&key)?;
            }
        }
        Command::Keys(KeysCommand::Revoke { id }) => db.keys().revoke(&id).map_err(text)?,
        Command::Users(UsersCommand::List) => {
            for user in db.users().list().map_err(text)? {
                print_json(&user)?;
            }
        }
        Command::Collections(CollectionsCommand::List) => {
            for info in db.collections().list().map_err(text)? {
                print_json(&info)?;
            }
        }
        Command::Collections(CollectionsCommand::Create { name, indexes }) => {
            let spec = indexes
                .into_iter()
                .fold(CollectionSpec::new(), CollectionSpec::index);
            print_json(&db.collections().create(&name, spec).map_err(text)?)?;
        }
        Command::Collections(CollectionsCommand::Delete { name }) => {
            db.collections().delete(&name).map_err(text)?;
        }
        Command::Docs(DocsCommand::List {
            collection,
            limit,
            offset,
        }) => {
            let mut query = Query::new().offset(offset);
            query.limit = limit;
            for doc in db
                .collection::<Value>(&collection)
                .find(&query)
                .map_err(text)?
            {
                print_json(&doc)?;
            }
        }
        Command::Docs(DocsCommand::Get { collection, id }) => {
            match db.collection::<Value>(&collection).get(&id).map_err(text)? {
                Some(doc) => print_json(&doc)?,
                None => return Err(format!("document `{id}` in `{collection}` not found")),
            }
        }
        Command::Docs(DocsCommand::Insert { collection, json }) => {
            let value: Value =
                serde_json::from_str(&json).map_err(|e| format!("invalid JSON: {e}"))?;
            print_json(
                &db.collection::<Value>(&collection)
                    .insert(&value)
                    .map_err(text)?,
            )?;
        }
        Command::Docs(DocsCommand::Delete { collection, id }) => {
            print_json(
                &db.collection::<Value>(&collection)
                    .delete(&id)
                    .map_err(text)?,
            )?;
        }
        Command::Compact => {
            let mut db = db;
            let path = db.path().map(std::path::Path::to_path_buf);
            let size = || {
                path.as_ref()
                    .and_then(|path| std::fs::metadata(path).ok())
                    .map_or(0, |m| m.len())
            };
            let before = size();
            let removed = db.buckets().cleanup().map_err(text)?;
            db.compact().map_err(text)?;
            // Closed first: the size that counts is the one the file keeps.
            drop(db);
            println!(
                "removed {removed} abandoned uploads or orphaned files; {before} bytes -> {} bytes",
                size()
            );
        }
        Command::Check => {
            if db.check_integrity().map_err(text)? {
                println!("ok");
            } else {
                println!("repaired");
            }
        }
    }
    Ok(())
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully.
fn serve(
    db: Db,
    listener: std::net::TcpListener,
    path: &std::path::Path,
    is_new: bool,
    max_connections: u32,
) -> Result<(), String> {
    if let Ok(secret) = std::env::var("LARDER_ADMIN_KEY") {
        db.keys()
            .import_secret(&secret, "LARDER_ADMIN_KEY")
            .map_err(text)?;
    } else if is_new {
        let key = db
            .keys()
            .create(NewApiKey::new(KeyKind::Secret, "created by larder serve"))
            .map_err(text)?;
        eprintln!("larder: new database; its admin key (shown once, keep it secret):");
        println!("{}", key.secret);
        eprintln!(
            "larder: lost it? stop the server and run `larder --db {} keys create --kind secret`",
            path.display()
        );
    }
    let config = ServerConfig {
        log_requests: true,
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        ..ServerConfig::default()
    };
    let server = Server::start_on(db, listener, config).map_err(|e| explain(&e))?;
    eprintln!("larder: serving on {}", server.url());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match terminate.as_mut() {
                    Some(signal) => { signal.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    });
    eprintln!("larder: shutting down");
    server.shutdown();
    Ok(())
}

/// `COLLECTION=read,write,delete` as a grant.
fn parse_grant(text: &str) -> Result<(String, larder::Grant), String> {
    let (collection, actions) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write a grant as COLLECTION=read,write,delete"))?;
    let mut grant = larder::Grant::default();
    for action in actions.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match action {
            "read" => grant.read = true,
            "write" => grant.write = true,
            "delete" => grant.delete = true,
            other => {
                return Err(format!(
                    "`{other}` in `{text}` is no action: use read, write or delete"
                ));
            }
        }
    }
    Ok((collection.to_owned(), grant))
}

/// MiB to bytes, saturating where `usize` is narrower than the product.
fn mib_to_bytes(mib: u32) -> usize {
    usize::try_from(u64::from(mib) * 1024 * 1024).unwrap_or(usize::MAX)
}

fn text(error: larder::Error) -> String {
    explain(&error)
}

/// An error as a person at the terminal needs it: what failed, and the operating system's
/// own words for why (permission denied, address in use, is a directory …), which the HTTP
/// front never shows but a local user should see.
fn explain(error: &larder::Error) -> String {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let text = match inner.downcast_ref::<std::io::Error>() {
            Some(io) => os_cause(io),
            None => without_os_code(&inner.to_string()).replace("I/O error: ", ""),
        };
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = inner.source();
    }
    if matches!(error.kind(), larder::ErrorKind::AlreadyOpen) {
        message.push_str(
            " (another larder, often a running `larder serve`, holds the file: stop it, or \
             use its HTTP API)",
        );
    }
    message
}

/// The operating system's words for an I/O error, without the `(os error N)` tail.
fn os_cause(error: &std::io::Error) -> String {
    without_os_code(&error.to_string())
}

fn without_os_code(text: &str) -> String {
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let line = serde_json::to_string(value).map_err(|e| e.to_string())?;
    println!("{line}");
    Ok(())
}
