//! What a block device carries at its start and end: an md superblock (any of the four places
//! md metadata 0.90, 1.0, 1.1 and 1.2 puts one) and the signatures of common file systems, LVM,
//! LUKS, swap and partition tables. Read in-process ([`crate::host::Kernel::read_at`], direct
//! I/O in a forked child with a deadline), so a read error is an error with its errno, never
//! "nothing found": `mdadm --examine` (4.2) reports a superblock it could not read as "No md
//! superblock detected", and `blkid`/`wipefs` give their own meaning to each exit status.
//!
//! Four 4-KiB blocks are read: bytes 0-8 KiB (md 1.1 and 1.2, ext2/3/4, XFS, LUKS, LVM2, swap,
//! DOS and GPT partition tables, FAT, NTFS), 64 KiB (btrfs), and the two blocks near the end
//! where md 1.0 and 0.90 keep theirs.

use std::time::Duration;

use crate::host::{Host, KernelError};

/// `MD_SB_MAGIC`, as md writes it: little-endian in 1.x, the host's order in 0.90.
const MD_MAGIC: u32 = 0xa92b_4efc;
const BLOCK: usize = 4096;

/// An md superblock found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MdSuper {
    /// The metadata version its place gives: `0.90`, `1.0`, `1.1` or `1.2`.
    pub version: &'static str,
    /// The array's UUID (`set_uuid`), as 32 hex digits.
    pub uuid: String,
    /// The array's name (`set_name`, 1.x only; `homehost:name` as mdadm writes it).
    pub name: Option<String>,
}

/// What a device carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Signatures {
    /// The md superblock, if any place holds one.
    pub md: Option<MdSuper>,
    /// Every other signature found, in words with its offset (`ext2/3/4 file system at byte
    /// 1080`).
    pub other: Vec<String>,
}

/// Reads device `dev` (its kernel name) and says what it carries. The size comes from sysfs
/// (`block/DEV/size`).
///
/// # Errors
/// Why nothing can be said, in words naming the device: sysfs gives no size, or a read failed,
/// came back short or did not finish in `timeout`.
pub(crate) fn probe(host: &Host, dev: &str, timeout: Duration) -> Result<Signatures, Unreadable> {
    let size_path = host.sys(format!("block/{dev}/size"));
    let sectors: u64 = host
        .read_attr_opt(&size_path)?
        .and_then(|s| s.trim().parse().ok())
        .ok_or(Unreadable::NoSize(size_path))?;
    let ranges = ranges(sectors * 512);
    let bytes = host
        .kern()
        .read_at(&host.dev_node(dev), &ranges, timeout)
        .map_err(|why| Unreadable::Read {
            dev: dev.to_string(),
            why,
        })?;
    Ok(scan(sectors * 512, &ranges, &bytes))
}

/// Why nothing can be said of what a device carries.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unreadable {
    /// sysfs could not be read.
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
    /// sysfs gives the device no size.
    #[error("{}: no size", .0.display())]
    NoSize(std::path::PathBuf),
    /// The read failed, came back short or did not finish in time.
    #[error("cannot read /dev/{dev}: {why}")]
    Read {
        /// The device's kernel name.
        dev: String,
        /// What the kernel or the deadline said.
        why: KernelError,
    },
}

/// The blocks to read of a device of `size` bytes: 0 (two blocks), 64 KiB, and where md 1.0
/// and 0.90 keep their superblocks, those that fit.
fn ranges(size: u64) -> Vec<(u64, usize)> {
    let mut r = vec![(0, 2 * BLOCK)];
    if size >= 68 * 1024 {
        r.push((64 * 1024, BLOCK));
    }
    if let Some(at) = md10_offset(size) {
        r.push((at, BLOCK));
    }
    if let Some(at) = md090_offset(size) {
        r.push((at, BLOCK));
    }
    r
}

