//! os-brick's iSCSI `connection_properties` (what Cinder's `initialize_connection` returns under
//! `data` for `driver_volume_type: iscsi`).
//!
//! Everything is validated here, before anything on the host is touched: a bad value is an
//! [`Error::InvalidInput`] that names the field.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::types::{Iqn, Lun, Portal};

/// A secret (a CHAP password). It has no `Display`, its `Debug` is masked, and it is never
/// serialised; [`Secret::expose`] is the only way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text, for the one place that must pass it on.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::host::cmd::MASK)
    }
}

/// CHAP credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chap {
    pub(crate) username: String,
    pub(crate) password: Secret,
}

/// One path to the volume: a portal, the target's IQN there, and the LUN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    /// The portal.
    pub portal: Portal,
    /// The target's name there.
    pub iqn: Iqn,
    /// The LUN of the volume there.
    pub lun: Lun,
}

/// The connection properties of one iSCSI volume, as os-brick's callers give them. Built only by
/// parsing ([`ConnectionProperties::from_json`]), which checks every field: it always names at
/// least one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionProperties {
    /// Every path: from `target_portals`/`target_iqns`/`target_luns` when given, else the one
    /// from `target_portal`/`target_iqn`/`target_lun`. Never empty, no duplicates.
    pub(crate) targets: Vec<Target>,
    /// `volume_id`, for logs.
    pub(crate) volume_id: Option<String>,
    /// Session CHAP (`auth_method: CHAP`), with mutual CHAP's reverse credentials when given.
    pub(crate) auth: Option<Chap>,
    /// `auth_reverse_username`/`auth_reverse_password` for mutual CHAP.
    pub(crate) auth_reverse: Option<Chap>,
    /// Discovery CHAP (`discovery_auth_method: CHAP`).
    pub(crate) discovery_auth: Option<Chap>,
    /// `target_discovered`: the node records exist already.
    pub(crate) discovered: bool,
    /// Whether `target_portals` was given: without it, a multipath connect finds the volume's
    /// other portals by a sendtargets discovery on `target_portal`, as os-brick does.
    pub(crate) portals_listed: bool,
    /// `driver_volume_type: iser` (a Cinder iSER driver): sessions on the `iser` interface
    /// unless the caller names another.
    pub(crate) iser: bool,
    /// `encrypted`: brick passes the device on; encryption is the caller's layer.
    pub(crate) encrypted: bool,
}

impl ConnectionProperties {
    /// Every path of the volume (portal, target, LUN): never empty, no duplicates.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The caller's `volume_id`, if given.
    pub fn volume_id(&self) -> Option<&str> {
        self.volume_id.as_deref()
    }

    /// Parses JSON text: the properties themselves, or a whole `connection_info`
    /// (`{"driver_volume_type": "iscsi", "data": {...}}`).
    pub fn from_json(text: &str) -> Result<ConnectionProperties> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::invalid("JSON", e))?;
        ConnectionProperties::from_value(&v)
    }

    /// Parses an already-decoded JSON value (see [`ConnectionProperties::from_json`]).
    pub fn from_value(v: &Value) -> Result<ConnectionProperties> {
        let mut obj = v
            .as_object()
            .ok_or_else(|| Error::invalid("connection properties", "expected a JSON object"))?;
        let mut iser = false;
        if let Some(kind) = obj.get("driver_volume_type") {
            let kind = kind.as_str().unwrap_or_default();
            iser = kind.eq_ignore_ascii_case("iser");
            if !kind.eq_ignore_ascii_case("iscsi") && !iser {
                return Err(Error::invalid(
                    "driver_volume_type",
                    format!("{kind:?} is not iscsi (or iser)"),
                ));
            }
            obj = obj.get("data").and_then(Value::as_object).ok_or_else(|| {
                Error::invalid("data", "a connection_info needs a \"data\" object")
            })?;
        }
        let mut targets = parse_targets(obj)?;
        let mode = AddressingMode::from_field(opt_str(obj, "addressing_mode")?.as_deref())?;
        let listed = obj.get("target_portals").is_some_and(|v| !v.is_null());
        for (i, t) in targets.iter_mut().enumerate() {
            let field = if listed {
                format!("target_luns[{i}]")
            } else {
                "target_lun".to_string()
            };
            t.lun = mode
                .kernel_lun(t.lun)
                .map_err(|why| Error::invalid(field, why))?;
        }
        Ok(ConnectionProperties {
            targets,
            volume_id: opt_str(obj, "volume_id")?
                .map(|v| plain_text("volume_id", v, false))
                .transpose()?,
            auth: chap(obj, "auth_method", "auth_username", "auth_password")?,
            auth_reverse: reverse_chap(obj)?,
            discovery_auth: chap(
                obj,
                "discovery_auth_method",
                "discovery_auth_username",
                "discovery_auth_password",
            )?,
            discovered: opt_bool(obj, "target_discovered")?.unwrap_or(false),
            encrypted: opt_bool(obj, "encrypted")?.unwrap_or(false),
            portals_listed: obj.get("target_portals").is_some_and(|v| !v.is_null()),
            iser,
        })
    }

    /// Every secret in these properties, to mask wherever text might show them.
    pub fn secrets(&self) -> Vec<&str> {
        [&self.auth, &self.auth_reverse, &self.discovery_auth]
            .into_iter()
            .flatten()
            .map(|c| c.password.expose())
            .collect()
    }

    /// The volume's LUNs on target `iqn` at `portal` (normally one; none when the volume has no
    /// path there).
    pub fn luns_at(
        &self,
        iqn: &crate::types::Iqn,
        portal: &crate::types::Portal,
    ) -> Vec<crate::types::Lun> {
        self.targets
            .iter()
            .filter(|t| &t.iqn == iqn && &t.portal == portal)
            .map(|t| t.lun)
            .collect()
    }

    /// A short name for logs: the volume id, or the first target.
    pub fn label(&self) -> String {
        match &self.volume_id {
            Some(v) => v.clone(),
            None => format!("{} lun {}", self.targets[0].iqn, self.targets[0].lun),
        }
    }
}

