//! The fake multipathd, answering on its "socket" as multipath-tools 0.9.4 does.

use super::*;

pub(super) struct FakeMultipathd {
    pub(super) root: PathBuf,
    pub(super) world: Arc<Mutex<World>>,
}

impl crate::host::Multipathd for FakeMultipathd {
    fn command(
        &self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<String, crate::host::MultipathdError> {
        let mut w = lock(&self.world);
        w.multipathd_cmds.push(cmd.to_string());
        w.multipathd_timeouts.push((cmd.to_string(), timeout));
        if w.multipathd_down {
            return Err(crate::host::MultipathdError::Unreachable {
                source: std::io::ErrorKind::ConnectionRefused.into(),
            });
        }
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            ["add", "path", name] => {
                let sys = self.root.join("sys/block");
                if w.no_wwid_paths.iter().any(|p| p == name) {
                    return Ok("fail".into());
                }
                if w.udev_gives_no_uid && !udev_record_has_serial(&self.root, name) {
                    w.no_wwid_paths.push(name.to_string());
                    return Ok("fail".into());
                }
                let wwid = fs::read_to_string(sys.join(format!("{name}/device/wwid")))
                    .ok()
                    .and_then(|raw| Wwid::from_sysfs(&raw).ok());
                if w.multipathd_builds_no_maps {
                    return Ok("ok".into());
                }
                if let Some(map) = wwid.map(|w| w.as_str().to_string()) {
                    let in_map = fs::read_dir(sys.join(format!("{name}/holders")))
                        .is_ok_and(|mut d| d.next().is_some());
                    if !in_map && w.maps_waiting_for_udev.contains(&map) {
                        w.delayed_paths.push((name.to_string(), map));
                        return Ok("ok".into());
                    }
                    let new = dm_by_name(&self.root, &map).is_none();
                    let known = fs::read_to_string(self.root.join("etc/multipath/wwids"))
                        .is_ok_and(|t| t.lines().any(|l| l.trim() == format!("/{map}/")));
                    if new && w.find_multipaths_strict && !known {
                        // Held without a map ("only one path"), until the WWID is known.
                        w.held_paths.push((name.to_string(), map));
                        return Ok("ok".into());
                    }
                    join_map(&self.root, name);
                    if new {
                        // A new map takes every held path of its WWID at once.
                        join_waiting(&self.root, &mut w.held_paths, &map);
                    }
                    if new && dm_by_name(&self.root, &map).is_some() {
                        w.maps_waiting_for_udev.push(map);
                    }
                }
                Ok("ok".into())
            }
            ["add", "map", map] => {
                let Some(dev) = dm_by_name(&self.root, map) else {
                    return Ok("fail".into());
                };
                // Adopting the map, multipathd gives its paths the map's WWID.
                let slaves: Vec<String> =
                    fs::read_dir(self.root.join(format!("sys/block/{dev}/slaves")))
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                w.no_wwid_paths.retain(|p| !slaves.contains(p));
                w.maps_waiting_for_udev.retain(|m| m != map);
                join_waiting(&self.root, &mut w.delayed_paths, map);
                Ok("ok".into())
            }
            ["resize", "map", _] => Ok("ok".into()),
            // `show paths raw format "%d %m %t"`: each path of a map, its map, its dm state.
            ["show", "paths", "raw", "format", ..] => {
                let sys = self.root.join("sys/block");
                let mut lines = Vec::new();
                for e in fs::read_dir(&sys).into_iter().flatten().flatten() {
                    let dm = e.file_name().to_string_lossy().into_owned();
                    let Ok(name) = fs::read_to_string(sys.join(format!("{dm}/dm/name"))) else {
                        continue;
                    };
                    for s in fs::read_dir(sys.join(format!("{dm}/slaves")))
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let p = s.file_name().to_string_lossy().into_owned();
                        let state = fs::read_to_string(sys.join(format!("{p}/device/state")))
                            .unwrap_or_default();
                        let active = state.trim() == "running" || w.multipathd_active.contains(&p);
                        let t = if active { "active" } else { "failed" };
                        lines.push(format!("{p} {} {t}", name.trim()));
                    }
                }
                Ok(lines.join("\n"))
            }
            ["del", "path", name] => {
                let sys = self.root.join("sys/block");
                for h in fs::read_dir(sys.join(format!("{name}/holders")))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let dm = h.file_name().to_string_lossy().into_owned();
                    let _ = fs::remove_file(sys.join(format!("{dm}/slaves/{name}")));
                    let _ = fs::remove_file(h.path());
                }
                Ok("ok".into())
            }
            _ => Ok("fail".into()),
        }
    }
}
