//! Leadership through a real etcd (Debian's etcd-server, a private instance per test on free
//! loopback ports, so killing it disturbs no one): one leader at a time, a later leader has a
//! higher term, a leader cut off from etcd knows it within the lease time, and at a vacancy the
//! candidate with the highest durable sequence takes the lead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use peregrine_standby::etcd::Etcd;
use peregrine_standby::leader::{Candidacy, LeaderConfig, try_lead};
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
