//! Deposit addresses: one per (currency, account), derived from the currency's seed at its
//! BIP-44 path the first time it is asked for, and recorded with that path in the wallet store
//! (so the signer finds the key of any deposit address again, and the watcher watches it).

use peregrine_hotpath::AccountId;

use crate::chain::Address;
use crate::keys::{DerivationPath, KeyError, SeedVault};
use crate::store::{StoreError, WalletStore};

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
