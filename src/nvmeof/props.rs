//! os-brick's NVMe-oF connection properties (`driver_volume_type: nvmeof`), in its four formats
//! (see `NVMeOFConnProps` in os-brick 7.1):
//!
//! 1. replicated: `vol_uuid`, `alias`, `volume_replicas: [TARGET, ...]`, `replica_count`;
//! 2. the same with one replica;
//! 3. a bare TARGET: `target_nqn`, `vol_uuid`, `portals: [[address, port, transport], ...]`
//!    (and optionally `volume_nguid`, `ns_id`, `host_nqn`);
//! 4. the original one: `nqn`, `transport_type`, `target_portal`, `target_port`, `volume_nguid`,
//!    `ns_id`, `host_nqn`.
//!
//! Every field is checked here, before anything on the host changes; an error names the field.
//! NQNs and addresses end up in the option string written to `/dev/nvme-fabrics`, where a `,` or
//! `=` would add options of the caller's choosing: they are refused.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
pub use crate::types::{Nqn, NvmePortal, Transport, Uuid};

/// One NVMe-oF target of a volume (a replica): its subsystem NQN, its portals, and what names
/// the volume's namespace in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvmeTarget {
    /// The subsystem's NQN.
    pub nqn: Nqn,
    /// Its portals, never empty, no duplicates.
    pub portals: Vec<NvmePortal>,
    /// The namespace's UUID (`vol_uuid`), the surest identity.
    pub uuid: Option<Uuid>,
    /// The namespace's NGUID (`volume_nguid`).
    pub nguid: Option<Uuid>,
    /// The namespace id in the subsystem (`ns_id`).
    pub nsid: Option<u32>,
    /// The host NQN to connect as (`host_nqn`), instead of this host's.
    pub host_nqn: Option<Nqn>,
}

impl NvmeTarget {
    /// How the namespace is known, for messages: `uuid X`, `nguid X` or `nsid N`.
    pub fn identity(&self) -> String {
        match (&self.uuid, &self.nguid, self.nsid) {
            (Some(u), _, _) => format!("uuid {u}"),
            (None, Some(g), _) => format!("nguid {g}"),
            (None, None, Some(n)) => format!("nsid {n}"),
            (None, None, None) => "the only namespace of the subsystem".to_string(),
        }
    }
}

/// The connection properties of one NVMe-oF volume. Built only by parsing
/// ([`NvmeProperties::from_value`]), which checks every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvmeProperties {
    /// The targets: one, or the replicas of a replicated volume.
    pub targets: Vec<NvmeTarget>,
    /// The Cinder volume id (`vol_uuid` of the replicated formats), for logs.
    pub volume_id: Option<String>,
    /// The md RAID name of a replicated volume (`alias`).
    pub alias: Option<String>,
    /// Whether the properties came in the replicated format with more than one replica.
    pub replicated: bool,
}

impl NvmeProperties {
    /// Parses os-brick's properties (any of the four formats), or a whole `connection_info` with
    /// `driver_volume_type: nvmeof` and `data`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn from_json(text: &str) -> Result<NvmeProperties> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::invalid("JSON", e))?;
        NvmeProperties::from_value(&v)
    }

    /// As [`NvmeProperties::from_json`], from decoded JSON.
    pub fn from_value(v: &Value) -> Result<NvmeProperties> {
        let obj = unwrap_connection_info(v)?;
        if let Some(reps) = obj.get("volume_replicas") {
            return parse_replicated(obj, reps);
        }
        let target = if obj.contains_key("target_nqn") {
            parse_target(obj, "")?
        } else if obj.contains_key("nqn") {
            parse_original(obj)?
        } else {
            return Err(Error::invalid(
                "target_nqn",
                "is missing (nor nqn, nor volume_replicas is given)",
            ));
        };
        Ok(NvmeProperties {
            volume_id: target.uuid.map(|u| u.to_string()),
            targets: vec![target],
            alias: None,
            replicated: false,
        })
    }

    /// The volume, for logs and reports: its id, or the first target's NQN and namespace.
    pub fn label(&self) -> String {
        match &self.volume_id {
            Some(v) => v.clone(),
            None => format!("{} ({})", self.targets[0].nqn, self.targets[0].identity()),
        }
    }
}

