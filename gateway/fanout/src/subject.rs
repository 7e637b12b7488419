//! Subjects, shaped like Ranger's streams, and the grouping of a command's changes by subject.
//!
//! Market data: `md.<market>.ob-inc` (book level changes, each with the book's sequence),
//! `md.<market>.trades`, `md.<market>.state` (halted or not). Private: `user.<account>.order`
//! (order records), `user.<account>.trade` (fills), `user.<account>.balance`,
//! `user.<account>.deposit` (credits) and `user.<account>.withdraw` (a withdrawal held,
//! settled or released). A subscriber
//! takes `md.btcusd.>` or `user.42.>`; a bridge takes `md.>` and `user.>`.

use std::collections::BTreeMap;

use peregrine_hotpath::MarketId;
use peregrine_views::Change;

/// Longest market name accepted as a subject token.
pub const MARKET_NAME_BYTES_MAX: usize = 32;
/// Subjects one command can touch, allocated up front (a sweep over many accounts grows it).
pub const SUBJECTS_PER_COMMAND_INITIAL: usize = 16;

/// Why a market name cannot be a subject token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectError {
    /// Empty, too long, or holding a character other than `a-z`, `0-9`, `_` and `-` (a `.`,
    /// `*`, `>` or space would change what subscribers match).
    #[error(
        "market name {0:?} is not a subject token (1 to {MARKET_NAME_BYTES_MAX} of a-z 0-9 _ -)"
    )]
    BadName(String),
}

/// Market names as subject tokens (a market without one is published under its number), and
/// an optional prefix token so that several appliances (or tests) share one NATS.
#[derive(Clone, Debug, Default)]
pub struct MarketNames {
    names: BTreeMap<MarketId, String>,
    prefix: String,
}

