//! The multipath map of a connect: the WWID registered with multipath-tools, the paths handed to
//! multipathd, the wait for the map, and udev told of its paths.

use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::block::multipath::{self, DmMap};
use crate::error::Result;
use crate::host::Host;
use crate::iscsi::tuning::Tuning;
use crate::retry::Pause;
use crate::time::Progress;

/// Registers the volume's WWID with multipath-tools before any path is handed over, as
/// `multipath -a` (and os-brick) would: multipathd then builds the map whatever `find_multipaths`
/// says, and does not send a "change" uevent on the path it builds it from (udev would run every
/// disk rule on it again, about 0.65 s of CPU per volume in the lab); brick sends one where it is
/// needed ([`tell_udev_of_the_map`]). Returns whether brick added it (a connect that fails takes
/// it out again). A failure is logged, not fatal: with
/// `find_multipaths no` or `greedy` the map comes anyway.
pub(super) fn register_wwid(host: &Host, wwid: &crate::types::Wwid, tuning: &Tuning) -> bool {
    match multipath::remember_wwid(host, wwid, tuning.command_timeout) {
        Ok(added) => {
            debug!(wwn = %wwid, added, "WWID registered in multipath's wwids file");
            added
        }
        Err(e) => {
            warn!(wwn = %wwid, error = %e, "WWID not registered with multipath: with find_multipaths strict or yes, no map may come");
            false
        }
    }
}

/// Tells multipathd about each new path (`add path sdX` on its control socket) instead of waiting
/// for it to learn of them from udev: it is faster, and works where udev is slow or absent. A path
/// multipathd knows already is not harmed. Returns the paths multipathd built the map from: those
/// in the map of `wwid` right after it took the first path (a new map takes every path of the
/// WWID multipathd holds already), or that path alone when no map shows yet. `None` when no map
/// will come: multipathd is unreachable or blacklists every path.
pub(super) fn hand_paths_to_multipathd(
    host: &Host,
    wwid: &crate::types::Wwid,
    paths: &[String],
    tuning: &Tuning,
) -> Option<Vec<String>> {
    let mut built_from = None;
    let mut no_wwid = Vec::new();
    for p in paths {
        match host.multipathd_cmd(&format!("add path {p}"), tuning.command_timeout) {
            Ok(reply) if reply.contains("blacklisted") => {
                debug!(path = %p, "multipathd blacklists the path")
            }
            // Without udevd, multipathd finds no WWID for the path (see build_map_without_udev).
            Ok(reply) if reply == "fail" && !host.udevd_runs() => {
                no_wwid.push(p.clone());
            }
            Ok(_) if built_from.is_none() => {
                // The map that holds this path, read from its holders only.
                let map = multipath::map_holding(host, wwid, std::slice::from_ref(p))
                    .ok()
                    .flatten();
                built_from = Some(match map {
                    Some(m) => m.slaves,
                    None => vec![p.clone()],
                });
            }
            Ok(_) => {}
            // Without multipathd no map comes: the volume is the bare disk.
            Err(e) => warn!(path = %p, error = %e, "multipathd not told of the path"),
        }
    }
    let built = (!no_wwid.is_empty())
        .then(|| multipath::build_map_without_udev(host, wwid, paths, tuning.command_timeout));
    match built {
        Some(Ok(Some(map))) => Some(map.slaves),
        Some(Ok(None)) => built_from,
        Some(Err(e)) => {
            warn!(error = %e, "no udevd, and multipath did not build the map");
            built_from
        }
        None => built_from,
    }
}

/// Makes sure udev knows the map's paths as paths of a map: its rules leave such a disk to the
/// map (no file system or LVM scan of it, no /dev/disk links to it instead of the map), and they
/// learn it from `multipath -u`, which says so only once the WWID is registered or the map
/// exists. multipathd asks udev to look again ("change") at each path it adds to a map that
/// exists, unless udev calls it a path of a map already, and at the paths of a map it builds for
/// a WWID it records itself. brick records the WWID, so the paths the map was built from
/// (`built_from`) are brick's to ask about: one udev called no path of a map, and one udev has
/// not finished with yet when brick registered the WWID just now (its `multipath -u` may have
/// run before). Nothing else: each look costs every disk rule once more (about 0.65 s of CPU in
/// the lab). Failures are logged, not fatal.
pub(super) fn tell_udev_of_the_map(
    host: &Host,
    map: &DmMap,
    built_from: &[String],
    registered: bool,
) {
    for p in map.slaves.iter().filter(|p| built_from.contains(p)) {
        let ask = match multipath::udev_calls_it_a_path(host, p) {
            Ok(Some(said)) => !said,
            Ok(None) => registered,
            Err(e) => {
                debug!(path = %p, error = %e, "udev's record of the path not read");
                false
            }
        };
        if ask {
            match multipath::ask_udev_to_look_again(host, p) {
                Ok(()) => debug!(path = %p, map = %map.dev, "udev asked to look at the path again"),
                Err(e) => {
                    warn!(path = %p, error = %e, "udev not asked to look at the path again: it may not know the disk is a path of a map")
                }
            }
        }
    }
}

