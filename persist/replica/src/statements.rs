//! Turns a batch's rows into SQL text: multi-row statements of at most `statement_rows_max`
//! rows, in the order foreign readers expect (parents before children).
//!
//! Values are written as literals, not bound parameters: every value is an integer from the
//! engine or one of this crate's own `&'static str` names (no text from outside ever reaches a
//! statement), so there is nothing to inject, and one text statement per chunk is the cheapest
//! round trip both back ends offer (no prepare, no 65 535-parameter limit).
//!
//! Idempotency: journal-derived tables (`order_events`, `trades`, `ledger_entries`,
//! `deposits`, `withdrawals`) use a plain `INSERT`. The transaction's first statement moves the
//! high-water mark from the value this batch starts after (compare and set), so a batch is
//! applied exactly once and a duplicate key can only mean a bug, which must fail loudly rather
//! than be skipped. State tables keyed by engine ids (`orders`, `markets`, `accounts`, ...) are
//! upserts of the state after the batch, which is idempotent by construction.

use std::fmt::Write as _;

use peregrine_hotpath::Side;
use peregrine_persist::Seq;

use crate::dialect::Dialect;
use crate::error::ReplicaError;
use crate::rows::{Batch, Party};

/// A batch's statements in two parts (see [`StatementBuilder::build_split`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchStatements {
    /// Every table but the ledger, in order.
    pub main: Vec<String>,
    /// `ledger_entries` only.
    pub ledger: Vec<String>,
}

/// One literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    /// An integer, with what it is for error messages.
    Int(i128, &'static str),
    /// One of the crate's own names (never text from outside).
    Name(&'static str),
    /// SQL NULL.
    Null,
}

fn int(value: impl Into<i128>, what: &'static str) -> Value {
    Value::Int(value.into(), what)
}

fn opt_int(value: Option<impl Into<i128>>, what: &'static str) -> Value {
    value.map_or(Value::Null, |v| Value::Int(v.into(), what))
}

fn opt_name(value: Option<&'static str>) -> Value {
    value.map_or(Value::Null, Value::Name)
}

fn side(value: Side) -> Value {
    Value::Name(match value {
        Side::Buy => "buy",
        Side::Sell => "sell",
    })
}

fn flag(value: bool) -> Value {
    Value::Int(i128::from(value), "flag")
}

/// How a statement treats an existing key.
#[derive(Clone, Copy, Debug)]
enum Conflict<'a> {
    /// A duplicate is an error.
    Fail,
    /// A duplicate is skipped.
    Ignore,
    /// A duplicate's `update` columns are overwritten.
    Update {
        key: &'a [&'a str],
        update: &'a [&'a str],
    },
}

/// Builds the statements of one batch.
#[derive(Debug)]
pub struct StatementBuilder {
    dialect: Dialect,
    statement_rows_max: usize,
}

impl StatementBuilder {
    /// A builder for `dialect` with at most `statement_rows_max` rows per statement.
    pub fn new(dialect: Dialect, statement_rows_max: usize) -> StatementBuilder {
        assert!(statement_rows_max > 0);
        StatementBuilder {
            dialect,
            statement_rows_max,
        }
    }

    /// The compare-and-set of the high-water mark that opens every batch's transaction.
    pub fn high_water_sql(&self, from_seq: Seq, to_seq: Seq, to_ts_ns: u64) -> String {
        assert!(
            to_seq > from_seq,
            "a batch moves the high-water mark forward"
        );
        format!(
            "UPDATE replication_state SET high_water_seq = {to_seq}, high_water_ts_ns = \
             {to_ts_ns} WHERE id = 1 AND high_water_seq = {from_seq}"
        )
    }

