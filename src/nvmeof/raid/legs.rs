//! Which md array a replicated volume's replicas make, proven before brick uses one: what each
//! replica holds ([`Leg`]: an md superblock, nothing, another signature, or unknown), and
//! whether an array that holds them is the volume's (the only array holding any, no member
//! that is not a replica, the volume's name in each member's superblock).

use std::time::Duration;

use crate::block::md::{self, mdadm};
use crate::block::signature::{self, MdSuper};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::nvmeof::props::NvmeProperties;

/// What a replica holds, as far as its array is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Leg {
    /// An md superblock: mdadm reads one (`--examine` exits 0), and this is the one read
    /// in-process (None: mdadm knows a format brick does not read, such as IMSM).
    Member(Option<MdSuper>),
    /// No md superblock and no other signature: readable, mdadm says "No md superblock
    /// detected" in so many words, and no place where md keeps one holds one.
    Blank,
    /// No md superblock, but another signature (a file system, LVM, a partition table).
    Foreign(String),
    /// Whether it holds a superblock is unknown: a read failed, or mdadm failed otherwise.
    Unknown(String),
}

impl std::fmt::Display for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leg::Member(Some(sb)) => write!(f, "an md {} superblock", sb.version),
            Leg::Member(None) => write!(f, "an md superblock mdadm reads"),
            Leg::Blank => write!(f, "no md superblock and no signature"),
            Leg::Foreign(sig) => write!(f, "no md superblock but a signature, {sig}"),
            Leg::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// mdadm's words for a device that it could read and that holds no md superblock. mdadm 4.2
/// prints them also when its read of the superblock failed (`guess_super` takes a failed read
/// for "no superblock"), so they count only beside a successful read of our own.
const NO_SUPERBLOCK: &str = "No md superblock detected on";

/// Reads replica `dev` in-process and asks mdadm about it; only a readable device with no
/// signature at all and mdadm's exact "no superblock" is [`Leg::Blank`].
pub(super) fn classify(host: &Host, dev: &str, timeout: Duration) -> Result<Leg> {
    let found = match signature::probe(host, dev, timeout) {
        Ok(f) => f,
        Err(why) => return Ok(Leg::Unknown(why.to_string())),
    };
    let out = mdadm(host, &["--examine", &format!("/dev/{dev}")], timeout)?;
    if out.success() {
        return Ok(Leg::Member(found.md));
    }
    let said = format!("{}{}", out.stdout, out.stderr);
    if !said.contains(NO_SUPERBLOCK) {
        return Ok(Leg::Unknown(format!(
            "`mdadm --examine /dev/{dev}` failed{}: {}",
            out.code
                .map_or(String::new(), |c| format!(" (exit code {c})")),
            out.tail()
        )));
    }
    Ok(match (found.md, found.other.is_empty()) {
        // mdadm did not read what is there: not "none".
        (Some(md), _) => Leg::Unknown(format!(
            "an md {} superblock is on it, which mdadm did not read",
            md.version
        )),
        (None, true) => Leg::Blank,
        (None, false) => Leg::Foreign(found.other.join(", ")),
    })
}

/// Whether `set_name` (an md 1.x superblock's, as mdadm wrote it) names array `alias`: mdadm
/// writes `HOMEHOST:ALIAS` when that fits in 32 bytes and the alias has no `:`, else the
/// alias cut to 32 bytes.
fn md_name_is(set_name: &str, alias: &str) -> bool {
    let cut = &alias.as_bytes()[..alias.len().min(32)];
    set_name.as_bytes() == cut
        || (!alias.contains(':') && set_name.split_once(':').is_some_and(|(_, n)| n == alias))
}

/// The connect is refused to protect data; `dev` is what holds it.
pub(super) fn refused(props: &NvmeProperties, dev: &str, detail: String) -> Error {
    Error::RaidRefused {
        volume: props.label(),
        device: format!("/dev/{dev}"),
        detail,
    }
}

/// Before a create: every replica readable, with no md superblock and no other signature.
pub(super) fn check_blank(props: &NvmeProperties, legs: &[(String, Leg)]) -> Result<()> {
    for (d, l) in legs {
        match l {
            Leg::Foreign(sig) => {
                return Err(refused(
                    props,
                    d,
                    format!(
                        "it holds no md superblock but a signature, {sig}: no array is created \
                         over data (nothing was written); if that data is not needed, wipe the \
                         replica (`wipefs -a` on it, attached as a plain volume) and connect again"
                    ),
                ))
            }
            Leg::Unknown(why) => {
                return Err(refused(
                    props,
                    d,
                    format!(
                        "whether it holds an md superblock or data is unknown ({why}): no array \
                         is created over it (nothing was written); connect again once it reads"
                    ),
                ))
            }
            Leg::Member(_) | Leg::Blank => {}
        }
    }
    Ok(())
}

