//! The `larder` command line: inspect and change a larder database file.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use larder::{CollectionSpec, Db, Query};
use serde_json::Value;

/// A backend in one file: collections of JSON documents (and more) in one redb file.
#[derive(Parser, Debug)]
#[command(name = "larder", version, about)]
struct Cli {
    /// The database file (created if missing).
    #[arg(long, global = true, default_value = "larder.redb", env = "LARDER_DB")]
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
    /// Verify the checksums of the whole file.
    Check,
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
    let db = Db::open(&cli.db).map_err(|e| format!("{}: {e}", cli.db.display()))?;
    match cli.command {
        Command::Collections(CollectionsCommand::List) => {
            for info in db.list_collections().map_err(text)? {
                print_json(&info)?;
            }
        }
        Command::Collections(CollectionsCommand::Create { name, indexes }) => {
            let spec = indexes
                .into_iter()
                .fold(CollectionSpec::new(), CollectionSpec::index);
            print_json(&db.create_collection(&name, spec).map_err(text)?)?;
        }
        Command::Collections(CollectionsCommand::Delete { name }) => {
            db.delete_collection(&name).map_err(text)?;
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

fn text(error: larder::Error) -> String {
    error.to_string()
}

fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let line = serde_json::to_string(value).map_err(|e| e.to_string())?;
    println!("{line}");
    Ok(())
}
