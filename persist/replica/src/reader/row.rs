//! Typed access to one row of a text query ([`Conn::query_text`](crate::db::Conn::query_text)).

use crate::error::ReplicaError;

/// One row whose every column was cast to text.
pub(super) struct TextRow<'r> {
    /// What the row is, for error messages.
    pub what: &'static str,
    pub values: &'r [Option<String>],
}

impl TextRow<'_> {
    pub fn opt_text(&self, index: usize) -> Option<&str> {
        self.values.get(index).and_then(|v| v.as_deref())
    }

    pub fn text(&self, index: usize) -> Result<&str, ReplicaError> {
        self.opt_text(index)
            .ok_or_else(|| ReplicaError::Config(format!("{} row lacks column {index}", self.what)))
    }

    pub fn int(&self, index: usize) -> Result<i128, ReplicaError> {
        let value = self.text(index)?;
        value.parse::<i128>().map_err(|_| {
            ReplicaError::Config(format!(
                "{} column {index}: `{value}` is not an integer",
                self.what
            ))
        })
    }

    pub fn unsigned(&self, index: usize) -> Result<u64, ReplicaError> {
        u64::try_from(self.int(index)?).map_err(|_| {
            ReplicaError::Config(format!("{} column {index} is out of range", self.what))
        })
    }

    pub fn opt_unsigned(&self, index: usize) -> Result<Option<u64>, ReplicaError> {
        match self.opt_text(index) {
            None => Ok(None),
            Some(_) => self.unsigned(index).map(Some),
        }
    }

    /// A `u64` that SQLite stores as its `i64` bits (client order ids; see the statements).
    pub fn u64_bits(&self, index: usize) -> Result<u64, ReplicaError> {
        let value = self.int(index)?;
        if let Ok(signed) = i64::try_from(value)
            && signed < 0
        {
            return Ok(signed as u64);
        }
        u64::try_from(value).map_err(|_| {
            ReplicaError::Config(format!("{} column {index} is out of range", self.what))
        })
    }

    pub fn narrow<T: TryFrom<u64>>(&self, index: usize) -> Result<T, ReplicaError> {
        T::try_from(self.unsigned(index)?).map_err(|_| {
            ReplicaError::Config(format!("{} column {index} is out of range", self.what))
        })
    }
}
