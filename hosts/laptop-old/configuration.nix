# laptop-old: the oldest on-prem worker (i3 M 330, 1.9 GiB RAM, legacy BIOS,
# an RSA host key, which the bundle is sealed to).
#
# Only what is specific to this machine lives here; its Kubernetes services
# follow from its roles in hosts/cluster.toml, and what every laptop shares is
# hosts/laptop.nix.
{ ... }:
{
  imports = [
    ./hardware-configuration.nix
    ../laptop.nix
  ];

  # Legacy BIOS boot; the disk is set in hardware-configuration.nix.
  boot.loader.grub.enable = true;

  # 1.9 GiB and no swap (kubelet refuses to start with swap on): keep the host lean.
  documentation.enable = false;

  system.stateVersion = "25.05";
}
