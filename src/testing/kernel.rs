//! The fake kernel operations (flush, sysfs writes, device-mapper requests) on the fake tree,
//! with failures a test scripts.

use super::*;

/// Scripted failures of a kernel operation: device -> (error, how many more fail; None: all).
pub(super) type Failures = BTreeMap<String, (KernelError, Option<usize>)>;

/// The error the next operation on `name` fails with, if one is scripted (counting it down).
pub(super) fn next_failure(failures: &mut Failures, name: &str) -> Option<KernelError> {
    let (e, left) = failures.get_mut(name)?;
    match left {
        None => Some(e.clone()),
        Some(0) => None,
        Some(n) => {
            *n -= 1;
            Some(e.clone())
        }
    }
}

pub(super) struct FakeKernel {
    pub(super) root: PathBuf,
    pub(super) world: Arc<Mutex<World>>,
}

impl Kernel for FakeKernel {
    fn dm_dev_of_uuid(&self, _control: &Path, uuid: &str) -> Result<Option<String>, KernelError> {
        lock(&self.world).dm_status_asked += 1;
        Ok(dm_by_uuid(&self.root, uuid).map(|(dev, _)| dev))
    }

    fn dm(
        &self,
        _control: &Path,
        uuid: &str,
        request: DmRequest<'_>,
        _timeout: Duration,
    ) -> Result<(), KernelError> {
        // Requests are addressed by uuid, as the kernel takes them; they are recorded, and
        // failures scripted, by the map's name.
        let found = dm_by_uuid(&self.root, uuid);
        let name = found.as_ref().map_or(uuid, |(_, n)| n.as_str());
        let mut w = lock(&self.world);
        w.dm_calls.push((
            name.to_string(),
            match request {
                DmRequest::Remove => "remove".to_string(),
                DmRequest::Message(m) => format!("message {m}"),
            },
        ));
        w.events.push(match request {
            DmRequest::Remove => format!("dm remove {name}"),
            DmRequest::Message(_) => format!("dm message {name}"),
        });
        if let Some(e) = next_failure(&mut w.dm_failures, name) {
            return Err(e);
        }
        let Some((dev, _)) = found else {
            return Err(KernelError::from_errno(libc::ENXIO));
        };
        if let DmRequest::Remove = request {
            let caught = w.probe_caught_on.iter().any(|d| {
                self.root
                    .join(format!("sys/block/{dev}/slaves/{d}"))
                    .exists()
            });
            if caught {
                return Err(KernelError::from_errno(libc::EBUSY));
            }
            let holders = self.root.join(format!("sys/block/{dev}/holders"));
            if fs::read_dir(holders).is_ok_and(|mut d| d.next().is_some()) {
                return Err(KernelError::from_errno(libc::EBUSY));
            }
            if open_by_a_process(&self.root, &dev) {
                return Err(KernelError::from_errno(libc::EBUSY));
            }
            remove_dm(&self.root, &dev);
        }
        Ok(())
    }

    fn fabrics_connect(
        &self,
        _dev: &Path,
        options: &str,
        _timeout: Duration,
    ) -> Result<String, KernelError> {
        super::nvme::fabrics_connect(&self.root, &mut lock(&self.world), options)
    }

    fn read_at(
        &self,
        dev: &Path,
        ranges: &[(u64, usize)],
        _timeout: Duration,
    ) -> Result<Vec<u8>, KernelError> {
        super::nvme::read_device(&self.root, &mut lock(&self.world), dev, ranges)
    }

    fn flush_buffers(&self, dev: &Path, _timeout: Duration) -> Result<(), KernelError> {
        let name = dev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut w = lock(&self.world);
        w.flushes.push(name.clone());
        w.events.push(format!("flush {name}"));
        super::nvme::after_flush(&self.root, &mut w);
        if let Some(e) = next_failure(&mut w.flush_failures, &name) {
            return Err(e);
        }
        if !dev.exists() {
            return Err(KernelError::Os(
                "No such file or directory (os error 2)".into(),
            ));
        }
        Ok(())
    }

