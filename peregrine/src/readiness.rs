//! Readiness: a registry of named checks that `/health/ready` evaluates. The appliance is ready
//! when every registered check passes.
//!
//! Parts register at start-up, before they serve: either a [`ReadyFlag`] they flip themselves
//! (`let flag = readiness.register_flag("journal")?; … flag.set_ready();`), or a closure that
//! is asked on every probe (`readiness.register_check("disk", || …)`). A check must be cheap and
//! must not block: probes arrive every few seconds and are answered on the async runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Bound on registered checks: one or two per subsystem; more means a registration loop.
pub const CHECKS_MAX: usize = 64;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStatus {
    Ready,
    NotReady(String),
    /// Serving, with a part that is not: shown on `/health/ready` (`degraded <name>: <why>`)
    /// but not failing it. For a part whose loss must not take the appliance out of service
    /// (a load balancer or Kubernetes would stop sending orders to it), e.g. the fan-out.
    Degraded(String),
}

impl CheckStatus {
    /// Whether this check lets the appliance be ready.
    pub fn is_serving(&self) -> bool {
        matches!(self, CheckStatus::Ready | CheckStatus::Degraded(_))
    }
}

type CheckFn = dyn Fn() -> CheckStatus + Send + Sync;

struct Check {
    name: &'static str,
    check: Arc<CheckFn>,
}

/// The registry. Cloning shares it.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<Check>>>,
    /// Figures shown under the checks that do not decide readiness (replication lag).
    notes: Arc<Mutex<Vec<Note>>>,
}

type NoteFn = dyn Fn() -> String + Send + Sync;

struct Note {
    name: &'static str,
    note: Arc<NoteFn>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        let names: Vec<_> = checks.iter().map(|c| c.name).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

/// Why a check could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadinessError {
    #[error("readiness check `{0}` is already registered")]
    Duplicate(&'static str),
    #[error("cannot register readiness check `{0}`: {CHECKS_MAX} checks already registered")]
    Full(&'static str),
}

/// Result of evaluating every check, in registration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    pub checks: Vec<(&'static str, CheckStatus)>,
    /// `info <name>: <text>` lines after the checks; they never make it not ready.
    pub notes: Vec<(&'static str, String)>,
}

impl ReadinessReport {
    /// Ready when every check passes or is only degraded. With no checks registered the
    /// appliance has not started anything, so it is not ready.
    pub fn is_ready(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|(_, s)| s.is_serving())
    }

    /// One line per check: `ok http`, `not ready data: <reason>` or `degraded fanout: <reason>`.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        text.push_str(if self.is_ready() {
            "ready\n"
        } else {
            "not ready\n"
        });
        for (name, status) in &self.checks {
            match status {
                CheckStatus::Ready => text.push_str(&format!("ok {name}\n")),
                CheckStatus::NotReady(reason) => {
                    text.push_str(&format!("not ready {name}: {reason}\n"))
                }
                CheckStatus::Degraded(reason) => {
                    text.push_str(&format!("degraded {name}: {reason}\n"))
                }
            }
        }
        for (name, note) in &self.notes {
            text.push_str(&format!("info {name}: {note}\n"));
        }
        text
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `check`, asked on every probe.
    pub fn register_check(
        &self,
        name: &'static str,
        check: impl Fn() -> CheckStatus + Send + Sync + 'static,
    ) -> Result<(), ReadinessError> {
        let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        if checks.iter().any(|c| c.name == name) {
            return Err(ReadinessError::Duplicate(name));
        }
        if checks.len() >= CHECKS_MAX {
            return Err(ReadinessError::Full(name));
        }
        checks.push(Check {
            name,
            check: Arc::new(check),
        });
        Ok(())
    }

    /// Registers `note`, a figure shown on every probe under the checks (e.g. replication lag
    /// while it is within bounds); it never decides readiness. Cheap and non-blocking, like a
    /// check.
    pub fn register_note(
        &self,
        name: &'static str,
        note: impl Fn() -> String + Send + Sync + 'static,
    ) -> Result<(), ReadinessError> {
        let mut notes = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
        if notes.iter().any(|n| n.name == name) {
            return Err(ReadinessError::Duplicate(name));
        }
        if notes.len() >= CHECKS_MAX {
            return Err(ReadinessError::Full(name));
        }
        notes.push(Note {
            name,
            note: Arc::new(note),
        });
        Ok(())
    }

    /// Registers a flag that starts not ready ("starting") until [`ReadyFlag::set_ready`].
    pub fn register_flag(&self, name: &'static str) -> Result<ReadyFlag, ReadinessError> {
        let flag = ReadyFlag {
            state: Arc::new(FlagState::default()),
        };
        let state = Arc::clone(&flag.state);
        self.register_check(name, move || state.status())?;
        Ok(flag)
    }

    /// Evaluates every check. The lock is released before the checks run, so a slow check
    /// cannot block registration or other probes.
    pub fn report(&self) -> ReadinessReport {
        let checks: Vec<(&'static str, Arc<CheckFn>)> = {
            let checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
            checks
                .iter()
                .map(|c| (c.name, Arc::clone(&c.check)))
                .collect()
        };
        let notes: Vec<(&'static str, Arc<NoteFn>)> = {
            let notes = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
            notes
                .iter()
                .map(|n| (n.name, Arc::clone(&n.note)))
                .collect()
        };
        ReadinessReport {
            checks: checks
                .into_iter()
                .map(|(name, check)| (name, check()))
                .collect(),
            notes: notes
                .into_iter()
                .map(|(name, note)| (name, note()))
                .collect(),
        }
    }
}

