# What every host of the cluster shares besides Kubernetes: Tailscale (the
# path between EC2 and the home LAN, and the operators' way in), SSH (its host
# keys are what the bundle is sealed to), and flakes.
{ config, ... }:
{
  services.tailscale.enable = true;
  networking.firewall = {
    # Nodes and operators on the tailnet are trusted; the tailnet ACLs are the policy.
    trustedInterfaces = [ config.services.tailscale.interfaceName ];
    allowedUDPPorts = [ config.services.tailscale.port ];
    # Encapsulated pod traffic may come back on another interface than it left.
    checkReversePath = "loose";
  };

  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
  };

  nix.settings.experimental-features = [
    "nix-command"
    "flakes"
  ];
}