    fn push_table<R: AsRef<[Value]>>(
        &self,
        out: &mut Vec<String>,
        table: &str,
        columns: &[&str],
        conflict: Conflict<'_>,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<(), ReplicaError> {
        let integer_max = self.dialect.integer_max();
        let mut sql = String::new();
        let mut rows_in_statement = 0_usize;
        let finish = |sql: &mut String, out: &mut Vec<String>| {
            match conflict {
                Conflict::Fail => {}
                Conflict::Ignore => self.dialect.insert_ignore_end(sql),
                Conflict::Update { key, update } => self.dialect.upsert_end(sql, key, update),
            }
            out.push(std::mem::take(sql));
        };
        for row in rows {
            let row = row.as_ref();
            assert_eq!(row.len(), columns.len(), "one value per column of {table}");
            if rows_in_statement == 0 {
                match conflict {
                    Conflict::Ignore => self.dialect.insert_ignore_start(&mut sql, table, columns),
                    Conflict::Fail | Conflict::Update { .. } => {
                        self.dialect.insert_start(&mut sql, table, columns)
                    }
                }
            } else {
                sql.push_str(", ");
            }
            sql.push('(');
            for (index, value) in row.iter().enumerate() {
                if index > 0 {
                    sql.push_str(", ");
                }
                match *value {
                    Value::Int(v, what) => {
                        // A client order id is the client's whole u64 (the REST bridge assigns
                        // ids in the top half). Where integers are i64 (SQLite) it is stored
                        // as the same 64 bits read as i64; every other column must fit.
                        let v = match u64::try_from(v) {
                            Ok(id) if what == "client_order_id" && v > integer_max => {
                                i128::from(id as i64)
                            }
                            _ => v,
                        };
                        if v > integer_max || v < -integer_max {
                            return Err(ReplicaError::OutOfRange {
                                dialect: self.dialect.name(),
                                what,
                                value: v,
                            });
                        }
                        let _ = write!(sql, "{v}");
                    }
                    Value::Name(name) => {
                        assert!(!name.contains('\''), "names are plain identifiers");
                        let _ = write!(sql, "'{name}'");
                    }
                    Value::Null => sql.push_str("NULL"),
                }
            }
            sql.push(')');
            rows_in_statement += 1;
            if rows_in_statement == self.statement_rows_max {
                finish(&mut sql, out);
                rows_in_statement = 0;
            }
        }
        if rows_in_statement > 0 {
            finish(&mut sql, out);
        }
        Ok(())
    }

    /// The statements writing `batch`, in order (the high-water mark's excluded).
    pub fn build(&self, batch: &Batch) -> Result<Vec<String>, ReplicaError> {
        let BatchStatements { mut main, ledger } = self.build_split(batch)?;
        main.extend(ledger);
        Ok(main)
    }

