//! The kernel's uevents, heard directly on its netlink socket (`NETLINK_KOBJECT_UEVENT`, the
//! kernel's own multicast group, not udev's): a wait for a disk, a map or a removal wakes up as
//! soon as the kernel announces a change instead of at its next poll, with or without udevd.
//!
//! A wait subscribes first, then checks sysfs, then sleeps until an event or its pause ends:
//! nothing that happens after the check is missed. Events are not parsed: any of them is a
//! reason to look at sysfs again (which stays the truth). A full socket buffer (`ENOBUFS`, events
//! lost) wakes the wait too, and the pause bounds every sleep, so a lost event costs at most one
//! pause, as polling did.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A subscription to the kernel's uevents.
#[derive(Debug)]
pub struct UeventWatch {
    fd: OwnedFd,
}

impl UeventWatch {
    /// Subscribes; `None` when the socket cannot be opened (then waits poll as before).
    pub fn new() -> Option<UeventWatch> {
        // SAFETY: plain system calls on integers and a zeroed, correctly sized address.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_KOBJECT_UEVENT,
            );
            if fd < 0 {
                return None;
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            // Group 1: the kernel's own uevents.
            addr.nl_groups = 1;
            let rc = libc::bind(
                fd.as_raw_fd(),
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            );
            if rc != 0 {
                return None;
            }
            Some(UeventWatch { fd })
        }
    }

    /// Waits until the kernel announces something or `timeout` passes; then empties the queue.
    /// Returns whether an event (or an overflow) came.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n <= 0 {
            return false;
        }
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: a buffer of its own length; the socket is non-blocking.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                // Emptied (EAGAIN), or events were lost (ENOBUFS): either way, look again.
                if e.raw_os_error() != Some(libc::ENOBUFS) {
                    break;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_the_kernel_announces_wakes_the_wait() {
        let w = UeventWatch::new().expect("a uevent socket (as root)");
        let t0 = std::time::Instant::now();
        // Asking the kernel to announce a device again (a "change" uevent of the loopback
        // interface, which every Linux host has) is harmless.
        std::fs::write("/sys/class/net/lo/uevent", "change").expect("uevent write (as root)");
        assert!(w.wait(Duration::from_secs(10)), "no uevent within 10 s");
        assert!(t0.elapsed() < Duration::from_secs(5));
        // Emptied: with nothing new, the next wait lasts its timeout.
        let t1 = std::time::Instant::now();
        if !w.wait(Duration::from_millis(200)) {
            assert!(
                t1.elapsed() >= Duration::from_millis(150),
                "{:?}",
                t1.elapsed()
            );
        }
    }
}
