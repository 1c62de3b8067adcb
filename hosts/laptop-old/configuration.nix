# laptop-old: the oldest on-prem worker (i3 M 330, 1.9 GiB RAM, legacy BIOS,
# an RSA host key, which the bundle is sealed to).
#
# Only what is specific to this machine lives here; its Kubernetes services
# follow from its roles in hosts/cluster.toml.
{ ... }:
{
  imports = [
    ./hardware-configuration.nix
    ../common.nix
  ];

  # Legacy BIOS boot; the disk is set in hardware-configuration.nix.
  boot.loader.grub.enable = true;

  networking.networkmanager.enable = true;
  services.logind.lidSwitch = "ignore";

  # Little memory: keep the journal small. (No swap: kubelet refuses to run with it.)
  services.journald.extraConfig = "SystemMaxUse=100M";

  system.stateVersion = "25.05";
}
