//! The logon directory of `peregrine/2` built from the core's catalog: the same currencies,
//! markets and units the REST bridge speaks, so a QUIC client converts decimals exactly as REST.

use peregrine_core::catalog::Catalog;
use peregrine_proto::directory::{CurrencyInfo, Directory, DirectoryError, MarketInfo, Name};

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
