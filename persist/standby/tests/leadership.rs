//! Leadership through a real etcd (Debian's etcd-server, a private instance per test on free
//! loopback ports, so killing it disturbs no one): one leader at a time, a later leader has a
//! higher term, a leader cut off from etcd knows it within the lease time, and at a vacancy the
//! candidate with the highest durable sequence takes the lead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use peregrine_standby::etcd::Etcd;
use peregrine_standby::leader::{ACK_FENCE, Candidacy, EXIT_SLACK, LeaderConfig, try_lead};
use peregrine_standby::private_etcd::PrivateEtcd;

async fn start_etcd(dir: &tempfile::TempDir) -> PrivateEtcd {
    PrivateEtcd::start(&dir.path().join("etcd"))
        .await
        .expect("etcd (Debian's etcd-server) must be installed; ETCD_BIN names it otherwise")
}

fn config(endpoint: &str, node: &str, ttl: Duration) -> LeaderConfig {
    LeaderConfig {
        etcd: Etcd::new(endpoint, Duration::from_millis(500)).unwrap(),
        prefix: "/peregrine/test/".to_owned(),
        node: node.to_owned(),
        lease_ttl: ttl,
    }
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_later_leader_has_a_higher_term() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&dir).await;
    let ttl = Duration::from_secs(2);
    let (a, b) = (
        config(etcd.endpoint(), "a", ttl),
        config(etcd.endpoint(), "b", ttl),
    );
    let first = try_lead(&a).await.unwrap().unwrap();
    let refused = try_lead(&b).await.unwrap().err().unwrap().unwrap();
    assert_eq!((refused.value.as_str(), refused.term), ("a", first.term()));
    let first_term = first.term();
    first.resign().await;
    let second = try_lead(&b).await.unwrap().unwrap();
    assert!(
        second.term() > first_term,
        "{} after {first_term}",
        second.term()
    );
    assert!(!second.is_lost());
}

#[tokio::test]
async fn a_leader_cut_off_from_etcd_knows_within_the_lease_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = start_etcd(&dir).await;
    let ttl = Duration::from_secs(2);
    let mut leadership = try_lead(&config(etcd.endpoint(), "a", ttl))
        .await
        .unwrap()
        .unwrap();
    // Renewed for a while: not lost.
    tokio::time::sleep(ttl * 2).await;
    assert!(!leadership.is_lost());
    etcd.kill();
    let cut = Instant::now();
    tokio::time::timeout(ttl * 2, leadership.lost())
        .await
        .expect("the leader never noticed");
    let noticed = cut.elapsed();
    assert!(
        noticed <= ttl,
        "noticed after {noticed:?}, the lease is {ttl:?}"
    );
}

#[tokio::test]
async fn at_a_vacancy_the_candidate_with_the_highest_durable_sequence_leads() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&dir).await;
    let ttl = Duration::from_secs(2);
    let primary = try_lead(&config(etcd.endpoint(), "p", ttl))
        .await
        .unwrap()
        .unwrap();
    let term = primary.term();
    let mut behind = Candidacy::new(config(etcd.endpoint(), "s1", ttl));
    let mut ahead = Candidacy::new(config(etcd.endpoint(), "s2", ttl));
    assert!(behind.step(10, false).await.unwrap().is_none());
    assert!(ahead.step(20, false).await.unwrap().is_none());
    assert_eq!((behind.term_seen, ahead.term_seen), (term, term));
    primary.resign().await;
    // The one behind leaves it to the one ahead, which takes it.
    assert!(behind.step(10, false).await.unwrap().is_none());
    let leader = ahead.step(20, false).await.unwrap().unwrap();
    assert!(leader.term() > term);
    assert!(behind.step(10, true).await.unwrap().is_none());
    assert_eq!(behind.term_seen, leader.term());
}

#[tokio::test]
async fn a_gone_leaders_lease_is_revoked_at_once_and_its_successor_waits_out_its_fence() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&dir).await;
    let ttl = Duration::from_secs(2);
    let mut primary = try_lead(&config(etcd.endpoint(), "p", ttl))
        .await
        .unwrap()
        .unwrap();
    let mut standby = Candidacy::new(config(etcd.endpoint(), "s", ttl));
    assert!(standby.step(10, false).await.unwrap().is_none());
    // Another term than the holder's (a stale sign of death): nothing is revoked.
    assert!(!standby.depose(primary.term() + 1).await.unwrap());
    assert!(!standby.depose(0).await.unwrap());
    assert!(standby.step(10, false).await.unwrap().is_none());
    assert!(!primary.is_lost());

    let revoked = tokio::time::Instant::now();
    assert!(standby.depose(primary.term()).await.unwrap());
    let successor = standby
        .step(10, false)
        .await
        .unwrap()
        .expect("the key is free at once, not a lease time later");
    assert!(revoked.elapsed() < ttl / 2, "took {:?}", revoked.elapsed());
    assert!(successor.term() > primary.term());
    // The successor acknowledges only once the old holder, alive or not, is past its fence.
    assert!(
        successor.acknowledge_from() >= revoked + ACK_FENCE + EXIT_SLACK,
        "acknowledging {:?} after the revocation",
        successor.acknowledge_from() - revoked
    );
    // And an alive old holder does stop by then: its next renewal finds the lease gone.
    tokio::time::timeout_at(successor.acknowledge_from(), primary.lost())
        .await
        .expect("the deposed holder did not fence itself before its successor acknowledges");
}
