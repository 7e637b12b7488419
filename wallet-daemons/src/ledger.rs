//! Crediting the exchange's ledger: the journaled `Deposit` command, submitted through the core
//! as the wallet service ([`Actor::Service`]`(`[`Service::Wallet`]`)`), the way the control API
//! submits an operator's deposit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use peregrine_core::{EngineHandle, Request, SubmitError};
use peregrine_hotpath::{
    AccountId, Actor, Amount, CommandKind, CurrencyId, DepositId, RejectReason, Service,
};

/// The wallet's deposit ids are `WALLET_DEPOSIT_ID_BASE + row id`, apart from the ids operators
/// choose (`POST /control/v1/deposits` takes ids up to 2^63 - 1: operators keep below 2^62).
pub const WALLET_DEPOSIT_ID_BASE: u64 = 1 << 62;
/// The longest the watcher waits for a command's outcome before it tries again later (the
/// command may still apply: the retry carries the same idempotency key).
pub const OUTCOME_TIMEOUT_MS: u64 = 10_000;

const _: () = assert!(WALLET_DEPOSIT_ID_BASE > 0 && WALLET_DEPOSIT_ID_BASE < (1 << 63));

/// The idempotency key of the deposit stored with `row_id`.
pub fn deposit_id(row_id: u64) -> DepositId {
    debug_assert!(row_id < WALLET_DEPOSIT_ID_BASE);
    DepositId(WALLET_DEPOSIT_ID_BASE | row_id)
}

/// The engine's answer to a credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreditOutcome {
    /// Applied now, at this journal sequence.
    Applied {
        /// The command's sequence.
        seq: u64,
    },
    /// The key was credited before (a retry after a crash or a timeout): nothing changed.
    AlreadyApplied,
    /// Refused for good (unknown account, an expired key, an overflow).
    Refused(RejectReason),
}

/// The engine could not take the command now: try again later with the same key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The sequencer's queue is full.
    #[error("the engine is busy")]
    Busy,
    /// The engine stopped, or gave no outcome in time.
    #[error("the engine is unavailable")]
    Unavailable,
    /// The appliance refused the request itself (a wrong token, an unknown currency): the
    /// daemon's configuration, retried until an operator fixes it.
    #[error("the appliance refused the request: {0}")]
    Refused(String),
}

/// Where confirmed deposits are credited.
pub trait Ledger: Send + Sync {
    /// Credits `amount` of `currency` to `account` once per `deposit`.
    fn credit(
        &self,
        account: AccountId,
        currency: CurrencyId,
        amount: Amount,
        deposit: DepositId,
    ) -> impl Future<Output = Result<CreditOutcome, LedgerError>> + Send;
}

/// What the engine answered a withdrawal command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// Applied at this journal sequence.
    Applied {
        /// The command's sequence.
        seq: u64,
    },
    /// Refused with this reason (the caller tells a retry's duplicate from a real refusal).
    Refused(RejectReason),
}

/// Where withdrawals hold, settle and release funds (journaled commands).
pub trait WithdrawalLedger: Send + Sync {
    /// Submits `command` (`WithdrawalHold`, `WithdrawalSettle` or `WithdrawalRelease`).
    fn withdrawal(
        &self,
        command: CommandKind,
    ) -> impl Future<Output = Result<Answer, LedgerError>> + Send;
}

/// What the ledger owes per currency: every account's available plus locked, read from the
/// views (never the matching thread).
pub trait Liabilities: Send + Sync {
    /// The total of `currency` in its minor units.
    fn liabilities(
        &self,
        currency: CurrencyId,
    ) -> impl Future<Output = Result<u128, LedgerError>> + Send;
}

impl Liabilities for Arc<EngineHandle> {
    async fn liabilities(&self, currency: CurrencyId) -> Result<u128, LedgerError> {
        Ok(self.read(|views| views.liabilities(currency)))
    }
}

/// Submits `command` as the wallet service and waits for its outcome.
async fn execute(engine: &EngineHandle, command: CommandKind) -> Result<Answer, LedgerError> {
    let ticket = engine
        .submit(Request::new(Actor::Service(Service::Wallet), command))
        .map_err(|error| match error {
            SubmitError::Busy => LedgerError::Busy,
            _ => LedgerError::Unavailable,
        })?;
    let executed = tokio::time::timeout(Duration::from_millis(OUTCOME_TIMEOUT_MS), ticket)
        .await
        .map_err(|_| LedgerError::Unavailable)?
        .map_err(|_| LedgerError::Unavailable)?;
    Ok(match executed.rejected() {
        None => Answer::Applied { seq: executed.seq },
        Some(reason) => Answer::Refused(reason),
    })
}

impl Ledger for Arc<EngineHandle> {
    async fn credit(
        &self,
        account: AccountId,
        currency: CurrencyId,
        amount: Amount,
        deposit: DepositId,
    ) -> Result<CreditOutcome, LedgerError> {
        let command = CommandKind::Deposit {
            account,
            currency,
            amount,
            deposit,
        };
        Ok(match execute(self, command).await? {
            Answer::Applied { seq } => CreditOutcome::Applied { seq },
            Answer::Refused(RejectReason::DuplicateDeposit) => CreditOutcome::AlreadyApplied,
            Answer::Refused(reason) => CreditOutcome::Refused(reason),
        })
    }
}

impl WithdrawalLedger for Arc<EngineHandle> {
    async fn withdrawal(&self, command: CommandKind) -> Result<Answer, LedgerError> {
        debug_assert!(matches!(
            command,
            CommandKind::WithdrawalHold { .. }
                | CommandKind::WithdrawalSettle { .. }
                | CommandKind::WithdrawalRelease { .. }
        ));
        execute(self, command).await
    }
}
