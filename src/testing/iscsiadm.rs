//! The fake command runner: iscsiadm (login, logout, discovery records) and multipath, played
//! against the fake tree, and the scripts a test adds.

use super::*;

pub(super) struct FakeRunner {
    pub(super) root: PathBuf,
    pub(super) world: Arc<Mutex<World>>,
}

impl FakeRunner {
    fn default_response(&self, w: &mut World, argv: &[String]) -> Result<Output, CmdError> {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        match a.as_slice() {
            // The multipath tool, without udev's WWID: it lists only the disks udev has
            // described, so it builds (or grows) the map of the device's WWID from that device
            // and those disks of the WWID udev has a record of, reading the WWID from sysfs;
            // libdevmapper must not wait for udev (DM_DISABLE_UDEV).
            ["env", "DM_DISABLE_UDEV=1", "multipath", dev] => {
                let name = Path::new(dev)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !self
                    .root
                    .join(format!("sys/block/{name}/device/wwid"))
                    .exists()
                {
                    return Ok(Output::exit(1, "", &format!("{dev}: no such device\n")));
                }
                if w.multipathd_builds_no_maps {
                    return Ok(Output::exit(1, "", &format!("{dev}: ignoring map\n")));
                }
                join_map(&self.root, &name);
                let sys = self.root.join("sys/block");
                let wwid_of =
                    |d: &str| fs::read_to_string(sys.join(format!("{d}/device/wwid"))).ok();
                let want = wwid_of(&name);
                for e in fs::read_dir(&sys).into_iter().flatten().flatten() {
                    let d = e.file_name().to_string_lossy().into_owned();
                    if d != name
                        && d.starts_with("sd")
                        && has_udev_record(&self.root, &d)
                        && wwid_of(&d) == want
                    {
                        join_map(&self.root, &d);
                    }
                }
                Ok(Output::exit(0, "", ""))
            }
            ["iscsiadm", "-m", "session", "-r", id, "--logout"] => {
                w.events.push(format!("logout {id}"));
                let id: u32 = id.parse().unwrap_or(0);
                let Some((portal, iqn)) = remove_session(&self.root, w, id) else {
                    return Ok(Output::exit(21, "", "iscsiadm: No session found.\n"));
                };
                Ok(Output::exit(
                    0,
                    &format!(
                        "Logging out of session [sid: {id}, target: {iqn}, portal: {portal}]\n"
                    ),
                    "",
                ))
            }
            ["iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "-I", iface, "--login"] => {
                let Ok(p) = portal.parse::<Portal>() else {
                    return Ok(Output::exit(7, "", "bad portal"));
                };
                let dir = self.root.join(format!("etc/iscsi/nodes/{iqn}"));
                let record = fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .find(|e| is_record_of(&e.file_name().to_string_lossy(), &p))
                    .and_then(|e| record_text(&e.path()));
                // A record is on the interface it names (a discovery's, with no name, on default).
                let on = |r: &str, k: &str| {
                    r.lines().find_map(|l| {
                        l.split_once('=')
                            .filter(|(a, _)| a.trim() == k)
                            .map(|(_, v)| v.trim().to_string())
                    })
                };
                let Some(record) = record.filter(|r| {
                    on(r, "iface.iscsi_ifacename").unwrap_or_else(|| "default".into()) == *iface
                }) else {
                    return Ok(Output::exit(21, "", "iscsiadm: No records found\n"));
                };
                let transport = on(&record, "iface.transport_name").unwrap_or_else(|| "tcp".into());
                let Some(t) = w
                    .targets
                    .iter()
                    .find(|t| t.portal == *portal && t.iqn == *iqn)
                    .cloned()
                else {
                    return Ok(Output::exit(
                        8,
                        "",
                        "iscsiadm: Could not login: target not found\n",
                    ));
                };
                if t.dead {
                    return Ok(Output::exit(
                        8,
                        "",
                        "iscsiadm: Could not login: connection timed out\n",
                    ));
                }
                let key = |k: &str| {
                    record.lines().find_map(|l| {
                        l.split_once('=')
                            .filter(|(a, _)| a.trim() == k)
                            .map(|(_, v)| v.trim().to_string())
                    })
                };
                if let Some((user, pass)) = &t.chap {
                    if key("node.session.auth.username").as_ref() != Some(user)
                        || key("node.session.auth.password").as_ref() != Some(pass)
                    {
                        return Ok(Output::exit(
                            24,
                            "",
                            "iscsiadm: Login failed to authenticate\n",
                        ));
                    }
                }
                let same = |id: &u32, s: &(u32, String, String, u32)| {
                    s.1 == *portal && s.2 == *iqn && session_iface(&self.root, *id) == *iface
                };
                if w.sessions.iter().any(|(id, s)| same(id, s)) {
                    return Ok(Output::exit(15, "", "iscsiadm: session exists\n"));
                }
                let id = w.sessions.keys().max().map_or(1, |m| m + 1);
                add_session_on(&self.root, w, id, portal, iqn, iface, &transport);
                Ok(Output::exit(
                    0,
                    &format!(
                        "Login to [iface: {iface}, target: {iqn}, portal: {portal}] successful.\n"
                    ),
                    "",
                ))
            }
            _ => Ok(Output::exit(
                127,
                "",
                &format!("fake host: no script for {}\n", argv.join(" ")),
            )),
        }
    }
}

