//! iSCSI SendTargets discovery, in-process: what `iscsiadm -m discovery -t sendtargets --op
//! nonpersistent` does, without starting it and without touching the node database.
//!
//! A discovery session (RFC 7143): a login with `SessionType=Discovery` (security stage with
//! `AuthMethod=None`, then the operational stage), a Text request `SendTargets=All` (followed
//! while the target says it continues), a logout. Discovery CHAP is not spoken here: brick uses
//! iscsiadm for it. Under TCG iscsiadm took 0.4 s for one target and grew by about 0.3 s for
//! every target the portal lists (it reads iscsid.conf again for each record); this takes a few
//! milliseconds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::host::Host;
use crate::types::{Iqn, Portal};

/// Asks portals which targets they offer. The real one is [`TcpSendTargets`]; tests put a fake
/// on the host ([`Host::with_service`]).
pub trait SendTargets: Send + Sync {
    /// The targets `portal` offers, as (portal, IQN) pairs, asking as `initiator`.
    fn send_targets(
        &self,
        portal: &Portal,
        initiator: &Iqn,
        timeout: Duration,
    ) -> Result<Vec<(Portal, Iqn)>, DiscoveryError>;
}

/// The SendTargets client of `host`: the one set on it, else [`TcpSendTargets`].
pub fn client(host: &Host) -> std::sync::Arc<dyn SendTargets> {
    host.service::<std::sync::Arc<dyn SendTargets>>()
        .unwrap_or_else(|| std::sync::Arc::new(TcpSendTargets))
}

/// Why an in-process SendTargets discovery failed, with the portal asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// No TCP connection to the portal.
    #[error("cannot connect to {portal}: {source}")]
    Connect {
        /// The portal asked.
        portal: Portal,
        /// What the system said.
        source: std::io::Error,
    },
    /// The connection failed during the exchange.
    #[error("{portal}: discovery: {source}")]
    Io {
        /// The portal asked.
        portal: Portal,
        /// What the system said.
        source: std::io::Error,
    },
    /// The deadline passed.
    #[error("{portal}: discovery timed out")]
    TimedOut {
        /// The portal asked.
        portal: Portal,
    },
    /// The target wants discovery CHAP (brick speaks it through iscsiadm, when the connection
    /// properties carry discovery credentials).
    #[error("{portal}: the target wants authentication for discovery (discovery CHAP)")]
    NeedsAuthentication {
        /// The portal asked.
        portal: Portal,
    },
    /// The target refused the discovery login.
    #[error("{portal}: discovery login refused: {why} (status {status:#06x})")]
    LoginRefused {
        /// The portal asked.
        portal: Portal,
        /// The status class, in words.
        why: &'static str,
        /// Status class and detail, as RFC 7143 numbers them.
        status: u16,
    },
    /// The target did not let the discovery session reach its full feature phase.
    #[error("{portal}: discovery login did not complete")]
    LoginIncomplete {
        /// The portal asked.
        portal: Portal,
    },
    /// The target rejected a request.
    #[error("{portal}: the target rejected the discovery request (reason {reason:#04x})")]
    Rejected {
        /// The portal asked.
        portal: Portal,
        /// The Reject PDU's reason code.
        reason: u8,
    },
    /// The target answered with a PDU that does not belong here.
    #[error("{portal}: unexpected iSCSI answer (opcode {opcode:#04x}, wanted {wanted:#04x})")]
    Unexpected {
        /// The portal asked.
        portal: Portal,
        /// The opcode received.
        opcode: u8,
        /// The opcode expected.
        wanted: u8,
    },
    /// The answer is larger than brick takes.
    #[error(
        "{portal}: the SendTargets answer is larger than {limit} bytes; brick takes no more \
         (a target that lists this much is misconfigured, or not a target)"
    )]
    TooLarge {
        /// The portal asked.
        portal: Portal,
        /// The limit it went over.
        limit: usize,
    },
}