    /// The statements writing `batch`, with the ledger's apart: it is the largest table and
    /// no other row refers to it, so a second connection can write it at the same time.
    pub fn build_split(&self, batch: &Batch) -> Result<BatchStatements, ReplicaError> {
        let mut out = Vec::new();
        let mut ledger = Vec::new();
        self.push_table(
            &mut out,
            "currencies",
            &["currency_id", "scale", "added_seq"],
            Conflict::Update {
                key: &["currency_id"],
                update: &["scale", "added_seq"],
            },
            batch.currencies.iter().map(|row| {
                [
                    int(row.currency.0, "currency_id"),
                    opt_int(row.scale, "scale"),
                    int(row.added_seq, "seq"),
                ]
            }),
        )?;
        const MARKET_COLUMNS: &[&str] = &[
            "market_id",
            "base_currency_id",
            "quote_currency_id",
            "base_per_lot",
            "quote_per_tick_lot",
            "max_price",
            "max_qty",
            "max_notional",
            "band_bps",
            "reference_price",
            "maker_fee_ppm",
            "taker_fee_ppm",
            "halted",
            "added_seq",
            "updated_seq",
        ];
        self.push_table(
            &mut out,
            "markets",
            MARKET_COLUMNS,
            Conflict::Update {
                key: &["market_id"],
                update: &MARKET_COLUMNS[1..],
            },
            batch.markets_new.values().map(|row| {
                let spec = &row.spec;
                [
                    int(spec.market.0, "market_id"),
                    int(spec.base.0, "currency_id"),
                    int(spec.quote.0, "currency_id"),
                    int(spec.base_per_lot, "base_per_lot"),
                    int(spec.quote_per_tick_lot, "quote_per_tick_lot"),
                    int(spec.risk.max_price.0, "max_price"),
                    int(spec.risk.max_qty.0, "max_qty"),
                    int(spec.risk.max_notional.0, "max_notional"),
                    int(spec.risk.band_bps, "band_bps"),
                    int(spec.risk.reference_price.0, "reference_price"),
                    int(spec.fees.maker_ppm, "fee_ppm"),
                    int(spec.fees.taker_ppm, "fee_ppm"),
                    flag(row.halted),
                    int(row.added_seq, "seq"),
                    int(row.updated_seq, "seq"),
                ]
            }),
        )?;
        const RISK_COLUMNS: &[&str] = &[
            "market_id",
            "max_price",
            "max_qty",
            "max_notional",
            "band_bps",
            "reference_price",
            "updated_seq",
        ];
        self.push_table(
            &mut out,
            "markets",
            RISK_COLUMNS,
            Conflict::Update {
                key: &["market_id"],
                update: &RISK_COLUMNS[1..],
            },
            batch.market_risks.iter().map(|(market, change)| {
                let risk = &change.value;
                [
                    int(market.0, "market_id"),
                    int(risk.max_price.0, "max_price"),
                    int(risk.max_qty.0, "max_qty"),
                    int(risk.max_notional.0, "max_notional"),
                    int(risk.band_bps, "band_bps"),
                    int(risk.reference_price.0, "reference_price"),
                    int(change.updated_seq, "seq"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "markets",
            &["market_id", "halted", "updated_seq"],
            Conflict::Update {
                key: &["market_id"],
                update: &["halted", "updated_seq"],
            },
            batch.market_halts.iter().map(|(market, change)| {
                [
                    int(market.0, "market_id"),
                    flag(change.value),
                    int(change.updated_seq, "seq"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "market_fee_tiers",
            &[
                "market_id",
                "tier",
                "maker_fee_ppm",
                "taker_fee_ppm",
                "updated_seq",
            ],
            Conflict::Update {
                key: &["market_id", "tier"],
                update: &["maker_fee_ppm", "taker_fee_ppm", "updated_seq"],
            },
            batch.fee_tiers.iter().map(|((market, tier), change)| {
                [
                    int(market.0, "market_id"),
                    int(*tier, "tier"),
                    int(change.value.maker_ppm, "fee_ppm"),
                    int(change.value.taker_ppm, "fee_ppm"),
                    int(change.updated_seq, "seq"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "accounts",
            &["account_id", "first_seq", "updated_seq"],
            Conflict::Ignore,
            batch.accounts_new.iter().map(|(account, seq)| {
                [
                    int(account.0, "account_id"),
                    int(*seq, "seq"),
                    int(*seq, "seq"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "accounts",
            &["account_id", "fee_tier", "updated_seq"],
            Conflict::Update {
                key: &["account_id"],
                update: &["fee_tier", "updated_seq"],
            },
            batch.account_tiers.iter().map(|(account, change)| {
                [
                    int(account.0, "account_id"),
                    int(change.value, "tier"),
                    int(change.updated_seq, "seq"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "accounts",
            &["account_id", "kill_switch", "updated_seq"],
            Conflict::Update {
                key: &["account_id"],
                update: &["kill_switch", "updated_seq"],
            },
            batch.account_kills.iter().map(|(account, change)| {
                [
                    int(account.0, "account_id"),
                    flag(change.value),
                    int(change.updated_seq, "seq"),
                ]
            }),
        )?;
        const ORDER_STATE: &[&str] = &["status", "price", "open_qty", "updated_seq"];
        self.push_table(
            &mut out,
            "orders",
            &[
                "order_id",
                "account_id",
                "market_id",
                "client_order_id",
                "side",
                "order_type",
                "time_in_force",
                "trigger_price",
                "quote_budget",
                "accepted_price",
                "accepted_qty",
                "created_seq",
                "created_ts_ns",
                "status",
                "price",
                "open_qty",
                "updated_seq",
            ],
            Conflict::Update {
                key: &["order_id"],
                update: ORDER_STATE,
            },
            batch.orders_new.values().map(|row| {
                [
                    int(row.order.0, "order_id"),
                    int(row.account.0, "account_id"),
                    int(row.market.0, "market_id"),
                    int(row.client_order_id.0, "client_order_id"),
                    side(row.side),
                    opt_name(row.order_type),
                    opt_name(row.time_in_force),
                    opt_int(row.trigger_price.map(|p| p.0), "trigger_price"),
                    opt_int(row.quote_budget.map(|a| a.0), "quote_budget"),
                    int(row.accepted_price.0, "price"),
                    int(row.accepted_qty.0, "qty"),
                    int(row.created_seq, "seq"),
                    int(row.created_ts_ns, "ts_ns"),
                    Value::Name(row.state.status.as_str()),
                    int(row.state.price.0, "price"),
                    int(row.state.open_qty.0, "qty"),
                    int(row.state.updated_seq, "seq"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "orders",
            &["order_id", "status", "price", "open_qty", "updated_seq"],
            Conflict::Update {
                key: &["order_id"],
                update: ORDER_STATE,
            },
            batch.order_states.iter().map(|(order, state)| {
                [
                    int(order.0, "order_id"),
                    Value::Name(state.status.as_str()),
                    int(state.price.0, "price"),
                    int(state.open_qty.0, "qty"),
                    int(state.updated_seq, "seq"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "order_events",
            &[
                "seq",
                "event_index",
                "order_id",
                "kind",
                "price",
                "qty",
                "reason",
                "ts_ns",
            ],
            Conflict::Fail,
            batch.order_events.iter().map(|row| {
                [
                    int(row.seq, "seq"),
                    int(row.event_index, "event_index"),
                    int(row.order.0, "order_id"),
                    Value::Name(row.kind),
                    int(row.price.0, "price"),
                    int(row.qty.0, "qty"),
                    opt_name(row.reason),
                    int(row.ts_ns, "ts_ns"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "trades",
            &[
                "trade_id",
                "seq",
                "market_id",
                "price",
                "qty",
                "taker_side",
                "maker_order_id",
                "taker_order_id",
                "maker_account_id",
                "taker_account_id",
                "base_amount",
                "quote_amount",
                "maker_fee",
                "taker_fee",
                "ts_ns",
            ],
            Conflict::Fail,
            batch.trades.iter().map(|row| {
                let t = &row.trade;
                [
                    int(t.trade.0, "trade_id"),
                    int(row.seq, "seq"),
                    int(t.market.0, "market_id"),
                    int(t.price.0, "price"),
                    int(t.qty.0, "qty"),
                    side(t.taker_side),
                    int(t.maker_order.0, "order_id"),
                    int(t.taker_order.0, "order_id"),
                    int(t.maker_account.0, "account_id"),
                    int(t.taker_account.0, "account_id"),
                    int(t.base_amount.0, "amount"),
                    int(t.quote_amount.0, "amount"),
                    int(t.maker_fee.0, "amount"),
                    int(t.taker_fee.0, "amount"),
                    int(row.ts_ns, "ts_ns"),
                ]
            }),
        )?;
        self.push_table(
            &mut ledger,
            "ledger_entries",
            &[
                "seq",
                "entry_index",
                "party",
                "account_id",
                "currency_id",
                "available_delta",
                "locked_delta",
                "available_after",
                "locked_after",
                "cause",
                "ts_ns",
            ],
            Conflict::Fail,
            batch.ledger.iter().map(|row| {
                let account = match row.party {
                    Party::Account(account) => Some(account.0),
                    _ => None,
                };
                [
                    int(row.seq, "seq"),
                    int(row.entry_index, "entry_index"),
                    Value::Name(row.party.as_str()),
                    opt_int(account, "account_id"),
                    int(row.currency.0, "currency_id"),
                    int(row.available_delta, "available_delta"),
                    int(row.locked_delta, "locked_delta"),
                    opt_int(row.available_after.map(|a| a.0), "amount"),
                    opt_int(row.locked_after.map(|a| a.0), "amount"),
                    Value::Name(row.cause),
                    int(row.ts_ns, "ts_ns"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "deposits",
            &[
                "seq",
                "deposit_id",
                "account_id",
                "currency_id",
                "amount",
                "ts_ns",
            ],
            Conflict::Fail,
            batch.deposits.iter().map(|row| {
                [
                    int(row.seq, "seq"),
                    int(row.deposit.0, "deposit_id"),
                    int(row.account.0, "account_id"),
                    int(row.currency.0, "currency_id"),
                    int(row.amount.0, "amount"),
                    int(row.ts_ns, "ts_ns"),
                ]
            }),
        )?;
        self.push_table(
            &mut out,
            "withdrawals",
            &[
                "seq",
                "withdrawal_id",
                "account_id",
                "currency_id",
                "amount",
                "state",
                "ts_ns",
            ],
            Conflict::Fail,
            batch.withdrawals.iter().map(|row| {
                [
                    int(row.seq, "seq"),
                    int(row.withdrawal.0, "withdrawal_id"),
                    int(row.account.0, "account_id"),
                    int(row.currency.0, "currency_id"),
                    int(row.amount.0, "amount"),
                    Value::Name(row.state),
                    int(row.ts_ns, "ts_ns"),
                ]
            }),
        )?;
        Ok(BatchStatements { main: out, ledger })
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{AccountId, Amount, CurrencyId, DepositId};

    use super::*;
    use crate::rows::DepositRow;

    fn deposits(count: u64, amount: u64) -> Batch {
        let mut batch = Batch::default();
        for seq in 1..=count {
            batch.deposits.push(DepositRow {
                seq,
                deposit: DepositId(seq),
                account: AccountId(1),
                currency: CurrencyId(0),
                amount: Amount(amount),
                ts_ns: 7,
            });
        }
        batch
    }

    #[test]
    fn splits_rows_into_bounded_statements() {
        let statements = StatementBuilder::new(Dialect::MySql, 2)
            .build(&deposits(5, 10))
            .unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(
            statements[2],
            "INSERT INTO deposits (seq, deposit_id, account_id, currency_id, amount, ts_ns) \
             VALUES (5, 5, 1, 0, 10, 7)"
        );
    }

    #[test]
    fn sqlite_keeps_the_bits_of_a_client_order_id_above_i64() {
        assert_eq!(u64::MAX as i64, -1);
        let mut sql = Vec::new();
        StatementBuilder::new(Dialect::Sqlite, 10)
            .push_table(
                &mut sql,
                "orders",
                &["client_order_id"],
                Conflict::Fail,
                [[Value::Int(i128::from(u64::MAX), "client_order_id")]],
            )
            .unwrap();
        assert_eq!(sql, ["INSERT INTO orders (client_order_id) VALUES (-1)"]);
    }

    #[test]
    fn sqlite_refuses_integers_above_i64() {
        let batch = deposits(1, u64::MAX);
        assert!(
            StatementBuilder::new(Dialect::MySql, 10)
                .build(&batch)
                .is_ok()
        );
        assert!(matches!(
            StatementBuilder::new(Dialect::Sqlite, 10).build(&batch),
            Err(ReplicaError::OutOfRange { what: "amount", .. })
        ));
    }
}
