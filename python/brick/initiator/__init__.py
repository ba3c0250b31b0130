"""Protocol names, as os-brick's ``os_brick.initiator`` spells them."""

ISCSI = "ISCSI"
ISER = "ISER"
NVMEOF = "NVMEOF"
DEVICE_SCAN_ATTEMPTS_DEFAULT = 3