/// Waits for the multipath map of `wwid` (then briefly for every path to join it); when
/// multipathd has built none after `map_udev_wait`, builds it as without udevd
/// ([`multipath::build_map_without_udev`]: the `multipath` tool reads the WWID from sysfs, and
/// `add map` gives it to multipathd), and waits for the rest of `map_deadline`. Whether udev
/// works is judged by what it delivers, not by whether udevd runs: a udevd whose SCSI rules are
/// slow or failing gives multipathd no WWID for the new paths ("failed to get udev uid"), and
/// multipathd builds the map only after its own sysfs fallback, some 30 s later. `built_from`
/// becomes the paths of the map brick built. `Ok(None)`: no map by the deadline.
pub(super) fn wait_or_build_map(
    host: &Host,
    wwid: &crate::types::Wwid,
    paths: &[String],
    built_from: &mut Vec<String>,
    tuning: &Tuning,
) -> Result<Option<DmMap>> {
    let start = host.time().now();
    let deadline = start + tuning.map_deadline;
    let first = tuning.map_udev_wait.min(tuning.map_deadline);
    if let Some(m) = wait_for_map(host, wwid, paths, start + first, deadline, tuning)? {
        return Ok(Some(m));
    }
    if host.time().now() >= deadline {
        return Ok(None);
    }
    debug!(wwn = %wwid, waited = ?first, "multipathd built no map: building it with the WWID read from sysfs");
    match multipath::build_map_without_udev(host, wwid, paths, tuning.command_timeout) {
        Ok(Some(m)) => *built_from = m.slaves,
        Ok(None) => warn!(wwn = %wwid, "multipath built no map of the paths either"),
        Err(e) => warn!(wwn = %wwid, error = %e, "multipath did not build the map"),
    }
    wait_for_map(host, wwid, paths, deadline, deadline, tuning)
}

/// Waits for the multipath map of `wwid` until `no_map_by` (`None` when none shows by then),
/// then briefly for every path to join it, until `deadline` at the latest.
fn wait_for_map(
    host: &Host,
    wwid: &crate::types::Wwid,
    paths: &[String],
    no_map_by: Instant,
    deadline: Instant,
    tuning: &Tuning,
) -> Result<Option<DmMap>> {
    let start = host.time().now();
    let mut pause = Pause::new(Duration::from_millis(5), Duration::from_millis(50));
    let mut grace_end = None;
    let mut progress = Progress::new(
        format!("the multipath map of {wwid}"),
        start,
        Some(deadline.saturating_duration_since(start)),
    );
    // Each poll reads the paths' holders only; after a second without a map, and every second
    // then, every map of the host, for a map multipathd built from a disk of the WWID that is
    // not one of these paths.
    let mut full_scan_at = start + Duration::from_secs(1);
    let watch = host.watch_uevents();
    loop {
        let now = host.time().now();
        let mut map = multipath::map_holding(host, wwid, paths)?;
        if map.is_none() && now >= full_scan_at {
            map = multipath::maps_of(host, wwid)?.into_iter().next();
            full_scan_at = now + Duration::from_secs(1);
        }
        progress.tick(now);
        if let Some(m) = &map {
            if paths.iter().all(|p| m.slaves.contains(p)) {
                return Ok(map);
            }
            if grace_end.is_none() {
                // multipathd built the map from the first path it saw, and holds the others back
                // until udev has announced the new map (under TCG with udevd, 1-2 s later).
                // `add map NAME` is that announcement: multipathd then does its delayed actions
                // at once (adds the held-back paths), as its own timeout would much later. The
                // held-back paths are not handed over again: multipathd answers each `add path`
                // of a path it holds with a "change" uevent on it (udev has not described the
                // path yet), and udev then runs every disk rule once more (about 0.9 s of CPU
                // per volume in the lab).
                if let Err(e) =
                    host.multipathd_cmd(&format!("add map {}", m.name), tuning.command_timeout)
                {
                    debug!(map = %m.name, error = %e, "multipathd not told of the map");
                }
            }
            let end = *grace_end.get_or_insert(now + tuning.map_paths_grace);
            if now >= end || now >= deadline {
                debug!(map = %m.dev, slaves = ?m.slaves, "not every path joined the map yet");
                return Ok(map);
            }
        } else if now >= no_map_by {
            return Ok(None);
        }
        host.pause(watch.as_ref(), pause.take());
    }
}
