# laptop-ultra: an on-prem worker on the home Wi-Fi LAN.
#
# Only what is specific to this machine lives here; its Kubernetes services
# follow from its roles in hosts/cluster.toml. Its node IP (the LAN address in
# cluster.toml) is what Calico encapsulates from; the tailnet carries its
# traffic to the EC2 control plane.
{ ... }:
{
  imports = [
    ./hardware-configuration.nix
    ../common.nix
  ];

  boot.loader.systemd-boot.enable = true;
  boot.loader.efi.canTouchEfiVariables = true;

  # Wi-Fi (wlan0), where the node IP lives.
  networking.networkmanager.enable = true;

  # A laptop serving as a node keeps running with the lid closed.
  services.logind.settings.Login.HandleLidSwitch = "ignore";

  system.stateVersion = "25.05";
}
