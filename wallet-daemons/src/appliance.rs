//! The appliance as the wallet daemon's ledger: confirmed deposits are credited through the
//! control API (`POST /control/v1/deposits`) and withdrawals' funds held, settled and released
//! (`POST /control/v1/withdrawals/{id}/{action}`) with the wallet daemons' own bearer token,
//! which the appliance accepts for those routes only and sequences as the wallet service.
//!
//! Why the control API rather than a journal or engine link of its own: it is the appliance's
//! one door for journaled commands from outside the process, it already answers once the command
//! is durable (`durable` mode), it refuses anything but a deposit to this token, and its answer
//! tells a duplicate (a retry after a crash: nothing changed) from a refusal. The idempotency key
//! is the deposit id, `2^62 + row id` ([`crate::ledger::deposit_id`]), so a retry under any
//! failure credits once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use peregrine_hotpath::{AccountId, Amount, CommandKind, CurrencyId, DepositId, RejectReason};
use serde_json::{Value, json};

use crate::ledger::{Answer, CreditOutcome, Ledger, LedgerError, Liabilities, WithdrawalLedger};

/// Longest one control request may take (the command waits for its journal record).
pub const REQUEST_TIMEOUT_MS: u64 = 15_000;
/// Longest answer body read (an answer is a few hundred bytes; the status a few per market
/// and currency).
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Longest a health probe of the appliance may take.
pub const PROBE_TIMEOUT_MS: u64 = 2_000;

const _: () = assert!(REQUEST_TIMEOUT_MS > PROBE_TIMEOUT_MS);

/// A currency the appliance credits: the engine's id, its code and its precision (decimals of
/// the minor unit), to write the amount as the control API takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplianceCurrency {
    /// The engine's id.
    pub id: CurrencyId,
    /// The exchange's code.
    pub code: String,
    /// Decimals of the minor unit.
    pub precision: u32,
}

/// Why the appliance could not be set up as a ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplianceError {
    /// The URL is not `http://…`.
    #[error("invalid appliance URL {0:?} (want http://host:port)")]
    Url(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What the daemon last learnt of the appliance (readiness reads it).
#[derive(Debug, Default)]
pub struct ApplianceStatus {
    reachable: AtomicBool,
    problem: Mutex<Option<String>>,
}

impl ApplianceStatus {
    /// `None` while the appliance answers; why not otherwise.
    pub fn problem(&self) -> Option<String> {
        if self.reachable.load(Ordering::Acquire) {
            return None;
        }
        let problem = self.problem.lock().unwrap_or_else(PoisonError::into_inner);
        Some(
            problem
                .clone()
                .unwrap_or_else(|| "the appliance was not reached yet".to_owned()),
        )
    }

    fn set(&self, problem: Option<String>) {
        let mut slot = self.problem.lock().unwrap_or_else(PoisonError::into_inner);
        self.reachable.store(problem.is_none(), Ordering::Release);
        *slot = problem;
    }
}

/// The appliance's control API as a [`Ledger`].
#[derive(Clone)]
pub struct ApplianceLedger {
    client: reqwest::Client,
    base: String,
    token: Arc<str>,
    currencies: Arc<[ApplianceCurrency]>,
    status: Arc<ApplianceStatus>,
}

impl std::fmt::Debug for ApplianceLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never reaches a log.
        f.debug_struct("ApplianceLedger")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// `minor` units as a decimal string with `precision` decimals (`1500, 3` → `1.500`).
pub fn minor_to_decimal(minor: u64, precision: u32) -> String {
    let digits = minor.to_string();
    let precision = precision as usize;
    if precision == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = precision + 1);
    let (whole, fraction) = padded.split_at(padded.len() - precision);
    format!("{whole}.{fraction}")
}

