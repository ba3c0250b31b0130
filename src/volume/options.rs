//! The caller's choices for a connect, every transport's in one type, and the rule that an
//! option of another transport is refused rather than silently ignored.

use std::time::Duration;

use super::Protocol;
use crate::error::{Error, Result};

/// What the caller chooses for a connect. `None` everywhere (the default) leaves every choice
/// to the volume's transport and to brick's settings. An option that only one transport takes,
/// given for a volume of another, is refused by [`crate::connect_volume`] naming it: silently
/// ignored, it would let the caller believe it took effect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Every transport: `Some(true)` every path (iSCSI: every portal and the multipath map),
    /// `Some(false)` one path only (the portals tried in turn), `None` the transport's default
    /// (iSCSI: multipath when the properties list several portals; NVMe-oF: the kernel's
    /// native multipath when it is on).
    pub multipath: Option<bool>,
    /// iSCSI: the open-iscsi interface to make sessions on (os-brick's `transport`): `default`
    /// (TCP), `iser`, or an iface record's name. `None`: `iser` for a
    /// `driver_volume_type: iser` volume, else `default`.
    pub iface: Option<String>,
    /// NVMe-oF: how long the kernel keeps reconnecting a controller whose portal is gone
    /// (`ctrl_loss_tmo`). `None`: the setting `nvme_ctrl_loss_tmo`.
    pub ctrl_loss_tmo: Option<CtrlLossTmo>,
    /// NVMe-oF: the pause between two reconnect attempts (`reconnect_delay`). `None`: the
    /// setting `nvme_reconnect_delay`.
    pub reconnect_delay: Option<Duration>,
    /// NVMe-oF: fail I/O on a reconnecting controller after this long (`fast_io_fail_tmo`).
    /// `None`: the setting, by default wait for the reconnect.
    pub fast_io_fail_tmo: Option<Duration>,
}

/// NVMe-oF's `ctrl_loss_tmo`: how long a controller whose portal is gone is reconnected before
/// the kernel deletes it and fails its queued I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrlLossTmo {
    /// For ever, until a disconnect decides (os-brick's `-1`).
    Off,
    /// This long (at least a second: the kernel counts whole seconds).
    After(Duration),
}

impl CtrlLossTmo {
    /// As [`crate::nvmeof::NvmeTuning::ctrl_loss_tmo`] holds it (`None`: for ever).
    pub fn limit(self) -> Option<Duration> {
        match self {
            CtrlLossTmo::Off => None,
            CtrlLossTmo::After(d) => Some(d),
        }
    }
}

impl std::str::FromStr for CtrlLossTmo {
    type Err = crate::config::BadSetting;
    /// `off` (or `-1`), or a duration of at least a second (`30`, `2m`), as the setting
    /// `nvme_ctrl_loss_tmo` takes it.
    fn from_str(s: &str) -> std::result::Result<CtrlLossTmo, Self::Err> {
        Ok(match crate::config::seconds_or_off(s)? {
            None => CtrlLossTmo::Off,
            Some(d) => CtrlLossTmo::After(d),
        })
    }
}

impl ConnectOptions {
    /// Each option that was given, by its field's name, with the one protocol that takes it
    /// (`None`: every protocol does).
    fn given(&self) -> [(&'static str, bool, Option<Protocol>); 5] {
        let [multipath, iface, ctrl_loss_tmo, reconnect_delay, fast_io_fail_tmo] = Self::FIELDS;
        let nvme = Some(Protocol::Nvmeof);
        [
            (multipath, self.multipath.is_some(), None),
            (iface, self.iface.is_some(), Some(Protocol::Iscsi)),
            (ctrl_loss_tmo, self.ctrl_loss_tmo.is_some(), nvme),
            (reconnect_delay, self.reconnect_delay.is_some(), nvme),
            (fast_io_fail_tmo, self.fast_io_fail_tmo.is_some(), nvme),
        ]
    }

    /// The options' names, as a refusal names them (the fields of this type): an entry that
    /// spells them its own way (the command line's `--ctrl-loss-tmo`) translates these.
    pub const FIELDS: [&'static str; 5] = [
        "multipath",
        "iface",
        "ctrl_loss_tmo",
        "reconnect_delay",
        "fast_io_fail_tmo",
    ];

    /// Refuses the first option given that a `ours` volume does not take.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] whose field is the option's name (one of [`Self::FIELDS`]).
    pub fn refuse_other_transport(&self, ours: Protocol) -> Result<()> {
        let other = self
            .given()
            .into_iter()
            .find(|(_, given, only)| *given && only.is_some_and(|p| p != ours));
        match other {
            Some((field, _, Some(theirs))) => Err(Error::invalid(
                field,
                format!(
                    "applies to {} volumes only, and this volume is {}",
                    theirs.name(),
                    ours.name()
                ),
            )),
            _ => Ok(()),
        }
    }
}