/// The properties object: `v` itself, or the `data` of a connection_info (which must say
/// `nvmeof`).
fn unwrap_connection_info(v: &Value) -> Result<&Map<String, Value>> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::invalid("connection properties", "expected a JSON object"))?;
    let Some(kind) = obj.get("driver_volume_type") else {
        return Ok(obj);
    };
    let kind = kind.as_str().unwrap_or_default();
    if !kind.eq_ignore_ascii_case("nvmeof") {
        return Err(Error::invalid(
            "driver_volume_type",
            format!("{kind:?} is not nvmeof"),
        ));
    }
    obj.get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid("data", "a connection_info needs a \"data\" object"))
}

/// The replicated format: `volume_replicas` (`reps`), `replica_count`, `vol_uuid`, `alias`.
fn parse_replicated(obj: &Map<String, Value>, reps: &Value) -> Result<NvmeProperties> {
    let reps = reps
        .as_array()
        .ok_or_else(|| Error::invalid("volume_replicas", "expected a list of targets"))?;
    if reps.is_empty() {
        return Err(Error::invalid("volume_replicas", "is empty"));
    }
    let mut targets = Vec::new();
    for (i, r) in reps.iter().enumerate() {
        let field = format!("volume_replicas[{i}]");
        let o = r
            .as_object()
            .ok_or_else(|| Error::invalid(&field, "expected an object"))?;
        targets.push(parse_target(o, &format!("{field}."))?);
    }
    if let Some(c) = obj.get("replica_count").filter(|c| !c.is_null()) {
        let n = c
            .as_u64()
            .ok_or_else(|| Error::invalid("replica_count", "expected a whole number"))?;
        if n != targets.len() as u64 {
            return Err(Error::invalid(
                "replica_count",
                format!("is {n}, but volume_replicas lists {}", targets.len()),
            ));
        }
    }
    let volume_id = str_field(obj, "vol_uuid")?
        .map(|v| Uuid::parse(v).map_err(|e| Error::invalid("vol_uuid", e)))
        .transpose()?
        .map(|u| u.to_string());
    let alias = str_field(obj, "alias")?.map(alias).transpose()?;
    let replicated = targets.len() > 1;
    if replicated && alias.is_none() {
        return Err(Error::invalid(
            "alias",
            "a replicated volume needs its md name",
        ));
    }
    Ok(NvmeProperties {
        targets,
        volume_id,
        alias,
        replicated,
    })
}

/// An md array's name: up to 32 letters, digits, `-`, `_` or `.`, not starting with `.`.
fn alias(a: &str) -> Result<String> {
    let ok = !a.is_empty()
        && a.len() <= 32
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !a.starts_with('.');
    if ok {
        Ok(a.to_string())
    } else {
        Err(Error::invalid(
            "alias",
            format!("{a:?}: expected up to 32 letters, digits, '-', '_' or '.'"),
        ))
    }
}

fn str_field<'a>(o: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(k, "expected a string")),
    }
}

fn field_name(prefix: &str, k: &str) -> String {
    format!("{prefix}{k}")
}

fn nqn_field(o: &Map<String, Value>, k: &str, prefix: &str) -> Result<Option<Nqn>> {
    let f = field_name(prefix, k);
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|e| Error::invalid(f, e)),
        Some(_) => Err(Error::invalid(f, "expected a string")),
    }
}

fn uuid_field(o: &Map<String, Value>, k: &str, prefix: &str) -> Result<Option<Uuid>> {
    let f = field_name(prefix, k);
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Uuid::parse(s).map(Some).map_err(|e| Error::invalid(f, e)),
        Some(_) => Err(Error::invalid(f, "expected a string")),
    }
}