impl ApplianceLedger {
    /// A ledger posting to the control API at `base` (the appliance's operator HTTP listener,
    /// e.g. `http://127.0.0.1:8080`) with `token`.
    pub fn new(
        base: &str,
        token: &str,
        currencies: Vec<ApplianceCurrency>,
    ) -> Result<ApplianceLedger, ApplianceError> {
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(ApplianceError::Url(base.to_owned()));
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()?;
        Ok(ApplianceLedger {
            client,
            base: base.to_owned(),
            token: token.into(),
            currencies: currencies.into(),
            status: Arc::new(ApplianceStatus::default()),
        })
    }

    /// What the daemon last learnt of the appliance.
    pub fn status(&self) -> Arc<ApplianceStatus> {
        Arc::clone(&self.status)
    }

    /// Asks the appliance's `/health/ready`; records and returns the outcome. Called
    /// periodically, so an appliance that goes away shows on readiness even while no credit
    /// is due.
    pub async fn probe(&self) -> Option<String> {
        let url = format!("{}/health/ready", self.base);
        let answer = self
            .client
            .get(&url)
            .timeout(Duration::from_millis(PROBE_TIMEOUT_MS))
            .send()
            .await;
        let problem = match answer {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!(
                "the appliance is not ready (HTTP {})",
                response.status().as_u16()
            )),
            Err(error) => Some(format!(
                "the appliance at {} cannot be reached: {error}",
                self.base
            )),
        };
        self.status.set(problem.clone());
        problem
    }

    async fn post(&self, path: &str, body: Value) -> Result<(u16, Value), LedgerError> {
        let url = format!("{}/control/v1/{path}", self.base);
        self.answer(self.client.post(&url).json(&body)).await
    }

    async fn get(&self, path: &str) -> Result<(u16, Value), LedgerError> {
        let url = format!("{}/control/v1/{path}", self.base);
        self.answer(self.client.get(&url)).await
    }

    /// Sends `request` with the token; the status and the JSON body (bounded).
    async fn answer(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), LedgerError> {
        let sent = request.bearer_auth(&*self.token).send().await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => {
                self.status.set(Some(format!(
                    "the appliance at {} cannot be reached: {error}",
                    self.base
                )));
                return Err(LedgerError::Unavailable);
            }
        };
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        // Bounded read.
        while let Ok(Some(chunk)) = response.chunk().await {
            if bytes.len() + chunk.len() > ANSWER_BYTES_MAX {
                return Err(LedgerError::Unavailable);
            }
            bytes.extend_from_slice(&chunk);
        }
        self.status.set(None);
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }
}

impl Ledger for ApplianceLedger {
    async fn credit(
        &self,
        account: AccountId,
        currency: CurrencyId,
        amount: Amount,
        deposit: DepositId,
    ) -> Result<CreditOutcome, LedgerError> {
        let Some(known) = self.currencies.iter().find(|c| c.id == currency) else {
            return Err(LedgerError::Refused(format!(
                "currency id {} is not configured",
                currency.0
            )));
        };
        let body = json!({
            "account": account.0,
            "currency": known.code,
            "amount": minor_to_decimal(amount.0, known.precision),
            "deposit_id": deposit.0,
        });
        let (status, answer) = self.post("deposits", body).await?;
        Ok(match self.engine_answer(status, &answer, "the credit")? {
            Answer::Applied { seq } => CreditOutcome::Applied { seq },
            Answer::Refused(RejectReason::DuplicateDeposit) => CreditOutcome::AlreadyApplied,
            Answer::Refused(reason) => CreditOutcome::Refused(reason),
        })
    }
}

