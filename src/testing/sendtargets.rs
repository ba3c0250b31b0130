//! The fake SendTargets discovery: what the fake targets offer.

use super::*;
use crate::iscsi::sendtargets::{DiscoveryError, SendTargets};

pub(super) struct FakeSendTargets {
    pub(super) world: Arc<Mutex<World>>,
}

impl SendTargets for FakeSendTargets {
    fn send_targets(
        &self,
        portal: &Portal,
        _initiator: &crate::types::Iqn,
        _timeout: Duration,
    ) -> Result<Vec<(Portal, crate::types::Iqn)>, DiscoveryError> {
        let mut w = lock(&self.world);
        let key = portal.to_string();
        w.discoveries.push(key.clone());
        let entries: Vec<(String, String)> = match w.discovery_answers.get(&key) {
            Some(e) => e.clone(),
            None => {
                let here: Vec<&FakeTarget> = w.targets.iter().filter(|t| t.portal == key).collect();
                if here.is_empty() || here.iter().any(|t| t.dead) {
                    return Err(DiscoveryError::Connect {
                        portal: *portal,
                        source: std::io::ErrorKind::ConnectionRefused.into(),
                    });
                }
                here.iter()
                    .map(|t| (t.portal.clone(), t.iqn.clone()))
                    .collect()
            }
        };
        Ok(entries
            .into_iter()
            .filter_map(|(p, i)| Some((p.parse().ok()?, i.parse().ok()?)))
            .collect())
    }
}