pub(super) fn walk_block_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_symlink() {
            continue;
        }
        if e.file_name() == "block" {
            out.extend(
                fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|b| b.file_name().to_string_lossy().into_owned()),
            );
        } else if p.is_dir() {
            out.extend(walk_block_names(&p));
        }
    }
    out
}

impl FakeRunner {
    /// A login to a portal held back (see [`FakeHost::login_waits_for_a_handed_path`]) waits,
    /// outside the world's lock, until a path has been handed to multipathd, up to 5 s of real
    /// time, and records whether one was.
    fn hold_login_back(&self, argv: &[String]) {
        let is_held = |w: &World| {
            argv.last().is_some_and(|a| a == "--login")
                && argv
                    .iter()
                    .position(|a| a == "-p")
                    .and_then(|i| argv.get(i + 1))
                    .is_some_and(|p| w.held_logins.contains(p))
        };
        if !is_held(&lock(&self.world)) {
            return;
        }
        let until = std::time::Instant::now() + Duration::from_secs(5);
        let handed = loop {
            let handed = lock(&self.world)
                .multipathd_cmds
                .iter()
                .any(|c| c.starts_with("add path "));
            if handed || std::time::Instant::now() >= until {
                break handed;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        lock(&self.world).held_login_saw_a_handed_path = Some(handed);
    }
}

impl Runner for FakeRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        let argv = cmd.argv().to_vec();
        self.hold_login_back(&argv);
        let mut w = lock(&self.world);
        w.calls.push(argv.clone());
        let mut i = 0;
        while i < w.scripts.len() {
            if (w.scripts[i].matches)(&argv) {
                let r = (w.scripts[i].respond)(&argv);
                if let Some(n) = w.scripts[i].uses.as_mut() {
                    *n -= 1;
                    if *n == 0 {
                        w.scripts.remove(i);
                    }
                }
                return r.map(|o| Output {
                    stdout: cmd.mask(&o.stdout),
                    stderr: cmd.mask(&o.stderr),
                    ..o
                });
            }
            i += 1;
        }
        if argv.first().is_some_and(|p| p == "mdadm") {
            return Ok(super::nvme::fake_mdadm(&self.root, &mut w, &argv));
        }
        self.default_response(&mut w, &argv)
    }
}

/// The fake iscsid's management socket: logouts, when the test says iscsid answers.
pub(super) struct FakeIscsid {
    pub(super) root: PathBuf,
    pub(super) world: Arc<Mutex<World>>,
}

impl crate::iscsi::iscsid::Iscsid for FakeIscsid {
    fn logout(&self, sid: SessionId, _timeout: Duration) -> crate::iscsi::iscsid::Logout {
        use crate::iscsi::iscsid::Logout;
        let mut w = lock(&self.world);
        if let Some(logs_out) = w.iscsid_answers_late {
            w.events.push(format!("iscsid logout {sid} (no answer)"));
            if logs_out {
                remove_session(&self.root, &mut w, sid.0);
            }
            return Logout::NoAnswer("fake host: iscsid answers too late".into());
        }
        if !w.iscsid_answers {
            return Logout::Unavailable("fake host: iscsid's socket is not faked".into());
        }
        w.events.push(format!("iscsid logout {sid}"));
        remove_session(&self.root, &mut w, sid.0);
        Logout::Done
    }
}
