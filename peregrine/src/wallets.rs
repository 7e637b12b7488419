//! The appliance's side of the wallets (`[wallets]`): the wallet daemons' control token, the
//! REST bridge's chain deposits and deposit addresses read from the wallet store
//! ([`StoreBook`], the gateway's [`DepositBook`]), and its beneficiaries and withdrawal requests
//! ([`StoreDesk`], the gateway's [`WithdrawDesk`]: TOTP through identity, then the policy,
//! recorded in the wallet store). The appliance holds no seed: an address not derived yet is
//! recorded as asked for, and the daemon (`peregrine wallets run`,
//! [`crate::commands::wallets`]) derives it; a withdrawal is recorded `approved` or
//! `awaiting_approval`, and the daemon holds, signs and sends it.

use std::path::Path;
use std::sync::Arc;

use peregrine_auth::Identity;
use peregrine_control::{
    QueueError, QueueFuture, QueuedWithdrawal, ReconciliationBook, RecordedAssets, WithdrawalQueue,
};
use peregrine_gateway::rest::deposits::{BookError, BookFuture, DepositBook, DepositRecord};
use peregrine_gateway::rest::withdraws::{
    BeneficiaryRecord, DeskError, DeskFuture, WithdrawAsk, WithdrawDesk, WithdrawRecord,
};
use peregrine_hotpath::{AccountId, CurrencyId};
use peregrine_wallet::chain::Address;
use peregrine_wallet::policy::{PolicyMetrics, WithdrawPolicy};
use peregrine_wallet::requests::{
    ApprovalError, Beneficiary, BeneficiaryError, ReviewView, WithdrawRequest,
};
use peregrine_wallet::store::{DepositState, WalletStore};
use peregrine_wallet::withdrawals::WithdrawalState;

use crate::config::Config;

// The control API's wallet range is the wallet store's id base: one constant, said twice.
const _: () = assert!(
    peregrine_control::api::WALLET_DEPOSIT_IDS_FROM
        == peregrine_wallet::ledger::WALLET_DEPOSIT_ID_BASE
        && peregrine_gateway::ws::hub::WALLET_DEPOSIT_IDS_FROM
            == peregrine_wallet::ledger::WALLET_DEPOSIT_ID_BASE
);

/// Why the wallets' part of `up` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletsError {
    /// The wallet store could not be opened.
    #[error("wallet store: {0}")]
    Store(#[from] peregrine_wallet::store::StoreError),
    /// The withdrawal policy's metrics could not be registered.
    #[error("wallet metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A currency's withdrawal policy is invalid (checked with the configuration first).
    #[error("withdrawal policy: {0}")]
    Policy(String),
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

/// Plugs the wallet store into the REST bridge when `[wallets]` is on: chain deposits, and
/// beneficiaries and withdrawals (TOTP codes checked by `identity`, when it runs; without it
/// every withdrawal is refused, as no user can give a code). The store's review side, for the
/// control API's withdrawal queue.
pub async fn serve_deposits(
    config: &Config,
    data_dir: &Path,
    rest: &peregrine_gateway::rest::RestServer,
    identity: Option<Arc<Identity>>,
    registry: &prometheus::Registry,
) -> Result<Option<Arc<dyn WithdrawalQueue>>, WalletsError> {
    if !config.wallets.enabled {
        return Ok(None);
    }
    let store = WalletStore::open(&config.wallets.store_url(data_dir)).await?;
    let book = StoreBook {
        store: store.clone(),
        chain: config.wallets.chain.clone(),
        currencies: config
            .wallets
            .currencies
            .iter()
            .map(|c| c.code.clone())
            .collect(),
    };
    rest.bridge().serve_deposits(Arc::new(book));
    let queue = ReviewQueue(store.clone());
    let desk = StoreDesk::new(config, store, identity, registry)?;
    rest.bridge().serve_withdraws(Arc::new(desk));
    Ok(Some(Arc::new(queue)))
}

/// The wallet store as the control API's queue of withdrawal requests.
#[derive(Clone)]
struct ReviewQueue(WalletStore);

impl std::fmt::Debug for ReviewQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReviewQueue")
    }
}

fn queued(view: ReviewView) -> QueuedWithdrawal {
    QueuedWithdrawal {
        id: view.id,
        account: view.account.0,
        currency: view.currency,
        amount_minor: view.amount_minor,
        to: view.to,
        state: view.state.name().to_owned(),
        requested_by: view.requested_by,
        approvals_required: view.approvals_required,
        approvers: view.approvers,
        created_at_ms: view.created_at_ms,
    }
}