/// SendTargets over TCP to the portal itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpSendTargets;

const BHS: usize = 48;
const OP_LOGIN: u8 = 0x03;
const OP_TEXT: u8 = 0x04;
const OP_LOGOUT: u8 = 0x06;
const OP_LOGIN_RSP: u8 = 0x23;
const OP_TEXT_RSP: u8 = 0x24;
const OP_LOGOUT_RSP: u8 = 0x26;
const OP_REJECT: u8 = 0x3f;
const IMMEDIATE: u8 = 0x40;
const FINAL: u8 = 0x80;
const CONTINUE: u8 = 0x40;

impl SendTargets for TcpSendTargets {
    fn send_targets(
        &self,
        portal: &Portal,
        initiator: &Iqn,
        timeout: Duration,
    ) -> Result<Vec<(Portal, Iqn)>, DiscoveryError> {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::new(portal.ip, portal.port);
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|source| {
            DiscoveryError::Connect {
                portal: *portal,
                source,
            }
        })?;
        let mut s = Session {
            stream,
            deadline,
            portal: *portal,
            stat_sn: 0,
            isid: next_isid(),
        };
        let text = s.discover(initiator)?;
        Ok(parse_send_targets(&text, portal))
    }
}

struct Session {
    stream: TcpStream,
    deadline: Instant,
    portal: Portal,
    stat_sn: u32,
    isid: [u8; 6],
}

/// A new ISID for each discovery session: random format (type 10b), 14 bits of a counter, then
/// the process id. A target takes a login with the initiator name and ISID of a session it has
/// as that session's reinstatement and drops the old one: LIO reset the discoveries of
/// concurrent connects in one process when the ISID was the process id alone (lab, W3C).
fn next_isid() -> [u8; 6] {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id().to_be_bytes();
    [
        0x80 | ((n >> 8) as u8 & 0x3f),
        n as u8,
        pid[0],
        pid[1],
        pid[2],
        pid[3],
    ]
}

/// A received PDU: its header and data segment.
struct Pdu {
    bhs: [u8; BHS],
    data: Vec<u8>,
}

impl Pdu {
    fn opcode(&self) -> u8 {
        self.bhs[0] & 0x3f
    }
    fn flags(&self) -> u8 {
        self.bhs[1]
    }
    fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.bhs[at..at + 4].try_into().expect("4 bytes"))
    }
}

/// The most a SendTargets answer may hold, over all its continuations: thousands of targets'
/// names and addresses. A portal that sends more (or never stops) is refused, not buffered.
const MAX_ANSWER: usize = 1 << 20;

/// The longest data segment brick takes in one PDU: the MaxRecvDataSegmentLength it announces.
const MAX_SEGMENT: usize = 262_144;