/// How the array numbers its LUNs (os-brick's `addressing_mode`), and so which number the kernel
/// shows for the LUN the properties name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressingMode {
    /// `SAM` or `transparent` (the default): the number as it is.
    Sam,
    /// `SAM2`: peripheral addressing below 256, flat space addressing from 256.
    Sam2,
    /// `SAM3-flat`: flat space addressing for every LUN.
    Sam3Flat,
}

/// Flat space addressing: method 01b in the LUN's first two bytes, which the kernel's
/// `scsilun_to_int` shows as 16384 + the LUN.
const FLAT_SPACE: u64 = 0x4000;

impl AddressingMode {
    fn from_field(v: Option<&str>) -> Result<AddressingMode> {
        match v {
            None | Some("SAM") | Some("transparent") => Ok(AddressingMode::Sam),
            Some("SAM2") => Ok(AddressingMode::Sam2),
            Some("SAM3-flat") => Ok(AddressingMode::Sam3Flat),
            Some(other) => Err(Error::invalid(
                "addressing_mode",
                format!("{other:?} is not one of SAM, transparent, SAM2, SAM3-flat"),
            )),
        }
    }

    /// The LUN number the kernel shows (in H:C:T:L, and for a scan) for the array's `lun`.
    fn kernel_lun(self, lun: Lun) -> std::result::Result<Lun, NotFlat> {
        let flat = match self {
            AddressingMode::Sam => false,
            AddressingMode::Sam2 => lun.0 >= 256,
            AddressingMode::Sam3Flat => true,
        };
        if !flat {
            return Ok(lun);
        }
        if lun.0 >= FLAT_SPACE {
            return Err(NotFlat(lun));
        }
        let kernel = Lun(FLAT_SPACE + lun.0);
        tracing::debug!(%lun, %kernel, "the kernel shows the LUN flat-space addressed");
        Ok(kernel)
    }
}

/// A LUN that flat space addressing cannot carry (it has 14 bits).
#[derive(Debug, thiserror::Error)]
#[error("{0} does not fit flat space addressing (LUNs 0 to 16383) of the addressing_mode")]
struct NotFlat(Lun);