fn review_refusal(error: ApprovalError) -> QueueError {
    match error {
        ApprovalError::NotFound(id) => QueueError::NotFound(id),
        ApprovalError::State { id, state } => QueueError::NotAwaiting {
            id,
            state: state.name().to_owned(),
        },
        ApprovalError::SelfApproval(id) => QueueError::OwnRequest(id),
        ApprovalError::AlreadyApproved(id) => QueueError::AlreadyReviewed(id),
        _ => QueueError::Unavailable,
    }
}

impl WithdrawalQueue for ReviewQueue {
    fn list<'a>(&'a self, state: &'a str, limit: u32) -> QueueFuture<'a, Vec<QueuedWithdrawal>> {
        Box::pin(async move {
            let wanted = WithdrawalState::ALL
                .into_iter()
                .find(|s| s.name() == state)
                .ok_or_else(|| QueueError::UnknownState(state.to_owned()))?;
            let views = self
                .0
                .withdrawals_for_review(wanted, limit)
                .await
                .map_err(|_| QueueError::Unavailable)?;
            Ok(views.into_iter().map(queued).collect())
        })
    }

    fn get(&self, id: u64) -> QueueFuture<'_, Option<QueuedWithdrawal>> {
        Box::pin(async move {
            let view = self.0.withdrawal_for_review(id).await;
            Ok(view.map_err(|_| QueueError::Unavailable)?.map(queued))
        })
    }

    fn approve<'a>(&'a self, id: u64, reviewer: &'a str, now_ms: i64) -> QueueFuture<'a, String> {
        Box::pin(async move {
            let state = self.0.approve_withdrawal(id, reviewer, now_ms).await;
            Ok(state.map_err(review_refusal)?.name().to_owned())
        })
    }

    fn reject<'a>(&'a self, id: u64, reviewer: &'a str) -> QueueFuture<'a, String> {
        Box::pin(async move {
            let state = self.0.reject_withdrawal(id, reviewer).await;
            Ok(state.map_err(review_refusal)?.name().to_owned())
        })
    }
}

/// A withdrawable currency as the desk needs it.
#[derive(Debug)]
struct DeskCurrency {
    code: String,
    id: CurrencyId,
    /// Chain units per minor unit.
    chain_per_minor: u128,
    /// Decimals of the minor unit.
    precision: u32,
}

/// The wallet store and identity as the bridge's withdrawal desk.
pub struct StoreDesk {
    store: WalletStore,
    chain: String,
    policy: WithdrawPolicy,
    currencies: Vec<DeskCurrency>,
    identity: Option<Arc<Identity>>,
    delay_ms: i64,
    metrics: PolicyMetrics,
}

impl std::fmt::Debug for StoreDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDesk")
            .field("chain", &self.chain)
            .field("currencies", &self.currencies)
            .finish_non_exhaustive()
    }
}

impl StoreDesk {
    /// The desk of `config`'s `[wallets]`: the policy of each currency that has one (default
    /// deny), amounts converted with the catalog's precision.
    pub fn new(
        config: &Config,
        store: WalletStore,
        identity: Option<Arc<Identity>>,
        registry: &prometheus::Registry,
    ) -> Result<StoreDesk, WalletsError> {
        let mut policy = WithdrawPolicy::deny_all();
        let mut currencies = Vec::new();
        for currency in &config.wallets.currencies {
            let (Some(section), Some(def)) = (
                &currency.withdraw,
                config.currencies.iter().find(|c| c.code == currency.code),
            ) else {
                continue;
            };
            let rules =
                crate::config::wallets::currency_policy(&currency.code, section, def.precision)
                    .map_err(WalletsError::Policy)?;
            policy = policy
                .with(&currency.code, rules)
                .map_err(|e| WalletsError::Policy(e.to_string()))?;
            // Validated: the chain has at least the engine's decimals, at most 38 more.
            let chain_per_minor = 10u128.pow(currency.decimals.saturating_sub(def.precision));
            currencies.push(DeskCurrency {
                code: currency.code.clone(),
                id: CurrencyId(def.id),
                chain_per_minor,
                precision: def.precision,
            });
        }
        Ok(StoreDesk {
            store,
            chain: config.wallets.chain.clone(),
            policy,
            currencies,
            identity,
            delay_ms: i64::try_from(config.wallets.beneficiary_activation_delay_ms)
                .unwrap_or(i64::MAX),
            metrics: PolicyMetrics::new(registry)?,
        })
    }

    fn refused(&self, status: u16, code: &'static str, message: String) -> DeskError {
        self.metrics.refusals_total.with_label_values(&[code]).inc();
        DeskError {
            status,
            code,
            message,
        }
    }

