//! Does a database URL really connect and authenticate? The agent asks this
//! before it switches the app to a new `DATABASE_URL`/`MONGO_URL`, with the
//! clients the app itself would meet: tokio-postgres (cargo feature
//! `postgres`) and the official mongodb driver (`mongo`).
//!
//! The check runs in its own process, `wsgi-dbcheck` (src/main.rs): the
//! clients, tokio and rustls double the hook binary's size and add a MiB to
//! every hook's memory, for a check that runs only when a URL changes. The
//! agent links this library without features, for [`parse_answer`] and
//! [`scrub`]; the answer is one line on stdout ([`answer_line`]).
//!
//! A scheme whose client is not compiled in, or a URL that asks for TLS, is
//! reported as not checked, never as a failure. Errors carry the server's
//! answer and its address, never the password: every message is scrubbed of
//! it, raw and percent-encoded.

use std::time::Duration;

/// The outcome of a check that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Connected, authenticated and answered a trivial query.
    Connected,
    /// The URL asks for TLS, or its client is not in this build: the app's
    /// own connection will tell.
    NotChecked,
}

/// Why a database URL is not usable (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DbCheckError(pub String);

/// Connects to `url` and authenticates, within `timeout`.
pub fn check(url: &str, timeout: Duration) -> Result<Checked, DbCheckError> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let secret = password_of(url);
    let result = match scheme {
        "postgres" | "postgresql" => postgres(url, timeout),
        "mongodb" => mongo(url, timeout),
        _ => Err(DbCheckError(format!("unsupported scheme {scheme:?}"))),
    };
    result.map_err(|DbCheckError(msg)| DbCheckError(scrub(&msg, secret.as_deref())))
}

/// The one line `wsgi-dbcheck` prints for a result.
pub fn answer_line(result: &Result<Checked, DbCheckError>) -> String {
    match result {
        Ok(Checked::Connected) => "connected".to_owned(),
        Ok(Checked::NotChecked) => "not-checked".to_owned(),
        // One line: the message must not be able to add a second answer.
        Err(DbCheckError(msg)) => format!("failed: {}", msg.replace(['\n', '\r'], " ")),
    }
}

/// Reads `wsgi-dbcheck`'s answer back; `None` when it is not one.
pub fn parse_answer(stdout: &str) -> Option<Result<Checked, DbCheckError>> {
    let line = stdout.lines().next()?.trim_end();
    match line {
        "connected" => Some(Ok(Checked::Connected)),
        "not-checked" => Some(Ok(Checked::NotChecked)),
        _ => line
            .strip_prefix("failed: ")
            .map(|m| Err(DbCheckError(m.to_owned()))),
    }
}

/// The password in `scheme://user:password@host…`, if any.
pub fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = &rest[..rest.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// Removes the password (as given, and percent-decoded) from a message.
pub fn scrub(message: &str, password: Option<&str>) -> String {
    let Some(p) = password else {
        return message.to_owned();
    };
    let decoded = percent_encoding::percent_decode_str(p)
        .decode_utf8_lossy()
        .into_owned();
    let mut out = message.replace(p, "***");
    if !decoded.is_empty() {
        out = out.replace(&decoded, "***");
    }
    out
}

/// `host:port` of the URL, for messages.
#[cfg_attr(not(any(feature = "postgres", feature = "mongo")), allow(dead_code))]
fn address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let after_user = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    after_user.split(['/', '?']).next().unwrap_or("").to_owned()
}

#[cfg(any(feature = "postgres", feature = "mongo"))]
fn runtime() -> Result<tokio::runtime::Runtime, DbCheckError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DbCheckError(format!("cannot start the database check: {e}")))
}

#[cfg(feature = "postgres")]
fn postgres(url: &str, timeout: Duration) -> Result<Checked, DbCheckError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| DbCheckError(format!("not a PostgreSQL URL: {e}")))?;
    if !matches!(
        config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer
    ) {
        return Ok(Checked::NotChecked);
    }
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    config.connect_timeout(timeout);
    let at = address(url);
    runtime()?.block_on(async {
        let work = async {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            let driver = tokio::spawn(connection);
            client.simple_query("SELECT 1").await?;
            drop(client);
            let _ = driver.await;
            Ok::<_, tokio_postgres::Error>(())
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(())) => Ok(Checked::Connected),
            Ok(Err(e)) => Err(DbCheckError(format!(
                "PostgreSQL at {at}: {}",
                postgres_reason(&e)
            ))),
            Err(_) => Err(DbCheckError(format!(
                "PostgreSQL at {at}: no answer within {} s",
                timeout.as_secs()
            ))),
        }
    })
}