impl ApplianceLedger {
    /// The control API's answer to a command: applied (its sequence) or the engine's refusal;
    /// anything else is an error to retry.
    fn engine_answer(
        &self,
        status: u16,
        answer: &Value,
        what: &str,
    ) -> Result<Answer, LedgerError> {
        match status {
            200 => answer["seq"]
                .as_u64()
                .map(|seq| Answer::Applied { seq })
                .ok_or_else(|| LedgerError::Refused(format!("malformed answer {answer}"))),
            422 => answer["error"]["reason_code"]
                .as_u64()
                .and_then(|code| u16::try_from(code).ok())
                .and_then(RejectReason::from_code)
                .map(Answer::Refused)
                // Not the engine's refusal: the request itself (an amount the currency cannot
                // hold, an id out of range) — the daemon's configuration, retried until fixed.
                .ok_or_else(|| LedgerError::Refused(answer["error"]["message"].to_string())),
            503 if answer["error"]["code"] == "control.server.busy" => Err(LedgerError::Busy),
            503 => Err(LedgerError::Unavailable),
            _ => {
                let problem = format!("the appliance refused {what}: HTTP {status} {answer}");
                self.status.set(Some(problem.clone()));
                Err(LedgerError::Refused(problem))
            }
        }
    }
}

impl Liabilities for ApplianceLedger {
    /// Reads `GET /control/v1/status` (its `liabilities`) with the wallet token.
    async fn liabilities(&self, currency: CurrencyId) -> Result<u128, LedgerError> {
        let Some(known) = self.currencies.iter().find(|c| c.id == currency) else {
            return Err(LedgerError::Refused(format!(
                "currency id {} is not configured",
                currency.0
            )));
        };
        let (status, answer) = self.get("status").await?;
        if status != 200 {
            return Err(LedgerError::Refused(format!(
                "the appliance refused the status: HTTP {status} {answer}"
            )));
        }
        let listed = answer["liabilities"]
            .as_array()
            .and_then(|all| all.iter().find(|entry| entry["currency"] == *known.code))
            .ok_or_else(|| {
                LedgerError::Refused(format!("the status lists no liabilities of {}", known.code))
            })?;
        if listed["precision"].as_u64() != Some(u64::from(known.precision)) {
            return Err(LedgerError::Refused(format!(
                "the appliance's precision of {} is not the configured {}",
                known.code, known.precision
            )));
        }
        listed["total_minor"]
            .as_str()
            .and_then(|total| total.parse().ok())
            .ok_or_else(|| LedgerError::Refused(format!("malformed liabilities {listed}")))
    }
}

impl WithdrawalLedger for ApplianceLedger {
    /// Posts the command to `/control/v1/withdrawals/{id}/{hold|settle|release}`.
    async fn withdrawal(&self, command: CommandKind) -> Result<Answer, LedgerError> {
        let (path, body) = match command {
            CommandKind::WithdrawalHold {
                account,
                currency,
                amount,
                withdrawal,
            } => {
                let Some(known) = self.currencies.iter().find(|c| c.id == currency) else {
                    return Err(LedgerError::Refused(format!(
                        "currency id {} is not configured",
                        currency.0
                    )));
                };
                let body = json!({
                    "account": account.0,
                    "currency": known.code,
                    "amount": minor_to_decimal(amount.0, known.precision),
                });
                (format!("withdrawals/{}/hold", withdrawal.0), body)
            }
            CommandKind::WithdrawalSettle { withdrawal } => {
                (format!("withdrawals/{}/settle", withdrawal.0), json!({}))
            }
            CommandKind::WithdrawalRelease { withdrawal } => {
                (format!("withdrawals/{}/release", withdrawal.0), json!({}))
            }
            other => {
                return Err(LedgerError::Refused(format!(
                    "not a withdrawal command: {other:?}"
                )));
            }
        };
        let (status, answer) = self.post(&path, body).await?;
        self.engine_answer(status, &answer, "the withdrawal command")
    }
}

#[cfg(test)]
mod tests {
    use super::minor_to_decimal;

    #[test]
    fn minor_units_print_with_their_precision() {
        assert_eq!(minor_to_decimal(1_500, 3), "1.500");
        assert_eq!(minor_to_decimal(5, 3), "0.005");
        assert_eq!(minor_to_decimal(0, 2), "0.00");
        assert_eq!(minor_to_decimal(42, 0), "42");
        assert_eq!(minor_to_decimal(u64::MAX, 18), "18.446744073709551615");
    }
}
