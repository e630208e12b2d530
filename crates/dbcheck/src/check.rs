//! The checks themselves, with the clients the app would meet:
//! tokio-postgres (feature `postgres`) and the official mongodb driver
//! (`mongo`). A scheme whose client is not compiled in, or a URL that asks
//! for TLS, is reported as not checked, never as a failure. Errors carry the
//! server's answer and its address, never the password.

use std::time::Duration;

use dbcheck_protocol::{Checked, DbCheckError, address, password_of, scrub};

/// Connects to `url` and authenticates, within `timeout`.
pub(crate) fn check(url: &str, timeout: Duration) -> Result<Checked, DbCheckError> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let secret = password_of(url);
    let result = match scheme {
        "postgres" | "postgresql" => postgres(url, timeout),
        "mongodb" => mongo(url, timeout),
        _ => Err(DbCheckError(format!("unsupported scheme {scheme:?}"))),
    };
    result.map_err(|DbCheckError(msg)| DbCheckError(scrub(&msg, secret.as_deref())))
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
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
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