fn nsid_field(o: &Map<String, Value>, prefix: &str) -> Result<Option<u32>> {
    let f = field_name(prefix, "ns_id");
    let n = match o.get("ns_id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        Some(_) => None,
    };
    match n {
        // 0 and 0xffffffff are not namespace ids (the latter is the broadcast value).
        Some(n) if (1..0xffff_ffff).contains(&n) => Ok(Some(n as u32)),
        _ => Err(Error::invalid(
            f,
            "expected a namespace id from 1 to 4294967294",
        )),
    }
}

fn address(v: &Value, field: &str) -> Result<IpAddr> {
    let s = v
        .as_str()
        .ok_or_else(|| Error::invalid(field, "expected an IP address as a string"))?;
    let t = s.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    t.parse()
        .map_err(|_| Error::invalid(field, format!("{s:?} is not an IP address")))
}

fn port(v: &Value, field: &str) -> Result<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(Error::invalid(
            field,
            format!("{v} is not a port from 1 to 65535"),
        )),
    }
}

fn transport(v: &Value, field: &str) -> Result<Transport> {
    match v {
        Value::String(s) => Ok(Transport::from_os_brick(s)),
        Value::Null => Ok(Transport::Tcp),
        _ => Err(Error::invalid(field, "expected a string")),
    }
}

fn parse_target(o: &Map<String, Value>, prefix: &str) -> Result<NvmeTarget> {
    let nqn = nqn_field(o, "target_nqn", prefix)?
        .ok_or_else(|| Error::invalid(field_name(prefix, "target_nqn"), "is missing"))?;
    let pf = field_name(prefix, "portals");
    let list = o
        .get("portals")
        .ok_or_else(|| Error::invalid(&pf, "is missing"))?
        .as_array()
        .ok_or_else(|| Error::invalid(&pf, "expected a list of [address, port, transport]"))?;
    if list.is_empty() {
        return Err(Error::invalid(&pf, "is empty"));
    }
    let mut portals = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let f = format!("{pf}[{i}]");
        let a = p
            .as_array()
            .filter(|a| a.len() == 3)
            .ok_or_else(|| Error::invalid(&f, "expected [address, port, transport]"))?;
        let portal = NvmePortal {
            address: address(&a[0], &format!("{f}[0]"))?,
            port: port(&a[1], &format!("{f}[1]"))?,
            transport: transport(&a[2], &format!("{f}[2]"))?,
        };
        if !portals.contains(&portal) {
            portals.push(portal);
        }
    }
    Ok(NvmeTarget {
        nqn,
        portals,
        uuid: uuid_field(o, "vol_uuid", prefix)?,
        nguid: uuid_field(o, "volume_nguid", prefix)?,
        nsid: nsid_field(o, prefix)?,
        host_nqn: nqn_field(o, "host_nqn", prefix)?,
    })
}

