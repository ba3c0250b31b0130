//! The seam's parse (which transport the properties are for) and its rule on options.

use super::*;
use crate::Error;

const NV: &str = r#"{"target_nqn": "nqn.2014-08.org.lab:s", "vol_uuid": "cbee5289-1b94-4aeb-baa3-56414b47eb7d", "portals": [["127.0.0.1", 4420, "tcp"]]}"#;
const IS: &str =
    r#"{"target_portal": "127.0.0.1:3260", "target_iqn": "iqn.2003-01.org.x:t", "target_lun": 1}"#;

#[test]
fn driver_volume_type_picks_the_connector() {
    let ci = format!(r#"{{"driver_volume_type": "nvmeof", "data": {NV}}}"#);
    assert!(matches!(
        VolumeProperties::from_json(&ci, None),
        Ok(VolumeProperties::Nvmeof(_))
    ));
    let ci = format!(r#"{{"driver_volume_type": "iscsi", "data": {IS}}}"#);
    assert!(matches!(
        VolumeProperties::from_json(&ci, None),
        Ok(VolumeProperties::Iscsi(_))
    ));
    let e = VolumeProperties::from_json(&ci, Some(Protocol::Nvmeof)).unwrap_err();
    assert_eq!(e.field(), Some("driver_volume_type"));
    let ci = format!(r#"{{"driver_volume_type": "iser", "data": {IS}}}"#);
    assert!(matches!(
        VolumeProperties::from_json(&ci, None),
        Ok(VolumeProperties::Iscsi(p)) if p.iser
    ));
    let ci = format!(r#"{{"driver_volume_type": "rbd", "data": {IS}}}"#);
    assert_eq!(
        VolumeProperties::from_json(&ci, None).unwrap_err().field(),
        Some("driver_volume_type")
    );
}

#[test]
fn bare_properties_by_their_keys_or_the_flag() {
    assert!(matches!(
        VolumeProperties::from_json(NV, None),
        Ok(VolumeProperties::Nvmeof(_))
    ));
    assert!(matches!(
        VolumeProperties::from_json(IS, None),
        Ok(VolumeProperties::Iscsi(_))
    ));
    // The flag wins over the guess: iSCSI properties read as NVMe-oF lack its fields.
    let e = VolumeProperties::from_json(IS, Some(Protocol::Nvmeof)).unwrap_err();
    assert_eq!(e.field(), Some("target_nqn"));
}

#[test]
fn an_option_of_another_transport_is_refused_naming_it() {
    let nvme_only = [
        ConnectOptions {
            ctrl_loss_tmo: Some(CtrlLossTmo::Off),
            ..ConnectOptions::default()
        },
        ConnectOptions {
            reconnect_delay: Some(std::time::Duration::from_secs(2)),
            ..ConnectOptions::default()
        },
        ConnectOptions {
            fast_io_fail_tmo: Some(std::time::Duration::from_secs(5)),
            ..ConnectOptions::default()
        },
    ];
    for (opts, field) in
        nvme_only
            .iter()
            .zip(["ctrl_loss_tmo", "reconnect_delay", "fast_io_fail_tmo"])
    {
        let e = opts.refuse_other_transport(Protocol::Iscsi).unwrap_err();
        assert_eq!(e.field(), Some(field), "{e}");
        assert_eq!(
            e.to_string(),
            format!("invalid {field}: applies to NVMe-oF volumes only, and this volume is iSCSI")
        );
        assert!(opts.refuse_other_transport(Protocol::Nvmeof).is_ok());
    }
    let iface = ConnectOptions {
        iface: Some("iser".into()),
        ..ConnectOptions::default()
    };
    let e = iface.refuse_other_transport(Protocol::Nvmeof).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "iface"),
        "{e}"
    );
    assert!(iface.refuse_other_transport(Protocol::Iscsi).is_ok());
}

#[test]
fn multipath_is_every_transports_option() {
    for multipath in [Some(true), Some(false)] {
        let opts = ConnectOptions {
            multipath,
            ..ConnectOptions::default()
        };
        assert!(opts.refuse_other_transport(Protocol::Iscsi).is_ok());
        assert!(opts.refuse_other_transport(Protocol::Nvmeof).is_ok());
    }
}

#[test]
fn ctrl_loss_tmo_takes_off_or_a_second_at_least() {
    assert_eq!("off".parse::<CtrlLossTmo>().unwrap(), CtrlLossTmo::Off);
    assert_eq!("-1".parse::<CtrlLossTmo>().unwrap(), CtrlLossTmo::Off);
    assert_eq!(
        "2m".parse::<CtrlLossTmo>().unwrap().limit(),
        Some(std::time::Duration::from_secs(120))
    );
    assert!("0".parse::<CtrlLossTmo>().is_err());
    assert!("0.5".parse::<CtrlLossTmo>().is_err());
}
