//! Ranger's stream names: `<market>.trades`, `<market>.ob-snap`, `<market>.ob-inc`,
//! `<market>.kline-<period>`, `global.tickers`, and the private `order`, `trade`, `balance`,
//! `deposit` and `withdraw`.

use peregrine_hotpath::MarketId;

use crate::catalog::Catalog;
use crate::market_data::kline::Period;

/// Longest stream name accepted.
pub const STREAM_NAME_BYTES_MAX: usize = 48;

/// One stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Stream {
    /// Public trades of a market.
    Trades(MarketId),
    /// Book snapshots of a market (on subscription and after a resync).
    ObSnap(MarketId),
    /// Book increments of a market, each with the next sequence (a snapshot comes first).
    ObInc(MarketId),
    /// A market's current candle of a period.
    Kline(MarketId, Period),
    /// Every market's ticker, pushed at most once a second.
    Tickers,
    /// The account's order updates.
    Order,
    /// The account's fills.
    Trade,
    /// The account's balance changes.
    Balance,
    /// The account's deposits, as they are credited.
    Deposit,
    /// The account's withdrawals, as their funds are held, settled or released.
    Withdraw,
}

impl Stream {
    /// Parses a stream name; `private` says whether the connection is authenticated.
    pub fn parse(catalog: &Catalog, name: &str, private: bool) -> Result<Stream, String> {
        if name.len() > STREAM_NAME_BYTES_MAX {
            return Err("stream name too long".to_owned());
        }
        match name {
            "global.tickers" => return Ok(Stream::Tickers),
            "order" | "trade" | "balance" | "deposit" | "withdraw" if !private => {
                return Err(format!(
                    "stream `{name}` is private: use /api/v2/ranger/private with an access token or API-key headers"
                ));
            }
            "order" => return Ok(Stream::Order),
            "trade" => return Ok(Stream::Trade),
            "balance" => return Ok(Stream::Balance),
            "deposit" => return Ok(Stream::Deposit),
            "withdraw" => return Ok(Stream::Withdraw),
            _ => {}
        }
        let unknown = || format!("unknown stream `{name}`");
        let (market_name, kind) = name.split_once('.').ok_or_else(unknown)?;
        let market = catalog
            .market(market_name)
            .ok_or_else(|| format!("unknown market `{market_name}` in stream `{name}`"))?
            .spec
            .market;
        match kind {
            "trades" => Ok(Stream::Trades(market)),
            "ob-snap" => Ok(Stream::ObSnap(market)),
            "ob-inc" => Ok(Stream::ObInc(market)),
            _ => {
                let period = kind
                    .strip_prefix("kline-")
                    .and_then(Period::from_name)
                    .ok_or_else(unknown)?;
                Ok(Stream::Kline(market, period))
            }
        }
    }

    /// The stream's name.
    pub fn name(self, catalog: &Catalog) -> String {
        let market = |id: MarketId| {
            catalog
                .market_by_id(id)
                .map_or_else(|| id.0.to_string(), |m| m.name.clone())
        };
        match self {
            Stream::Trades(m) => format!("{}.trades", market(m)),
            Stream::ObSnap(m) => format!("{}.ob-snap", market(m)),
            Stream::ObInc(m) => format!("{}.ob-inc", market(m)),
            Stream::Kline(m, p) => format!("{}.kline-{}", market(m), p.name()),
            Stream::Tickers => "global.tickers".to_owned(),
            Stream::Order => "order".to_owned(),
            Stream::Trade => "trade".to_owned(),
            Stream::Balance => "balance".to_owned(),
            Stream::Deposit => "deposit".to_owned(),
            Stream::Withdraw => "withdraw".to_owned(),
        }
    }

    /// Whether the stream is an account's.
    pub fn is_private(self) -> bool {
        matches!(
            self,
            Stream::Order | Stream::Trade | Stream::Balance | Stream::Deposit | Stream::Withdraw
        )
    }
}
