//! The logon directory of `peregrine/2` built from the core's catalog: the same currencies,
//! markets and units the REST bridge speaks, so a QUIC client converts decimals exactly as REST.

use std::sync::{Arc, Mutex, PoisonError};

use peregrine_core::catalog::{Catalog, SharedCatalog};
use peregrine_proto::directory::{CurrencyInfo, Directory, DirectoryError, MarketInfo, Name};

// Whatever the catalog may hold, configured or created at runtime, fits one logon's directory.
const _: () = assert!(
    peregrine_core::catalog::CURRENCIES_MAX <= peregrine_proto::directory::CURRENCIES_MAX
        && peregrine_core::catalog::MARKETS_MAX <= peregrine_proto::directory::MARKETS_MAX
        && peregrine_core::catalog::NAME_BYTES_MAX == peregrine_proto::directory::NAME_BYTES
);

/// The directory listed at logon: fixed, or following a shared catalog (currencies and markets
/// created at runtime are listed to the next logon).
#[derive(Debug)]
pub enum DirectorySource {
    /// The same directory to every logon.
    Fixed(Arc<Directory>),
    /// Rebuilt from the catalog when it changed since the last logon.
    Live(LiveDirectory),
}

impl DirectorySource {
    /// The directory for a logon now.
    pub fn current(&self) -> Arc<Directory> {
        match self {
            DirectorySource::Fixed(directory) => Arc::clone(directory),
            DirectorySource::Live(live) => live.current(),
        }
    }
}

/// A directory kept in step with a [`SharedCatalog`].
#[derive(Debug)]
pub struct LiveDirectory {
    catalog: SharedCatalog,
    /// The catalog the directory was built from, and the directory.
    cache: Mutex<(Arc<Catalog>, Arc<Directory>)>,
}

impl LiveDirectory {
    /// Follows `catalog`; fails as [`directory_of`] does on its current value.
    pub fn new(catalog: SharedCatalog) -> Result<LiveDirectory, DirectoryError> {
        let now = catalog.load();
        let directory = Arc::new(directory_of(&now)?);
        Ok(LiveDirectory {
            catalog,
            cache: Mutex::new((now, directory)),
        })
    }

    /// The directory of the current catalog (rebuilt once per catalog change). A catalog the
    /// protocol cannot list (the control API refuses what would make one) keeps the last.
    pub fn current(&self) -> Arc<Directory> {
        let now = self.catalog.load();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&cache.0, &now) {
            match directory_of(&now) {
                Ok(directory) => *cache = (now, Arc::new(directory)),
                Err(error) => tracing::error!(%error, "the catalog cannot be listed at logon"),
            }
        }
        Arc::clone(&cache.1)
    }
}

/// The directory of `catalog`: every currency, then every market, in the catalog's order.
/// Fails when the catalog lists more than the protocol sends at logon.
pub fn directory_of(catalog: &Catalog) -> Result<Directory, DirectoryError> {
    let currencies = catalog
        .currencies()
        .iter()
        .map(|c| CurrencyInfo::new(c.id, Name::new(&c.code)?, c.scale.scale))
        .collect::<Result<Vec<_>, _>>()?;
    let markets = catalog
        .markets()
        .iter()
        .map(|m| {
            MarketInfo::new(
                m.spec.market,
                Name::new(&m.name)?,
                (m.spec.base, m.spec.quote),
                m.units,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Directory::new(currencies, markets)
}