impl Session {
    fn discover(&mut self, initiator: &Iqn) -> Result<Vec<u8>, DiscoveryError> {
        // Security stage, no authentication: CSG 0 -> NSG 1.
        let keys = format!("InitiatorName={initiator}\0SessionType=Discovery\0AuthMethod=None\0");
        let rsp = self.login(FINAL | 1, keys.as_bytes())?;
        if rsp.flags() & FINAL == 0 || rsp.flags() & 0x03 != 1 {
            return Err(DiscoveryError::NeedsAuthentication {
                portal: self.portal,
            });
        }
        let tsih = [rsp.bhs[14], rsp.bhs[15]];
        // Operational stage: CSG 1 -> NSG 3 (full feature phase).
        let keys = "HeaderDigest=None\0DataDigest=None\0MaxRecvDataSegmentLength=262144\0";
        let mut rsp = self.login_with(FINAL | (1 << 2) | 3, keys.as_bytes(), tsih)?;
        for _ in 0..4 {
            if rsp.flags() & FINAL != 0 && rsp.flags() & 0x03 == 3 {
                break;
            }
            // The target answered keys without letting us on yet: agree, ask again.
            rsp = self.login_with(FINAL | (1 << 2) | 3, &[], tsih)?;
        }
        if rsp.flags() & FINAL == 0 || rsp.flags() & 0x03 != 3 {
            return Err(DiscoveryError::LoginIncomplete {
                portal: self.portal,
            });
        }

        // SendTargets=All, following continuations. Text requests are numbered commands: the
        // first one takes the login's CmdSN.
        let mut cmd_sn = 1u32;
        let mut text = Vec::new();
        let mut ttt = 0xffff_ffffu32;
        let mut payload: &[u8] = b"SendTargets=All\0";
        for _ in 0..1000 {
            let mut bhs = [0u8; BHS];
            bhs[0] = OP_TEXT;
            bhs[1] = FINAL;
            bhs[16..20].copy_from_slice(&1u32.to_be_bytes());
            bhs[20..24].copy_from_slice(&ttt.to_be_bytes());
            bhs[24..28].copy_from_slice(&cmd_sn.to_be_bytes());
            cmd_sn = cmd_sn.wrapping_add(1);
            bhs[28..32].copy_from_slice(&self.stat_sn.wrapping_add(1).to_be_bytes());
            self.send(bhs, payload)?;
            let rsp = self.expect(OP_TEXT_RSP)?;
            if text.len() + rsp.data.len() > MAX_ANSWER {
                return Err(DiscoveryError::TooLarge {
                    portal: self.portal,
                    limit: MAX_ANSWER,
                });
            }
            text.extend_from_slice(&rsp.data);
            if rsp.flags() & FINAL != 0 && rsp.flags() & CONTINUE == 0 {
                break;
            }
            ttt = rsp.u32_at(20);
            payload = &[];
        }

        // Close the session politely; a failure here changes nothing we learned.
        let mut bhs = [0u8; BHS];
        bhs[0] = OP_LOGOUT | IMMEDIATE;
        bhs[1] = FINAL;
        bhs[16..20].copy_from_slice(&2u32.to_be_bytes());
        bhs[24..28].copy_from_slice(&cmd_sn.to_be_bytes());
        bhs[28..32].copy_from_slice(&self.stat_sn.wrapping_add(1).to_be_bytes());
        if self.send(bhs, &[]).is_ok() {
            let _ = self.expect(OP_LOGOUT_RSP);
        }
        Ok(text)
    }

    fn login(&mut self, flags: u8, keys: &[u8]) -> Result<Pdu, DiscoveryError> {
        self.login_with(flags, keys, [0, 0])
    }

    fn login_with(&mut self, flags: u8, keys: &[u8], tsih: [u8; 2]) -> Result<Pdu, DiscoveryError> {
        let mut bhs = [0u8; BHS];
        bhs[0] = OP_LOGIN | IMMEDIATE;
        bhs[1] = flags;
        bhs[8..14].copy_from_slice(&self.isid);
        bhs[14..16].copy_from_slice(&tsih);
        bhs[24..28].copy_from_slice(&1u32.to_be_bytes());
        bhs[28..32].copy_from_slice(&self.stat_sn.wrapping_add(1).to_be_bytes());
        self.send(bhs, keys)?;
        let rsp = self.expect(OP_LOGIN_RSP)?;
        let (class, detail) = (rsp.bhs[36], rsp.bhs[37]);
        if class != 0 {
            let why = match (class, detail) {
                (2, 1) => "authentication failed",
                (2, 2) => "not authorized",
                (2, 3) => "not found",
                (2, _) => "initiator error",
                (3, _) => "target error",
                _ => "refused",
            };
            return Err(DiscoveryError::LoginRefused {
                portal: self.portal,
                why,
                status: u16::from_be_bytes([class, detail]),
            });
        }
        Ok(rsp)
    }