/// md 1.0: 8 KiB before the end, rounded down to 4 KiB (in sectors: `(size - 16) & !7`).
fn md10_offset(size: u64) -> Option<u64> {
    let s = size / 512;
    (s >= 32).then(|| ((s - 16) & !7) * 512)
}

/// md 0.90: the last whole 64 KiB, less 64 KiB (in sectors: `(size & !127) - 128`).
fn md090_offset(size: u64) -> Option<u64> {
    let s = size / 512;
    (s >= 256).then(|| ((s & !127) - 128) * 512)
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn has(b: &[u8], at: usize, magic: &[u8]) -> bool {
    b.get(at..at + magic.len()) == Some(magic)
}

/// An md superblock at the start of `b`, if its magic and version are there.
fn md_at(b: &[u8], version: &'static str) -> Option<MdSuper> {
    let hex = |u: &[u8]| u.iter().map(|x| format!("{x:02x}")).collect::<String>();
    if version == "0.90" {
        // Words in the host's order (either, for an array moved between hosts): magic, major
        // version 0; the UUID is word 5, then words 13 to 15.
        let be = b.get(0..4)? == MD_MAGIC.to_be_bytes();
        if le32(b, 0) != Some(MD_MAGIC) && !be {
            return None;
        }
        let mut uuid = b.get(20..24)?.to_vec();
        uuid.extend_from_slice(b.get(52..64)?);
        return Some(MdSuper {
            version,
            uuid: hex(&uuid),
            name: None,
        });
    }
    if le32(b, 0) != Some(MD_MAGIC) || le32(b, 4) != Some(1) {
        return None;
    }
    let raw = b.get(32..64)?;
    let name = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
    Some(MdSuper {
        version,
        uuid: hex(b.get(16..32)?),
        name: Some(String::from_utf8_lossy(name).into_owned()),
    })
}

/// Signatures at the start of a device (`b` holds its first 8 KiB), as (offset, magic, what).
const START: &[(usize, &[u8], &str)] = &[
    (0, b"XFSB", "XFS file system"),
    (0, b"LUKS\xba\xbe", "LUKS encrypted volume"),
    (0, b"SKUL\xba\xbe", "LUKS2 encrypted volume"),
    (3, b"NTFS    ", "NTFS file system"),
    (54, b"FAT1", "FAT file system"),
    (82, b"FAT32   ", "FAT32 file system"),
    (512, b"EFI PART", "GPT partition table"),
    (510, b"\x55\xaa", "DOS partition table or boot sector"),
    (1080, b"\x53\xef", "ext2/3/4 file system"),
    (4086, b"SWAPSPACE2", "swap space"),
    (4086, b"SWAP-SPACE", "swap space"),
];

/// What `bytes` (read from `ranges` of a device of `size` bytes, in order) show.
fn scan(size: u64, ranges: &[(u64, usize)], bytes: &[u8]) -> Signatures {
    let mut found = Signatures::default();
    let mut at = 0usize;
    for &(offset, len) in ranges {
        let b = &bytes[at.min(bytes.len())..(at + len).min(bytes.len())];
        at += len;
        let mut md = Vec::new();
        if offset == 0 {
            md.push(md_at(b, "1.1"));
            md.push(md_at(b.get(BLOCK..).unwrap_or(&[]), "1.2"));
            for &(off, magic, what) in START {
                if has(b, off, magic) {
                    found.other.push(format!("{what} at byte {off}"));
                }
            }
            for sector in 0..4 {
                if has(b, sector * 512, b"LABELONE") {
                    found
                        .other
                        .push(format!("LVM2 physical volume at byte {}", sector * 512));
                }
            }
        }
        if offset == 65536 && has(b, 64, b"_BHRfS_M") {
            found.other.push("btrfs file system at byte 65600".into());
        }
        if Some(offset) == md10_offset(size) {
            md.push(md_at(b, "1.0"));
        }
        if Some(offset) == md090_offset(size) {
            md.push(md_at(b, "0.90"));
        }
        if found.md.is_none() {
            found.md = md.into_iter().flatten().next();
        }
    }
    found
}

/// The first block of an md 1.2 superblock as mdadm writes one at byte 4096 (for fake devices
/// in tests): magic, major version 1, `uuid` (16 bytes), `name` (at byte 32, at most 32 bytes).
/// Write it on a fake namespace with `FakeHost::nvme_ns_write` to give it an array's
/// superblock, or compare a namespace's bytes with it.
#[cfg(any(test, feature = "testing"))]
pub fn md12_superblock(uuid: [u8; 16], name: &str) -> Vec<u8> {
    let mut b = vec![0u8; 256];
    b[0..4].copy_from_slice(&MD_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    b[16..32].copy_from_slice(&uuid);
    let n = name.as_bytes();
    b[32..32 + n.len().min(32)].copy_from_slice(&n[..n.len().min(32)]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB32: u64 = 32 << 20;

    fn device_with(size: u64, at: u64, bytes: &[u8]) -> (Vec<(u64, usize)>, Vec<u8>) {
        let r = ranges(size);
        let mut out = Vec::new();
        for &(o, len) in &r {
            let mut block = vec![0u8; len];
            for (i, x) in bytes.iter().enumerate() {
                let pos = at + i as u64;
                if pos >= o && pos < o + len as u64 {
                    block[(pos - o) as usize] = *x;
                }
            }
            out.extend(block);
        }
        (r, out)
    }

    #[test]
    fn md_superblocks_are_found_where_each_metadata_version_keeps_them() {
        let sb = md12_superblock([7; 16], "any:vol-1");
        let mut sb090 = vec![0u8; 64];
        sb090[0..4].copy_from_slice(&MD_MAGIC.to_le_bytes());
        for (at, version) in [
            (4096, "1.2"),
            (0, "1.1"),
            (md10_offset(MIB32).unwrap(), "1.0"),
        ] {
            let (r, b) = device_with(MIB32, at, &sb);
            let md = scan(MIB32, &r, &b)
                .md
                .unwrap_or_else(|| panic!("{version} not found"));
            assert_eq!(md.version, version);
            assert_eq!(md.name.as_deref(), Some("any:vol-1"));
            assert_eq!(md.uuid, "07".repeat(16));
        }
        let (r, b) = device_with(MIB32, md090_offset(MIB32).unwrap(), &sb090);
        assert_eq!(scan(MIB32, &r, &b).md.unwrap().version, "0.90");
        // The places, for a 32 MiB device: 8 KiB and 64 KiB before the end.
        assert_eq!(md10_offset(MIB32), Some(MIB32 - 8192));
        assert_eq!(md090_offset(MIB32), Some(MIB32 - 65536));
    }

    #[test]
    fn a_blank_device_shows_nothing_and_signatures_are_named() {
        let (r, b) = device_with(MIB32, 0, &[]);
        assert_eq!(scan(MIB32, &r, &b), Signatures::default());
        for (at, magic, what) in [
            (1080u64, &b"\x53\xef"[..], "ext2/3/4"),
            (0, b"XFSB", "XFS"),
            (512, b"LABELONE", "LVM2"),
            (0, b"LUKS\xba\xbe", "LUKS"),
            (65600, b"_BHRfS_M", "btrfs"),
            (4086, b"SWAPSPACE2", "swap"),
            (512, b"EFI PART", "GPT"),
        ] {
            let (r, b) = device_with(MIB32, at, magic);
            let s = scan(MIB32, &r, &b);
            assert!(s.md.is_none(), "{what}");
            assert!(
                s.other.iter().any(|o| o.starts_with(what)),
                "{what}: {:?}",
                s.other
            );
        }
    }

    #[test]
    fn a_magic_without_version_one_is_not_a_1x_superblock() {
        let mut sb = md12_superblock([1; 16], "x");
        sb[4] = 9;
        let (r, b) = device_with(MIB32, 4096, &sb);
        assert!(scan(MIB32, &r, &b).md.is_none());
    }
}
