# What the on-prem laptops share as nodes: Wi-Fi (wlan0, where their LAN node IP
# from hosts/cluster.toml lives; the tailnet carries their traffic to the EC2
# control plane) and running with the lid closed. Boot loaders differ per
# machine and stay in each host's configuration.nix.
{ ... }:
{
  imports = [ ./common.nix ];

  networking.networkmanager.enable = true;

  # A laptop serving as a node keeps running with the lid closed.
  services.logind.settings.Login.HandleLidSwitch = "ignore";
}