fn parse_targets(obj: &Map<String, Value>) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    if let Some(portals) = obj.get("target_portals").filter(|v| !v.is_null()) {
        let portals = list(portals, "target_portals")?;
        if portals.is_empty() {
            return Err(Error::invalid("target_portals", "is empty"));
        }
        let n = portals.len();
        let iqns = match obj.get("target_iqns").filter(|v| !v.is_null()) {
            Some(v) => list(v, "target_iqns")?.into_iter().cloned().collect(),
            None => vec![required(obj, "target_iqn", "target_iqns")?.clone(); n],
        };
        let luns = match obj.get("target_luns").filter(|v| !v.is_null()) {
            Some(v) => list(v, "target_luns")?.into_iter().cloned().collect(),
            None => vec![obj.get("target_lun").cloned().unwrap_or(Value::from(0)); n],
        };
        for (field, len) in [("target_iqns", iqns.len()), ("target_luns", luns.len())] {
            if len != n {
                return Err(Error::invalid(
                    field,
                    format!("has {len} entries but target_portals has {n}"),
                ));
            }
        }
        for i in 0..n {
            targets.push(Target {
                portal: portal(portals[i], &format!("target_portals[{i}]"))?,
                iqn: iqn(&iqns[i], &format!("target_iqns[{i}]"))?,
                lun: lun(&luns[i], &format!("target_luns[{i}]"))?,
            });
        }
    } else {
        let p = obj
            .get("target_portal")
            .ok_or_else(|| Error::invalid("target_portal", "is missing"))?;
        let q = obj
            .get("target_iqn")
            .ok_or_else(|| Error::invalid("target_iqn", "is missing"))?;
        targets.push(Target {
            portal: portal(p, "target_portal")?,
            iqn: iqn(q, "target_iqn")?,
            lun: lun(
                obj.get("target_lun").unwrap_or(&Value::from(0)),
                "target_lun",
            )?,
        });
    }
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.clone()));
    Ok(targets)
}

fn required<'a>(obj: &'a Map<String, Value>, field: &str, instead_of: &str) -> Result<&'a Value> {
    obj.get(field)
        .ok_or_else(|| Error::invalid(instead_of, format!("is missing (and so is {field})")))
}

fn list<'a>(v: &'a Value, field: &str) -> Result<Vec<&'a Value>> {
    v.as_array()
        .map(|a| a.iter().collect())
        .ok_or_else(|| Error::invalid(field, format!("expected a list, found {v}")))
}

/// How long the host name of a portal may take to resolve.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn portal(v: &Value, field: &str) -> Result<Portal> {
    let s = v
        .as_str()
        .ok_or_else(|| Error::invalid(field, format!("expected a string, found {v}")))?;
    Portal::resolve(s, RESOLVE_TIMEOUT).map_err(|e| Error::invalid(field, e))
}

fn iqn(v: &Value, field: &str) -> Result<Iqn> {
    let s = v
        .as_str()
        .ok_or_else(|| Error::invalid(field, format!("expected a string, found {v}")))?;
    s.parse().map_err(|e| Error::invalid(field, e))
}

fn lun(v: &Value, field: &str) -> Result<Lun> {
    match v {
        Value::Number(n) => n.as_u64().map(Lun).ok_or_else(|| {
            Error::invalid(field, format!("{n} is not a LUN (a whole number from 0)"))
        }),
        Value::String(s) => s.parse().map_err(|e| Error::invalid(field, e)),
        other => Err(Error::invalid(
            field,
            format!("expected a number, found {other}"),
        )),
    }
}

fn opt_str(obj: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid(
            field,
            format!("expected a string, found {other}"),
        )),
    }
}

fn opt_bool(obj: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(Error::invalid(field, "expected true or false")),
    }
}

fn chap(obj: &Map<String, Value>, method: &str, user: &str, pass: &str) -> Result<Option<Chap>> {
    let Some(m) = opt_str(obj, method)? else {
        return Ok(None);
    };
    if m.eq_ignore_ascii_case("none") || m.is_empty() {
        return Ok(None);
    }
    if !m.eq_ignore_ascii_case("chap") {
        return Err(Error::invalid(
            method,
            format!("{m:?} is not supported (only CHAP)"),
        ));
    }
    let username = opt_str(obj, user)?
        .filter(|s| !s.is_empty())
        .map(|s| plain_text(user, s, false))
        .transpose()?;
    let password = match obj.get(pass) {
        Some(Value::String(s)) if !s.is_empty() => plain_text(pass, s.clone(), true)?,
        // Never echo the value: it is a password.
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(Error::invalid(
                pass,
                format!("is missing, and {method} is CHAP"),
            ))
        }
        Some(_) => return Err(Error::invalid(pass, "expected a string")),
    };
    let username = username
        .ok_or_else(|| Error::invalid(user, format!("is missing, and {method} is CHAP")))?;
    Ok(Some(Chap {
        username,
        password: Secret(password),
    }))
}

/// The longest CHAP name or secret open-iscsi keeps (`AUTH_STR_MAX_LEN` is 256 bytes with the
/// NUL), and the longest volume id brick takes into its logs.
pub const MAX_TEXT_LEN: usize = 255;

