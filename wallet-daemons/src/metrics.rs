//! Prometheus metrics of the wallet daemons (`wallet_` prefix; counters `_total`, durations
//! `_seconds`), labelled by chain.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The wallet daemons' metrics.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WalletMetrics {
    /// The node's head minus the watcher's tip, in blocks.
    pub head_lag_blocks: IntGaugeVec,
    /// Now minus the watcher's tip block's time, in seconds.
    pub head_lag_seconds: GaugeVec,
    /// Deposits by state.
    pub deposits: IntGaugeVec,
    /// One watcher step (read new blocks, confirm, credit).
    pub scan_seconds: HistogramVec,
    /// Reorganisations seen (a block whose parent is not the stored tip).
    pub reorgs_total: IntCounterVec,
    /// Blocks rewound by reorganisations.
    pub reorg_blocks_total: IntCounterVec,
    /// Deposits already confirmed or credited in a block that left the chain.
    pub deep_reorg_deposits_total: IntCounterVec,
    /// Credits by outcome (`applied`, `already_applied`, `refused`, `retry`).
    pub credits_total: IntCounterVec,
    /// Failed steps by kind (`chain_unavailable`, `chain_refused`, `store`, `reorg_too_deep`).
    pub errors_total: IntCounterVec,
    /// Withdrawals by state (the store's count at the signer's last step).
    pub withdrawals: IntGaugeVec,
    /// Withdrawals entering each state.
    pub withdrawal_transitions_total: IntCounterVec,
    /// Signer failures by kind (`unavailable`, `refused`, `rejected`, `store`, `state`).
    pub signer_errors_total: IntCounterVec,
    /// 1 while the signer can read its keys (OpenBao answers), 0 while withdrawals wait.
    pub signer_up: IntGaugeVec,
    /// Fee bumps of unmined withdrawals by outcome (`bumped`: a replacement recorded and sent;
    /// `capped`: due, but its fee would exceed the cap).
    pub fee_bumps_total: IntCounterVec,
    /// Wallet transactions (top-ups, sweeps, rebalancing) entering each state.
    pub transfers_total: IntCounterVec,
    /// One collection step (advance open transactions, plan, send).
    pub collect_seconds: HistogramVec,
    /// On chain minus owed per currency at the last reconciliation, in the currency's units.
    pub reconciliation_difference: GaugeVec,
    /// One reconciliation (every currency's balances and liabilities).
    pub reconciliation_seconds: HistogramVec,
}