/// Whether `name` can be one subject token here: 1 to [`MARKET_NAME_BYTES_MAX`] of `a-z`,
/// `0-9`, `_` and `-`.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MARKET_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl MarketNames {
    /// Checks every name.
    pub fn new(
        names: impl IntoIterator<Item = (MarketId, String)>,
    ) -> Result<MarketNames, SubjectError> {
        let mut checked = BTreeMap::new();
        for (market, name) in names {
            if !is_token(&name) {
                return Err(SubjectError::BadName(name));
            }
            checked.insert(market, name);
        }
        Ok(MarketNames {
            names: checked,
            prefix: String::new(),
        })
    }

    /// Puts every subject under `prefix.` (a token like a market name).
    pub fn with_prefix(mut self, prefix: &str) -> Result<MarketNames, SubjectError> {
        if !is_token(prefix) {
            return Err(SubjectError::BadName(prefix.to_owned()));
        }
        self.prefix = format!("{prefix}.");
        Ok(self)
    }

    /// The stream's subject filters: market data and private changes.
    pub fn filters(&self) -> [String; 2] {
        [
            format!("{}md.>", self.prefix),
            format!("{}user.>", self.prefix),
        ]
    }

    fn token(&self, market: MarketId) -> String {
        match self.names.get(&market) {
            Some(name) => name.clone(),
            None => market.0.to_string(),
        }
    }

    /// The subject of `market`'s book changes.
    pub fn book_subject(&self, market: MarketId) -> String {
        format!("{}md.{}.ob-inc", self.prefix, self.token(market))
    }

    /// The subject a change is published under.
    pub fn subject(&self, change: &Change) -> Option<String> {
        let p = &self.prefix;
        let subject = match change {
            Change::Level { market, .. } => self.book_subject(*market),
            Change::Trade(trade) => format!("{p}md.{}.trades", self.token(trade.market)),
            Change::MarketState { market, .. } => format!("{p}md.{}.state", self.token(*market)),
            Change::Order(record) => format!("{p}user.{}.order", record.account.0),
            Change::Fill(fill) => format!("{p}user.{}.trade", fill.account.0),
            Change::Balance { account, .. } => format!("{p}user.{}.balance", account.0),
            Change::Funds(funds) if funds.kind.is_withdrawal() => {
                format!("{p}user.{}.withdraw", funds.account.0)
            }
            Change::Funds(funds) => format!("{p}user.{}.deposit", funds.account.0),
            // A change newer than this fan-out: not published until it learns it.
            _ => return None,
        };
        Some(subject)
    }

    /// Groups one command's `changes` by subject, subjects in the order they first appear and
    /// changes in their order, into `out` (cleared first).
    pub fn group(&self, changes: &[Change], out: &mut Vec<(String, Vec<Change>)>) {
        out.clear();
        for change in changes {
            let Some(subject) = self.subject(change) else {
                continue;
            };
            match out.iter_mut().find(|(s, _)| *s == subject) {
                Some((_, group)) => group.push(change.clone()),
                None => out.push((subject, vec![change.clone()])),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use peregrine_hotpath::{AccountId, Amount, CurrencyId, Price, Qty, Side, TradeId};
    use peregrine_views::{LevelChange, TradeChange};

    use super::*;

    #[test]
    fn names_that_would_change_what_subscribers_match_are_refused() {
        for bad in [
            "",
            "btc.usd",
            "btc*",
            "btc>",
            "btc usd",
            "BTCUSD",
            &"a".repeat(33),
        ] {
            assert!(
                MarketNames::new([(MarketId(0), bad.to_owned())]).is_err(),
                "{bad:?}"
            );
        }
        assert!(MarketNames::new([(MarketId(0), "btc_usd-2".to_owned())]).is_ok());
    }

    #[test]
    fn a_command_groups_by_subject_in_first_appearance_order() {
        let names = MarketNames::new([(MarketId(1), "btcusd".to_owned())]).unwrap();
        let level = Change::Level {
            market: MarketId(1),
            change: LevelChange {
                side: Side::Sell,
                price: Price(10),
                qty: Qty(0),
                sequence: 9,
            },
        };
        let trade = Change::Trade(TradeChange {
            market: MarketId(1),
            book_seq: 9,
            trade: TradeId(4),
            price: Price(10),
            qty: Qty(1),
            quote_amount: Amount(10),
            taker_side: Side::Buy,
            ts_ns: 1,
        });
        let balance = |account| Change::Balance {
            account: AccountId(account),
            currency: CurrencyId(0),
            available: Amount(1),
            locked: Amount(0),
        };
        let mut out = Vec::new();
        names.group(
            &[
                level.clone(),
                trade.clone(),
                balance(7),
                balance(8),
                balance(7),
            ],
            &mut out,
        );
        let subjects: Vec<&str> = out.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "md.btcusd.ob-inc",
                "md.btcusd.trades",
                "user.7.balance",
                "user.8.balance"
            ]
        );
        assert_eq!(out[2].1, vec![balance(7), balance(7)]);
        // A market with no name is published under its number.
        let mut out = Vec::new();
        MarketNames::default().group(std::slice::from_ref(&level), &mut out);
        assert_eq!(out[0].0, "md.1.ob-inc");
        let prefixed = names.with_prefix("a1").unwrap();
        prefixed.group(&[level], &mut out);
        assert_eq!(out[0].0, "a1.md.btcusd.ob-inc");
        assert_eq!(prefixed.filters(), ["a1.md.>", "a1.user.>"]);
        assert!(MarketNames::default().with_prefix("a.b").is_err());
    }

    #[test]
    fn deposits_and_withdrawals_go_to_the_accounts_own_subjects() {
        use peregrine_views::{FundsChange, FundsKind};
        let funds = |kind| {
            Change::Funds(FundsChange {
                kind,
                id: 3,
                account: AccountId(7),
                currency: CurrencyId(1),
                amount: Amount(5),
                ts_ns: 1,
            })
        };
        let names = MarketNames::default();
        let subject = |kind| names.subject(&funds(kind)).unwrap();
        assert_eq!(subject(FundsKind::Deposited), "user.7.deposit");
        for kind in [
            FundsKind::WithdrawalHeld,
            FundsKind::WithdrawalSettled,
            FundsKind::WithdrawalReleased,
        ] {
            assert_eq!(subject(kind), "user.7.withdraw");
        }
    }
}
