//! The fake SendTargets discovery: what the fake targets offer.

use super::*;

pub(super) struct FakeSendTargets {
    pub(super) world: Arc<Mutex<World>>,
}

impl crate::host::SendTargets for FakeSendTargets {
    fn send_targets(
        &self,
        portal: &Portal,
        _initiator: &crate::types::Iqn,
        _timeout: Duration,
    ) -> Result<Vec<(Portal, crate::types::Iqn)>, String> {
        let mut w = lock(&self.world);
        let key = portal.to_string();
        w.discoveries.push(key.clone());
        let entries: Vec<(String, String)> = match w.discovery_answers.get(&key) {
            Some(e) => e.clone(),
            None => {
                let here: Vec<&FakeTarget> = w.targets.iter().filter(|t| t.portal == key).collect();
                if here.is_empty() || here.iter().any(|t| t.dead) {
                    return Err(format!("cannot connect to {key}: Connection refused"));
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