/// Checks a value that goes into a node record line (`name = value`) or into the logs: a line
/// break in it would write another key into the record (`node.startup = automatic`, another
/// portal), and open-iscsi trims the spaces around a value, so what the target checks would not be
/// what was given. Refuses control characters, surrounding white space and values over
/// [`MAX_TEXT_LEN`] bytes, naming `field` (and never echoing a `secret`).
fn plain_text(field: &str, value: String, secret: bool) -> Result<String> {
    let shown = |why: &str| {
        if secret {
            why.to_string()
        } else {
            format!("{value:?} {why}")
        }
    };
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            shown("holds a control character (a line break, tab, NUL, ...)"),
        ));
    }
    if value.trim() != value {
        return Err(Error::invalid(
            field,
            shown("starts or ends with white space"),
        ));
    }
    if value.len() > MAX_TEXT_LEN {
        return Err(Error::invalid(
            field,
            format!("is {} bytes long, over {MAX_TEXT_LEN}", value.len()),
        ));
    }
    Ok(value)
}

fn reverse_chap(obj: &Map<String, Value>) -> Result<Option<Chap>> {
    let user = opt_str(obj, "auth_reverse_username")?
        .filter(|s| !s.is_empty())
        .map(|s| plain_text("auth_reverse_username", s, false))
        .transpose()?;
    let pass = match obj.get("auth_reverse_password") {
        Some(Value::String(s)) if !s.is_empty() => {
            Some(plain_text("auth_reverse_password", s.clone(), true)?)
        }
        None | Some(Value::Null) | Some(Value::String(_)) => None,
        Some(_) => return Err(Error::invalid("auth_reverse_password", "expected a string")),
    };
    match (user, pass) {
        (None, None) => Ok(None),
        (Some(username), Some(p)) => Ok(Some(Chap {
            username,
            password: Secret(p),
        })),
        (None, Some(_)) => Err(Error::invalid(
            "auth_reverse_username",
            "is missing, and a reverse password is set",
        )),
        (Some(_), None) => Err(Error::invalid(
            "auth_reverse_password",
            "is missing, and a reverse username is set",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ConnectionProperties> {
        ConnectionProperties::from_json(s)
    }

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidInput { field, .. } => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn single_path_properties() {
        let p = parse(r#"{"target_portal":"127.0.0.1:3260","target_iqn":"iqn.2003-01.org.linux-iscsi.lab:tgt1",
            "target_lun":1,"volume_id":"v1","qos_specs":null,"access_mode":"rw","encrypted":false}"#)
        .unwrap();
        assert_eq!(p.targets.len(), 1);
        assert_eq!(p.targets[0].portal.to_string(), "127.0.0.1:3260");
        assert_eq!(p.targets[0].lun, Lun(1));
        assert_eq!(p.volume_id.as_deref(), Some("v1"));
        assert!(p.auth.is_none());
    }

    #[test]
    fn a_portal_host_name_resolves_and_an_unknown_one_is_bad_input() {
        let p = parse(
            r#"{"target_portals":["localhost:3260","localhost:3260"],
            "target_iqns":["iqn.2003-01.org.x:t","iqn.2003-01.org.x:t"],"target_luns":[1,1]}"#,
        )
        .unwrap();
        // Both name the same portal once resolved: one path, at an address.
        assert_eq!(p.targets.len(), 1, "{:?}", p.targets);
        assert!(p.targets[0].portal.ip.is_loopback());
        let e = parse(
            r#"{"target_portal":"array.invalid:3260","target_iqn":"iqn.2003-01.org.x:t",
            "target_lun":1}"#,
        )
        .unwrap_err();
        assert_eq!(field_of(e), "target_portal");
    }

    #[test]
    fn addressing_mode_gives_the_lun_number_the_kernel_shows() {
        let one = |lun: u64, mode: &str| {
            parse(&format!(
                r#"{{"target_portal":"127.0.0.1:3260","target_iqn":"iqn.2003-01.org.x:t",
                "target_lun":{lun}{mode}}}"#
            ))
            .map(|p| p.targets[0].lun.0)
        };
        let mode = |m: &str| format!(r#","addressing_mode":"{m}""#);
        // SAM and transparent (and none): as given, however large.
        for m in ["".to_string(), mode("SAM"), mode("transparent")] {
            assert_eq!(one(1, &m).unwrap(), 1);
            assert_eq!(one(256, &m).unwrap(), 256);
            assert_eq!(one(70000, &m).unwrap(), 70000);
        }
        // SAM2: peripheral below 256, flat space from 256.
        assert_eq!(one(255, &mode("SAM2")).unwrap(), 255);
        assert_eq!(one(256, &mode("SAM2")).unwrap(), 16640);
        assert_eq!(one(16383, &mode("SAM2")).unwrap(), 32767);
        // SAM3-flat: flat space for every LUN.
        assert_eq!(one(1, &mode("SAM3-flat")).unwrap(), 16385);
        assert_eq!(one(0, &mode("SAM3-flat")).unwrap(), 16384);
        // Beyond what flat space addressing holds: bad input, naming the field.
        for m in ["SAM2", "SAM3-flat"] {
            assert_eq!(field_of(one(16384, &mode(m)).unwrap_err()), "target_lun");
        }
        assert_eq!(
            field_of(one(1, &mode("SAM4")).unwrap_err()),
            "addressing_mode"
        );
        // Each listed LUN is converted, and a bad one is named by its index.
        let p = parse(
            r#"{"target_portals":["127.0.0.1:3260","127.0.0.2:3260"],
            "target_iqns":["iqn.2003-01.org.x:t","iqn.2003-01.org.x:t"],"target_luns":[256,300],
            "addressing_mode":"SAM2"}"#,
        )
        .unwrap();
        let luns: Vec<u64> = p.targets.iter().map(|t| t.lun.0).collect();
        assert_eq!(luns, [16640, 16684]);
        let e = parse(
            r#"{"target_portals":["127.0.0.1:3260","127.0.0.2:3260"],
            "target_iqns":["iqn.2003-01.org.x:t","iqn.2003-01.org.x:t"],"target_luns":[1,20000],
            "addressing_mode":"SAM3-flat"}"#,
        )
        .unwrap_err();
        assert_eq!(field_of(e), "target_luns[1]");
    }

    #[test]
    fn multipath_properties_and_connection_info_wrapper() {
        let p = parse(
            r#"{"driver_volume_type":"iscsi","data":{
            "target_portal":"127.0.0.1:3260","target_iqn":"iqn.2003-01.org.x:t","target_lun":"2",
            "target_portals":["127.0.0.1:3260","[::1]:3260"],
            "target_iqns":["iqn.2003-01.org.x:t","iqn.2003-01.org.x:t"],"target_luns":[2,2]}}"#,
        )
        .unwrap();
        let portals: Vec<String> = p.targets.iter().map(|t| t.portal.to_string()).collect();
        assert_eq!(portals, ["127.0.0.1:3260", "[::1]:3260"]);
        assert!(p.targets.iter().all(|t| t.lun == Lun(2)));
    }

    #[test]
    fn portals_without_iqns_reuse_target_iqn() {
        let p = parse(
            r#"{"target_iqn":"iqn.2003-01.org.x:t","target_lun":3,
            "target_portals":["127.0.0.1","127.0.0.2:3260"]}"#,
        )
        .unwrap();
        assert_eq!(p.targets.len(), 2);
        assert_eq!(p.targets[1].lun, Lun(3));
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            ("not json", "JSON"),
            ("[]", "connection properties"),
            (r#"{"target_iqn":"iqn.2003-01.org.x:t"}"#, "target_portal"),
            (
                r#"{"target_portal":"127.0.0.1","target_iqn":"bogus"}"#,
                "target_iqn",
            ),
            (
                r#"{"target_portal":"nohost:3260","target_iqn":"iqn.2003-01.org.x:t"}"#,
                "target_portal",
            ),
            (
                r#"{"target_portal":"127.0.0.1","target_iqn":"iqn.2003-01.org.x:t","target_lun":-1}"#,
                "target_lun",
            ),
            (
                r#"{"target_portal":"127.0.0.1","target_iqn":"iqn.2003-01.org.x:t","target_lun":"x"}"#,
                "target_lun",
            ),
            (
                r#"{"target_portals":["127.0.0.1","bad"],"target_iqns":["iqn.2003-01.org.x:t","iqn.2003-01.org.x:t"],"target_luns":[1,1]}"#,
                "target_portals[1]",
            ),
            (
                r#"{"target_portals":["127.0.0.1"],"target_iqns":["iqn.2003-01.org.x:t","iqn.2003-01.org.x:t"],"target_luns":[1]}"#,
                "target_iqns",
            ),
            (
                r#"{"target_portals":["127.0.0.1"],"target_iqns":["iqn.2003-01.org.x:t"],"target_luns":[1.5]}"#,
                "target_luns[0]",
            ),
            (
                r#"{"driver_volume_type":"rbd","data":{}}"#,
                "driver_volume_type",
            ),
            (
                r#"{"target_portal":"127.0.0.1","target_iqn":"iqn.2003-01.org.x:t","auth_method":"CHAP","auth_username":"u"}"#,
                "auth_password",
            ),
            (
                r#"{"target_portal":"127.0.0.1","target_iqn":"iqn.2003-01.org.x:t","auth_method":"CHAP","auth_password":"pw"}"#,
                "auth_username",
            ),
            (
                r#"{"target_portal":"127.0.0.1","target_iqn":"iqn.2003-01.org.x:t","encrypted":"maybe"}"#,
                "encrypted",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(field_of(parse(json).unwrap_err()), field, "{json}");
        }
    }

    #[test]
    fn chap_values_and_volume_id_that_could_inject_record_keys_are_refused() {
        let base = |extra: &str| {
            format!(
                r#"{{"target_portal":"127.0.0.1","target_iqn":"iqn.2003-01.org.x:t","target_lun":1,
                "auth_method":"CHAP","auth_username":"u","auth_password":"p",
                "discovery_auth_method":"CHAP","discovery_auth_username":"du",
                "discovery_auth_password":"dp",{extra}}}"#
            )
        };
        let long = "x".repeat(256);
        let cases = [
            (
                r#""auth_password":"pw\nnode.startup = automatic""#,
                "auth_password",
            ),
            (
                r#""auth_username":"u\r\nnode.conn[0].address = 10.9.9.9""#,
                "auth_username",
            ),
            (r#""auth_username":" u""#, "auth_username"),
            (r#""auth_password":"p ""#, "auth_password"),
            (r#""auth_password":"p\u0000q""#, "auth_password"),
            (
                r#""discovery_auth_password":"a\tb""#,
                "discovery_auth_password",
            ),
            (
                r#""discovery_auth_username":"a\nb""#,
                "discovery_auth_username",
            ),
            (
                r#""auth_reverse_username":"r","auth_reverse_password":"x\ny""#,
                "auth_reverse_password",
            ),
            (
                r#""auth_reverse_username":"r\n","auth_reverse_password":"x""#,
                "auth_reverse_username",
            ),
            (r#""volume_id":"v1\nERROR forged log line""#, "volume_id"),
            (r#""volume_id":"v1 ""#, "volume_id"),
        ];
        for (extra, field) in cases {
            // Later keys win in serde_json's map: the bad value replaces the good one.
            let e = parse(&base(extra)).unwrap_err();
            let text = e.to_string();
            assert_eq!(field_of(e), field, "{extra}");
            assert!(
                !text.contains("automatic") && !text.contains("x\ny"),
                "{text}"
            );
        }
        let too_long = format!(r#""auth_password":"{long}""#);
        assert_eq!(
            field_of(parse(&base(&too_long)).unwrap_err()),
            "auth_password"
        );
        let too_long = format!(r#""volume_id":"{long}""#);
        assert_eq!(field_of(parse(&base(&too_long)).unwrap_err()), "volume_id");
        // Inner spaces and punctuation are fine, and 255 bytes is the limit.
        let ok = format!(r#""auth_password":"a b=c#{}""#, "y".repeat(249));
        let p = parse(&base(&ok)).unwrap();
        assert_eq!(p.auth.unwrap().password.expose().len(), 255);
    }

    #[test]
    fn chap_password_is_never_shown() {
        let p = parse(r#"{"target_portal":"127.0.0.1","target_iqn":"iqn.2003-01.org.x:t",
            "auth_method":"CHAP","auth_username":"user","auth_password":"Sup3rS3cret",
            "discovery_auth_method":"CHAP","discovery_auth_username":"du","discovery_auth_password":"D1sc"}"#)
        .unwrap();
        assert!(!format!("{p:?}").contains("Sup3rS3cret"));
        assert!(!format!("{p:?}").contains("D1sc"));
        assert_eq!(p.secrets(), ["Sup3rS3cret", "D1sc"]);
        // An error about a CHAP field does not echo it either.
        let e = parse(r#"{"target_portal":"127.0.0.1","target_iqn":"iqn.2003-01.org.x:t","auth_method":"CHAP","auth_password":"Sup3rS3cret"}"#)
            .unwrap_err();
        assert!(!e.to_string().contains("Sup3rS3cret"));
    }
}