    fn flush_and_sync(&self, dev: &Path, timeout: Duration) -> Result<(), KernelError> {
        let name = dev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.flush_buffers(dev, timeout)?;
        lock(&self.world).syncs.push(name);
        Ok(())
    }

    fn write_attr(&self, path: &Path, value: &str, timeout: Duration) -> Result<(), KernelError> {
        let sys = self.root.join("sys");
        let rel = path
            .strip_prefix(&sys)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.display().to_string());
        hold_delete_back(&self.world, &rel);
        let mut w = lock(&self.world);
        w.attr_writes.push((rel.clone(), value.to_string()));
        if let Some(r) = super::nvme::write_ctrl_attr(&self.root, &mut w, &rel, timeout) {
            return r;
        }
        if !path.exists() {
            return Err(KernelError::Os(
                "No such file or directory (os error 2)".into(),
            ));
        }
        // block/sdX/device/delete
        let parts: Vec<&str> = rel.split('/').collect();
        if let ["block", name, "device", "delete"] = parts.as_slice() {
            w.events.push(format!("delete {name}"));
            if w.stuck_deletes.iter().any(|s| s == name) {
                return Err(KernelError::TimedOut(timeout));
            }
            let logout: Vec<u32> = w
                .logout_on_delete
                .iter()
                .filter(|(d, _)| d == name)
                .map(|(_, s)| *s)
                .collect();
            remove_disk(&self.root, name, w.maps_reloaded_late);
            let again: Vec<(u32, u64, String, String)> = w
                .rescan_on_delete
                .iter()
                .filter(|r| r.0 == *name)
                .map(|r| (r.1, r.2, r.3.clone(), r.4.clone()))
                .collect();
            for (session, lun, new, wwid) in again {
                if let Some(hostno) = w.sessions.get(&session).map(|s| s.0) {
                    add_disk(&self.root, hostno, session, lun, &new, &wwid);
                }
            }
            for id in logout {
                if let Some((portal, iqn)) = remove_session(&self.root, &mut w, id) {
                    remove_records(&self.root, &iqn, &portal.parse().expect("a portal"));
                }
            }
            return Ok(());
        }
        // block/sdX/device/rescan: the disk's identity is read again from its target.
        if let ["block", name, "device", "rescan"] = parts.as_slice() {
            w.events.push(format!("rescan {name}"));
            if let Some(wwid) = current_wwid_on_target(&self.root, &w, name) {
                write(&path.with_file_name("wwid"), &format!("{wwid}\n"));
            }
            return Ok(());
        }
        // class/scsi_host/hostH/scan with "- - L"
        if let ["class", "scsi_host", h, "scan"] = parts.as_slice() {
            let hostno: u32 = h.trim_start_matches("host").parse().unwrap_or(u32::MAX);
            let lun = value.split_whitespace().nth(2).and_then(|l| l.parse().ok());
            if let Some(lun) = lun {
                scan(&self.root, &mut w, hostno, lun);
            }
            return Ok(());
        }
        fs::write(path, value).map_err(|e| KernelError::Os(e.to_string()))
    }
}

/// The delete of a disk held back (see [`FakeHost::delete_waits_for_a_logout`]) waits, outside
/// the world's lock, until a session has been logged out, up to 5 s of real time, and records
/// whether one was.
fn hold_delete_back(world: &Mutex<World>, rel: &str) {
    let held = |w: &World| {
        w.held_deletes
            .iter()
            .any(|d| rel == format!("block/{d}/device/delete"))
    };
    if !held(&lock(world)) {
        return;
    }
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let saw = loop {
        let saw = lock(world).events.iter().any(|e| e.contains("logout "));
        if saw || std::time::Instant::now() >= until {
            break saw;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    lock(world).held_delete_saw_a_logout = Some(saw);
}
