//! Sets of CPU ids as the kernel writes them: lists (`0-3,8`) and hex masks (`ff,ffffffff`).

use std::collections::BTreeSet;
use std::fmt;

/// Highest CPU id accepted plus one: a list or mask naming more is refused, so a hostile or
/// corrupt file cannot make the audit build an unbounded set.
pub const CPUS_MAX: u32 = 8_192;

/// A CPU id, as in `/sys/devices/system/cpu/cpuN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuId(pub u32);

/// Why a CPU list or mask did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpuSetError {
    #[error("{0:?} is not a CPU id")]
    NotAnId(String),
    #[error("range {0:?} runs backwards")]
    Backwards(String),
    #[error("CPU id {0} is at or above the limit {CPUS_MAX}")]
    TooHigh(u64),
    #[error("{0:?} is not a hexadecimal CPU mask")]
    NotAMask(String),
}

/// A set of CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSet(BTreeSet<CpuId>);

impl CpuSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a kernel CPU list: `0-3,8,10-11`; empty text is the empty set.
    pub fn parse_list(text: &str) -> Result<Self, CpuSetError> {
        let mut set = BTreeSet::new();
        for part in text.trim().split(',').filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (parse_id(a)?, parse_id(b)?),
                None => (parse_id(part)?, parse_id(part)?),
            };
            if first > last {
                return Err(CpuSetError::Backwards(part.to_owned()));
            }
            // Bounded by CPUS_MAX through parse_id.
            set.extend((first..=last).map(CpuId));
        }
        Ok(Self(set))
    }

    /// Parses a kernel hex mask: 32-bit groups separated by commas, most significant first.
    pub fn parse_mask(text: &str) -> Result<Self, CpuSetError> {
        let digits: String = text.trim().chars().filter(|c| *c != ',').collect();
        let not_a_mask = || CpuSetError::NotAMask(text.trim().to_owned());
        if digits.is_empty() || digits.len() > (CPUS_MAX / 4) as usize {
            return Err(not_a_mask());
        }
        let mut set = BTreeSet::new();
        for (nibble_index, c) in digits.chars().rev().enumerate() {
            let nibble = c.to_digit(16).ok_or_else(not_a_mask)?;
            for bit in 0..4u32 {
                if nibble & (1 << bit) != 0 {
                    // nibble_index < CPUS_MAX / 4, checked above.
                    let id = u32::try_from(nibble_index).map_err(|_| not_a_mask())? * 4 + bit;
                    set.insert(CpuId(id));
                }
            }
        }
        Ok(Self(set))
    }

    pub fn insert(&mut self, cpu: CpuId) {
        assert!(cpu.0 < CPUS_MAX, "CPU id past CPUS_MAX");
        self.0.insert(cpu);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, cpu: CpuId) -> bool {
        self.0.contains(&cpu)
    }

    pub fn iter(&self) -> impl Iterator<Item = CpuId> + '_ {
        self.0.iter().copied()
    }

    /// Whether every CPU of `other` is in `self`.
    pub fn covers(&self, other: &CpuSet) -> bool {
        other.0.is_subset(&self.0)
    }

    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        Self(self.0.intersection(&other.0).copied().collect())
    }

    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        Self(self.0.difference(&other.0).copied().collect())
    }

    /// The kernel's list form: `0-3,8`.
    pub fn to_list(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut run: Option<(u32, u32)> = None;
        for CpuId(id) in self.iter() {
            run = match run {
                Some((first, last)) if last + 1 == id => Some((first, id)),
                Some(done) => {
                    parts.push(range_text(done));
                    Some((id, id))
                }
                None => Some((id, id)),
            };
        }
        if let Some(done) = run {
            parts.push(range_text(done));
        }
        parts.join(",")
    }

    /// The kernel's mask form, in 32-bit groups: `3` or `ffffffff,fffffff0`.
    pub fn to_mask(&self) -> String {
        let highest = self.0.last().map_or(0, |c| c.0);
        let groups = (highest / 32 + 1) as usize;
        let mut words = vec![0u32; groups];
        for CpuId(id) in self.iter() {
            words[(id / 32) as usize] |= 1 << (id % 32);
        }
        let mut text = String::new();
        for (i, word) in words.iter().rev().enumerate() {
            if i == 0 {
                text.push_str(&format!("{word:x}"));
            } else {
                text.push_str(&format!(",{word:08x}"));
            }
        }
        text
    }
}

impl FromIterator<CpuId> for CpuSet {
    fn from_iter<I: IntoIterator<Item = CpuId>>(iter: I) -> Self {
        let mut set = Self::new();
        for cpu in iter {
            set.insert(cpu);
        }
        set
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&self.to_list())
        }
    }
}

fn range_text((first, last): (u32, u32)) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

fn parse_id(text: &str) -> Result<u32, CpuSetError> {
    let value: u64 = text
        .trim()
        .parse()
        .map_err(|_| CpuSetError::NotAnId(text.to_owned()))?;
    if value >= u64::from(CPUS_MAX) {
        return Err(CpuSetError::TooHigh(value));
    }
    u32::try_from(value).map_err(|_| CpuSetError::TooHigh(value))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lists_and_masks_round_trip() {
        let set = CpuSet::parse_list("0-3,8,10-11").unwrap();
        assert_eq!(set.len(), 7);
        assert_eq!(set.to_list(), "0-3,8,10-11");
        assert_eq!(CpuSet::parse_mask(&set.to_mask()).unwrap(), set);
        assert_eq!(CpuSet::parse_mask("3").unwrap().to_list(), "0-1");
        let wide = CpuSet::parse_mask("1,00000000").unwrap();
        assert_eq!(wide.to_list(), "32");
        assert_eq!(wide.to_mask(), "1,00000000");
        assert!(CpuSet::parse_list("").unwrap().is_empty());
    }

    #[test]
    fn hostile_input_is_refused() {
        assert_eq!(
            CpuSet::parse_list("0-4294967295"),
            Err(CpuSetError::TooHigh(4_294_967_295))
        );
        assert!(CpuSet::parse_list("3-1").is_err());
        assert!(CpuSet::parse_list("x").is_err());
        assert!(CpuSet::parse_mask("zz").is_err());
        assert!(CpuSet::parse_mask(&"f".repeat(5_000)).is_err());
    }
}
