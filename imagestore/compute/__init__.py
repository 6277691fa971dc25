"""The compute runtime: virtual machines and scale sets made from image versions, booted
under qemu on this machine (SeaBIOS for Hyper-V Gen1, OVMF for Gen2, OVMF secure boot +
swtpm for Trusted Launch), with the osProfile delivered as a cloud-init NoCloud seed.

Modules: :mod:`.seed` (the cidata ISO), :mod:`.qemu` (launch spec, process, QMP),
:mod:`.rules` (Azure's create rules and messages), :mod:`.arm_vm` (ARM JSON shapes),
:mod:`.vms` and :mod:`.vmss` (the services), :mod:`.service` (one object over both).
The layer uses the gallery only through its services (versions, definitions, disks)."""