    /// The KYC limits of `account`'s user in `currency`, when the currency has some in force
    /// (none without identity: no user can then give a code, every request is refused).
    async fn level_limits(
        &self,
        account: AccountId,
        currency: &DeskCurrency,
    ) -> Result<Option<crate::withdraw_limits::LevelLimits>, DeskError> {
        let Some(identity) = self.identity.as_deref() else {
            return Ok(None);
        };
        crate::withdraw_limits::of_account(identity, account, &currency.code, currency.precision)
            .await
            .map_err(unavailable_desk)
    }

    /// The desk's answer to a refused request: a KYC limit's `withdraw.limit_exceeded`, or the
    /// store's own refusal.
    fn refusal(
        &self,
        error: &peregrine_wallet::requests::RequestError,
        limits: Option<crate::withdraw_limits::LevelLimits>,
        currency: &DeskCurrency,
    ) -> DeskError {
        let exceeded = limits.and_then(|limits| {
            crate::withdraw_limits::exceeded(error, limits, &currency.code, currency.precision)
        });
        if let Some(message) = exceeded {
            let code = crate::withdraw_limits::LIMIT_EXCEEDED_CODE;
            return self.refused(422, code, message);
        }
        let status = match error {
            peregrine_wallet::requests::RequestError::NoHotWallet(_) => 503,
            _ => 422,
        };
        self.refused(status, error.code(), error.to_string())
    }

    /// The uid of the account's user once its TOTP code checks out.
    async fn check_otp(&self, account: AccountId, otp: &str) -> Result<String, DeskError> {
        let no_user = || {
            self.refused(
                403,
                "withdraw.no_user",
                "this account has no user to give a TOTP code".to_owned(),
            )
        };
        let identity = self.identity.as_ref().ok_or_else(no_user)?;
        let user = identity
            .store()
            .user_by_account(account.0)
            .await
            .map_err(|e| self.refused(503, "withdraw.unavailable", e.to_string()))?
            .ok_or_else(no_user)?;
        match identity.require_otp(&user, Some(otp)).await {
            Ok(()) => Ok(user.uid),
            Err(error) => {
                let status = error.status().as_u16();
                Err(self.refused(status, error.code(), error.to_string()))
            }
        }
    }
}

fn unavailable_desk(error: impl std::fmt::Display) -> DeskError {
    DeskError {
        status: 503,
        code: "withdraw.unavailable",
        message: format!("the wallet store cannot be used now: {error}"),
    }
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn beneficiary_record(beneficiary: Beneficiary, now_ms: i64) -> BeneficiaryRecord {
    BeneficiaryRecord {
        id: beneficiary.id,
        state: beneficiary.state(now_ms).name().to_owned(),
        currency: beneficiary.currency,
        name: beneficiary.name,
        address: beneficiary.address.eip55(),
        active_at_ms: beneficiary.active_at_ms,
    }
}

impl WithdrawDesk for StoreDesk {
    fn has_currency(&self, currency: &str) -> bool {
        self.currencies.iter().any(|c| c.code == currency)
    }

    fn beneficiaries<'a>(
        &'a self,
        account: AccountId,
        currency: Option<&'a str>,
    ) -> DeskFuture<'a, Vec<BeneficiaryRecord>> {
        Box::pin(async move {
            let now = now_ms();
            let list = self
                .store
                .beneficiaries(account, currency)
                .await
                .map_err(unavailable_desk)?;
            Ok(list
                .into_iter()
                .map(|b| beneficiary_record(b, now))
                .collect())
        })
    }

    fn create_beneficiary<'a>(
        &'a self,
        account: AccountId,
        currency: &'a str,
        name: &'a str,
        address: &'a str,
    ) -> DeskFuture<'a, BeneficiaryRecord> {
        Box::pin(async move {
            let address = Address::parse_eip55(address).ok_or_else(|| {
                self.refused(
                    422,
                    "withdraw.beneficiary_invalid_address",
                    format!("`{address}` is not an Ethereum address in its EIP-55 checksum case"),
                )
            })?;
            let now = now_ms();
            let created = self
                .store
                .add_beneficiary(account, currency, name, &address, now, self.delay_ms)
                .await;
            match created {
                Ok(beneficiary) => Ok(beneficiary_record(beneficiary, now)),
                Err(BeneficiaryError::Store(error)) => Err(unavailable_desk(error)),
                Err(error) => {
                    Err(self.refused(422, "withdraw.beneficiary_invalid", error.to_string()))
                }
            }
        })
    }

    fn delete_beneficiary(&self, account: AccountId, id: u64) -> DeskFuture<'_, bool> {
        Box::pin(async move {
            self.store
                .archive_beneficiary(account, id)
                .await
                .map_err(unavailable_desk)
        })
    }

    fn request<'a>(&'a self, ask: WithdrawAsk<'a>) -> DeskFuture<'a, WithdrawRecord> {
        Box::pin(async move {
            let currency = self
                .currencies
                .iter()
                .find(|c| c.code == ask.currency)
                .ok_or_else(|| {
                    self.refused(
                        422,
                        "withdraw.currency_not_withdrawable",
                        format!("`{}` cannot be withdrawn here", ask.currency),
                    )
                })?;
            let mut request = WithdrawRequest {
                account: ask.account,
                // The placeholder passes the checks; the code's user replaces it below.
                requested_by: "pending".to_owned(),
                currency: currency.code.clone(),
                currency_id: currency.id,
                amount_minor: ask.amount_minor,
                chain_per_minor: currency.chain_per_minor,
                beneficiary_id: ask.beneficiary_id,
                now_ms: now_ms(),
            };
            // The KYC level's limits tighten the policy for this request.
            let limits = self.level_limits(ask.account, currency).await?;
            let policy = limits
                .and_then(|l| crate::withdraw_limits::tightened(&self.policy, &currency.code, l));
            let policy = policy.as_ref().unwrap_or(&self.policy);
            // What the policy refuses is refused before the code is spent.
            let checked = self
                .store
                .check_withdrawal(&self.chain, policy, &request)
                .await;
            let recorded = match checked {
                Ok(()) => {
                    request.requested_by = self.check_otp(ask.account, ask.otp).await?;
                    self.store
                        .request_withdrawal(&self.chain, policy, &request)
                        .await
                }
                Err(error) => Err(error),
            };
            let recorded = match recorded {
                Ok(recorded) => recorded,
                Err(peregrine_wallet::requests::RequestError::Store(error)) => {
                    return Err(unavailable_desk(error));
                }
                Err(error) => return Err(self.refusal(&error, limits, currency)),
            };
            self.metrics
                .requests_total
                .with_label_values(&[recorded.state.name()])
                .inc();
            self.store
                .withdrawal_of(ask.account, recorded.id)
                .await
                .map_err(unavailable_desk)?
                .map(withdraw_record)
                .ok_or_else(|| unavailable_desk("the recorded withdrawal was not read back"))
        })
    }

    fn withdrawals<'a>(
        &'a self,
        account: AccountId,
        currency: Option<&'a str>,
        limit: u32,
        offset: u64,
    ) -> DeskFuture<'a, Vec<WithdrawRecord>> {
        Box::pin(async move {
            let rows = self
                .store
                .withdrawals_page(account, currency, limit, offset)
                .await
                .map_err(unavailable_desk)?;
            Ok(rows.into_iter().map(withdraw_record).collect())
        })
    }
}

