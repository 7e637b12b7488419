//! The appliance's side of the wallets (`[wallets]`): the wallet daemons' control token, and the
//! REST bridge's chain deposits and deposit addresses read from the wallet store
//! ([`StoreBook`], the gateway's [`DepositBook`]). The appliance holds no seed: an address not
//! derived yet is recorded as asked for, and the daemon (`peregrine wallets run`,
//! [`crate::commands::wallets`]) derives it.

use std::path::Path;
use std::sync::Arc;

use peregrine_gateway::rest::deposits::{BookError, BookFuture, DepositBook, DepositRecord};
use peregrine_hotpath::AccountId;
use peregrine_wallet::store::{DepositState, WalletStore};

use crate::config::Config;

// The control API's wallet range is the wallet store's id base: one constant, said twice.
const _: () = assert!(
    peregrine_control::api::WALLET_DEPOSIT_IDS_FROM
        == peregrine_wallet::ledger::WALLET_DEPOSIT_ID_BASE
);

/// Why the wallets' part of `up` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletsError {
    /// The wallet store could not be opened.
    #[error("wallet store: {0}")]
    Store(#[from] peregrine_wallet::store::StoreError),
    /// The wallet token file could not be read or made.
    #[error("wallet token {}: {source}", path.display())]
    Token {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The wallet daemons' control token (made on first start like the operators'), or `None`
/// when `[control] wallet_token_file` is empty.
pub fn wallet_token(config: &Config, data_dir: &Path) -> Result<Option<Arc<str>>, WalletsError> {
    if config.control.wallet_token_file.as_os_str().is_empty() {
        return Ok(None);
    }
    let path = data_dir.join(&config.control.wallet_token_file);
    let token = crate::control_token::load_or_create(&path)
        .map_err(|source| WalletsError::Token { path, source })?;
    Ok(Some(token.into()))
}

/// Plugs the wallet store into the REST bridge when `[wallets]` is on.
pub async fn serve_deposits(
    config: &Config,
    data_dir: &Path,
    rest: &peregrine_gateway::rest::RestServer,
) -> Result<(), WalletsError> {
    if !config.wallets.enabled {
        return Ok(());
    }
    let store = WalletStore::open(&config.wallets.store_url(data_dir)).await?;
    let book = StoreBook {
        store,
        chain: config.wallets.chain.clone(),
        currencies: config
            .wallets
            .currencies
            .iter()
            .map(|c| c.code.clone())
            .collect(),
    };
    rest.bridge().serve_deposits(Arc::new(book));
    Ok(())
}

/// The wallet store as the bridge's read model.
#[derive(Debug)]
pub struct StoreBook {
    store: WalletStore,
    chain: String,
    currencies: Vec<String>,
}

fn unavailable(error: peregrine_wallet::store::StoreError) -> BookError {
    BookError::Unavailable(error.to_string())
}

impl DepositBook for StoreBook {
    fn has_currency(&self, currency: &str) -> bool {
        self.currencies.iter().any(|c| c == currency)
    }

    fn address<'a>(
        &'a self,
        account: AccountId,
        currency: &'a str,
    ) -> BookFuture<'a, Option<String>> {
        Box::pin(async move {
            if let Some((address, _path)) = self
                .store
                .address(currency, account.0)
                .await
                .map_err(unavailable)?
            {
                return Ok(Some(address));
            }
            self.store
                .request_address(currency, account.0)
                .await
                .map_err(unavailable)?;
            Ok(None)
        })
    }

    fn deposits<'a>(
        &'a self,
        account: AccountId,
        currency: Option<&'a str>,
        limit: u32,
        offset: u64,
    ) -> BookFuture<'a, Vec<DepositRecord>> {
        Box::pin(async move {
            let rows = self
                .store
                .deposits_page(account.0, currency, limit, offset)
                .await
                .map_err(unavailable)?;
            let tip = self
                .store
                .tip(&self.chain)
                .await
                .map_err(unavailable)?
                .map_or(0, |tip| tip.number);
            Ok(rows
                .into_iter()
                .map(|row| DepositRecord {
                    confirmations: if row.state == DepositState::Orphaned {
                        0
                    } else {
                        (tip + 1).saturating_sub(row.block_number)
                    },
                    id: row.id,
                    currency: row.currency,
                    amount_minor: row.amount_minor,
                    txid: row.txid,
                    leg: row.leg,
                    address: row.address,
                    block_number: row.block_number,
                    state: row.state.name().to_owned(),
                })
                .collect())
        })
    }
}
