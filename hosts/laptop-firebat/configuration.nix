# laptop-firebat: an on-prem worker on the home Wi-Fi LAN.
#
# Only what is specific to this machine lives here: its Kubernetes services
# follow from its roles in hosts/cluster.toml, and what every laptop shares is
# hosts/laptop.nix.
{ ... }:
{
  imports = [
    ./hardware-configuration.nix
    ../laptop.nix
  ];

  boot.loader.systemd-boot.enable = true;
  boot.loader.efi.canTouchEfiVariables = true;

  system.stateVersion = "25.05";
}