    fn send(&mut self, mut bhs: [u8; BHS], data: &[u8]) -> Result<(), DiscoveryError> {
        let len = data.len() as u32;
        bhs[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
        let mut pdu = bhs.to_vec();
        pdu.extend_from_slice(data);
        pdu.resize(pdu.len().div_ceil(4) * 4, 0);
        self.arm()?;
        self.stream
            .write_all(&pdu)
            .map_err(|source| self.io(source))
    }

    fn io(&self, source: std::io::Error) -> DiscoveryError {
        DiscoveryError::Io {
            portal: self.portal,
            source,
        }
    }

    fn expect(&mut self, opcode: u8) -> Result<Pdu, DiscoveryError> {
        let pdu = self.recv()?;
        if pdu.opcode() == OP_REJECT {
            return Err(DiscoveryError::Rejected {
                portal: self.portal,
                reason: pdu.bhs[2],
            });
        }
        if pdu.opcode() != opcode {
            return Err(DiscoveryError::Unexpected {
                portal: self.portal,
                opcode: pdu.opcode(),
                wanted: opcode,
            });
        }
        // StatSN sits at the same place in every answer we expect.
        self.stat_sn = pdu.u32_at(24);
        Ok(pdu)
    }

    fn recv(&mut self) -> Result<Pdu, DiscoveryError> {
        let portal = self.portal;
        let io = |source| DiscoveryError::Io { portal, source };
        let mut bhs = [0u8; BHS];
        self.arm()?;
        self.stream.read_exact(&mut bhs).map_err(io)?;
        let ahs = bhs[4] as usize * 4;
        let len = u32::from_be_bytes([0, bhs[5], bhs[6], bhs[7]]) as usize;
        if len > MAX_SEGMENT {
            // Over the MaxRecvDataSegmentLength brick announced.
            return Err(DiscoveryError::TooLarge {
                portal: self.portal,
                limit: MAX_SEGMENT,
            });
        }
        let mut rest = vec![0u8; ahs + len.div_ceil(4) * 4];
        self.arm()?;
        self.stream.read_exact(&mut rest).map_err(io)?;
        let data = rest[ahs..ahs + len].to_vec();
        Ok(Pdu { bhs, data })
    }

    /// Bounds the next read or write by what is left of the deadline.
    fn arm(&mut self) -> Result<(), DiscoveryError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DiscoveryError::TimedOut {
                portal: self.portal,
            });
        }
        self.stream
            .set_read_timeout(Some(left))
            .and_then(|()| self.stream.set_write_timeout(Some(left)))
            .map_err(|source| self.io(source))
    }
}

