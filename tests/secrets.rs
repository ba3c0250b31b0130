//! Secrets in a connect's logs, in a test binary of its own: the logs are caught by a
//! process-wide subscriber (the connect's path threads log too), and tracing caches per log site
//! whether anyone listens, which other tests running at the same time in the same process would
//! decide first.

mod common;
use brick::iscsi::{connect_volume, ConnectOptions};
use brick::testing::FakeHost;
use brick::{ConnectionProperties, Tuning};
use common::Capture;

const IQN: &str = "iqn.2003-01.org.linux-iscsi.lab:tgt1";
const WWID1: &str = "naa.6001405deadbeef00010000000000000";
const P1: &str = "127.0.0.1:3260";
const P2: &str = "127.0.0.2:3260";
const MP: ConnectOptions = ConnectOptions {
    multipath: true,
    iface: None,
};

#[test]
fn chap_secrets_never_reach_a_connects_debug_logs_or_its_result() {
    const SECRET: &str = "Sup3r-S3cret-PW";
    const REVERSE: &str = "R3verse-S3cret";
    let f = FakeHost::new();
    f.target(P1, IQN, &[(1, WWID1)])
        .target(P2, IQN, &[(1, WWID1)])
        .target_chap("user1", SECRET);
    let p = ConnectionProperties::from_json(&format!(
        r#"{{"target_portal":"{P1}","target_iqn":"{IQN}","target_lun":1,"volume_id":"v1",
            "target_portals":["{P1}","{P2}"],"target_iqns":["{IQN}","{IQN}"],"target_luns":[1,1],
            "auth_method":"CHAP","auth_username":"user1","auth_password":"{SECRET}",
            "auth_reverse_username":"tgt","auth_reverse_password":"{REVERSE}"}}"#
    ))
    .unwrap();
    let buf = Capture::default();
    let sink = buf.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .init();
    let result = connect_volume(&f.host(), &p, MP, &Tuning::default());
    let logs = buf.text();
    assert!(
        logs.contains("logged in"),
        "the path threads' logs were captured: {logs}"
    );
    let c = result.unwrap();
    for secret in [SECRET, REVERSE] {
        assert!(!logs.contains(secret), "{logs}");
        assert!(!format!("{c:?}").contains(secret));
        assert!(!format!("{p:?}").contains(secret));
    }
}
