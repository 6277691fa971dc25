"""ARM JSON of ``Microsoft.Compute/virtualMachines``, ``virtualMachineScaleSets`` and
``virtualMachineScaleSets/virtualMachines`` (instances), in the REST API's property names so
the azure-mgmt-compute models read them. Local facts (runtime directory, disk files, seed,
power state as qemu sees it) sit under ``properties.localCompute`` only."""

from __future__ import annotations

import json

from ..gallery import ids

VM_TYPE = "Microsoft.Compute/virtualMachines"
VMSS_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
VMSS_VM_TYPE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"

POWER_DISPLAY = {"running": "VM running", "stopped": "VM stopped",
                 "deallocated": "VM deallocated", "starting": "VM starting",
                 "stopping": "VM stopping"}


def vm_id(sub: str, rg: str, name: str) -> str:
    """The ARM id of a VM (``sub``: its resource group's subscription)."""
    return ids.resource_id(sub, rg, "virtualMachines", name)


def vmss_id(sub: str, rg: str, name: str) -> str:
    """The ARM id of a scale set."""
    return ids.resource_id(sub, rg, "virtualMachineScaleSets", name)


def vmss_vm_id(sub: str, rg: str, vmss: str, instance: int) -> str:
    """The ARM id of a scale set instance."""
    return f"{vmss_id(sub, rg, vmss)}/virtualMachines/{instance}"


def vm_json(row, power: str) -> dict:  # noqa: ANN001 - repository VmRow
    """A VM (or scale set instance) row -> its ARM JSON; ``power`` the current power state."""
    props = json.loads(row.props)
    props.setdefault("localCompute", {})["powerState"] = f"PowerState/{power}"
    if row.vmss_id is not None:
        vmss_name = row.name.rsplit("_", 1)[0]
        out = {"id": vmss_vm_id(row.subscription, row.rg, vmss_name, row.instance_id), "name": row.name,
               "type": VMSS_VM_TYPE, "location": row.location, "tags": json.loads(row.tags),
               "instanceId": str(row.instance_id), "properties": props}
        return out
    return {"id": vm_id(row.subscription, row.rg, row.name), "name": row.name, "type": VM_TYPE,
            "location": row.location, "tags": json.loads(row.tags), "properties": props}


def instance_view(props: dict, power: str) -> dict:
    """``properties.instanceView`` of a VM."""
    lc = props.get("localCompute", {})
    statuses = [
        {"code": f"ProvisioningState/{props.get('provisioningState', 'Succeeded').lower()}",
         "level": "Info", "displayStatus": "Provisioning succeeded",
         "time": props.get("timeCreated")},
        {"code": f"PowerState/{power}", "level": "Info",
         "displayStatus": POWER_DISPLAY.get(power, power)},
    ]
    if lc.get("osState") == "Generalized":
        statuses.append({"code": "OSState/generalized", "level": "Info",
                         "displayStatus": "VM generalized"})
    view = {
        "computerName": (props.get("osProfile") or {}).get("computerName")
        or lc.get("computerName"),
        "osName": "Linux",
        "hyperVGeneration": lc.get("hyperVGeneration"),
        "statuses": statuses,
        "bootDiagnostics": {"serialConsoleLogBlobUri": "file://" + lc["serialLog"]
                            if lc.get("serialLog") else None},
        "disks": [{"name": d["name"], "statuses": [{
            "code": "ProvisioningState/succeeded", "level": "Info",
            "displayStatus": "Provisioning succeeded"}]} for d in lc.get("disks", [])],
    }
    return {k: v for k, v in view.items() if v is not None}


def vmss_json(row, capacity: int) -> dict:  # noqa: ANN001 - repository VmssRow
    props = json.loads(row.props)
    sku = props.pop("sku", {"name": "Standard_DS1_v2", "tier": "Standard"})
    sku["capacity"] = capacity
    return {"id": vmss_id(row.subscription, row.rg, row.name), "name": row.name, "type": VMSS_TYPE,
            "location": row.location, "tags": json.loads(row.tags), "sku": sku,
            "properties": props}