/// Parses a SendTargets answer: `TargetName=IQN` keys, each followed by its `TargetAddress=
/// ADDRESS:PORT,TPGT` keys; a target with no address is at the portal that was asked. Targets
/// or addresses that do not parse (a DNS name) are skipped.
pub fn parse_send_targets(text: &[u8], asked: &Portal) -> Vec<(Portal, Iqn)> {
    let mut out: Vec<(Portal, Iqn)> = Vec::new();
    let mut current: Option<(Iqn, bool)> = None;
    let close = |cur: &mut Option<(Iqn, bool)>, out: &mut Vec<(Portal, Iqn)>| {
        if let Some((iqn, false)) = cur.take() {
            out.push((*asked, iqn));
        }
    };
    for kv in text.split(|b| *b == 0) {
        let kv = String::from_utf8_lossy(kv);
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        match k {
            "TargetName" => {
                close(&mut current, &mut out);
                current = v.parse::<Iqn>().ok().map(|i| (i, false));
            }
            "TargetAddress" => {
                if let Some((iqn, seen)) = &mut current {
                    *seen = true;
                    let addr = v.rsplit_once(',').map_or(v, |(a, _)| a);
                    if let Ok(p) = addr.parse::<Portal>() {
                        out.push((p, iqn.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    close(&mut current, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const T1: &str = "iqn.2003-01.org.linux-iscsi.lab:t1";
    const T2: &str = "iqn.2003-01.org.linux-iscsi.lab:t2";

    #[test]
    fn answer_parsing() {
        let asked: Portal = "127.0.0.1:3260".parse().unwrap();
        let text = format!(
            "TargetName={T1}\0TargetAddress=127.0.0.1:3260,1\0TargetAddress=[fd00::2]:3261,2\0\
             TargetName={T2}\0TargetName=bogus\0TargetAddress=storage.example:3260,1\0"
        );
        let got: Vec<String> = parse_send_targets(text.as_bytes(), &asked)
            .into_iter()
            .map(|(p, i)| format!("{p} {i}"))
            .collect();
        assert_eq!(
            got,
            [
                format!("127.0.0.1:3260 {T1}"),
                format!("[fd00::2]:3261 {T1}"),
                format!("127.0.0.1:3260 {T2}"),
            ]
        );
    }

    /// What a fake target received: the opcodes and data segments, and each login's ISID.
    type Received = (Vec<u8>, Vec<[u8; 6]>);

    /// A discovery-only iSCSI target on an ephemeral port: answers the login stages, a
    /// SendTargets split over two Text responses, and the logout.
    fn fake_target(
        answer: Vec<u8>,
        refuse: Option<(u8, u8)>,
    ) -> (Portal, std::thread::JoinHandle<Received>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let portal: Portal = l.local_addr().unwrap().to_string().parse().unwrap();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut seen = Vec::new();
            let mut isids = Vec::new();
            let mut stat_sn = 7u32;
            // The answer goes in parts: two halves, or parts of 200 KiB when it is long.
            let part = (answer.len() / 2).clamp(1, 200 << 10);
            let mut sent = 0;
            loop {
                let mut bhs = [0u8; BHS];
                if c.read_exact(&mut bhs).is_err() {
                    break;
                }
                let len = u32::from_be_bytes([0, bhs[5], bhs[6], bhs[7]]) as usize;
                let mut data = vec![0u8; len.div_ceil(4) * 4];
                c.read_exact(&mut data).unwrap();
                seen.push(bhs[0] & 0x3f);
                seen.extend_from_slice(&data[..len]);
                let mut rsp = [0u8; BHS];
                rsp[24..28].copy_from_slice(&stat_sn.to_be_bytes());
                stat_sn += 1;
                let mut body: Vec<u8> = Vec::new();
                match bhs[0] & 0x3f {
                    OP_LOGIN => {
                        isids.push(bhs[8..14].try_into().unwrap());
                        rsp[0] = OP_LOGIN_RSP;
                        rsp[1] = bhs[1];
                        if let Some((class, detail)) = refuse {
                            rsp[36] = class;
                            rsp[37] = detail;
                        }
                        body = b"AuthMethod=None\0".to_vec();
                    }
                    OP_TEXT => {
                        rsp[0] = OP_TEXT_RSP;
                        let end = (sent + part).min(answer.len());
                        if end < answer.len() {
                            // A part, to be continued.
                            rsp[1] = CONTINUE;
                            rsp[20..24].copy_from_slice(&0x1234u32.to_be_bytes());
                            body = answer[sent..end].to_vec();
                            sent = end;
                        } else {
                            rsp[1] = FINAL;
                            rsp[20..24].copy_from_slice(&0xffff_ffffu32.to_be_bytes());
                            body = answer[sent..].to_vec();
                        }
                    }
                    OP_LOGOUT => rsp[0] = OP_LOGOUT_RSP,
                    _ => rsp[0] = OP_REJECT,
                }
                let n = body.len() as u32;
                rsp[5..8].copy_from_slice(&n.to_be_bytes()[1..]);
                let mut out = rsp.to_vec();
                out.extend_from_slice(&body);
                out.resize(out.len().div_ceil(4) * 4, 0);
                c.write_all(&out).unwrap();
                if bhs[0] & 0x3f == OP_LOGOUT || refuse.is_some() {
                    break;
                }
            }
            (seen, isids)
        });
        (portal, h)
    }

    #[test]
    fn discovery_session_against_a_fake_target() {
        let answer = format!("TargetName={T1}\0TargetAddress=127.0.0.2:3260,1\0TargetName={T2}\0");
        let (portal, h) = fake_target(answer.into_bytes(), None);
        let me: Iqn = "iqn.1993-08.org.debian:01:abc".parse().unwrap();
        let got = TcpSendTargets
            .send_targets(&portal, &me, Duration::from_secs(10))
            .unwrap();
        let got: Vec<String> = got.into_iter().map(|(p, i)| format!("{p} {i}")).collect();
        assert_eq!(
            got,
            [format!("127.0.0.2:3260 {T1}"), format!("{portal} {T2}")]
        );
        let seen = String::from_utf8_lossy(&h.join().unwrap().0).into_owned();
        assert!(seen.contains("SessionType=Discovery"), "{seen}");
        assert!(seen.contains(&format!("InitiatorName={me}")), "{seen}");
        assert!(seen.contains("SendTargets=All"), "{seen}");
    }

    #[test]
    fn an_answer_over_the_bound_is_refused_not_buffered() {
        // 1.5 MiB of target names, in parts of 200 KiB.
        let one = format!("TargetName={T1}\0");
        let answer = one.repeat((3 << 19) / one.len());
        let (portal, _h) = fake_target(answer.into_bytes(), None);
        let me: Iqn = "iqn.1993-08.org.debian:01:abc".parse().unwrap();
        let e = match TcpSendTargets.send_targets(&portal, &me, Duration::from_secs(10)) {
            Ok(all) => panic!("an answer of {} entries was taken", all.len()),
            Err(e) => e,
        };
        assert!(
            matches!(e, DiscoveryError::TooLarge { portal: p, limit: MAX_ANSWER } if p == portal),
            "{e}"
        );
        assert!(e.to_string().contains(&portal.to_string()), "{e}");
    }

    #[test]
    fn each_discovery_session_has_its_own_isid() {
        let me: Iqn = "iqn.1993-08.org.debian:01:abc".parse().unwrap();
        let answer = format!("TargetName={T1}\0");
        let (p1, h1) = fake_target(answer.clone().into_bytes(), None);
        let (p2, h2) = fake_target(answer.into_bytes(), None);
        // Two discoveries of one process at the same time, as concurrent connects make them.
        std::thread::scope(|s| {
            for p in [&p1, &p2] {
                let me = &me;
                s.spawn(move || {
                    TcpSendTargets
                        .send_targets(p, me, Duration::from_secs(10))
                        .unwrap()
                });
            }
        });
        let (a, b) = (h1.join().unwrap().1, h2.join().unwrap().1);
        assert!(a.len() >= 2 && b.len() >= 2, "{a:?} {b:?}");
        // One ISID through a session's login stages, of the random type (10b) ...
        assert!(a.iter().all(|i| *i == a[0]) && b.iter().all(|i| *i == b[0]));
        assert_eq!((a[0][0] >> 6, b[0][0] >> 6), (2, 2));
        // ... and another one in each session: the same would make a target drop the first.
        assert_ne!(a[0], b[0]);
    }

    #[test]
    fn refused_login_says_why() {
        let (portal, h) = fake_target(Vec::new(), Some((2, 1)));
        let me: Iqn = "iqn.1993-08.org.debian:01:abc".parse().unwrap();
        let e = TcpSendTargets
            .send_targets(&portal, &me, Duration::from_secs(10))
            .unwrap_err();
        assert!(
            matches!(e, DiscoveryError::LoginRefused { status: 0x0201, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("authentication failed"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn nothing_listening_is_an_error_not_a_hang() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let portal: Portal = l.local_addr().unwrap().to_string().parse().unwrap();
        drop(l);
        let me: Iqn = "iqn.1993-08.org.debian:01:abc".parse().unwrap();
        let e = TcpSendTargets
            .send_targets(&portal, &me, Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(e, DiscoveryError::Connect { .. }), "{e}");
    }
}
