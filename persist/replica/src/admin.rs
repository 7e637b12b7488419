//! Administration helpers for tools, tests and the bench: creating and dropping a MySQL
//! database named by a URL, and the physical floor of one replicated row (a single-row
//! `INSERT` + `COMMIT` round trip). Blocking: each call runs its own small runtime.

use std::time::Instant;

use crate::db::Conn;
use crate::dialect::Dialect;
use crate::error::ReplicaError;

fn runtime() -> Result<tokio::runtime::Runtime, ReplicaError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReplicaError::Thread)
}

/// Splits `mysql://user@host:port/database?options` into the URL without the database and the
/// database name, which must be a plain identifier (letters, digits, `_`; at most 64).
pub fn split_mysql_url(database_url: &str) -> Result<(String, String), ReplicaError> {
    let bad = |why: &str| ReplicaError::Config(format!("{database_url:?}: {why}"));
    if Dialect::from_url(database_url)? != Dialect::MySql {
        return Err(bad("not a mysql:// URL"));
    }
    let (without_options, options) = match database_url.split_once('?') {
        Some((url, options)) => (url, Some(options)),
        None => (database_url, None),
    };
    let after_scheme = without_options.find("://").map_or(0, |at| at + 3);
    let Some(slash) = without_options[after_scheme..].find('/') else {
        return Err(bad("no database name"));
    };
    let server = &without_options[..after_scheme + slash];
    let name = &without_options[after_scheme + slash + 1..];
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(bad(
            "the database name must be 1 to 64 letters, digits or _",
        ));
    }
    let server = match options {
        Some(options) => format!("{server}?{options}"),
        None => server.to_owned(),
    };
    Ok((server, name.to_owned()))
}

/// The same URL naming another database (a plain identifier).
pub fn with_database(database_url: &str, name: &str) -> Result<String, ReplicaError> {
    let (server, _) = split_mysql_url(database_url)?;
    let url = match server.split_once('?') {
        Some((base, options)) => format!("{base}/{name}?{options}"),
        None => format!("{server}/{name}"),
    };
    split_mysql_url(&url)?;
    Ok(url)
}

/// Creates the database a `mysql://` URL names (if it does not exist).
pub fn create_mysql_database(database_url: &str) -> Result<(), ReplicaError> {
    let (server, name) = split_mysql_url(database_url)?;
    runtime()?.block_on(async {
        let mut conn = Conn::connect(&server).await?;
        conn.execute(&format!("CREATE DATABASE IF NOT EXISTS `{name}`"))
            .await?;
        conn.close().await;
        Ok(())
    })
}

/// Drops the database a `mysql://` URL names (if it exists).
pub fn drop_mysql_database(database_url: &str) -> Result<(), ReplicaError> {
    let (server, name) = split_mysql_url(database_url)?;
    runtime()?.block_on(async {
        let mut conn = Conn::connect(&server).await?;
        conn.execute(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .await?;
        conn.close().await;
        Ok(())
    })
}

/// The median time of one single-row `INSERT` + `COMMIT` into `database_url`, over `samples`
/// (clamped to 1..=10 000), in a scratch table created and dropped for it: the floor under
/// the latency of any replicated row.
pub fn insert_commit_floor_ns(database_url: &str, samples: usize) -> Result<u64, ReplicaError> {
    let samples = samples.clamp(1, 10_000);
    runtime()?.block_on(async {
        let mut conn = Conn::connect(database_url).await?;
        let begin = conn.dialect().begin_sql();
        conn.execute("DROP TABLE IF EXISTS replica_floor").await?;
        conn.execute(
            "CREATE TABLE replica_floor (id BIGINT NOT NULL PRIMARY KEY, v BIGINT NOT NULL)",
        )
        .await?;
        let mut times_ns = Vec::with_capacity(samples);
        for index in 0..samples {
            let start = Instant::now();
            conn.execute(begin).await?;
            conn.execute(&format!(
                "INSERT INTO replica_floor (id, v) VALUES ({index}, 1)"
            ))
            .await?;
            conn.execute("COMMIT").await?;
            times_ns.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        conn.execute("DROP TABLE replica_floor").await?;
        conn.close().await;
        times_ns.sort_unstable();
        Ok(times_ns.get(times_ns.len() / 2).copied().unwrap_or(0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_renames_urls() {
        let (server, name) = split_mysql_url("mysql://root@127.0.0.1:3306/peregrine_test").unwrap();
        assert_eq!(server, "mysql://root@127.0.0.1:3306");
        assert_eq!(name, "peregrine_test");
        assert_eq!(
            with_database("mysql://u:p@h:1/a?ssl-mode=disabled", "b_2").unwrap(),
            "mysql://u:p@h:1/b_2?ssl-mode=disabled"
        );
        assert!(split_mysql_url("mysql://h/bad-name").is_err());
        assert!(split_mysql_url("mysql://h").is_err());
        assert!(split_mysql_url("sqlite://x.db").is_err());
    }
}
