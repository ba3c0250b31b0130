"""One connector class per protocol brick has (iSCSI now)."""
