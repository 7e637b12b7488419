//! What every identity test harness shares: required environment, unique names and a fresh
//! MariaDB database per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;

pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: run the tests with `scripts/test`, which starts MariaDB, \
             OpenBao and an SMTP server on loopback and exports DATABASE_URL, VAULT_ADDR, \
             VAULT_TOKEN, BAO_BIN, SMTP_ADDR and SMTP_MAIL_DIR"
        ),
    }
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A fresh MySQL database named after DATABASE_URL's plus `suffix`.
pub async fn mysql_url(suffix: &str) -> String {
    let base = required_env("DATABASE_URL");
    let (server, database) = base.rsplit_once('/').unwrap();
    let database = database.split('?').next().unwrap();
    let name = format!("{database}_{suffix}");
    let mut admin = sqlx::MySqlConnection::connect(&format!("{server}/"))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL={base}: {e}"));
    sqlx::raw_sql(&format!(
        "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    format!("{server}/{name}")
}