#[derive(Default)]
struct FlagState {
    ready: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl FlagState {
    fn status(&self) -> CheckStatus {
        if self.ready.load(Ordering::Acquire) {
            return CheckStatus::Ready;
        }
        let reason = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        CheckStatus::NotReady(reason.clone().unwrap_or_else(|| "starting".to_owned()))
    }
}

/// A readiness check its owner flips. Cloning shares it.
#[derive(Clone)]
pub struct ReadyFlag {
    state: Arc<FlagState>,
}

impl std::fmt::Debug for ReadyFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyFlag")
            .field("status", &self.state.status())
            .finish()
    }
}

impl ReadyFlag {
    pub fn set_ready(&self) {
        self.state.ready.store(true, Ordering::Release);
    }

    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self
            .state
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.into());
        self.state.ready.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_registry_is_not_ready() {
        assert!(!Readiness::new().report().is_ready());
    }

    #[test]
    fn ready_when_every_check_passes() {
        let readiness = Readiness::new();
        let flag = readiness.register_flag("http").unwrap();
        readiness
            .register_check("disk", || CheckStatus::Ready)
            .unwrap();
        let report = readiness.report();
        assert!(!report.is_ready());
        assert_eq!(
            report.to_text(),
            "not ready\nnot ready http: starting\nok disk\n"
        );
        flag.set_ready();
        assert!(readiness.report().is_ready());
        readiness
            .register_note("lag", || "3 records".to_owned())
            .unwrap();
        assert!(readiness.report().is_ready());
        assert_eq!(
            readiness.report().to_text(),
            "ready\nok http\nok disk\ninfo lag: 3 records\n"
        );
        flag.set_not_ready("shutting down");
        assert_eq!(
            readiness.report().checks[0].1,
            CheckStatus::NotReady("shutting down".to_owned())
        );
    }

    #[test]
    fn a_degraded_check_shows_but_keeps_the_appliance_ready() {
        let readiness = Readiness::new();
        readiness
            .register_check("http", || CheckStatus::Ready)
            .unwrap();
        readiness
            .register_check("fanout", || CheckStatus::Degraded("NATS down".to_owned()))
            .unwrap();
        let report = readiness.report();
        assert!(report.is_ready());
        assert_eq!(
            report.to_text(),
            "ready\nok http\ndegraded fanout: NATS down\n"
        );
    }

    #[test]
    fn duplicates_and_overflow_are_refused() {
        let readiness = Readiness::new();
        readiness
            .register_check("a", || CheckStatus::Ready)
            .unwrap();
        assert_eq!(
            readiness.register_check("a", || CheckStatus::Ready),
            Err(ReadinessError::Duplicate("a"))
        );
        let names: Vec<&'static str> = (1..CHECKS_MAX)
            .map(|i| &*Box::leak(format!("check-{i}").into_boxed_str()))
            .collect();
        for name in names {
            readiness
                .register_check(name, || CheckStatus::Ready)
                .unwrap();
        }
        assert_eq!(
            readiness.register_check("last", || CheckStatus::Ready),
            Err(ReadinessError::Full("last"))
        );
    }
}
