//! This host's NVMe identity: its host NQN and host ID, from `/etc/nvme/hostnqn` and
//! `/etc/nvme/hostid`, made when missing as nvme-cli's `gen-hostnqn` and os-brick make them:
//! `nqn.2014-08.org.nvmexpress:uuid:<UUID>`, with the machine's DMI product UUID when it has
//! one, else a random one; the host ID is the same UUID.

use std::io::Write;

use super::props::{Nqn, Uuid};
use crate::error::{Error, Result};
use crate::host::Host;

/// The host NQN and host ID brick connects with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// The host NQN.
    pub nqn: Nqn,
    /// The host ID (a UUID).
    pub id: Uuid,
    /// The machine's DMI product UUID, when it has one (os-brick's `system uuid`).
    pub system_uuid: Option<String>,
}

/// Reads this host's NVMe identity, writing `hostnqn` and `hostid` first when they are missing
/// (under a host-wide lock, so that two brick processes never write two identities).
///
/// # Errors
/// [`Error::Io`] when the files cannot be read or written; [`Error::InvalidInput`] when one
/// holds something that is not an NQN or a UUID (it is not replaced: an administrator wrote it).
pub fn host_identity(host: &Host) -> Result<HostIdentity> {
    let system_uuid = host
        .read_attr_opt(&host.sys("class/dmi/id/product_uuid"))
        .ok()
        .flatten()
        .filter(|u| Uuid::parse(u).is_ok_and(|u| !u.is_nil()));
    let nqn_file = host.nvme_conf("hostnqn");
    let id_file = host.nvme_conf("hostid");
    let read = |host: &Host| -> Result<(Option<String>, Option<String>)> {
        let nonempty =
            |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Ok((
            nonempty(host.read_attr_opt(&nqn_file)?),
            nonempty(host.read_attr_opt(&id_file)?),
        ))
    };
    let (mut nqn, mut id) = read(host)?;
    if nqn.is_none() || id.is_none() {
        let _lock = host.lock("nvme-host-identity")?;
        (nqn, id) = read(host)?;
        let uuid = match (&system_uuid, &id) {
            (_, Some(i)) => i.clone(),
            (Some(s), None) => s.to_lowercase(),
            (None, None) => random_uuid(host)?,
        };
        if nqn.is_none() {
            let text = format!("nqn.2014-08.org.nvmexpress:uuid:{uuid}");
            write_file(&nqn_file, &text)?;
            nqn = Some(text);
        }
        if id.is_none() {
            write_file(&id_file, &uuid)?;
            id = Some(uuid);
        }
    }
    let nqn_text = nqn.unwrap_or_default();
    let id_text = id.unwrap_or_default();
    Ok(HostIdentity {
        nqn: nqn_text
            .parse()
            .map_err(|e| Error::invalid(nqn_file.display().to_string(), e))?,
        id: Uuid::parse(&id_text).map_err(|e| Error::invalid(id_file.display().to_string(), e))?,
        system_uuid,
    })
}

/// A random UUID from the kernel (`/proc/sys/kernel/random/uuid`).
fn random_uuid(host: &Host) -> Result<String> {
    let p = host.proc("sys/kernel/random/uuid");
    let u = host.read_attr(&p)?;
    Uuid::parse(&u)
        .map(|u| u.to_string())
        .map_err(|e| Error::io(&p, std::io::Error::other(e)))
}

/// Writes `text` and a new line to `path` (mode 0644), whole or not at all: a temporary file
/// renamed over it.
fn write_file(path: &std::path::Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension("brick-tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_from_the_dmi_uuid_when_missing_then_kept() {
        let f = crate::testing::FakeHost::new();
        let dmi = f.root().join("sys/class/dmi/id");
        std::fs::create_dir_all(&dmi).unwrap();
        std::fs::write(
            dmi.join("product_uuid"),
            "4C4C4544-0033-3010-8044-B4C04F4E3032\n",
        )
        .unwrap();
        let host = f.host();
        let id = host_identity(&host).unwrap();
        assert_eq!(
            id.nqn.as_str(),
            "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0033-3010-8044-b4c04f4e3032"
        );
        assert_eq!(id.id.to_string(), "4c4c4544-0033-3010-8044-b4c04f4e3032");
        let text = std::fs::read_to_string(f.root().join("etc/nvme/hostnqn")).unwrap();
        assert_eq!(text, format!("{}\n", id.nqn));
        // Kept as written, even when the machine's UUID changes.
        std::fs::write(
            dmi.join("product_uuid"),
            "00000000-0000-0000-0000-000000000001\n",
        )
        .unwrap();
        assert_eq!(host_identity(&host).unwrap().nqn, id.nqn);
    }

    #[test]
    fn random_without_dmi_and_an_admins_files_are_read_as_they_are() {
        let f = crate::testing::FakeHost::new();
        let r = f.root().join("proc/sys/kernel/random");
        std::fs::create_dir_all(&r).unwrap();
        std::fs::write(r.join("uuid"), "9a3c2e55-0c4b-4a9b-8d39-7c55f0a1b2c3\n").unwrap();
        let host = f.host();
        let id = host_identity(&host).unwrap();
        assert_eq!(id.id.to_string(), "9a3c2e55-0c4b-4a9b-8d39-7c55f0a1b2c3");
        assert!(id
            .nqn
            .as_str()
            .ends_with(":uuid:9a3c2e55-0c4b-4a9b-8d39-7c55f0a1b2c3"));
        assert!(id.system_uuid.is_none());
        std::fs::write(
            f.root().join("etc/nvme/hostnqn"),
            "nqn.2014-08.org.example:host-7\n",
        )
        .unwrap();
        assert_eq!(
            host_identity(&host).unwrap().nqn.as_str(),
            "nqn.2014-08.org.example:host-7"
        );
        std::fs::write(f.root().join("etc/nvme/hostnqn"), "garbage,x=1\n").unwrap();
        let e = host_identity(&host).unwrap_err();
        assert!(e.field().unwrap().ends_with("etc/nvme/hostnqn"), "{e}");
    }
}
