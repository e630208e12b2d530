//! `wsgi-dbcheck`: reads a database URL on stdin (never in its arguments,
//! which every user of the machine can read in /proc), tries it, and prints
//! one line: `connected`, `not-checked` or `failed: <why>` (see
//! `dbcheck_protocol::answer_line`). Exit 0 when usable or not checked, 1 when not.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

mod check;

macro_rules! version {
    ($clients:literal) => {
        concat!(env!("CARGO_PKG_VERSION"), " (clients: ", $clients, ")")
    };
}
#[cfg(all(feature = "postgres", feature = "mongo"))]
const VERSION: &str = version!("postgresql, mongodb");
#[cfg(all(feature = "postgres", not(feature = "mongo")))]
const VERSION: &str = version!("postgresql");
#[cfg(all(not(feature = "postgres"), feature = "mongo"))]
const VERSION: &str = version!("mongodb");
#[cfg(not(any(feature = "postgres", feature = "mongo")))]
const VERSION: &str = version!("none");

#[derive(Parser)]
#[command(
    name = "wsgi-dbcheck",
    version = VERSION,
    about = "Does the database URL on stdin connect and authenticate?"
)]
struct Cli {
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A URL is short; more than this is not one.
    let mut input = String::new();
    if let Err(e) = std::io::stdin().take(64 * 1024).read_to_string(&mut input) {
        eprintln!("wsgi-dbcheck: reading the URL from stdin: {e}");
        return ExitCode::from(2);
    }
    let url = input.trim_end_matches(['\n', '\r']);
    let result = check::check(url, Duration::from_secs(cli.timeout));
    let line = dbcheck_protocol::answer_line(&result);
    if writeln!(std::io::stdout(), "{line}").is_err() {
        return ExitCode::from(2);
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