impl WalletMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<WalletMetrics, prometheus::Error> {
        let buckets = prometheus::exponential_buckets(0.000_5, 2.0, 16)?;
        let metrics = WalletMetrics {
            head_lag_blocks: IntGaugeVec::new(
                Opts::new(
                    "wallet_head_lag_blocks",
                    "node head minus watcher tip, blocks",
                ),
                &["chain"],
            )?,
            head_lag_seconds: GaugeVec::new(
                Opts::new(
                    "wallet_head_lag_seconds",
                    "now minus the watcher tip's block time",
                ),
                &["chain"],
            )?,
            deposits: IntGaugeVec::new(
                Opts::new("wallet_deposits", "deposits by state"),
                &["chain", "state"],
            )?,
            scan_seconds: HistogramVec::new(
                HistogramOpts::new("wallet_scan_seconds", "one deposit watcher step")
                    .buckets(buckets.clone()),
                &["chain"],
            )?,
            reorgs_total: IntCounterVec::new(
                Opts::new("wallet_reorgs_total", "reorganisations seen"),
                &["chain"],
            )?,
            reorg_blocks_total: IntCounterVec::new(
                Opts::new(
                    "wallet_reorg_blocks_total",
                    "blocks rewound by reorganisations",
                ),
                &["chain"],
            )?,
            deep_reorg_deposits_total: IntCounterVec::new(
                Opts::new(
                    "wallet_deep_reorg_deposits_total",
                    "confirmed or credited deposits whose block left the chain",
                ),
                &["chain"],
            )?,
            credits_total: IntCounterVec::new(
                Opts::new("wallet_credits_total", "deposit credits by outcome"),
                &["chain", "outcome"],
            )?,
            errors_total: IntCounterVec::new(
                Opts::new("wallet_errors_total", "failed watcher steps by kind"),
                &["chain", "kind"],
            )?,
            withdrawals: IntGaugeVec::new(
                Opts::new("wallet_withdrawals", "withdrawals by state"),
                &["chain", "state"],
            )?,
            withdrawal_transitions_total: IntCounterVec::new(
                Opts::new(
                    "wallet_withdrawal_transitions_total",
                    "withdrawals entering each state",
                ),
                &["chain", "state"],
            )?,
            signer_errors_total: IntCounterVec::new(
                Opts::new("wallet_signer_errors_total", "signer failures by kind"),
                &["chain", "kind"],
            )?,
            signer_up: IntGaugeVec::new(
                Opts::new(
                    "wallet_signer_up",
                    "1 while the signer can read its keys (OpenBao answers), 0 while withdrawals wait",
                ),
                &["chain"],
            )?,
            fee_bumps_total: IntCounterVec::new(
                Opts::new(
                    "wallet_fee_bumps_total",
                    "fee bumps of unmined withdrawals by outcome",
                ),
                &["chain", "outcome"],
            )?,
            transfers_total: IntCounterVec::new(
                Opts::new(
                    "wallet_transfers_total",
                    "wallet transactions (topup, sweep, rebalance) entering each state",
                ),
                &["chain", "kind", "state"],
            )?,
            collect_seconds: HistogramVec::new(
                HistogramOpts::new("wallet_collect_seconds", "one collection step")
                    .buckets(buckets.clone()),
                &["chain"],
            )?,
            reconciliation_difference: GaugeVec::new(
                Opts::new(
                    "wallet_reconciliation_difference",
                    "on chain minus owed by the ledger, in the currency's units",
                ),
                &["chain", "currency"],
            )?,
            reconciliation_seconds: HistogramVec::new(
                HistogramOpts::new("wallet_reconciliation_seconds", "one reconciliation")
                    .buckets(buckets),
                &["chain"],
            )?,
        };
        registry.register(Box::new(metrics.reconciliation_difference.clone()))?;
        registry.register(Box::new(metrics.reconciliation_seconds.clone()))?;
        registry.register(Box::new(metrics.transfers_total.clone()))?;
        registry.register(Box::new(metrics.collect_seconds.clone()))?;
        registry.register(Box::new(metrics.withdrawals.clone()))?;
        registry.register(Box::new(metrics.withdrawal_transitions_total.clone()))?;
        registry.register(Box::new(metrics.signer_errors_total.clone()))?;
        registry.register(Box::new(metrics.signer_up.clone()))?;
        registry.register(Box::new(metrics.fee_bumps_total.clone()))?;
        registry.register(Box::new(metrics.head_lag_blocks.clone()))?;
        registry.register(Box::new(metrics.head_lag_seconds.clone()))?;
        registry.register(Box::new(metrics.deposits.clone()))?;
        registry.register(Box::new(metrics.scan_seconds.clone()))?;
        registry.register(Box::new(metrics.reorgs_total.clone()))?;
        registry.register(Box::new(metrics.reorg_blocks_total.clone()))?;
        registry.register(Box::new(metrics.deep_reorg_deposits_total.clone()))?;
        registry.register(Box::new(metrics.credits_total.clone()))?;
        registry.register(Box::new(metrics.errors_total.clone()))?;
        Ok(metrics)
    }

    /// Exports `chain`'s event counters at zero before the first event: a series that
    /// appears only with the first reorganisation hides it from `increase()`-based alerts and
    /// dashboards until the second.
    pub fn start_chain(&self, chain: &str) {
        for counter in [
            &self.reorgs_total,
            &self.reorg_blocks_total,
            &self.deep_reorg_deposits_total,
        ] {
            counter.with_label_values(&[chain]).inc_by(0);
        }
        for outcome in ["bumped", "capped"] {
            self.fee_bumps_total
                .with_label_values(&[chain, outcome])
                .inc_by(0);
        }
        for kind in crate::transfers::TransferKind::ALL {
            for state in crate::transfers::TransferState::ALL {
                self.transfers_total
                    .with_label_values(&[chain, kind.name(), state.name()])
                    .inc_by(0);
            }
        }
        // Histograms export their series once the child exists, before any observation.
        let _ = self.collect_seconds.with_label_values(&[chain]);
        let _ = self.reconciliation_seconds.with_label_values(&[chain]);
    }

    /// Exports `currency`'s reconciliation difference as NaN (not reconciled yet) until the
    /// first reconciliation sets it.
    pub fn start_currency(&self, chain: &str, currency: &str) {
        self.reconciliation_difference
            .with_label_values(&[chain, currency])
            .set(f64::NAN);
    }
}