fn parse_original(o: &Map<String, Value>) -> Result<NvmeTarget> {
    let nqn = nqn_field(o, "nqn", "")?.ok_or_else(|| Error::invalid("nqn", "is missing"))?;
    let addr = o
        .get("target_portal")
        .ok_or_else(|| Error::invalid("target_portal", "is missing"))?;
    let p = o
        .get("target_port")
        .ok_or_else(|| Error::invalid("target_port", "is missing"))?;
    let portal = NvmePortal {
        address: address(addr, "target_portal")?,
        port: port(p, "target_port")?,
        transport: transport(
            o.get("transport_type").unwrap_or(&Value::Null),
            "transport_type",
        )?,
    };
    Ok(NvmeTarget {
        nqn,
        portals: vec![portal],
        uuid: None,
        nguid: uuid_field(o, "volume_nguid", "")?,
        nsid: nsid_field(o, "")?,
        host_nqn: nqn_field(o, "host_nqn", "")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NQN: &str = "nqn.2014-08.org.lab:sub1";
    const U: &str = "cbee5289-1b94-4aeb-baa3-56414b47eb7d";

    fn parse(v: Value) -> Result<NvmeProperties> {
        NvmeProperties::from_value(&v)
    }

    fn field_of(v: Value) -> String {
        parse(v).unwrap_err().field().unwrap_or("?").to_string()
    }

    #[test]
    fn the_four_formats_of_os_brick() {
        // 4: the original format.
        let p = parse(serde_json::json!({
            "nqn": NQN, "transport_type": "tcp", "target_portal": "127.0.0.1",
            "target_port": 4420, "volume_nguid": "00112233445566778899AABBCCDDEEFF", "ns_id": "3",
            "host_nqn": "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
        }))
        .unwrap();
        let t = &p.targets[0];
        assert_eq!(t.nqn.as_str(), NQN);
        assert_eq!(t.portals[0].to_string(), "tcp 127.0.0.1:4420");
        assert_eq!(
            t.nguid.unwrap().to_string(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
        assert_eq!(t.nsid, Some(3));
        assert!(t.host_nqn.is_some() && t.uuid.is_none() && !p.replicated);
        // 3: a bare target; RoCEv2 is rdma, anything else tcp.
        let p = parse(serde_json::json!({
            "target_nqn": NQN, "vol_uuid": U.replace('-', "").to_uppercase(),
            "portals": [["127.0.0.1", "4420", "RoCEv2"], ["fd00::1", 4421, "nvme/tcp"]]
        }))
        .unwrap();
        let t = &p.targets[0];
        assert_eq!(t.uuid.unwrap().to_string(), U);
        assert_eq!(t.portals[0].transport, Transport::Rdma);
        assert_eq!(t.portals[1].to_string(), "tcp [fd00::1]:4421");
        assert_eq!(p.volume_id.as_deref(), Some(U));
        // 2: one replica.
        let rep = serde_json::json!({"target_nqn": NQN, "vol_uuid": U,
            "portals": [["127.0.0.1", 4420, "tcp"]]});
        let p = parse(serde_json::json!({
            "vol_uuid": "2197a7c7-baf2-4a77-a0de-537c7ad1c8ca", "alias": "vol-1",
            "volume_replicas": [rep.clone()], "replica_count": 1
        }))
        .unwrap();
        assert!(!p.replicated);
        assert_eq!(p.targets.len(), 1);
        // 1: replicated.
        let mut rep2 = rep.clone();
        rep2["target_nqn"] = "nqn.2014-08.org.lab:sub2".into();
        let p = parse(serde_json::json!({
            "vol_uuid": "2197a7c7baf24a77a0de537c7ad1c8ca", "alias": "vol-1",
            "volume_replicas": [rep, rep2], "replica_count": 2
        }))
        .unwrap();
        assert!(p.replicated);
        assert_eq!(p.alias.as_deref(), Some("vol-1"));
        assert_eq!(
            p.volume_id.as_deref(),
            Some("2197a7c7-baf2-4a77-a0de-537c7ad1c8ca")
        );
    }

    #[test]
    fn a_connection_info_must_say_nvmeof() {
        let ok = serde_json::json!({"driver_volume_type": "nvmeof", "data": {
            "target_nqn": NQN, "portals": [["127.0.0.1", 4420, "tcp"]], "vol_uuid": U}});
        assert!(parse(ok).is_ok());
        let bad = serde_json::json!({"driver_volume_type": "iscsi", "data": {}});
        assert_eq!(field_of(bad), "driver_volume_type");
    }

    #[test]
    fn hostile_or_broken_fields_are_refused_by_name() {
        let base = || {
            serde_json::json!({"target_nqn": NQN, "vol_uuid": U,
                "portals": [["127.0.0.1", 4420, "tcp"]]})
        };
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "target_nqn",
                format!("{NQN},hostnqn=evil").into(),
                "target_nqn",
            ),
            ("target_nqn", "nqn.2014-08.org.lab:a=b".into(), "target_nqn"),
            ("target_nqn", "iqn.2003-01.org.x:t".into(), "target_nqn"),
            ("target_nqn", "nqn.14-08.org.lab:x".into(), "target_nqn"),
            ("target_nqn", "nqn.2014-13.org.lab:x".into(), "target_nqn"),
            ("target_nqn", "nqn.2014-08.org.lab:a b".into(), "target_nqn"),
            (
                "target_nqn",
                format!("nqn.2014-08.org.lab:{}", "x".repeat(220)).into(),
                "target_nqn",
            ),
            (
                "target_nqn",
                "nqn.2014-08.org.nvmexpress:uuid:nope".into(),
                "target_nqn",
            ),
            ("target_nqn", 7.into(), "target_nqn"),
            ("vol_uuid", "1234".into(), "vol_uuid"),
            (
                "vol_uuid",
                "cbee5289-1b94-4aeb-baa3-56414b47eb7g".into(),
                "vol_uuid",
            ),
            (
                "volume_nguid",
                "cbee52891b94-4aeb-baa3-56414b47eb7d".into(),
                "volume_nguid",
            ),
            ("ns_id", 0.into(), "ns_id"),
            ("ns_id", "-1".into(), "ns_id"),
            ("ns_id", 4294967295u64.into(), "ns_id"),
            ("host_nqn", "nqn.2014-08.org.lab:h\n".into(), "host_nqn"),
            ("portals", serde_json::json!([]), "portals"),
            (
                "portals",
                serde_json::json!([["127.0.0.1,trsvcid=1", 4420, "tcp"]]),
                "portals[0][0]",
            ),
            (
                "portals",
                serde_json::json!([["example.com", 4420, "tcp"]]),
                "portals[0][0]",
            ),
            (
                "portals",
                serde_json::json!([["127.0.0.1", 0, "tcp"]]),
                "portals[0][1]",
            ),
            (
                "portals",
                serde_json::json!([["127.0.0.1", "99999", "tcp"]]),
                "portals[0][1]",
            ),
            (
                "portals",
                serde_json::json!([["127.0.0.1", 4420]]),
                "portals[0]",
            ),
        ];
        for (k, v, field) in cases {
            let mut p = base();
            p[k] = v.clone();
            assert_eq!(field_of(p), field, "{k} = {v}");
        }
        // In a replica, the field says which.
        let e = field_of(
            serde_json::json!({"vol_uuid": U, "alias": "a", "volume_replicas": [
            {"target_nqn": NQN, "portals": [["127.0.0.1", 4420, "tcp"]]},
            {"target_nqn": "bad", "portals": [["127.0.0.1", 4420, "tcp"]]}]}),
        );
        assert_eq!(e, "volume_replicas[1].target_nqn");
        let e = field_of(
            serde_json::json!({"vol_uuid": U, "alias": "../x", "volume_replicas": [
            {"target_nqn": NQN, "portals": [["127.0.0.1", 4420, "tcp"]]}]}),
        );
        assert_eq!(e, "alias");
        let e = field_of(
            serde_json::json!({"vol_uuid": U, "alias": "a", "replica_count": 3,
            "volume_replicas": [{"target_nqn": NQN, "portals": [["127.0.0.1", 4420, "tcp"]]}]}),
        );
        assert_eq!(e, "replica_count");
        assert_eq!(
            field_of(serde_json::json!({"nqn": NQN, "target_port": 4420})),
            "target_portal"
        );
    }

    #[test]
    fn uuid_forms() {
        for s in [
            U,
            &U.to_uppercase(),
            &U.replace('-', ""),
            &format!("{{{U}}}"),
        ] {
            assert_eq!(Uuid::parse(s).unwrap().to_string(), U, "{s}");
        }
        assert!(Uuid::parse("cbee5289-1b941-4aeb-baa3-56414b47eb7d").is_err());
        assert!(Uuid::parse("00000000-0000-0000-0000-000000000000")
            .unwrap()
            .is_nil());
    }
}