/// Before an assembly: every replica with an md superblock carries this volume's name
/// (`alias`) and the same array UUID.
pub(super) fn check_members(
    props: &NvmeProperties,
    alias: &str,
    legs: &[(String, Leg)],
) -> Result<()> {
    let mut uuid: Option<&str> = None;
    for (d, l) in legs {
        let Leg::Member(sb) = l else { continue };
        check_name(props, alias, d, sb.as_ref())?;
        let u = sb.as_ref().map_or("", |s| s.uuid.as_str());
        match uuid {
            Some(first) if first != u => {
                return Err(refused(
                    props,
                    d,
                    format!(
                        "its md superblock is of array {u}, another replica's of array {first}: \
                         the replicas are not one array; nothing was assembled"
                    ),
                ))
            }
            _ => uuid = Some(u),
        }
    }
    Ok(())
}

/// Replica `d`'s md superblock `sb` names array `alias`.
fn check_name(props: &NvmeProperties, alias: &str, d: &str, sb: Option<&MdSuper>) -> Result<()> {
    match sb.and_then(|s| s.name.as_deref()) {
        Some(n) if md_name_is(n, alias) => Ok(()),
        Some(n) => Err(refused(
            props,
            d,
            format!(
                "its md superblock names array {n:?}, not this volume's {alias:?}: it is not \
                 this volume's array (a clone's or another volume's replica?); nothing was \
                 assembled"
            ),
        )),
        None => Err(refused(
            props,
            d,
            format!(
                "mdadm finds an md superblock on it, but no md 1.x superblock with a name shows \
                 where brick reads one: it cannot be proven to be array {alias:?}"
            ),
        )),
    }
}

/// The md array that holds any of the replicas `devs`, if every member it has is one of them
/// (`md/dev-*/block` in sysfs), and it is the only array holding any.
pub(crate) fn holder_of(host: &Host, label: &str, devs: &[String]) -> Result<Option<String>> {
    let mut arrays: Vec<String> = Vec::new();
    for d in devs {
        for h in host.list(&host.sys(format!("block/{d}/holders")))? {
            if h.starts_with("md") && !arrays.contains(&h) {
                arrays.push(h);
            }
        }
    }
    let refuse = |md: &str, detail: String| Error::RaidRefused {
        volume: label.to_string(),
        device: format!("/dev/{md}"),
        detail,
    };
    let Some(md) = arrays.first() else {
        return Ok(None);
    };
    if arrays.len() > 1 {
        return Err(refuse(
            md,
            format!(
                "the replicas ({}) are held by several md arrays ({}): none can be the volume's; \
                 they were left alone",
                devs.join(", "),
                arrays.join(", ")
            ),
        ));
    }
    let members = md::members(host, md)?;
    if let Some(x) = members.iter().find(|m| !devs.contains(m)) {
        return Err(refuse(
            md,
            format!(
                "it holds {x}, which is not one of the volume's replicas ({}): it is not this \
                 volume's array (a clone's replica?); it was left alone",
                devs.join(", ")
            ),
        ));
    }
    Ok(Some(md.clone()))
}

/// The array that holds the replicas, once proven the volume's: [`holder_of`], and each of
/// its members carries the volume's name.
pub(super) fn array_of(
    host: &Host,
    props: &NvmeProperties,
    alias: &str,
    legs: &[(String, Leg)],
) -> Result<Option<String>> {
    let devs: Vec<String> = legs.iter().map(|(d, _)| d.clone()).collect();
    let Some(md) = holder_of(host, &props.label(), &devs)? else {
        return Ok(None);
    };
    let members = md::members(host, &md)?;
    for (d, l) in legs.iter().filter(|(d, _)| members.contains(d)) {
        match l {
            Leg::Member(sb) => check_name(props, alias, d, sb.as_ref())?,
            other => {
                return Err(refused(
                    props,
                    &md,
                    format!(
                        "its member {d} shows no md superblock brick can read ({other}): it \
                         cannot be proven to be array {alias:?}; it was left alone"
                    ),
                ))
            }
        }
    }
    Ok(Some(md))
}

#[cfg(test)]
mod tests {
    use super::md_name_is;

    #[test]
    fn md_names_as_mdadm_writes_them() {
        let long = "volume-0123456789abcdef0123456789abcdef";
        for (set_name, alias, same) in [
            ("any:vol-1", "vol-1", true),
            ("lab-host:vol-1", "vol-1", true),
            ("vol-1", "vol-1", true),
            ("any:vol-10", "vol-1", false),
            ("any:vol-1", "vol-10", false),
            ("vol-9", "vol-1", false),
            // Too long for `HOMEHOST:`: the alias cut to 32 bytes.
            (&long[..32], long, true),
            (&long[..31], long, false),
            // An alias with a `:` is written as it is.
            ("a:b", "a:b", true),
            ("any:a:b", "a:b", false),
        ] {
            assert_eq!(md_name_is(set_name, alias), same, "{set_name} {alias}");
        }
    }
}
