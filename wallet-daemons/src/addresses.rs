//! Deposit addresses: one per (currency, account), derived from the currency's seed at its
//! BIP-44 path the first time it is asked for, and recorded with that path in the wallet store
//! (so the signer finds the key of any deposit address again, and the watcher watches it).

use peregrine_hotpath::AccountId;

use crate::chain::Address;
use crate::keys::{DerivationPath, KeyError, SeedVault};
use crate::store::{StoreError, WalletStore, on_pool};

/// Why an address could not be given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Deriving failed (OpenBao unavailable or refusing, no seed).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored address is not one this version writes.
    #[error("the stored address of {currency} account {account} is malformed")]
    Malformed {
        /// Currency.
        currency: String,
        /// Account.
        account: u32,
    },
}

/// Gives deposit addresses.
#[derive(Clone, Debug)]
pub struct DepositAddresses {
    vault: SeedVault,
    store: WalletStore,
}

impl DepositAddresses {
    /// Addresses from `vault`'s seeds, recorded in `store`.
    pub fn new(vault: SeedVault, store: WalletStore) -> DepositAddresses {
        DepositAddresses { vault, store }
    }

    /// The Ethereum deposit address of `account` in `currency` (coin type `coin_type`), and
    /// its path; derived and recorded on first use. The seed is read only then.
    pub async fn eth_address(
        &self,
        currency: &str,
        coin_type: u32,
        account: AccountId,
    ) -> Result<(Address, DerivationPath), AddressError> {
        let path = DerivationPath::deposit(coin_type, account)?;
        if self.store.address(currency, account.0).await?.is_none() {
            let address = self.vault.eth_address(currency, &path).await?;
            self.store
                .insert_address(currency, account.0, &address, &path.to_string())
                .await?;
        }
        let malformed = || AddressError::Malformed {
            currency: currency.to_owned(),
            account: account.0,
        };
        let (address, stored_path) = self
            .store
            .address(currency, account.0)
            .await?
            .ok_or_else(malformed)?;
        let address = Address::parse_eth(&address).ok_or_else(malformed)?;
        let stored_path: DerivationPath = stored_path.parse().map_err(|_| malformed())?;
        Ok((address, stored_path))
    }
}

/// Address requests derived in one call at most (the rest wait for the next step).
pub const REQUESTS_PER_STEP_MAX: u32 = 256;

impl DepositAddresses {
    /// Derives the addresses asked for on the REST bridge ([`WalletStore::request_address`])
    /// for the currencies in `coin_types` (code, BIP-44 coin type), records them and forgets
    /// the requests; how many it derived. A request for a currency not listed stays for a
    /// daemon that has it.
    pub async fn derive_requested(&self, coin_types: &[(&str, u32)]) -> Result<u32, AddressError> {
        let mut derived = 0;
        for (currency, account) in self.store.address_requests(REQUESTS_PER_STEP_MAX).await? {
            let Some((_, coin_type)) = coin_types.iter().find(|(code, _)| *code == currency) else {
                continue;
            };
            match self
                .eth_address(&currency, *coin_type, AccountId(account))
                .await
            {
                Ok(_) => derived += 1,
                // An account beyond the derivable range can never have an address: drop it.
                Err(AddressError::Key(KeyError::AccountOutOfRange(_))) => {
                    tracing::warn!(currency, account, "deposit address request out of range");
                }
                Err(error) => return Err(error),
            }
            self.store.forget_request(&currency, account).await?;
        }
        Ok(derived)
    }
}

impl WalletStore {
    /// Records that `account` asked for its `currency` deposit address (kept once).
    pub async fn request_address(&self, currency: &str, account: u32) -> Result<(), StoreError> {
        on_pool!(self, |pool, mysql| {
            let tail = if mysql {
                " ON DUPLICATE KEY UPDATE account = account"
            } else {
                " ON CONFLICT DO NOTHING"
            };
            let sql = format!(
                "INSERT INTO wallet_address_requests (currency, account) VALUES (?, ?){tail}"
            );
            sqlx::query(&sql)
                .bind(currency)
                .bind(i64::from(account))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Pending address requests, oldest accounts first: (currency, account).
    pub async fn address_requests(&self, limit: u32) -> Result<Vec<(String, u32)>, StoreError> {
        const SQL: &str = "SELECT currency, account FROM wallet_address_requests \
             ORDER BY account, currency LIMIT ?";
        let rows: Vec<(String, i64)> = on_pool!(self, |pool, _mysql| {
            sqlx::query_as(SQL)
                .bind(i64::from(limit.min(crate::store::ROWS_MAX)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(currency, account)| {
                let account = u32::try_from(account).map_err(|_| StoreError::UnknownValue {
                    column: "account",
                    value: account.to_string(),
                })?;
                Ok((currency, account))
            })
            .collect()
    }

    /// Forgets a request once its address is recorded.
    pub async fn forget_request(&self, currency: &str, account: u32) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM wallet_address_requests WHERE currency = ? AND account = ?";
        on_pool!(self, |pool, _mysql| {
            sqlx::query(SQL)
                .bind(currency)
                .bind(i64::from(account))
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
