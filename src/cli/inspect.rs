//! `brick inspect`: each transport's state on this host, as a tree or as JSON.

use std::fmt::Write as _;

use brick::{Error, Protocol};

use super::output::to_json;
use super::Ctx;

/// The text shows every transport (NVMe-oF's only when it has a subsystem) unless `--protocol`
/// picks one; `--json` is iSCSI's unless `--protocol nvmeof`.
pub(super) fn run(ctx: &Ctx, out: &mut String) -> Result<(), Error> {
    let only = match (ctx.protocol, ctx.json) {
        (None, true) => Some(Protocol::Iscsi),
        (only, _) => only,
    };
    let state = brick::inspect(ctx.host, only)?;
    if let Some(subs) = &state.nvmeof {
        if ctx.json {
            let _ = writeln!(out, "{}", to_json(subs));
        } else if only.is_some() || !subs.is_empty() {
            print_nvme_tree(subs, out);
        }
    }
    if let Some(topo) = &state.iscsi {
        if ctx.json {
            let _ = writeln!(out, "{}", to_json(topo));
        } else {
            print_tree(topo, out);
        }
    }
    Ok(())
}

fn print_nvme_tree(subs: &[brick::nvmeof::Subsystem], out: &mut String) {
    if subs.is_empty() {
        let _ = writeln!(out, "no NVMe subsystems");
        return;
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    for s in subs {
        let _ = writeln!(out, "{} {}", s.name, opt(&s.nqn));
        for c in &s.controllers {
            let _ = writeln!(
                out,
                "  ├─ controller {} {} {} [{}]",
                c.name,
                c.transport.as_ref().map_or("?".into(), ToString::to_string),
                opt(&c.address),
                c.state.as_ref().map_or("?".into(), ToString::to_string)
            );
        }
        for h in &s.heads {
            let size = h
                .size_bytes
                .map(|b| format!(" {} MiB", b.0 >> 20))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  └─ /dev/{} nsid {} {}{size}",
                h.name,
                h.nsid.map_or("?".into(), |n| n.to_string()),
                h.wwid.as_deref().unwrap_or("?")
            );
            for (ctrl, p) in brick::nvmeof::paths_of(s, h) {
                let _ = writeln!(
                    out,
                    "       └─ {} via {ctrl} ana {}",
                    p.name,
                    p.ana_state.as_deref().unwrap_or("?")
                );
            }
        }
        // With native multipath off, each controller's namespaces are devices of their own.
        for c in &s.controllers {
            for n in c.namespaces.iter().filter(|n| !n.name.contains('c')) {
                let _ = writeln!(
                    out,
                    "  └─ /dev/{} nsid {} {} via {}",
                    n.name,
                    n.nsid.map_or("?".into(), |n| n.to_string()),
                    n.wwid.as_deref().unwrap_or("?"),
                    c.name
                );
            }
        }
    }
}

fn print_tree(topo: &[brick::SessionTopology], out: &mut String) {
    if topo.is_empty() {
        let _ = writeln!(out, "no iSCSI sessions");
        return;
    }
    for s in topo {
        let host = s.scsi_host.map(|h| format!(" host{h}")).unwrap_or_default();
        let iface = if s.session.iface == "default" {
            String::new()
        } else {
            format!(" iface {}", s.session.iface)
        };
        let _ = writeln!(
            out,
            "session {} {}{iface} {},{} {} [{}]{host}",
            s.session.id,
            s.session.transport,
            s.session.portal,
            s.session.tpgt,
            s.session.iqn,
            s.state
                .as_ref()
                .map_or("?".to_string(), ToString::to_string)
        );
        let n = s.disks.len();
        for (i, d) in s.disks.iter().enumerate() {
            let branch = if i + 1 == n { "└─" } else { "├─" };
            let size = d
                .disk
                .size_bytes
                .map(|b| format!(" {} MiB", b.0 >> 20))
                .unwrap_or_default();
            let map = d
                .map
                .as_ref()
                .map(|m| format!(" -> {} ({})", m.dev, m.name))
                .or_else(|| d.disk.holders.first().map(|h| format!(" -> {h}")))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {branch} lun {} {} /dev/{} [{}] wwn {}{size}{map}",
                d.disk.address.lun,
                d.disk.address,
                d.disk.name,
                d.disk
                    .state
                    .as_ref()
                    .map_or("?".to_string(), ToString::to_string),
                d.disk.wwid.as_ref().map_or("?", |w| w.as_str()),
            );
        }
    }
}