fn withdraw_record(view: peregrine_wallet::requests::WithdrawalView) -> WithdrawRecord {
    let state: WithdrawalState = view.state;
    WithdrawRecord {
        id: view.id,
        currency: view.currency,
        amount_minor: view.amount_minor,
        address: Address::parse_eth(&view.to).map_or(view.to, |a| a.eip55()),
        beneficiary_id: view.beneficiary_id,
        state: state.name().to_owned(),
        txid: view.txid,
        created_at_ms: view.created_at_ms,
    }
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

/// The wallet store's last reconciliations (read only), for the control API's assets report,
/// when `[wallets]` is on: the daemon records one per currency after every run.
pub async fn reconciliation_book(
    config: &Config,
    data_dir: &Path,
) -> Result<Option<Arc<dyn ReconciliationBook>>, WalletsError> {
    if !config.wallets.enabled {
        return Ok(None);
    }
    let store = WalletStore::open(&config.wallets.store_url(data_dir)).await?;
    Ok(Some(Arc::new(LastReconciliations {
        store,
        chain: config.wallets.chain.clone(),
    })))
}

/// The wallet store as the control API's [`ReconciliationBook`].
struct LastReconciliations {
    store: WalletStore,
    chain: String,
}

impl std::fmt::Debug for LastReconciliations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LastReconciliations")
    }
}

impl ReconciliationBook for LastReconciliations {
    fn last(&self) -> QueueFuture<'_, Vec<RecordedAssets>> {
        Box::pin(async move {
            let list = self
                .store
                .reconciliations(&self.chain)
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "the wallet store's reconciliations cannot be read");
                    QueueError::Unavailable
                })?;
            Ok(list
                .into_iter()
                .map(|recorded| {
                    let report = recorded.report;
                    RecordedAssets {
                        currency: report.currency,
                        chain_decimals: report.chain_decimals,
                        hot: report.hot,
                        warm: report.warm,
                        cold: report.cold,
                        deposit_addresses: report.deposits,
                        liabilities: report.liabilities,
                        difference: report.difference,
                        tolerance: report.tolerance,
                        reconciled_at_ms: recorded.reconciled_at_ms,
                    }
                })
                .collect())
        })
    }
}