/// The server's own words when it answered (`password authentication
/// failed for user "x"`), else the connection error.
#[cfg(feature = "postgres")]
fn postgres_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s = format!("{s}: {inner}");
                source = inner.source();
            }
            s
        }
    }
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &str, _: Duration) -> Result<Checked, DbCheckError> {
    Ok(Checked::NotChecked)
}

#[cfg(feature = "mongo")]
fn mongo(url: &str, timeout: Duration) -> Result<Checked, DbCheckError> {
    use mongodb::bson::doc;
    let at = address(url);
    if url.contains("tls=true") || url.contains("ssl=true") {
        return Ok(Checked::NotChecked);
    }
    runtime()?.block_on(async {
        let work = async {
            let mut options = mongodb::options::ClientOptions::parse(url).await?;
            options.server_selection_timeout = Some(timeout);
            options.connect_timeout = Some(timeout);
            let client = mongodb::Client::with_options(options)?;
            let db = client
                .default_database()
                .unwrap_or_else(|| client.database("admin"));
            db.run_command(doc! { "ping": 1 }).await?;
            Ok::<_, mongodb::error::Error>(())
        };
        match tokio::time::timeout(timeout + Duration::from_secs(1), work).await {
            Ok(Ok(())) => Ok(Checked::Connected),
            Ok(Err(e)) => Err(DbCheckError(format!("MongoDB at {at}: {}", e.kind))),
            Err(_) => Err(DbCheckError(format!(
                "MongoDB at {at}: no answer within {} s",
                timeout.as_secs()
            ))),
        }
    })
}

#[cfg(not(feature = "mongo"))]
fn mongo(_: &str, _: Duration) -> Result<Checked, DbCheckError> {
    Ok(Checked::NotChecked)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// WSGI_FUZZ_CASES (scripts/soak sets it) overrides the count CI runs.
    fn fuzz_cases(default: u32) -> u32 {
        std::env::var("WSGI_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    #[test]
    fn password_and_address_are_found() {
        let url = "postgresql://u:p%40ss%2Fw@[::1]:5432/db?sslmode=disable";
        assert_eq!(password_of(url).as_deref(), Some("p%40ss%2Fw"));
        assert_eq!(address(url), "[::1]:5432");
        assert_eq!(
            scrub(
                "auth failed for p@ss/w and p%40ss%2Fw",
                password_of(url).as_deref()
            ),
            "auth failed for *** and ***"
        );
        assert_eq!(password_of("mongodb://127.0.0.1:1/?replicaSet=x"), None);
    }

    #[test]
    fn answers_round_trip_on_one_line() {
        for r in [
            Ok(Checked::Connected),
            Ok(Checked::NotChecked),
            Err(DbCheckError("PostgreSQL at h:1: refused".into())),
        ] {
            assert_eq!(parse_answer(&answer_line(&r)), Some(r));
        }
        let two = Err(DbCheckError("a\nconnected".into()));
        assert_eq!(
            parse_answer(&answer_line(&two)),
            Some(Err(DbCheckError("a connected".into())))
        );
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("panicked at ..."), None);
    }

    #[test]
    fn unknown_scheme_is_an_error() {
        let e = check("redis://x:pw@h:1", Duration::from_millis(100)).unwrap_err();
        assert!(e.0.contains("unsupported scheme"), "{e}");
    }

    proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(fuzz_cases(256)))]
        #[test]
        fn any_string_never_panics_and_never_leaks(
            user in "[a-z]{0,8}",
            pass in "[ -~]{1,24}",
            tail in "[ -~]{0,40}",
        ) {
            let encoded = percent_encoding::utf8_percent_encode(&pass, percent_encoding::NON_ALPHANUMERIC).to_string();
            for url in [
                format!("postgresql://{user}:{encoded}@127.0.0.1:1/{tail}"),
                format!("nonsense{tail}{pass}"),
            ] {
                if let Err(DbCheckError(msg)) = check(&url, Duration::from_millis(200))
                    && url.starts_with("postgresql://")
                    && pass.len() > 3
                {
                    prop_assert!(!msg.contains(&encoded), "{msg}");
                }
            }
        }
    }
}
